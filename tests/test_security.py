"""Safe defaults: loopback dashboard, passwords never stored or printed, YAML that runs nothing."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml

from search.config import load_config, parse_yaml
from search.errors import ConfigError
from tests.conftest import MICRO_TOY, cli_env, deep_update
from tests.postgres_server import Server, _free_port, fresh_database

Run = Callable[..., subprocess.CompletedProcess[str]]


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on ``port``."""
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                addresses.append(address)
    return addresses


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_dashboard_listens_on_loopback_only_by_default(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hp.db'}"
    optuna.create_study(storage=db, study_name="s").optimize(lambda t: 1.0, n_trials=1)
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "search", "dashboard", "--storage", db, "--port", str(port)],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _listening(port) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        # 0100007F is 127.0.0.1; 00000000 would be every interface.
        assert _listening(port) == ["0100007F"]
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert f"http://127.0.0.1:{port}/dashboard" in out, (out, err)


@pytest.mark.slow
def test_a_storage_password_is_never_stored_or_printed(
    postgres_server: Server, run_cli: Run, tmp_path: Path
) -> None:
    # A trust-auth server accepts and ignores the password: then any secret will do.
    password = postgres_server.password or "Hunter2-never-store-me"
    with fresh_database(postgres_server) as name:
        url = postgres_server.database_url(name, password)
        assert password in url
        data = deep_update(
            MICRO_TOY, {"study": {"storage": url, "n_trials": 2}, "fixed": {"epochs": 1}}
        )
        config = tmp_path / "study.yaml"
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        outputs = [
            run_cli("run", str(config)),
            run_cli("run", str(config)),  # the resume path prints too
            run_cli("validate", str(config)),
            run_cli("list", "--storage", url),
            run_cli("show", "micro", "--storage", url),
            run_cli("export", "micro", "--storage", url, "-o", "best.yaml"),
            run_cli("run", "best.yaml", "--storage", url),
            run_cli("run", str(config), "--set", "fixed.epochs=2"),  # refused: config drift
        ]
        assert [done.returncode for done in outputs] == [0, 0, 0, 0, 0, 0, 0, 2], [
            done.stderr for done in outputs
        ]
        printed = "".join(done.stdout + done.stderr for done in outputs)
        assert password not in printed
        assert f"{postgres_server.user}:***@" in printed, "the URL is shown, masked"

        best = yaml.safe_load((tmp_path / "best.yaml").read_text())
        assert password not in (tmp_path / "best.yaml").read_text()
        assert best["study"]["storage"].startswith("postgresql+psycopg://")
        for path in tmp_path.rglob("*"):
            if path.is_file() and path != config:
                assert password.encode() not in path.read_bytes(), path

        with postgres_server.connect(name) as connection:
            tables = [
                row[0]
                for row in connection.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                )
            ]
            assert "trials" in tables and "study_user_attributes" in tables
            for table in tables:
                for (row,) in connection.execute(f'SELECT t::text FROM "{table}" t'):
                    assert password not in row, (table, row)
            stored = connection.execute(
                "SELECT value_json FROM study_user_attributes WHERE key = 'config'"
            ).fetchall()
        assert len(stored) == 2 and all(":***@" in value for (value,) in stored)


@pytest.mark.parametrize(
    "document",
    [
        "!!python/object/apply:os.system ['touch pwned']",
        "study: !!python/object/new:os.system ['touch pwned']",
        "objective: !!python/name:os.system",
        "data: !!python/module:os",
        "study: {name: !!binary aGk=}",
    ],
)
def test_yaml_tags_that_build_objects_are_refused(
    document: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        config = tmp_path / "evil.yaml"
        config.write_text(document + "\n")
        load_config(config)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "pwned").exists()


def test_a_config_cannot_name_code_to_import(tmp_path: Path) -> None:
    # The objective is a name looked up in a fixed table, never a module path to import.
    for name in ("os:system", "objectives.toy_transformer:objective", "subprocess"):
        with pytest.raises(ConfigError, match=re.escape(f"unknown objective {name!r}")):
            load_config_text(tmp_path, {"objective": name})
    assert parse_yaml("lr: 1e-5", "x") == {"lr": 1e-5}, "numbers, not code or strings"


def load_config_text(folder: Path, changes: dict) -> None:
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(deep_update(MICRO_TOY, changes)))
    load_config(path)
