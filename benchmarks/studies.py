"""Run whole toy studies for the figures that count epochs (pruning, search vs grid).

Each study runs in-process in a child (``search.config.load_config`` + ``search.study.run_study``)
on its own temporary SQLite file, and comes back as plain per-trial records. Those figures count
epochs, not seconds, so independent studies run side by side, one per core, one torch thread
each (the toy objective's own cap); their wall times are reported for information only.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.harness import Settings

ACCURACY_GOAL = 0.99  # "solved": validation accuracy at least this


def label_prefix(settings: Settings) -> str:
    """Study labels of quick and smoke runs are prefixed, so they never mix with full ones."""
    return "" if settings.mode == "full" else f"{settings.mode}-"


def quick_startup(settings: Settings) -> tuple[str, ...]:
    """Shorter sampler and pruner startups for the small studies of quick and smoke runs.

    A dozen trials leave TPE (10 random startup trials) and the median pruner (5) almost nothing
    to do; shorter startups keep the small figures a search with pruning, as the full ones are.
    """
    if settings.mode == "full":
        return ()
    return ("sampler.args.n_startup_trials=4", "pruner.args.n_startup_trials=3")


@dataclass(frozen=True)
class StudySpec:
    """One study: a config file plus ``--set`` style overrides."""

    config: str  # path relative to the repository root
    overrides: tuple[str, ...]
    label: str  # unique; also the study's name

    def command(self) -> str:
        """The equivalent CLI command (what a reader runs to reproduce this study)."""
        sets = " ".join(f"--set {o}" for o in self.overrides)
        return f"hpsearch run {self.config} --storage sqlite:///bench.db {sets}".strip()


@dataclass
class TrialRecord:
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    val_accuracy: list[float]  # per finished epoch
    val_loss: list[float]
    best_epoch: int | None
    test_accuracy: float | None
    values: list[float] | None = None  # every metric's (a study with several)
    seconds: float | None = None  # from the trial's start to its end
    reason: str | None = None


@dataclass
class StudyOutcome:
    spec: StudySpec
    trials: list[TrialRecord]
    direction: str
    wall_seconds: float
    stopped_because: str | None = None
    errors: list[str] = field(default_factory=list)
    directions: list[str] = field(default_factory=list)

    @property
    def total_epochs(self) -> int:
        return sum(len(t.val_accuracy) for t in self.trials)

    def best_trial(self) -> TrialRecord | None:
        complete = [t for t in self.trials if t.state == "COMPLETE" and t.value is not None]
        if not complete:
            return None
        pick = min if self.direction == "minimize" else max
        return pick(complete, key=lambda t: t.value)  # type: ignore[arg-type, return-value]

    def first_solved(self, goal: float = ACCURACY_GOAL) -> tuple[int, TrialRecord] | None:
        """(epochs spent, trial) when a trial first reaches ``goal`` validation accuracy.

        Epochs spent counts every epoch of every earlier trial (pruned ones too) plus the epochs
        of the solving trial up to and including the solving epoch: the compute a user spends
        before holding a solved model. Trials run one at a time, so number order is time order.
        """
        spent = 0
        for trial in sorted(self.trials, key=lambda t: t.number):
            for index, accuracy in enumerate(trial.val_accuracy):
                if accuracy is not None and accuracy >= goal:
                    return spent + index + 1, trial
            spent += len(trial.val_accuracy)
        return None

    def best_val_accuracy(self) -> float | None:
        values = [a for t in self.trials for a in t.val_accuracy if a is not None]
        return max(values) if values else None


def run_one(spec: StudySpec, workdir: str) -> StudyOutcome:
    """Run ``spec`` to completion in this process (one torch thread) and read its trials."""
    import optuna
    import torch
    from optuna.trial import TrialState

    import search.study
    from search.config import load_config
    from search.trial import trial_epochs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The toy objective trains on one torch thread per worker (its spec caps it), so studies
    # run side by side, one per core, without fighting over threads.
    torch.set_num_threads(1)
    folder = Path(workdir) / spec.label
    # Always a fresh study: a folder of that name left by a run stopped part-way is not resumed.
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    storage = f"sqlite:///{(folder / 'study.db').resolve()}"
    overrides = [*spec.overrides, f"study.storage={storage}", f"study.name={spec.label}"]
    config = load_config(spec.config, overrides)
    started = time.perf_counter()
    summary = search.study.optimize_study(config, device="cpu")
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=spec.label, storage=storage)
    trials = []
    ran = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    # Enqueued trials beyond n_trials stay WAITING: they never ran, so they are not counted.
    for trial in study.get_trials(deepcopy=False, states=ran):
        epochs = trial_epochs(trial.user_attrs)
        trials.append(
            TrialRecord(
                number=trial.number,
                state=trial.state.name,
                value=trial.values[0] if trial.values else None,
                values=list(trial.values) if trial.values else None,
                seconds=(
                    (trial.datetime_complete - trial.datetime_start).total_seconds()
                    if trial.datetime_complete and trial.datetime_start
                    else None
                ),
                reason=trial.user_attrs.get("reason"),
                params=dict(trial.params),
                val_accuracy=[e.get("val_accuracy") for e in epochs],
                val_loss=[e.get("val_loss") for e in epochs],
                best_epoch=trial.user_attrs.get("best_epoch"),
                test_accuracy=trial.user_attrs.get("test_accuracy"),
            )
        )
    errors = [
        str(t.user_attrs.get("reason"))
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "FAIL"
    ]
    return StudyOutcome(
        spec=spec,
        trials=trials,
        direction=study.directions[0].name.lower(),  # the training metric's
        directions=[d.name.lower() for d in study.directions],
        wall_seconds=wall,
        stopped_because=summary.stopped_because,
        errors=errors,
    )


def _run_one_args(args: tuple[StudySpec, str]) -> StudyOutcome:
    return run_one(*args)


def run_studies(
    specs: Sequence[StudySpec], workdir: str, jobs: int, log: Any = print
) -> dict[str, StudyOutcome]:
    """Run every spec, ``jobs`` at a time in child processes; results keyed by label."""
    unique = list({spec.label: spec for spec in specs}.values())
    outcomes: dict[str, StudyOutcome] = {}
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=max(1, min(jobs, len(unique))), maxtasksperchild=1) as pool:
        for outcome in pool.imap_unordered(_run_one_args, [(s, workdir) for s in unique]):
            outcomes[outcome.spec.label] = outcome
            log(
                f"  study {outcome.spec.label}: {len(outcome.trials)} trials, "
                f"{outcome.total_epochs} epochs, {outcome.wall_seconds:.0f} s"
            )
    return outcomes
