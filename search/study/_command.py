"""A command trial: one Optuna trial runs the user's own training command (the Optuna side).

The worker owns the trial, the heartbeat and the storage; the command only trains and reports
(``objectives/command.py``). For each step it reports, the worker writes the epoch record as for
a built-in trial (plus ``seconds``), reports the training metric to Optuna, asks the pruner,
applies ``early_stopping_patience`` and answers the command. The trial's value is its best step.
A stop is recorded first, with the built-in reason strings, then the command gets
``command.kill_grace_s`` to exit on its own before its process group is signalled.

Per trial, ``<artifacts>/command/<study>/trial-<N>/`` holds ``checkpoints/`` (the same folder for
the trial's retries; ``HPSEARCH_CHECKPOINT_DIR``) and ``output-<trial>.log`` (everything the
command printed).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from objectives.command import (
    CommandRun,
    Report,
    child_environment,
    command_params,
    describe_exit,
    expand_argv,
    is_finite,
    stderr_text,
    visible_devices,
)
from search.config import StudyConfig
from search.study._live import TrialProgress
from search.study._process import interrupt_requested
from search.study._writer import TrialWriter
from search.trial import (
    BEST_EPOCH,
    RESUMED_FROM,
    TRAIN_SECONDS,
    Chain,
    config_artifact_dir,
    objective_values,
    trial_epochs,
)

ShouldPrune = Callable[[int], bool]


class CommandFailedError(Exception):
    """The command ended without a result (its reason is already recorded)."""


def trial_folder(config: StudyConfig, study_name: str, chain: Chain) -> Path:
    """A trial's folder for the command: the same for every retry of one chain."""
    safe = study_name.replace("/", "__")
    return config_artifact_dir(config) / "command" / safe / f"trial-{chain.first}"


def command_environment(
    config: StudyConfig,
    trial: optuna.Trial,
    params: dict[str, Any],
    seed: int,
    files: dict[str, Path],
    device: str = "cpu",
) -> dict[str, str]:
    import torch  # loaded by the worker already: its thread count is this worker's share

    command = config.command
    assert command is not None
    extra = {
        "HPSEARCH_TRIAL_NUMBER": str(trial.number),
        "HPSEARCH_PARAMS": json.dumps(command_params(params)),
        "HPSEARCH_CHECKPOINT_DIR": str(files["checkpoints"]),
        "HPSEARCH_METRICS_FILE": str(files["metrics"]),
        "HPSEARCH_CONTROL_FILE": str(files["control"]),
        "HPSEARCH_SEED": str(seed),
    }
    base = dict(os.environ)
    base.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    gpu = visible_devices(device, base)
    if gpu is not None:  # the slot's GPU only
        extra["CUDA_VISIBLE_DEVICES"] = gpu
    env = child_environment(base, {**command.env, **extra}, secrets=[config.study.storage])
    return env


def run_command_trial(
    trial: optuna.Trial,
    config: StudyConfig,
    params: dict[str, Any],
    seed: int,
    chain: Chain,
    writer: TrialWriter,
    should_prune: ShouldPrune,
    progress: TrialProgress | None = None,
    device: str = "cpu",
) -> float | list[float]:
    command = config.command
    assert command is not None
    folder = trial_folder(config, trial.study.study_name, chain)
    checkpoints = folder / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"hpsearch-trial-{trial.number}-"))
    files = {
        "checkpoints": checkpoints,
        "metrics": scratch / "metrics.jsonl",
        "control": scratch / "control.jsonl",
    }
    run = CommandRun(
        argv=expand_argv(command.argv, params, seed),
        cwd=Path(command.cwd),
        env=command_environment(config, trial, params, seed, files, device),
        log_path=folder / f"output-{trial.number}.log",
        metrics_file=files["metrics"],
        control_file=files["control"],
        grace=command.kill_grace_s,
    )
    steps = _Steps(trial, config, params, writer, should_prune, run)
    if chain.previous is not None:
        steps.continue_from(_previous(trial, chain.previous))
    run.env["HPSEARCH_RESUME_STEP"] = str(steps.last_step)  # 0: a fresh start
    epochs = params.get("epochs")
    # Epoch lines always; bars only with a known length (one bar step per epoch).
    if progress is not None and (epochs or progress.mode == "epochs"):
        progress.start(trial.number, epochs or 0, 1, steps.last_step + 1)
        steps.progress = progress
    try:
        try:
            run.start()
            _follow(run, steps, command.timeout_s)
            if steps.stop is not None:
                told = steps.stop not in ("interrupted", "timeout")  # answered in the control file
                run.stop(command.kill_grace_s, terminate_first=not told)
            for report in run.finish():
                steps.record(report, decide=False)
        except BaseException:
            if run.process is not None and run.exit_code() is None:
                run.stop(0)
                run.finish()
            raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        value = steps.outcome(run)
    except KeyboardInterrupt:
        raise  # interrupted: its retry continues from the checkpoint folder
    except BaseException:
        if config.artifacts.keep_checkpoints != "all":
            shutil.rmtree(checkpoints, ignore_errors=True)
        raise
    _keep_checkpoints(trial, config, checkpoints, value)
    return value


