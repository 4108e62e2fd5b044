"""Optuna RDB storage on SQLite (WAL, busy timeout), PostgreSQL or MySQL/MariaDB; heartbeats."""

from __future__ import annotations

import contextlib
import fcntl
import random
import sqlite3
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
import sqlalchemy.exc

from storage.errors import StorageError
from storage.urls import StorageUrl

# Seconds a SQLite connection waits for a lock before giving up. Workers hold write locks for
# milliseconds, so a minute only matters when something is badly wrong.
SQLITE_BUSY_TIMEOUT_S = 60
# Seconds to wait for a PostgreSQL or MySQL server to accept a connection: a wrong host is an
# error within seconds, not after the operating system's minutes.
SERVER_CONNECT_TIMEOUT_S = 5
# MySQL and MariaDB close a connection idle for `wait_timeout` (8 h by default, often far less on
# managed servers). A pooled connection is replaced after an hour, and pinged before each use in
# case the server's limit is shorter still.
MYSQL_POOL_RECYCLE_S = 3600
# MySQL's "table already exists" (error 1050): another machine created the schema at the same
# moment. PyMySQL raises it as an OperationalError, PostgreSQL's counterpart is a ProgrammingError.
MYSQL_TABLE_EXISTS = 1050
# How often a trial that dies with its worker is retried with the same parameters.
MAX_RETRIES_OF_DEAD_TRIAL = 3


def open_rdb(
    storage: StorageUrl,
    *,
    create: bool,
    heartbeat_interval: int | None = None,
    heartbeat_grace: int | None = None,
    storage_class: type[optuna.storages.RDBStorage] = optuna.storages.RDBStorage,
) -> optuna.storages.RDBStorage:
    """Open (and with ``create`` make) the Optuna RDB storage behind a checked database URL.

    A server (PostgreSQL, MySQL/MariaDB) gets a 5 s connection timeout and connections checked
    before use (``pool_pre_ping``); MySQL's are also recycled hourly. The database itself must
    exist; its tables are created on first use (retried when two machines race to create them).
    With ``create=False`` a missing SQLite file is an error instead of a new empty database, so
    read-only commands (list, show, export) never write anything. ``storage_class`` is
    ``RDBStorage`` or a subclass of it (the gRPC proxy's heartbeat relay).
    """
    if storage.sqlite_path is not None:
        _prepare_sqlite(storage.sqlite_path, create=create)
        engine_kwargs: dict[str, object] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    else:
        # psycopg and PyMySQL both call the argument connect_timeout.
        engine_kwargs = {
            "connect_args": {"connect_timeout": SERVER_CONNECT_TIMEOUT_S},
            "pool_pre_ping": True,
        }
        if storage.is_mysql:
            engine_kwargs["pool_recycle"] = MYSQL_POOL_RECYCLE_S
    with _schema_lock(storage), warnings.catch_warnings():
        if storage.sqlite_path is not None and create:
            _use_wal(storage.sqlite_path)
        # Heartbeats and the retry callback are marked experimental; they are what we want.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        heartbeat: dict[str, object] = {}
        if heartbeat_interval is not None:
            heartbeat = {
                "heartbeat_interval": heartbeat_interval,
                "grace_period": heartbeat_grace,
                # A trial whose worker died is marked failed and its parameters run again.
                "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRIES_OF_DEAD_TRIAL
                ),
            }
        return _create_with_retry(storage, engine_kwargs, heartbeat, storage_class)


def _prepare_sqlite(path: Path, *, create: bool) -> None:
    if not create:
        if not path.exists():
            raise StorageError(
                f"no study database at {path}; run `hpsearch run CONFIG` first or pass "
                "--storage with the URL the study was run on"
            )
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(
            f"cannot create the storage folder {path.parent}: {e.strerror}; "
            "choose a writable place with --storage sqlite:///path/to/file.db"
        ) from e
    if path.exists() and path.is_dir():
        raise StorageError(f"storage path {path} is a directory; name a .db file inside it")


def _use_wal(path: Path) -> None:
    """Switch a (new) SQLite file to WAL; called under the schema lock.

    Switching needs the file to itself, and a second command's switch racing the first one's
    can fail at once with "database is locked" instead of waiting out the busy timeout.
    """
    try:
        # WAL lets the dashboard and several workers read while one writes. The mode is stored
        # in the database file, so setting it once here covers every later connection.
        connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
        finally:
            connection.close()
    except sqlite3.DatabaseError as e:
        raise StorageError(
            f"{path} is not a usable SQLite database ({e}); point --storage at another file"
        ) from e


@contextlib.contextmanager
def _schema_lock(storage: StorageUrl) -> Iterator[None]:
    """Serialise first-time schema creation on one machine (Optuna races there, optuna#4621)."""
    if storage.sqlite_path is None or not storage.sqlite_path.parent.exists():
        yield
        return
    lock_path = storage.sqlite_path.with_name(storage.sqlite_path.name + ".lock")
    try:
        handle = open(lock_path, "a")  # noqa: SIM115 - closed below
    except OSError:
        # A read-only folder: nothing will be created there anyway.
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _create_with_retry(
    storage: StorageUrl,
    engine_kwargs: dict[str, object],
    heartbeat: dict[str, object],
    storage_class: type[optuna.storages.RDBStorage],
) -> optuna.storages.RDBStorage:
    attempts = 5
    for attempt in range(attempts):
        try:
            return storage_class(storage.url, engine_kwargs=engine_kwargs, **heartbeat)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as e:
            race: sqlalchemy.exc.DBAPIError = e
        except sqlalchemy.exc.OperationalError as e:
            if not _is_mysql_table_exists(e):
                raise StorageError(
                    f"cannot open storage {storage.masked}: {_first_line(e)}; check that the "
                    "server runs, the host, port, user and password are right, and the database "
                    "exists"
                ) from e
            race = e
        except sqlalchemy.exc.ArgumentError as e:
            raise StorageError(f"bad storage URL {storage.masked}: {_first_line(e)}") from e
        except ModuleNotFoundError as e:
            raise StorageError(
                f"storage {storage.masked} needs the Python package {e.name!r}; "
                "reinstall with `make install`"
            ) from e
        except optuna.exceptions.StorageInternalError as e:
            raise StorageError(f"cannot open storage {storage.masked}: {_first_line(e)}") from e
        # Two machines creating the schema of an empty database at once: one wins, the other
        # sees duplicate tables or rows. The tables exist now; try again.
        if attempt == attempts - 1:
            raise StorageError(
                f"cannot create the study schema at {storage.masked}: {_first_line(race)}"
            ) from race
        time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")


def _is_mysql_table_exists(error: sqlalchemy.exc.OperationalError) -> bool:
    args = getattr(error.orig, "args", ())
    return bool(args) and args[0] == MYSQL_TABLE_EXISTS


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
