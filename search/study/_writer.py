"""The record writer: a running trial's user attrs, written as it trains.

The keys and how a long epoch record is split are ``search/trial/_keys.py``'s; this is the one
place that writes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from search.trial import (
    BEST_EPOCH,
    COST_KEYS,
    EPOCHS_PART_BYTES,
    REASON,
    RESUMED_FROM,
    TEST_PREFIX,
    TRAIN_SAMPLES_PER_S,
    TRAIN_SECONDS,
    epochs_key,
    is_epochs_key,
    json_number,
    json_record,
)


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
            elif is_epochs_key(key) and value:
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


def write_study_facts(study: optuna.Study, facts: Mapping[str, Any]) -> None:
    for key, value in facts.items():
        study.set_user_attr(key, json_number(value))