def _keep_checkpoints(
    trial: optuna.Trial, config: StudyConfig, checkpoints: Path, value: float | list[float]
) -> None:
    """``artifacts.keep_checkpoints`` for a complete command trial: ``none`` removes its folder;
    ``best`` keeps only the best complete trial's (single metric; with several, every folder
    on the front stays, as nothing ranks them); ``all`` keeps every folder."""
    keep = config.artifacts.keep_checkpoints
    if keep == "none":
        shutil.rmtree(checkpoints, ignore_errors=True)
        return
    if keep != "best" or config.multi_objective or isinstance(value, list):
        return
    # Every other complete trial's folder is gone already, but the best one's: compare with it.
    try:
        best = trial.study.best_trial  # this trial is still running: not among them
    except ValueError:
        return  # the first complete trial
    assert best.value is not None
    if (value > best.value) if config.maximize else (value < best.value):
        first = best.system_attrs.get("failed_trial", best.number)
        superseded = trial_folder(config, trial.study.study_name, Chain(int(first), None))
        shutil.rmtree(superseded / "checkpoints", ignore_errors=True)
    else:
        shutil.rmtree(checkpoints, ignore_errors=True)


def _previous(trial: optuna.Trial, number: int) -> FrozenTrial | None:
    found = trial.study.get_trials(deepcopy=False)
    return next((t for t in found if t.number == number), None)


def _follow(run: CommandRun, steps: _Steps, timeout: float | None) -> None:
    """Take reports until the command exits or the trial must stop."""
    started = time.monotonic()
    while steps.stop is None:
        report = run.next_report(0.01)  # also how soon an exit is seen
        if report is not None:
            steps.record(report, decide=True)
            continue
        if interrupt_requested():
            steps.stop = "interrupted"
            steps.writer.reason(
                f"interrupted after epoch {steps.last_step}; retried on the next run"
            )
        elif timeout is not None and time.monotonic() - started > timeout:
            steps.stop = "timeout"
            steps.writer.reason(f"timeout: still running after command.timeout_s ({timeout:g} s)")
        elif run.exit_code() is not None:
            return


