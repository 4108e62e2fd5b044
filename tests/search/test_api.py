"""The public Python API: the CLI's commands as functions, with the CLI's one preparation step."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import search
from search.errors import USER_ERRORS, ConfigError
from tests.conftest import REPO, cli_env


def test_import_search_is_cheap_and_exposes_the_api() -> None:
    # `import search` must not load Optuna or torch; the names load on first use.
    probe = (
        "import sys, search; heavy = [m for m in ('optuna', 'torch') if m in sys.modules]; "
        "print(heavy); print(callable(search.run_study), callable(search.load_config))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=cli_env(), capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[:2] == ["[]", "True True"]
    # The CLI too: validate, list and show never load the training stack.
    # Every package reads a study without torch; the names that need it load on first use.
    probe = (
        "import sys, search.cli, search.trial, search.study, search.readout, search.retrain; "
        "print([m for m in ('torch', 'matplotlib') if m in sys.modules]); "
        "print(callable(search.study.run_trial), callable(search.trial.TrialResume)); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=cli_env(), capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[:3] == ["[]", "True True", "True"]
    assert set(search.__all__) >= {
        "load_config",
        "run_study",
        "export_best",
        "run_retrain",
        "write_report",
    }
    with pytest.raises(AttributeError):
        search.no_such_name  # noqa: B018


def test_the_api_runs_exports_reports_and_retrains(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    config = search.load_config(write_config(), ["study.n_trials=2", "fixed.epochs=2"])
    summary = search.run_study(config, device="cpu")
    assert (summary.finished_after, summary.target, summary.stopped_because) == (2, 2, None)

    best = search.export_best("micro", storage=storage, output=tmp_path / "best.yaml")
    assert best["best"]["metric"] == "val_loss" and best["study"]["name"] == "micro-best"
    assert yaml.safe_load((tmp_path / "best.yaml").read_text())["best"] == best["best"]

    report = search.write_report("micro", storage=storage, folder=tmp_path / "rep")
    assert report == tmp_path / "rep" / "report.md" and "## Best trial" in report.read_text()

    result = search.run_retrain(tmp_path / "best.yaml", seeds=2, device="cpu")
    assert result.complete and [run.seed for run in result.winner.runs] == [1, 2]
    assert all(run.metric("test_accuracy") is not None for run in result.winner.runs)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("study.storage=mssql://x/y", "storage URL scheme 'mssql'"),
        ("sampler.args={n_startup_trials: -3}", "sampler.args"),
        ("study.name=' padded '", "study.name: no leading/trailing spaces"),
    ],
)
def test_bad_input_raises_the_cli_error_before_anything_is_written(
    write_config: Callable[..., Path], tmp_path: Path, override: str, expected: str
) -> None:
    config = search.load_config(write_config(), [override])
    with pytest.raises(USER_ERRORS) as error:
        search.run_study(config, device="cpu")
    assert expected in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "hp.db").exists()


def test_a_missing_device_is_one_error(write_config: Callable[..., Path], tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the error is for machines without one")
    with pytest.raises(ConfigError, match="no CUDA device is available here"):
        search.run_study(search.load_config(write_config()), device="cuda")
    assert not (tmp_path / "hp.db").exists()


def test_the_api_page_documents_every_public_name() -> None:
    # docs/reference/api.md: the hand-written table names each function with its signature, and
    # the generated reference (mkdocstrings) renders each one's docstring.
    page = (REPO / "docs" / "reference" / "api.md").read_text()
    table = page[page.index("| function |") : page.index("## Reference, from the docstrings")]
    generated = page[page.index("## Reference, from the docstrings") :]
    names = [name for name in search.__all__ if name != "__version__"]
    assert set(names) >= {"load_config", "run_study", "export_best", "export_front"}
    for name in names:
        row = next(line for line in table.splitlines() if f"`{name}(" in line)
        # Every parameter of the function is in its row: a new keyword cannot go undocumented.
        for parameter in inspect.signature(getattr(search, name)).parameters:
            assert parameter in row, (name, parameter)
        assert f"::: search.{search._API[name].removeprefix('search.')}.{name}" in generated, name
