"""The trial record: every user attr a trial and a study carry, written and read in one place.

What a trial records (other tools read these keys; they do not change):

- intermediate values: the study metric after each epoch (step = epoch, from 1);
- ``epochs``: one dict per finished epoch ``{epoch, train_loss, val_<metric>..., seconds}``.
  A long record is stored in parts of at most 60,000 bytes of JSON, because MySQL and MariaDB
  keep a user attr in a TEXT column (65,535 bytes): ``epochs`` holds the first epochs,
  ``epochs.1``, ``epochs.2``, ... the ones after. A record that fits (every trial of up to a few
  hundred epochs) is ``epochs`` alone, as it always was. ``trial_epochs`` joins the parts;
- ``best_epoch``; the best epoch's test metrics ``test_<metric>`` (recorded, never selected on);
- ``reason`` when a trial did not simply run all its epochs (pruned, early-stopped, diverged,
  failed, interrupted); ``note`` for a remark about its data (e.g. hidden test labels);
- ``training_seed`` when a retrain enqueued it with a seed of its own; ``enqueue_index`` for an
  enqueued parameter set; ``audited_trial`` in an audit's companion study;
  ``train_samples_per_s``; facts the objective reports (``label_names``);
- ``num_params`` (trainable parameters of the built model); ``latency_ms`` and ``latency``
  (``{median_ms, p10_ms, p90_ms, repeats}``) when the study optimises or constrains latency;
  ``train_seconds`` after training; ``spared_by_cost``: the last epoch at which a
  multi-objective trial's costs saved it from the pruner (``search/multi_objective.py``);
- ``spared_while_improving``: the epoch at which the pruner would have cut the trial while it
  was still improving and ``pruner.args.spare`` let it run on (``search/pruning.py``);
- ``device`` (``cpu``, ``cuda:1``) and ``worker`` (the run's worker slot, from 0): where it
  trained;
- ``resumed_from: {trial, epoch, step}`` on a retry that continued where the trial it retries
  stopped (its ``epochs`` begin with that trial's own records, unchanged).

A study records ``config`` (the resolved config, password masked) and ``environment``, and facts
about its data (``majority_class_accuracy``, ``data_sizes``).

Values are stored at full precision (JSON cannot hold NaN or infinity: those become null);
rounding happens only for display, in ``search/formatting.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

# Trial user attrs.
EPOCHS = "epochs"
BEST_EPOCH = "best_epoch"
REASON = "reason"
NOTE = "note"
TRAINING_SEED = "training_seed"
AUDITED_TRIAL = "audited_trial"  # in an audit's companion study: the trial it trains again
ENQUEUE_INDEX = "enqueue_index"
TRAIN_SAMPLES_PER_S = "train_samples_per_s"
RESUMED_FROM = "resumed_from"  # a retry that continued a dead trial: {trial, epoch, step}
NUM_PARAMS = "num_params"
LATENCY_MS = "latency_ms"
LATENCY = "latency"  # {median_ms, p10_ms, p90_ms, repeats}
TRAIN_SECONDS = "train_seconds"
SPARED_BY_COST = "spared_by_cost"
SPARED_WHILE_IMPROVING = "spared_while_improving"  # epoch; see pruner.args.spare
COST_KEYS = (NUM_PARAMS, LATENCY_MS, LATENCY, TRAIN_SECONDS, SPARED_BY_COST)
DEVICE = "device"  # the device the trial trained on, as the run named it ("cpu", "cuda:1")
WORKER = "worker"  # the worker slot of the run that trained it (0-based)
# MySQL and MariaDB store a user attr's JSON in a TEXT column, at most 65,535 bytes; a bigger
# value fails to commit. 100 epochs of the toy objective take about 14,000 bytes, of BERT with F1
# and MCC about 21,000, so the epochs of a long trial go into parts below that limit, with room
# to spare. Each epoch rewrites only the last part, so a write never grows past this either.
EPOCHS_PART_BYTES = 60_000
# Study user attrs.
CONFIG = "config"
ENVIRONMENT = "environment"
MAJORITY_CLASS_ACCURACY = "majority_class_accuracy"
DATA_SIZES = "data_sizes"

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
INFEASIBLE = "infeasible:"  # how the reason of a proposal stopped by `constraints:` begins
TEST_PREFIX = "test_"
VAL_PREFIX = "val_"


def json_number(value: Any) -> Any:
    """A value as a storage can hold it: non-finite floats become None, nothing is rounded."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_record(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: json_number(value) for key, value in record.items()}


def epochs_key(part: int) -> str:
    """The user attr holding part ``part`` of the epochs: ``epochs``, ``epochs.1``, ..."""
    return EPOCHS if part == 0 else f"{EPOCHS}.{part}"


