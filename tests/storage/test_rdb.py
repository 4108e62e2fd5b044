"""The RDB storage on real SQLite files: WAL, read-only opening, bad files, bad servers."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import optuna
import pytest

from storage.connect import open_storage
from storage.errors import StorageError
from storage.urls import parse_storage_url


def test_create_makes_the_folder_and_sets_wal(tmp_path: Path) -> None:
    url = parse_storage_url(f"sqlite:///{tmp_path / 'deep' / 'er' / 'hp.db'}")
    storage = open_storage(url, create=True, heartbeat_interval=5, heartbeat_grace=10)
    optuna.create_study(storage=storage, study_name="s").optimize(lambda t: 1.0, n_trials=1)
    with sqlite3.connect(tmp_path / "deep" / "er" / "hp.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_read_only_open_never_creates_a_file(tmp_path: Path) -> None:
    url = parse_storage_url(f"sqlite:///{tmp_path / 'none.db'}")
    with pytest.raises(StorageError, match="no study database at"):
        open_storage(url, create=False)
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StorageError, match="not a usable SQLite database"):
        open_storage(parse_storage_url(f"sqlite:///{bogus}"), create=True)
    assert bogus.read_text().startswith("these are my notes")


def test_unwritable_folder_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot create the storage folder"):
        open_storage(parse_storage_url(f"sqlite:///{blocker / 'sub' / 'hp.db'}"), create=True)


def test_unreachable_postgres_fails_within_seconds() -> None:
    started = time.monotonic()
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(
        StorageError, match="cannot open storage postgresql\\+psycopg://u:\\*\\*\\*@"
    ):
        open_storage(parse_storage_url("postgresql://u:secret@127.0.0.1:9/db"), create=True)
    assert time.monotonic() - started < 15
