"""The bridge between one Optuna trial and one training run.

It samples the trial's parameters, asks the objective to build model and data for them
(``spec.build``), trains with the one loop, reports the study metric after every epoch, prunes
when the pruner says so, and records what a trial records (``search/trial/_keys.py``): per-epoch
``epochs``, ``best_epoch``, the best epoch's test metrics, and a ``reason`` for every trial that
did not simply run all its epochs. Its files (epoch table, curves, checkpoint) go to the artifact
store.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import optuna

from objectives.command import NAME as COMMAND_OBJECTIVE
from objectives.loop import (
    EpochRecord,
    LoopResult,
    LoopSettings,
    RunControl,
    TrainingInterrupted,
    TrainingJob,
    is_out_of_memory,
    train,
)
from objectives.loop_state import LoopState
from objectives.specs import BuildRequest
from search.config import StudyConfig
from search.formatting import params_text
from search.pruning import CurvePercentilePruner, MultiObjectivePruning, curve_of
from search.study._command import run_command_trial
from search.study._devices import Slot
from search.study._live import TrialProgress
from search.study._process import interrupt_requested, stop_at_safe_point
from search.study._writer import TrialWriter, write_study_facts
from search.trial import (
    DEVICE,
    RESUMED_FROM,
    SPARED_BY_COST,
    SPARED_WHILE_IMPROVING,
    WORKER,
    Infeasible,
    TrialResume,
    chain_of,
    config_artifact_dir,
    enqueue_retry,
    measure_costs,
    objective_values,
    running_value,
    sample_params,
    spared_while_improving,
    training_seed_of,
    upload_trial_files,
)
from storage.artifacts import save_checkpoint


def loop_settings(params: dict[str, Any], config: StudyConfig) -> LoopSettings:
    return LoopSettings(
        epochs=params["epochs"],
        lr=params["lr"],
        metric=config.metric,
        maximize=config.maximize,
        weight_decay=params["weight_decay"],
        warmup_ratio=params["warmup_ratio"],
        max_grad_norm=params["max_grad_norm"],
        early_stopping_patience=params["early_stopping_patience"],
        compile=params["compile"],
    )


def run_trial(
    trial: optuna.Trial,
    config: StudyConfig,
    device: str,
    *,
    slot: Slot | None = None,
    progress: TrialProgress | None = None,
) -> float | list[float]:
    """Train one sampled configuration as this trial; return the metric at its best epoch.

    A multi-objective study gets one value per metric: the training metric and any other
    validation metric at the best epoch, the cost metrics as measured.

    ``device`` is the torch device to train on; ``slot`` the worker's place as the user named
    it (recorded as the trial's ``device`` and ``worker``); ``progress`` shows the training.
    """
    writer = TrialWriter(trial)
    where = slot or Slot(0, device)
    writer.attrs({DEVICE: where.device, WORKER: where.worker})
    try:
        return _run(trial, config, device, writer, progress)
    except KeyboardInterrupt:
        # SIGTERM / Ctrl-C: the state (if any) stays for the retry queued here, which the next
        # run of the study picks up before sampling anything new.
        if not writer.has_reason():
            writer.reason("interrupted; retried on the next run")
        enqueue_retry(trial)
        raise
    finally:
        if progress is not None:
            progress.end()


def _run(
    trial: optuna.Trial,
    config: StudyConfig,
    device: str,
    writer: TrialWriter,
    progress: TrialProgress | None,
) -> float | list[float]:
    params = sample_params(trial, config)
    metric = config.metric
    seed = training_seed_of(trial)
    seed = config.study.seed if seed is None else seed
    chain = chain_of(trial)
    if chain.previous is not None:
        writer.clear_inherited()  # a heartbeat retry starts with the dead trial's results

    several = MultiObjectivePruning(config) if config.multi_objective else None
    costs: dict[str, float] = {}
    spare = _SpareWhileImproving.of(trial)

    def should_prune(epoch: int) -> bool:
        if several is None:
            if spare is not None and spare.spared:
                return False
            if not trial.should_prune():
                return False
            return spare is None or not spare.take(trial, curve_of(writer.epochs, metric), epoch)
        verdict = several.decide(trial.study, curve_of(writer.epochs, metric), costs)
        if verdict.spared:
            trial.set_user_attr(SPARED_BY_COST, epoch)
        return verdict.prune

    if config.objective == COMMAND_OBJECTIVE:
        return run_command_trial(
            trial, config, params, seed, chain, writer, should_prune, progress, device
        )
    settings = loop_settings(params, config)
    resume = TrialResume.of(trial, chain, config, params, seed) if config.artifacts.resume else None
    state, why_not = resume.load() if resume is not None else (None, None)
    if why_not:
        writer.note(f"{why_not}: trained from epoch 1")

    def on_epoch(record: EpochRecord, improved: bool) -> None:
        row = record.to_dict()
        writer.epoch(row, improved)
        if progress is not None:
            progress.epoch(row)
        value = record.metric(metric)
        if several is None:
            trial.report(value, record.epoch)
        # Pruning after the last epoch saves nothing and would throw away the trial's test
        # evaluation and checkpoint: a trial that ran all its epochs completes.
        if record.epoch < settings.epochs and should_prune(record.epoch):
            writer.reason(f"pruned at epoch {record.epoch}: {metric}={value:.4g} by the pruner")
            raise optuna.TrialPruned(f"pruned at epoch {record.epoch}")

    try:
        job = config.spec.build(
            BuildRequest(
                params=params,
                data=config.data_config(),
                data_seed=config.data_seed,
                seed=seed,
                device=device,
            )
        )
        writer.attrs(job.trial_attrs)
        write_study_facts(trial.study, job.study_attrs)
        # Cost metrics before a single step; a proposal outside `constraints:` ends here.
        costs.update(measure_costs(trial, config, job, device))
        stop_at_safe_point()
        if state is not None and chain.previous is not None:
            _carry_over(trial, writer, state, metric, chain.previous, report=several is None)
        control = RunControl(
            should_stop=interrupt_requested,
            save_state=resume.save if resume is not None else None,
            resume=state,
            save_every=config.artifacts.resume_every,
            on_step=progress.step if progress is not None else None,
        )
        if progress is not None:
            first = state.epoch if state is not None else 1
            progress.start(trial.number, settings.epochs, job.data.train_steps, first)
        try:
            result = train(job.model, job.data, settings, device, on_epoch, control)
            _save_checkpoint(trial, config, result, job)
        finally:
            del job
    except TrainingInterrupted as stop:
        if resume is not None:
            resume.flush()  # the state is on disk before the trial is marked interrupted
        writer.reason(f"interrupted {stop.state.position}; resumes there on the next run")
        raise KeyboardInterrupt from None
    except KeyboardInterrupt:
        if resume is not None:
            resume.flush()
        raise
    except Infeasible as infeasible:
        _discard(resume)
        writer.reason(str(infeasible))
        raise
    except optuna.TrialPruned:
        _discard(resume)
        _upload_files(trial, config, writer, {})
        raise
    except Exception as e:
        _discard(resume)
        if is_out_of_memory(e):
            # A trial outcome, not a bug: this parameter set does not fit. The worker frees the
            # device's cached memory after the trial and goes on with the next one.
            shown = {k: v for k, v in params.items() if k in trial.params or k == "batch_size"}
            writer.reason(f"out of memory ({params_text(shown, ', ')}): {_first_line(e)}")
        else:
            writer.reason(f"failed: {type(e).__name__}: {e}")
        raise
    _discard(resume)
    if resume is not None and resume.problem:
        writer.note(resume.problem)

    writer.throughput(result.train_samples, result.train_seconds)
    if result.stop_reason == "diverged":
        _upload_files(trial, config, writer, {})
        epoch = len(result.epochs) + 1
        writer.reason(f"diverged: non-finite loss in epoch {epoch}")
        raise optuna.TrialPruned(f"diverged in epoch {epoch}")
    if result.best_epoch is None or result.best_value is None:
        raise RuntimeError("the training loop finished no epoch")
    writer.finished(result.best_epoch, result.test_metrics)
    _upload_files(trial, config, writer, result.test_metrics or {})
    if result.stop_reason == "early_stopped":
        writer.reason(
            f"early_stopped after epoch {len(result.epochs)}: no better {metric} for "
            f"{settings.early_stopping_patience} epochs"
        )
    elif writer.notes:
        writer.reason("")
    if several is None:
        return result.best_value
    best_row = next((row for row in writer.epochs if row.get("epoch") == result.best_epoch), {})
    return objective_values(config, best_row, costs, result.train_seconds)


class _SpareWhileImproving:
    """``pruner.args.spare``: let the first K trials the rule would cut while still improving
    run on, unjudged (``search/pruning/_rules.py``). One per trial; the count is study-wide."""

    def __init__(self, rule: CurvePercentilePruner, maximize: bool) -> None:
        self.rule = rule
        self.maximize = maximize
        self.spared = False

    @classmethod
    def of(cls, trial: optuna.Trial) -> _SpareWhileImproving | None:
        rule = trial.study.pruner
        if not isinstance(rule, CurvePercentilePruner) or not rule.spare:
            return None
        return cls(rule, trial.study.direction == optuna.study.StudyDirection.MAXIMIZE)

    def take(self, trial: optuna.Trial, curve: dict[int, float], epoch: int) -> bool:
        """Spare this trial, which the rule would cut now? Records the epoch when it does."""
        if not self.rule.still_improving(curve, self.maximize):
            return False
        if spared_while_improving(trial.study) >= self.rule.spare:
            return False
        trial.set_user_attr(SPARED_WHILE_IMPROVING, epoch)
        self.spared = True
        return True


def _carry_over(
    trial: optuna.Trial,
    writer: TrialWriter,
    state: LoopState,
    metric: str,
    previous: int,
    *,
    report: bool,
) -> None:
    """The dead trial's epochs become this trial's: stored once, reported once, unchanged."""
    writer.carry_over(state.epochs, state.best_epoch)
    for record in map(EpochRecord.from_dict, state.epochs):
        if report:
            trial.report(record.metric(metric), record.epoch)
    trial.set_user_attr(RESUMED_FROM, {"trial": previous, "epoch": state.epoch, "step": state.step})


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__
    # torch's CPU allocator prefixes its message with the C++ check that failed.
    return re.sub(r"^\[enforce fail at [^\]]*\] [^.]*\. ", "", lines[0])[:300]


def _discard(resume: TrialResume | None) -> None:
    """The run's work is finished (completed, pruned or failed): its state has no more use."""
    if resume is not None:
        resume.discard()


def _upload_files(
    trial: optuna.Trial, config: StudyConfig, writer: TrialWriter, test: dict[str, float]
) -> None:
    """Epoch table and learning curves as trial artifacts (pruned trials: their epochs so far)."""
    upload_trial_files(trial, config_artifact_dir(config), writer.epochs, writer.best_epoch, test)


def _save_checkpoint(
    trial: optuna.Trial, config: StudyConfig, result: LoopResult, job: TrainingJob
) -> None:
    """The best epoch's model (the model holds it after ``train``) per ``keep_checkpoints``."""
    if job.save_model is None or result.best_value is None or result.stop_reason == "diverged":
        return
    save_checkpoint(
        trial,
        config_artifact_dir(config),
        config.artifacts.keep_checkpoints,
        result.best_value,
        job.save_model,
        functools.partial(running_value, metric=config.metric),
    )
