"""PostgreSQL through the same code path as SQLite: real server, real workers, real failures.

Each test runs on a fresh database of its own (see ``tests/postgres_server.py`` for where the
server comes from).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.conftest import MICRO_TOY, cli_env, deep_update
from tests.postgres_server import Server, _free_port, fresh_database

Run = Callable[..., subprocess.CompletedProcess[str]]


def write(folder: Path, storage: str, changes: dict | None = None) -> Path:
    data = deep_update(MICRO_TOY, {"study": {"storage": storage}, "fixed": {"epochs": 1}})
    data = deep_update(data, changes or {})
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "search", *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_workers_on_postgres_reach_exactly_n_trials(
    postgres_url: str, run_cli: Run, tmp_path: Path
) -> None:
    config = write(tmp_path, "sqlite:///unused.db", {"study": {"n_trials": 4}})
    done = run_cli("run", str(config), "--storage", postgres_url, "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    study = optuna.load_study(study_name="micro", storage=postgres_url)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert all(len(t.user_attrs["epochs"]) == 1 for t in trials)
    assert study.user_attrs["environment"]["threads"] >= 1
    # The read commands work on the same URL.
    listed = run_cli("list", "--storage", postgres_url, "--json")
    assert listed.returncode == 0 and '"complete": 4' in listed.stdout
    assert not (tmp_path / "unused.db").exists(), "--storage replaced the config's URL"


@pytest.mark.slow
def test_two_commands_at_once_on_a_fresh_postgres_database(
    postgres_url: str, tmp_path: Path
) -> None:
    # Both create the schema and the study at the same moment (optuna#1092/#4621 race there).
    enqueue = [{"lr": 0.005, "hidden_dim": 32, "num_heads": 2}]
    config = write(tmp_path, postgres_url, {"study": {"n_trials": 3}, "enqueue": enqueue})
    first, second = start("run", str(config), cwd=tmp_path), start("run", str(config), cwd=tmp_path)
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    assert (first.returncode, second.returncode) == (0, 0), outputs
    trials = optuna.load_study(study_name="micro", storage=postgres_url).get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), "no lost or duplicated trial numbers"
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    # Separate commands may overshoot by at most one trial each (docs/architecture.md).
    assert 3 <= len(finished) <= 5 and len(finished) == len(trials)
    assert [t.params for t in trials].count(enqueue[0]) == 1, "enqueued once, not per command"


@pytest.mark.parametrize("host", ["127.0.0.1:{free}", "[::1]:{free}"])
def test_unreachable_server_is_one_line_exit_2_within_seconds(
    write_config: Callable[..., Path], run_cli: Run, host: str
) -> None:
    url = f"postgresql+psycopg://hp:Secret-9@{host.format(free=_free_port())}/hp"
    started = time.monotonic()
    done = run_cli("run", str(write_config()), "--storage", url)
    assert time.monotonic() - started < 30
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "cannot open storage postgresql+psycopg://hp:***@" in done.stderr
    assert "Secret-9" not in done.stderr + done.stdout


def test_wrong_password_and_missing_database_are_one_line_exit_2(
    password_postgres_server: Server, write_config: Callable[..., Path], run_cli: Run
) -> None:
    server = password_postgres_server
    config = str(write_config())
    with fresh_database(server) as name:
        started = time.monotonic()
        wrong = run_cli("run", config, "--storage", server.database_url(name, "Wrong-pw-42"))
        assert time.monotonic() - started < 30
        assert wrong.returncode == 2, wrong.stderr
        assert wrong.stderr.count("\n") == 1 and "Traceback" not in wrong.stderr
        assert "password authentication failed" in wrong.stderr
        assert "Wrong-pw-42" not in wrong.stderr + wrong.stdout and ":***@" in wrong.stderr
        with server.connect(name) as connection:
            tables = connection.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
        assert tables == (0,), "nothing was written"
    missing = run_cli("run", config, "--storage", server.database_url("no_such_db_hpsearch"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert 'database "no_such_db_hpsearch" does not exist' in missing.stderr
    assert server.password not in missing.stderr
