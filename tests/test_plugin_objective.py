"""A third-party objective, found only through its ``hpsearch.objectives`` entry point.

``tests/plugins/site`` holds the package ``hpsearch_mlp_blobs`` and its ``.dist-info`` as pip
would install them; putting the folder on ``PYTHONPATH`` installs it for one subprocess, without
touching the virtualenv. Every command runs the real CLI, so the test sees what a user of a
plugin sees, including spawned workers that must find the objective on their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.conftest import cli_env

PLUGIN_SITE = Path(__file__).resolve().parent / "plugins" / "site"
OBJECTIVE = "mlp_blobs"
N_CLASSES = 4
N_TRIALS = 4

CONFIG: dict[str, Any] = {
    "study": {"name": "blobs", "metric": "val_accuracy", "n_trials": N_TRIALS, "seed": 0},
    "sampler": {"name": "random", "args": {}},
    "pruner": {"name": "none", "args": {}},
    "objective": OBJECTIVE,
    "fixed": {"epochs": 5, "batch_size": 32},
    "search": {
        "lr": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True},
        "hidden_dim": {"type": "int", "low": 8, "high": 64},
    },
    "data": {
        "n_train": 400,
        "n_val": 200,
        "n_test": 200,
        "n_features": 8,
        "n_classes": N_CLASSES,
        "noise": 1.0,
    },
}


def hpsearch(
    *args: str, cwd: Path, plugin: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m search ARGS`` in ``cwd``; ``plugin``: with the plugin's site folder on the path."""
    env = cli_env()
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    if plugin:
        env["PYTHONPATH"] = str(PLUGIN_SITE) + os.pathsep + env["PYTHONPATH"]
    return subprocess.run(
        [sys.executable, "-m", "search", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_config(folder: Path, changes: dict[str, Any] | None = None) -> tuple[Path, str]:
    """The plugin study's config in ``folder`` (SQLite storage beside it); returns (file, URL)."""
    url = f"sqlite:///{folder / 'hp.db'}"
    data = yaml.safe_load(yaml.safe_dump(CONFIG))
    data["study"]["storage"] = url
    data.update(changes or {})
    path = folder / "cfg.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path, url


def explain(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"


def test_the_plugin_spec_imports_without_torch() -> None:
    """``validate`` loads the spec through the entry point; a spec that pulled in torch would
    make checking a config as slow as training."""
    env = cli_env()
    env["PYTHONPATH"] = str(PLUGIN_SITE) + os.pathsep + env["PYTHONPATH"]
    code = (
        "import sys; from hpsearch_mlp_blobs.spec import SPEC; "
        "assert SPEC.name == 'mlp_blobs', SPEC.name; "
        "assert 'torch' not in sys.modules, 'the spec imports torch'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, explain(done)


def test_validate_finds_the_objective_through_its_entry_point(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path)
    done = hpsearch("validate", str(config), cwd=tmp_path)
    assert done.returncode == 0, explain(done)
    assert f"objective: {OBJECTIVE}" in done.stdout, done.stdout
    assert not (tmp_path / "hp.db").exists(), "validate touches no storage"


def test_without_the_plugin_the_objective_is_unknown(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path)
    done = hpsearch("validate", str(config), cwd=tmp_path, plugin=False)
    assert done.returncode == 2, explain(done)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr:\n{done.stderr}"
    assert OBJECTIVE in lines[0] and "unknown objective" in lines[0], lines[0]
    for known in ("toy_transformer", "bert"):
        assert known in lines[0], f"the error should list the known objectives: {lines[0]}"


def test_a_config_cannot_name_an_import_path(tmp_path: Path) -> None:
    """Only installed packages add code: an import path in a config is not an objective name."""
    config, _ = write_config(tmp_path, {"objective": "hpsearch_mlp_blobs.spec:SPEC"})
    done = hpsearch("run", str(config), cwd=tmp_path)
    assert done.returncode == 2, explain(done)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr:\n{done.stderr}"
    assert "unknown objective" in lines[0] and "hpsearch_mlp_blobs.spec:SPEC" in lines[0]
    assert not (tmp_path / "hp.db").exists(), "bad input touches no storage"


@pytest.fixture(scope="module")
def blobs_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A finished plugin study: (folder, config file, storage URL)."""
    folder = tmp_path_factory.mktemp("plugin")
    config, url = write_config(folder)
    done = hpsearch("run", str(config), cwd=folder)
    assert done.returncode == 0, explain(done)
    return folder, config, url


def finished_trials(url: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=study_name, storage=url)
    return study.get_trials(deepcopy=False)


@pytest.mark.slow
def test_run_trains_the_plugin_objective_and_records_its_metrics(
    blobs_study: tuple[Path, Path, str],
) -> None:
    _, _, url = blobs_study
    study = optuna.load_study(study_name=CONFIG["study"]["name"], storage=url)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * N_TRIALS, [
        (t.number, t.state.name, t.user_attrs.get("reason")) for t in trials
    ]
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE, "val_accuracy is maximized"
    assert {name for t in trials for name in t.params} == {"lr", "hidden_dim"}

    best = study.best_trial
    best_epoch = best.user_attrs["best_epoch"]
    epochs = best.user_attrs["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, CONFIG["fixed"]["epochs"] + 1))
    record = next(e for e in epochs if e["epoch"] == best_epoch)
    chance = 1 / N_CLASSES
    assert record["val_accuracy"] > 2 * chance, f"no better than chance: {record}"
    assert best.value == pytest.approx(record["val_accuracy"])
    for trial in trials:
        for name in ("test_accuracy", "test_loss"):
            value = trial.user_attrs.get(name)
            assert isinstance(value, int | float), (trial.number, name, trial.user_attrs)
    assert best.user_attrs["test_accuracy"] > 2 * chance


@pytest.mark.slow
def test_show_export_retrain_and_report_work_on_the_plugin_study(
    blobs_study: tuple[Path, Path, str],
) -> None:
    folder, _, url = blobs_study
    name = CONFIG["study"]["name"]

    shown = hpsearch("show", name, "--storage", url, cwd=folder)
    assert shown.returncode == 0, explain(shown)
    assert name in shown.stdout and "val_accuracy" in shown.stdout, shown.stdout

    exported = hpsearch("export", name, "--storage", url, "-o", "best.yaml", cwd=folder)
    assert exported.returncode == 0, explain(exported)
    best = yaml.safe_load((folder / "best.yaml").read_text(encoding="utf-8"))
    assert best["objective"] == OBJECTIVE
    assert best["best"]["study"] == name and best["search"] == {}
    assert set(best["best"]["params"]) == {"lr", "hidden_dim"}

    retrained = hpsearch("retrain", "best.yaml", "--seeds", "2", cwd=folder)
    assert retrained.returncode == 0, explain(retrained)
    seeds = finished_trials(url, f"{name}/retrain")
    assert [t.state for t in seeds] == [TrialState.COMPLETE] * 2, [
        (t.number, t.state.name, t.user_attrs.get("reason")) for t in seeds
    ]

    reported = hpsearch("report", name, "--storage", url, "-o", "rep", cwd=folder)
    assert reported.returncode == 0, explain(reported)
    assert (folder / "rep" / "report.md").is_file(), sorted(os.listdir(folder / "rep"))
    assert OBJECTIVE in (folder / "rep" / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_spawned_workers_find_the_plugin_through_its_entry_point(tmp_path: Path) -> None:
    config, url = write_config(tmp_path)
    done = hpsearch(
        "run", str(config), "--study-name", "blobs-workers", "--workers", "2", cwd=tmp_path
    )
    assert done.returncode == 0, explain(done)
    trials = finished_trials(url, "blobs-workers")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * N_TRIALS, [
        (t.number, t.state.name, t.user_attrs.get("reason")) for t in trials
    ]
