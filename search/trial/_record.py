"""The trial record read back: stored trials and studies as typed data (keys in ``_keys.py``).

The writer that fills these keys while a trial trains is ``search/study/_writer.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.trial._keys import (
    BEST_EPOCH,
    CONFIG,
    DATA_SIZES,
    ENVIRONMENT,
    INFEASIBLE,
    LATENCY_MS,
    MAJORITY_CLASS_ACCURACY,
    NOTE,
    NUM_PARAMS,
    REASON,
    SPARED_WHILE_IMPROVING,
    TEST_PREFIX,
    TRAIN_SECONDS,
    TRAINING_SEED,
    VAL_PREFIX,
    trial_epochs,
)


def training_seed_of(trial: optuna.Trial | FrozenTrial) -> int | None:
    seed = trial.user_attrs.get(TRAINING_SEED)
    return int(seed) if isinstance(seed, int) else None


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial as typed data."""

    number: int
    state: TrialState
    value: float | None  # the training metric's (the first of several)
    params: dict[str, Any]
    epochs: list[dict[str, Any]]
    best_epoch: int | None
    test: dict[str, float | None]  # test_<metric> of the best epoch
    reason: str | None
    note: str | None
    training_seed: int | None
    seconds: float | None
    values: tuple[float, ...] | None = None  # every metric's, in ``study.metric``'s order
    costs: dict[str, float] = field(default_factory=dict)  # num_params, latency_ms, ...

    @classmethod
    def from_trial(cls, trial: FrozenTrial) -> TrialRecord:
        attrs = trial.user_attrs
        duration = (
            (trial.datetime_complete - trial.datetime_start).total_seconds()
            if trial.datetime_complete and trial.datetime_start
            else None
        )
        seed = attrs.get(TRAINING_SEED)
        return cls(
            number=trial.number,
            state=trial.state,
            value=trial.values[0] if trial.values else None,
            values=tuple(trial.values) if trial.values else None,
            costs={
                k: float(v)
                for k in (NUM_PARAMS, LATENCY_MS, TRAIN_SECONDS)
                if isinstance(v := attrs.get(k), int | float)
            },
            params=dict(trial.params),
            epochs=trial_epochs(attrs),
            best_epoch=attrs.get(BEST_EPOCH),
            test={k: v for k, v in attrs.items() if k.startswith(TEST_PREFIX)},
            reason=attrs.get(REASON),
            note=attrs.get(NOTE),
            training_seed=int(seed) if isinstance(seed, int) else None,
            seconds=duration,
        )

    @property
    def epochs_run(self) -> int:
        return len(self.epochs)

    @property
    def early_stopped(self) -> bool:
        """Completed by stopping on its own curve (``fixed.early_stopping_patience``)."""
        return self.state == TrialState.COMPLETE and (self.reason or "").startswith("early_stop")

    @property
    def infeasible(self) -> bool:
        """Pruned before training because a cost metric was outside ``constraints:``."""
        return self.state == TrialState.PRUNED and (self.reason or "").startswith(INFEASIBLE)

    @property
    def best_record(self) -> dict[str, Any]:
        """The best epoch's entry of ``epochs`` (empty when there is none)."""
        for record in self.epochs:
            if record.get("epoch") == self.best_epoch:
                return record
        return {}

    def metric(self, name: str) -> float | None:
        """``test_<m>`` (the best epoch's test metric), ``val_<m>`` / ``train_loss`` at it, or a
        cost metric (``num_params``, ``latency_ms``, ``train_seconds``)."""
        if name in self.costs:
            return self.costs[name]
        value = self.test.get(name) if name.startswith(TEST_PREFIX) else self.best_record.get(name)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    def val_metric_names(self) -> list[str]:
        names: list[str] = []
        for record in self.epochs:
            names.extend(k for k in record if k.startswith(VAL_PREFIX) and k not in names)
        return names

    def best_value_so_far(self, metric: str, maximize: bool) -> float | None:
        """The best ``metric`` over the epochs recorded so far (a running trial's value)."""
        values = [float(v) for r in self.epochs if isinstance(v := r.get(metric), int | float)]
        if not values:
            return None
        return max(values) if maximize else min(values)

    def epoch_rows(self) -> list[dict[str, Any]]:
        """Per-epoch rows in the report's form: test metrics on the best epoch's row only."""
        rows = []
        for record in self.epochs:
            row = dict(record)
            is_best = record.get("epoch") == self.best_epoch
            for name, value in self.test.items():
                row[name] = value if is_best else None
            rows.append(row)
        return rows

    def summary(self) -> dict[str, Any]:
        """One trial as plain data (what ``show --json`` prints per trial)."""
        best = self.best_record
        data: dict[str, Any] = {
            "number": self.number,
            "state": self.state.name,
            "value": self.value,
            "params": self.params,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "val_loss": best.get("val_loss"),
            "val_accuracy": best.get("val_accuracy"),
            "test_loss": self.test.get("test_loss"),
            "test_accuracy": self.test.get("test_accuracy"),
        }
        for name in self.val_metric_names():
            data.setdefault(name, best.get(name))
        for name, value in self.test.items():
            data.setdefault(name, value)
        data["reason"] = self.reason
        data["note"] = self.note
        data["seconds"] = self.seconds
        return data