class _Steps:
    """The steps a command reported, and what they decide."""

    def __init__(
        self,
        trial: optuna.Trial,
        config: StudyConfig,
        params: dict[str, Any],
        writer: TrialWriter,
        should_prune: ShouldPrune,
        run: CommandRun,
    ) -> None:
        self.trial, self.config, self.writer, self.run = trial, config, writer, run
        self.should_prune = should_prune
        self.metric = config.metric
        self.epochs: int | None = params.get("epochs")
        self.patience: int | None = params.get("early_stopping_patience")
        self.best: float | None = None
        self.best_step: int | None = None
        self.last_step = 0
        self.tests: dict[int, dict[str, float | int]] = {}
        self.stop: str | None = None  # pruned, diverged, early_stopped, interrupted, timeout
        self.started = self.last_time = time.monotonic()
        self.missing_noted = False
        self.progress: TrialProgress | None = None

    def continue_from(self, previous: FrozenTrial | None) -> None:
        """A retry of a dead trial: its recorded steps become this trial's, stored and reported
        once, unchanged; the command learns the last one from ``HPSEARCH_RESUME_STEP``."""
        records = trial_epochs(previous.user_attrs) if previous is not None else []
        if previous is None or not records:
            return
        best_epoch = previous.user_attrs.get(BEST_EPOCH)
        self.writer.carry_over(records, best_epoch)
        for row in records:
            value = row.get(self.metric)
            if isinstance(value, int | float) and is_finite(value):
                if not self.config.multi_objective:
                    self.trial.report(float(value), int(row["epoch"]))
                if row["epoch"] == best_epoch:
                    self.best, self.best_step = float(value), int(row["epoch"])
        self.last_step = int(records[-1]["epoch"])
        if self.best_step is not None:
            self.tests[self.best_step] = {
                k: v
                for k, v in previous.user_attrs.items()
                if k.startswith("test_") and v is not None
            }
        self.trial.set_user_attr(
            RESUMED_FROM, {"trial": previous.number, "epoch": self.last_step, "step": 0}
        )

    def record(self, report: Report, decide: bool) -> None:
        if report.step <= self.last_step or self.stop is not None:
            return  # each step once; nothing after a stop counts (the script may run on a while)
        value = report.metrics.get(self.metric)
        if value is None:
            if not self.missing_noted:
                self.writer.note(f"step {report.step} reported no {self.metric}: ignored")
                self.missing_noted = True
            return
        now = time.monotonic()
        row: dict[str, Any] = {"epoch": report.step}
        row.update({k: v for k, v in report.metrics.items() if not k.startswith("test_")})
        row["seconds"] = now - self.last_time
        self.last_time, self.last_step = now, report.step
        self.tests[report.step] = {k: v for k, v in report.metrics.items() if k.startswith("test_")}
        if not is_finite(value):
            self.writer.epoch(row, False)
            self.stop = "diverged"
            self.writer.reason(f"diverged: non-finite {self.metric} at epoch {report.step}")
            self.run.answer(report.step, True)
            return
        maximize = self.config.maximize
        improved = self.best is None or (value > self.best if maximize else value < self.best)
        if improved:
            self.best, self.best_step = float(value), report.step
        self.writer.epoch(row, improved)
        if self.progress is not None:
            self.progress.epoch(row)
        if not self.config.multi_objective:
            self.trial.report(float(value), report.step)
        if not decide or self.stop is not None:
            return
        last = self.epochs is not None and report.step >= self.epochs
        if not last and self.should_prune(report.step):
            self.stop = "pruned"
            self.writer.reason(
                f"pruned at epoch {report.step}: {self.metric}={value:.4g} by the pruner"
            )
        elif (
            not last
            and self.patience is not None
            and self.best_step is not None
            and report.step - self.best_step >= self.patience
        ):
            self.stop = "early_stopped"
            self.writer.reason(
                f"early_stopped after epoch {report.step}: no better {self.metric} for "
                f"{self.patience} epochs"
            )
        self.run.answer(report.step, self.stop is not None)

    def outcome(self, run: CommandRun) -> float | list[float]:
        """The trial's end, decided once the output and the metrics file are read to the end."""
        seconds = time.monotonic() - self.started
        if self.stop == "interrupted":
            raise KeyboardInterrupt
        if self.stop in ("pruned", "diverged"):
            raise optuna.TrialPruned(self.stop)
        if self.stop == "timeout":
            raise CommandFailedError("timeout")
        code = run.exit_code()
        if self.stop is None and code != 0:
            what = describe_exit(code or 0)
            tail = stderr_text(run.stderr_tail)
            if run.out_of_memory:
                self.writer.reason(f"out of memory: the command ended with {what}: {tail}")
            else:
                self.writer.reason(f"failed: the command ended with {what}: {tail}")
            raise CommandFailedError(what)
        if self.best_step is None or self.best is None:
            self.writer.reason("failed: no metrics reported (exit code 0)")
            raise CommandFailedError("no metrics reported")
        self.writer.finished(self.best_step, self.tests.get(self.best_step) or None)
        self.writer.attrs({TRAIN_SECONDS: seconds})
        if self.stop is None and self.writer.notes:
            self.writer.reason("")
        if not self.config.multi_objective:
            return self.best
        best_row = next(r for r in self.writer.epochs if r.get("epoch") == self.best_step)
        return objective_values(self.config, best_row, {}, seconds)
