"""The trial record's epochs: stored in parts under MySQL's TEXT limit, read back whole.

Real Optuna trials on a real SQLite file; the records are BERT-sized (F1 and MCC besides loss and
accuracy, every value at full precision), as ``TrialWriter`` gets them from the bridge.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import optuna
import pytest

from search.study import TrialWriter
from search.trial import EPOCHS, EPOCHS_PART_BYTES, TrialRecord, epochs_key, trial_epochs


def bert_epochs(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "epoch": epoch,
            "train_loss": rng.random(),
            "val_loss": rng.random(),
            "val_accuracy": rng.random(),
            "val_f1": rng.random(),
            "val_mcc": 2 * rng.random() - 1,
            "seconds": 300 * rng.random(),
        }
        for epoch in range(1, count + 1)
    ]


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 'hp.db'}", study_name="record")


def epoch_parts(trial: optuna.trial.FrozenTrial) -> dict[str, int]:
    """Stored epoch keys -> bytes of their JSON (what MySQL's TEXT column would hold)."""
    return {
        key: len(json.dumps(value))
        for key, value in trial.user_attrs.items()
        if key == EPOCHS or key.startswith(EPOCHS + ".")
    }


def test_hundred_epochs_stay_one_attr_as_before(study: optuna.Study) -> None:
    trial = study.ask()
    writer = TrialWriter(trial)
    written = bert_epochs(100)
    for record in written:
        writer.epoch(record, improved=record["epoch"] == 1)
    frozen = study.trials[0]
    assert list(epoch_parts(frozen)) == [EPOCHS], "a record that fits keeps the old layout"
    assert 15_000 < epoch_parts(frozen)[EPOCHS] < 25_000  # about 210 bytes an epoch
    assert frozen.user_attrs[EPOCHS] == written == TrialRecord.from_trial(frozen).epochs


def test_long_record_is_stored_in_parts_under_the_limit(study: optuna.Study) -> None:
    trial = study.ask()
    writer = TrialWriter(trial)
    written = bert_epochs(600)  # about 126,000 bytes of JSON: three parts
    for record in written:
        writer.epoch(record, improved=False)
    frozen = study.trials[0]
    sizes = epoch_parts(frozen)
    assert list(sizes) == [EPOCHS, "epochs.1", "epochs.2"]
    assert all(size <= EPOCHS_PART_BYTES for size in sizes.values()), sizes
    assert sizes[EPOCHS] > EPOCHS_PART_BYTES - 300, "a part is filled before the next begins"
    assert trial_epochs(frozen.user_attrs) == written == TrialRecord.from_trial(frozen).epochs
    assert TrialRecord.from_trial(frozen).epochs_run == 600


def test_record_written_before_parts_is_read(study: optuna.Study) -> None:
    # What every SQLite/PostgreSQL trial stored before parts existed looks like: `epochs` alone,
    # however long.
    old = bert_epochs(400)
    study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={EPOCHS: old, "best_epoch": 7}))
    record = TrialRecord.from_trial(study.trials[0])
    assert record.epochs == old and record.best_record == old[6]


def test_retry_clears_every_inherited_part_and_carries_over_in_parts(study: optuna.Study) -> None:
    # A heartbeat retry starts with a copy of the dead trial's user attrs, parts included.
    dead = bert_epochs(600, seed=1)
    TrialWriter(study.ask()).carry_over(dead, best_epoch=None)
    inherited = dict(study.trials[0].user_attrs)
    assert epochs_key(2) in inherited

    retry = study.ask()
    for key, value in inherited.items():
        retry.set_user_attr(key, value)
    cleared = TrialWriter(retry)
    cleared.clear_inherited()
    assert trial_epochs(study.trials[1].user_attrs) == []
    fresh = bert_epochs(3, seed=2)
    for record in fresh:
        cleared.epoch(record, improved=False)
    assert TrialRecord.from_trial(study.trials[1]).epochs == fresh, "no stale part read after"

    # Continuing from the dead trial's epochs: every part written once, in order.
    resumed = study.ask()
    TrialWriter(resumed).carry_over(dead, best_epoch=3)
    frozen = study.trials[2]
    assert list(epoch_parts(frozen)) == [EPOCHS, "epochs.1", "epochs.2"]
    assert TrialRecord.from_trial(frozen).epochs == dead