def running_value(trial: FrozenTrial, metric: str | None = None) -> float | None:
    """A trial's value as it stands: COMPLETE's value (the first of several), or a RUNNING
    trial's best epoch's value: from its intermediate values, or, for a study with several
    metrics (which has none), ``metric`` in its ``epochs`` record."""
    if trial.state == TrialState.COMPLETE:
        return trial.values[0] if trial.values else None
    if trial.state == TrialState.RUNNING:
        best = trial.user_attrs.get(BEST_EPOCH)
        if best is None:
            return None
        if best in trial.intermediate_values or metric is None:
            return trial.intermediate_values.get(best)
        row = next((r for r in trial_epochs(trial.user_attrs) if r.get("epoch") == best), {})
        value = row.get(metric)
        return float(value) if isinstance(value, int | float) else None
    return None


@dataclass(frozen=True)
class StudyRecord:
    """What a study carries besides its trials: its config, environment and data facts."""

    name: str
    maximize: bool  # of the training metric (the first)
    directions: tuple[str, ...]  # one per metric
    config: dict[str, Any]
    environment: dict[str, Any]
    majority_class_accuracy: float | None

    @classmethod
    def from_study(cls, study: optuna.Study) -> StudyRecord:
        attrs = study.user_attrs
        config = attrs.get(CONFIG)
        majority = attrs.get(MAJORITY_CLASS_ACCURACY)
        sizes = attrs.get(DATA_SIZES)
        return cls(
            name=study.study_name,
            maximize=study.directions[0] == optuna.study.StudyDirection.MAXIMIZE,
            directions=tuple(d.name.lower() for d in study.directions),
            config=config if isinstance(config, dict) else {},
            environment=attrs.get(ENVIRONMENT) or {},
            majority_class_accuracy=float(majority) if isinstance(majority, int | float) else None,
            data_sizes=sizes if isinstance(sizes, dict) else {},
        )

    data_sizes: dict[str, Any] = field(default_factory=dict)

    @property
    def has_config(self) -> bool:
        return bool(self.config)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The study's metric names in order (``value``, ``value_1``... when it has no config)."""
        metric = (self.config.get("study") or {}).get("metric")
        if isinstance(metric, list) and len(metric) == len(self.directions):
            return tuple(str(m) for m in metric)
        if isinstance(metric, str) and len(self.directions) == 1:
            return (metric,)
        return tuple("value" if i == 0 else f"value_{i}" for i in range(len(self.directions)))

    @property
    def metric(self) -> str:
        """The training metric: the only metric, or the first of several."""
        return self.metrics[0]

    @property
    def multi_objective(self) -> bool:
        return len(self.directions) > 1

    @property
    def test_metric(self) -> str:
        """The test counterpart of the study metric (``val_mcc`` -> ``test_mcc``)."""
        metric = self.metric
        return TEST_PREFIX + metric[len(VAL_PREFIX) :] if metric.startswith(VAL_PREFIX) else metric

    @property
    def fixed_epochs(self) -> int | None:
        epochs = (self.config.get("fixed") or {}).get("epochs")
        return epochs if isinstance(epochs, int) else None

    @property
    def artifacts_dir(self) -> str | None:
        value = (self.config.get("artifacts") or {}).get("dir")
        return value if isinstance(value, str) else None

    def section(self, name: str) -> dict[str, Any]:
        value = self.config.get(name)
        return value if isinstance(value, dict) else {}


def records(trials: Sequence[FrozenTrial]) -> list[TrialRecord]:
    return [TrialRecord.from_trial(trial) for trial in trials]


@dataclass(frozen=True)
class Outcomes:
    """How the trials of a study ended. ``complete`` includes the early-stopped ones."""

    complete: int
    early_stopped: int
    pruned: int
    failed: int
    running: int
    infeasible: int = 0  # pruned before training by `constraints:` (counted in `pruned` too)
    spared: int = 0  # let run on by `pruner.args.spare` while improving (any state)

    @classmethod
    def of(cls, trials: Sequence[FrozenTrial]) -> Outcomes:
        found = records(trials)
        return cls(
            complete=sum(r.state == TrialState.COMPLETE for r in found),
            early_stopped=sum(r.early_stopped for r in found),
            pruned=sum(r.state == TrialState.PRUNED for r in found),
            failed=sum(r.state == TrialState.FAIL for r in found),
            running=sum(r.state == TrialState.RUNNING for r in found),
            infeasible=sum(r.infeasible for r in found),
            spared=sum(SPARED_WHILE_IMPROVING in t.user_attrs for t in trials),
        )

    def text(self) -> str:
        """``14 complete (5 early-stopped), 16 pruned (3 infeasible), 0 failed``; with
        ``pruner.args.spare``, ``; 2 spared while improving`` at the end."""
        infeasible = f" ({self.infeasible} infeasible)" if self.infeasible else ""
        spared = f"; {self.spared} spared while improving" if self.spared else ""
        return (
            f"{self.complete} complete ({self.early_stopped} early-stopped), {self.pruned} pruned"
            f"{infeasible}, {self.failed} failed{spared}"
        )


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial, or None when no trial has completed or the study has several
    metrics (it has a Pareto front instead: ``search/pruning/_multi_objective.py``)."""
    if len(study.directions) > 1:
        return None
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study.best_trial if complete else None


def spared_while_improving(study: optuna.Study) -> int:
    """How many of the study's trials ``pruner.args.spare`` let run on (failed ones not counted:
    a retry of a spared trial that died is judged afresh)."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return sum(
        1
        for trial in study.get_trials(deepcopy=False, states=states)
        if SPARED_WHILE_IMPROVING in trial.user_attrs
    )
