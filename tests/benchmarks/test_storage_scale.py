"""The storage_scale figure at a tiny size: 2 forked clients on a SQLite file, a few trials."""

from __future__ import annotations

from pathlib import Path

import optuna

from benchmarks.harness import Settings
from benchmarks.storage_scale import (
    ClientResult,
    check_storage,
    error_kind,
    percentile,
    run,
)


def test_two_sqlite_clients_finish_trials_and_lose_none(tmp_path: Path) -> None:
    settings = Settings(mode="smoke", threads=1, jobs=1, data_dir=None, workdir=str(tmp_path))

    figure = run(settings, log=lambda _: None)

    assert figure.key == "storage_scale"
    (cell,) = figure.numbers["cells"]["sqlite"]
    assert cell["clients"] == 2 and cell["clients_without_result"] == 0
    assert cell["complete"] > 0
    assert cell["tells"] == cell["complete"] == cell["trials_stored"]
    assert cell["states"] == {"COMPLETE": cell["complete"]}
    assert cell["lost"] == 0 and cell["duplicated"] == 0
    assert cell["asks"] == cell["tells"]
    assert 0 < cell["ask_ms_p50"] <= cell["ask_ms_p99"]
    assert 0 < cell["tell_ms_p50"] <= cell["tell_ms_p99"]
    assert 0 < cell["ask_cpu_ms_p50"] <= cell["ask_ms_p99"]  # a call's CPU is within its wall
    assert all(entry["count"] == 0 for entry in cell["errors"].values())
    assert cell["trials_per_s"] > 0 and cell["client_cpu_s"] > 0
    assert sum(cell["profile_client_0"].values()) > 0.99  # client 0 ran under cProfile
    assert figure.met is True
    assert figure.table[0]["lost"] == 0 and figure.table[0]["clients"] == 2
    assert any(note.startswith("sqlite: ceiling") for note in figure.notes)


def test_the_storage_check_counts_a_lost_tell_and_a_duplicated_ask(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'check.db'}"
    study = optuna.create_study(storage=url, study_name="scale")
    first, second = study.ask(), study.ask()
    study.tell(first, 1.0)
    # A client that saw its tell of the second trial succeed, and two asks that got one id.
    client = ClientResult(
        index=0,
        asked=[(first._trial_id, 0), (first._trial_id, 0), (second._trial_id, 1)],
        told=[first._trial_id, second._trial_id],
    )

    counted = check_storage(url, [client])

    assert counted["trials_stored"] == 2 and counted["complete"] == 1
    assert counted["missing_numbers"] == 0 and counted["duplicated_numbers"] == 0
    assert counted["told_not_complete"] == 1 and counted["lost"] == 1
    assert counted["ids_asked_twice"] == 1 and counted["duplicated"] == 1


def test_errors_are_sorted_into_lock_deadlock_other_and_percentiles_by_rank() -> None:
    assert error_kind(RuntimeError("(sqlite3.OperationalError) database is locked")) == "lock"
    assert error_kind(RuntimeError("Deadlock found when trying to get lock")) == "deadlock"
    assert error_kind(ValueError("trial already finished")) == "other"
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 50) is None
