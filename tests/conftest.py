"""Shared test helpers: micro study configs and running the real CLI as a subprocess."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# A toy study small enough to run a trial in about a second on one CPU core.
MICRO_TOY: dict[str, Any] = {
    "study": {"name": "micro", "metric": "val_loss", "n_trials": 3, "seed": 0},
    "sampler": {"name": "random", "args": {}},
    "pruner": {"name": "none", "args": {}},
    "objective": "toy_transformer",
    "fixed": {"epochs": 3, "batch_size": 32, "num_layers": 1},
    "search": {
        "lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
        "hidden_dim": {"type": "categorical", "choices": [16, 32]},
        "num_heads": {"type": "categorical", "choices": [1, 2]},
    },
    "data": {"n_train": 300, "n_val": 100, "n_test": 100, "seq_len": 12},
}


# Pruning on, a wide learning-rate range: some trials are pruned, several complete.
PRUNED_STUDY = {
    "study": {"n_trials": 7},
    "pruner": {"name": "median", "args": {"n_startup_trials": 2, "n_warmup_steps": 1}},
    "fixed": {"epochs": 3, "batch_size": 32, "num_layers": 1},
    "search": {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "hidden_dim": {"type": "categorical", "choices": [16, 32]},
        "num_heads": {"type": "categorical", "choices": [1, 2]},
    },
}


def deep_update(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in changes.items():
        # `search:` is replaced whole (a test names exactly the space it wants).
        if key != "search" and isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_update(result[key], value)
        else:
            result[key] = value
    return result


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write MICRO_TOY (updated with ``changes``) as YAML; storage in ``tmp_path``."""

    def write(changes: dict[str, Any] | None = None, name: str = "study.yaml") -> Path:
        data = deep_update(MICRO_TOY, {"study": {"storage": f"sqlite:///{tmp_path / 'hp.db'}"}})
        data = deep_update(data, changes or {})
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


# `make test` runs the suite on several xdist workers (`-n`, `--dist loadgroup`). A file's tests
# stay on one worker, so a module-scoped fixture (a finished study, a started server) runs once.
# The files in one of these groups share a worker too: the tests that kill, signal or wait on
# heartbeats never run beside each other, and the self-started password-checking servers start
# once for all the files that need them.
XDIST_GROUPS: dict[str, tuple[str, ...]] = {
    "signals": ("test_reliability.py", "test_resume.py", "test_proxy.py"),
    "password-servers": ("test_postgres.py", "test_mariadb.py", "test_deploy.py"),
}


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist each worker is one process per core: one torch thread each, not one per core."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its xdist group: its file's, or its file's group's."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        group = next(
            (name for name, files in XDIST_GROUPS.items() if item.path.name in files),
            item.path.relative_to(REPO).as_posix(),
        )
        item.add_marker(pytest.mark.xdist_group(group))


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m search ARGS`` in ``tmp_path`` and return the completed process."""

    def run(
        *args: str, timeout: float = 300, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "search", *args],
            cwd=cwd or tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def run_search(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m search ARGS`` in ``cwd`` (for module-scoped fixtures, which cannot use
    ``run_cli``)."""
    return subprocess.run(
        [sys.executable, "-m", "search", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def digest(path: Path) -> str:
    """A file's SHA-256: tests check that bad input leaves the storage byte-for-byte unchanged."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a micro config and the SQLite file of its finished one-trial study."""
    folder = tmp_path_factory.mktemp("finished")
    data = deep_update(
        MICRO_TOY,
        {
            "study": {"n_trials": 1, "storage": f"sqlite:///{folder / 'hp.db'}"},
            "fixed": {"epochs": 1},
        },
    )
    (folder / "study.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    done = run_search("run", str(folder / "study.yaml"), cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder


# PostgreSQL and MariaDB/MySQL fixtures (postgres_server, password_postgres_server,
# postgres_url; mariadb_server, password_mariadb_server, mariadb_url); registered here so a
# session-scoped server starts once for all test modules.
from tests.mariadb_server import (  # noqa: E402, F401
    mariadb_server,
    mariadb_url,
    password_mariadb_server,
)
from tests.postgres_server import (  # noqa: E402, F401
    password_postgres_server,
    postgres_server,
    postgres_url,
)