def _is_epochs_key(key: str) -> bool:
    return key == EPOCHS or (key.startswith(EPOCHS + ".") and key[len(EPOCHS) + 1 :].isdigit())


def trial_epochs(user_attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A trial's epoch records from its user attrs, the parts joined in order.

    Reads every trial ever stored: one written before parts existed has ``epochs`` only.
    """
    epochs: list[dict[str, Any]] = []
    part = 0
    while records_of_part := user_attrs.get(epochs_key(part)):
        epochs.extend(records_of_part)
        part += 1
    return epochs


# --------------------------------------------------------------------------- writing


class TrialWriter:
    """Writes a running trial's record as it trains (used by the search's bridge)."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.epochs: list[dict[str, Any]] = []
        self._part_starts = [0]  # where in self.epochs each stored part begins
        self._part_bytes = len("[]")  # the JSON size of the last part, as Optuna will store it
        self.best_epoch: int | None = None
        self.notes: list[str] = []  # remarks added to whatever reason the trial ends with
        self._reason_written = False

    def clear_inherited(self) -> None:
        """A heartbeat retry starts with a copy of the dead trial's user attrs: drop its results."""
        for key, value in self.trial.user_attrs.items():
            if key in (
                REASON,
                BEST_EPOCH,
                TRAIN_SAMPLES_PER_S,
                RESUMED_FROM,
                *COST_KEYS,
            ) or key.startswith(TEST_PREFIX):
                if value is not None:
                    self.trial.set_user_attr(key, None)
            elif _is_epochs_key(key) and value:
                # Optuna cannot delete a user attr: an empty part ends the record.
                self.trial.set_user_attr(key, [])

    def carry_over(self, records: Sequence[Mapping[str, Any]], best_epoch: int | None) -> None:
        """Epochs a retry continues from: written once, as they were."""
        for record in records:
            self._append(json_record(record))
        for part in range(len(self._part_starts)):
            self._store(part)
        if best_epoch is not None:
            self.best_epoch = best_epoch
            self.trial.set_user_attr(BEST_EPOCH, best_epoch)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def epoch(self, record: Mapping[str, Any], improved: bool) -> None:
        self._store(self._append(json_record(record)))
        if improved:
            self.best_epoch = int(record["epoch"])
            self.trial.set_user_attr(BEST_EPOCH, self.best_epoch)

    def _append(self, record: dict[str, Any]) -> int:
        """Add one epoch to the last part, or to a new one when it would pass the size limit.

        Returns the part it went to.
        """
        size = len(json.dumps(record))
        in_part = len(self.epochs) > self._part_starts[-1]
        grown = self._part_bytes + size + (len(", ") if in_part else 0)
        if in_part and grown > EPOCHS_PART_BYTES:
            self._part_starts.append(len(self.epochs))
            grown = len("[]") + size
        self._part_bytes = grown
        self.epochs.append(record)
        return len(self._part_starts) - 1

    def _store(self, part: int) -> None:
        starts = [*self._part_starts, len(self.epochs)]
        self.trial.set_user_attr(epochs_key(part), self.epochs[starts[part] : starts[part + 1]])

    def finished(self, best_epoch: int, test_metrics: Mapping[str, float] | None) -> None:
        self.best_epoch = best_epoch
        self.trial.set_user_attr(BEST_EPOCH, best_epoch)
        for name, value in (test_metrics or {}).items():
            self.trial.set_user_attr(name, json_number(value))

    def reason(self, text: str) -> None:
        """``text`` (may be empty) followed by the notes."""
        set_reason(self.trial, "; ".join(part for part in (text, *self.notes) if part))
        self._reason_written = True

    def has_reason(self) -> bool:
        return self._reason_written

    def attrs(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            self.trial.set_user_attr(key, value)

    def throughput(self, samples: int, seconds: float) -> None:
        if seconds > 0:
            self.trial.set_user_attr(TRAIN_SAMPLES_PER_S, samples / seconds)
        self.trial.set_user_attr(TRAIN_SECONDS, seconds)


def set_reason(trial: optuna.Trial, text: str) -> None:
    trial.set_user_attr(REASON, text[:1000])


def training_seed_of(trial: optuna.Trial | FrozenTrial) -> int | None:
    seed = trial.user_attrs.get(TRAINING_SEED)
    return int(seed) if isinstance(seed, int) else None


def write_study_facts(study: optuna.Study, facts: Mapping[str, Any]) -> None:
    for key, value in facts.items():
        study.set_user_attr(key, json_number(value))


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
    metrics (it has a Pareto front instead: ``search/multi_objective.py``)."""
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
