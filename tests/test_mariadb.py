"""MariaDB/MySQL through the same code path as SQLite and PostgreSQL: real server, real workers.

Each test runs on a fresh database of its own (see ``tests/mariadb_server.py`` for where the
server comes from).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from search.trial import EPOCHS, EPOCHS_PART_BYTES, TrialRecord
from tests.conftest import MICRO_TOY, deep_update
from tests.mariadb_server import Server, fresh_database, table_count
from tests.servers import free_port

Run = Callable[..., subprocess.CompletedProcess[str]]


def write(folder: Path, storage: str, changes: dict | None = None) -> Path:
    data = deep_update(MICRO_TOY, {"study": {"storage": storage}, "fixed": {"epochs": 1}})
    data = deep_update(data, changes or {})
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.slow
def test_workers_on_mariadb_reach_exactly_n_trials(
    mariadb_url: str, run_cli: Run, tmp_path: Path
) -> None:
    config = write(tmp_path, "sqlite:///unused.db", {"study": {"n_trials": 4}})
    done = run_cli("run", str(config), "--storage", mariadb_url, "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    study = optuna.load_study(study_name="micro", storage=mariadb_url)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3], "no lost or duplicated numbers"
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert sorted(t.user_attrs["worker"] for t in trials).count(0) >= 1
    assert all(len(t.user_attrs[EPOCHS]) == 1 for t in trials)
    assert study.user_attrs["config"]["study"]["name"] == "micro"
    assert not (tmp_path / "unused.db").exists(), "--storage replaced the config's URL"

    # The read commands work on the same URL (a bare mysql:// means the same driver).
    bare = "mysql://" + mariadb_url.split("://", 1)[1]
    listed = run_cli("list", "--storage", bare, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(s["name"], s["complete"]) for s in json.loads(listed.stdout)] == [("micro", 4)]
    shown = run_cli("show", "micro", "--storage", mariadb_url, "--json")
    assert shown.returncode == 0, shown.stderr
    best = study.best_trial
    assert json.loads(shown.stdout)["trial"]["number"] == best.number
    exported = run_cli("export", "micro", "--storage", mariadb_url, "-o", "best.yaml")
    assert exported.returncode == 0, exported.stderr
    config_out = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert config_out["fixed"]["lr"] == best.params["lr"]


TINY_DATA = {"n_train": 32, "n_val": 16, "n_test": 16, "seq_len": 8}
# Epochs only: no resume state or checkpoint files to write after each one.
NO_FILES = {"resume": False, "keep_checkpoints": "none"}


def run_long_trial(
    run_cli: Run, folder: Path, url: str, epochs: int, *, show: bool
) -> optuna.trial.FrozenTrial:
    """One real toy trial of ``epochs`` epochs on tiny data, stored at ``url``, read back."""
    changes = {
        "study": {"n_trials": 1},
        "fixed": {"epochs": epochs},
        "data": TINY_DATA,
        "artifacts": NO_FILES,
    }
    done = run_cli("run", str(write(folder, url, changes)))
    assert done.returncode == 0, done.stderr
    (trial,) = optuna.load_study(study_name="micro", storage=url).get_trials()
    assert trial.state == TrialState.COMPLETE
    record = TrialRecord.from_trial(trial)
    assert [e["epoch"] for e in record.epochs] == list(range(1, epochs + 1))
    assert [e["val_loss"] for e in record.epochs] == [
        trial.intermediate_values[step] for step in range(1, epochs + 1)
    ], "every epoch stored at full precision"
    if show:
        shown = run_cli("show", "micro", "--storage", url, "--json", "--trial", "0")
        assert len(json.loads(shown.stdout)["trial"]["epochs"]) == epochs
    return trial


def test_a_hundred_epoch_trial_is_stored_and_read_back(
    mariadb_url: str, run_cli: Run, tmp_path: Path
) -> None:
    trial = run_long_trial(run_cli, tmp_path, mariadb_url, 100, show=False)
    # About 14,000 bytes: `epochs` alone, whole, as on SQLite and PostgreSQL.
    assert [k for k in trial.user_attrs if k.startswith(EPOCHS)] == [EPOCHS]
    assert 10_000 < len(json.dumps(trial.user_attrs[EPOCHS])) < 20_000


@pytest.mark.slow
def test_a_record_past_the_text_limit_is_stored_in_parts(
    mariadb_url: str, run_cli: Run, tmp_path: Path
) -> None:
    # 520 toy epochs are about 72,000 bytes of JSON, past the 65,535 bytes of a TEXT column.
    trial = run_long_trial(run_cli, tmp_path, mariadb_url, 520, show=True)
    parts = {k: v for k, v in trial.user_attrs.items() if k.startswith(EPOCHS)}
    assert list(parts) == [EPOCHS, "epochs.1"]
    assert all(len(json.dumps(part)) <= EPOCHS_PART_BYTES for part in parts.values())

    # Why the parts: this server refuses the whole record as one attr.
    joined = [e for part in parts.values() for e in part]
    assert len(json.dumps(joined)) > 65_535
    running = optuna.load_study(study_name="micro", storage=mariadb_url).ask()
    with pytest.raises(optuna.exceptions.StorageInternalError):
        running.set_user_attr(EPOCHS, joined)


@pytest.mark.parametrize("host", ["127.0.0.1:{free}", "[::1]:{free}"])
def test_unreachable_server_is_one_line_exit_2_within_seconds(
    write_config: Callable[..., Path], run_cli: Run, host: str
) -> None:
    url = f"mysql+pymysql://hp:Secret-9@{host.format(free=free_port())}/hp"
    started = time.monotonic()
    done = run_cli("run", str(write_config()), "--storage", url)
    assert time.monotonic() - started < 30
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("hpsearch: error: cannot open storage mysql+pymysql://hp:***@")
    assert "Can't connect to MySQL server" in done.stderr
    assert "Secret-9" not in done.stderr + done.stdout


def test_wrong_password_and_missing_database_are_one_line_exit_2(
    password_mariadb_server: Server, write_config: Callable[..., Path], run_cli: Run
) -> None:
    server = password_mariadb_server
    config = str(write_config())
    with fresh_database(server) as name:
        started = time.monotonic()
        wrong = run_cli("run", config, "--storage", server.database_url(name, "Wrong-pw-42"))
        assert time.monotonic() - started < 30
        assert wrong.returncode == 2, wrong.stderr
        assert wrong.stderr.count("\n") == 1 and "Traceback" not in wrong.stderr
        assert wrong.stderr.startswith("hpsearch: error: cannot open storage mysql+pymysql://")
        assert "Access denied for user" in wrong.stderr
        assert "Wrong-pw-42" not in wrong.stderr + wrong.stdout and ":***@" in wrong.stderr
        assert table_count(server, name) == 0, "nothing was written"
    missing = run_cli("run", config, "--storage", server.database_url("no_such_db_hpsearch"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "Unknown database 'no_such_db_hpsearch'" in missing.stderr
    assert not server.password or server.password not in missing.stderr
