"""Running a retrain plan: one enqueued trial per seed, in a study of its own, resumable."""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.config import StudyConfig, config_differences, describe
from search.errors import ConfigError
from search.formatting import number
from search.retrain._plan import RetrainPlan
from search.study import open_study, run_queued
from search.trial import TRAINING_SEED, StudyRecord, TrialRecord, training_seed_of
from storage.connect import open_storage
from storage.urls import mask_password, parse_storage_url


@dataclass(frozen=True)
class SeedRun:
    """What one seed's trial produced (no metrics when it has not finished)."""

    seed: int
    trial: int | None
    state: str  # COMPLETE, PRUNED (diverged), or MISSING (no finished trial)
    best_epoch: int | None = None
    epochs_run: int | None = None
    # val_<m> at the best epoch and test_<m> of the best epoch's weights
    metrics: dict[str, float | None] = field(default_factory=dict)
    seconds: float | None = None
    reason: str | None = None

    def metric(self, name: str) -> float | None:
        value = self.metrics.get(name)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "seed": self.seed,
            "trial": self.trial,
            "state": self.state,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            **self.metrics,
            "seconds": self.seconds,
        }
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass
class SeedPrinter:
    """Optuna callback: one line per finished seed."""

    role: str
    stream: TextIO | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        out = self.stream or sys.stdout
        run = _seed_run(_seed_of(trial), trial)
        seed = "?" if run.seed < 0 else str(run.seed)
        if trial.state == TrialState.COMPLETE:
            shown = ("val_loss", "val_accuracy", "test_loss", "test_accuracy")
            detail = f"best epoch {run.best_epoch}/{run.epochs_run} " + " ".join(
                f"{name} {number(run.metric(name), 'n/a')}" for name in shown
            )
        else:
            detail = TrialRecord.from_trial(trial).reason or "no reason recorded"
        seconds = f" ({run.seconds:.1f}s)" if run.seconds is not None else ""
        out.write(f"  {self.role} seed {seed}: {trial.state.name} {detail}{seconds}\n")
        out.flush()


def run_seeds(plan: RetrainPlan, device: str, out: TextIO) -> list[SeedRun]:
    """Train every seed of ``plan`` that has no finished trial yet; return one row per seed."""
    config = plan.config
    _check_no_drift(config)
    study, _ = open_study(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A trial whose process was killed is failed here and re-queued with its seed.
        optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    finished = _finished_by_seed(trials)
    queued = {_seed_of(t) for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)}
    todo = [s for s in plan.seeds if s not in finished]
    for seed in todo:
        # enqueue_trial(skip_if_exists=True) compares params only, and there are none here:
        # the seed bookkeeping is ours.
        if seed not in queued:
            study.enqueue_trial({}, user_attrs={TRAINING_SEED: seed})
    running_elsewhere = [
        s for s in todo if any(_seed_of(t) == s and t.state == TrialState.RUNNING for t in trials)
    ]
    out.write(
        f"{plan.role}: {plan.path} -> study {config.study.name!r} on "
        f"{mask_password(config.study.storage)}: {len(plan.seeds) - len(todo)}/{len(plan.seeds)} "
        f"seeds finished"
        + (f", training seeds {', '.join(map(str, todo))}" if todo else ", nothing to train")
        + "\n"
    )
    out.flush()
    # Exactly as many trials as are queued, so no trial ever runs without a seed.
    run_queued(study, config, device=device, on_trial=SeedPrinter(plan.role, out))
    trials = study.get_trials(deepcopy=False)
    finished = _finished_by_seed(trials)
    runs = []
    for seed in plan.seeds:
        trial = finished.get(seed)
        if trial is not None:
            runs.append(_seed_run(seed, trial))
            continue
        failed = [t for t in trials if _seed_of(t) == seed and t.state == TrialState.FAIL]
        reason = (
            "still running in another process (or killed less than heartbeat_grace ago)"
            if seed in running_elsewhere
            else (TrialRecord.from_trial(failed[-1]).reason if failed else None)
        )
        runs.append(SeedRun(seed, None, "MISSING", reason=reason or "not run"))
    return runs


def _check_no_drift(config: StudyConfig) -> None:
    """A retrain study continues only with the same configuration (a retrain-specific hint)."""
    url = parse_storage_url(config.study.storage)
    if url.sqlite_path is not None and not url.sqlite_path.exists():
        return
    try:
        existing = optuna.load_study(
            study_name=config.study.name, storage=open_storage(url, create=False)
        )
    except KeyError:
        return
    stored = StudyRecord.from_study(existing).config
    if not stored:
        return
    differences = config_differences(stored, config.to_dict())
    if differences:
        raise ConfigError(
            f"study {config.study.name!r} in {url.masked} holds runs of another configuration "
            f"({describe(differences, limit=4)}); "
            f"retrain into another --storage, or delete that study first "
            f"(`hpsearch delete '{config.study.name}' --storage '{url.masked}'`)"
        )


def _finished_by_seed(trials: Sequence[FrozenTrial]) -> dict[int, FrozenTrial]:
    """The first finished trial of each seed (COMPLETE preferred over PRUNED = diverged)."""
    result: dict[int, FrozenTrial] = {}
    for state in (TrialState.COMPLETE, TrialState.PRUNED):
        for trial in sorted(trials, key=lambda t: t.number):
            seed = _seed_of(trial)
            if trial.state == state and seed >= 0 and seed not in result:
                result[seed] = trial
    return result


def _seed_of(trial: FrozenTrial) -> int:
    seed = training_seed_of(trial)
    return -1 if seed is None else seed


def _seed_run(seed: int, trial: FrozenTrial) -> SeedRun:
    record = TrialRecord.from_trial(trial)
    names = [*record.val_metric_names(), *record.test]
    return SeedRun(
        seed=seed,
        trial=trial.number,
        state=trial.state.name,
        best_epoch=record.best_epoch,
        epochs_run=record.epochs_run,
        metrics={name: record.metric(name) for name in names},
        seconds=record.seconds,
        reason=record.reason if trial.state != TrialState.COMPLETE else None,
    )
