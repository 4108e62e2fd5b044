"""``hpsearch report``: the Markdown report and its figures, from a real micro study."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from PIL import Image, ImageStat

from search.config import config_from_dict
from search.readout import render_report as write_report
from search.study import optimize_study as run_study
from tests.conftest import MICRO_TOY, PRUNED_STUDY, cli_env, deep_update

FIGURES = (
    "optimization_history.png",
    "intermediate_values.png",
    "parallel_coordinate.png",
    "param_importances.png",
)


def make_study(folder: Path, changes: dict) -> str:
    url = f"sqlite:///{folder / 'hp.db'}"
    data = deep_update(deep_update(MICRO_TOY, {"study": {"storage": url}}), changes)
    run_study(config_from_dict(data), device="cpu")
    return url


def section(text: str, heading: str) -> str:
    """The text under a Markdown heading, up to the next heading of any level."""
    start = text.index(heading) + len(heading)
    following = re.search(r"^#{1,3} ", text[start:], flags=re.MULTILINE)
    return text[start : start + following.start()] if following else text[start:]


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


@pytest.fixture(scope="module")
def study_with_pruning(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("report")
    url = make_study(folder, PRUNED_STUDY)
    return folder, url


def test_report_command_writes_tables_and_figures(study_with_pruning: tuple[Path, str]) -> None:
    folder, url = study_with_pruning
    done = subprocess.run(
        [sys.executable, "-m", "search", "report", "micro", "--storage", url, "-o", "rep"],
        cwd=folder,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    report = (folder / "rep" / "report.md").read_text()
    study = optuna.load_study(study_name="micro", storage=url)
    trials = study.trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert complete and pruned, "the fixture study must hold both kinds"

    summary = section(report, "## Summary")
    assert "`random`" in summary and "`median` (n_startup_trials=2, n_warmup_steps=1)" in summary
    assert (
        f"| Trials | 7: {len(complete)} complete (0 early-stopped), {len(pruned)} pruned, 0 failed"
        in summary
    )
    trained = sum(len(t.user_attrs["epochs"]) for t in trials)
    assert f"| Epochs trained | {trained} of 21 (" in summary and trained < 21
    # Only pruning ended trials early here (no early stopping): the line names what saved.
    assert "would have cost; pruning saved the rest |" in summary

    best = study.best_trial
    assert f"Trial {best.number}: val_loss **{best.value:.4f}**" in section(report, "## Best trial")
    importances = table_rows(section(report, "## Parameter importances"))
    assert {row[0] for row in importances} == {"lr", "hidden_dim", "num_heads"}

    # The best trial's epochs in the form of a hand-written report: test accuracy on one row.
    best_table = section(report, f"### Trial {best.number} (best)")
    assert (
        "| Epoch | Training Loss | Validation Accuracy | Validation Loss | Test Accuracy |"
        in best_table
    )
    rows = table_rows(best_table)
    epochs = best.user_attrs["epochs"]
    assert [int(r[0]) for r in rows] == [e["epoch"] for e in epochs]
    assert [float(r[3]) for r in rows] == pytest.approx([e["val_loss"] for e in epochs], abs=1e-4)
    for row in rows:
        if int(row[0]) == best.user_attrs["best_epoch"]:
            assert float(row[4]) == pytest.approx(best.user_attrs["test_accuracy"], abs=1e-4)
        else:
            assert row[4] == "N/A"
    assert f"![learning curves of trial {best.number}](trial-{best.number}-curves.png)" in report
    tables = re.findall(r"^### Trial (\d+) \((best|#\d)\)", report, flags=re.MULTILINE)
    ranked = sorted(complete, key=lambda t: (t.value, t.number))[:5]
    assert [int(n) for n, _ in tables] == [t.number for t in ranked]

    for name in FIGURES:
        assert f"]({name})" in report
        image = Image.open(folder / "rep" / name)
        assert image.width > 300 and image.height > 200
        assert ImageStat.Stat(image.convert("L")).stddev[0] > 10, f"{name} is blank"
    # Pruned trials' learning curves are cut short in the data the figure draws.
    assert all(len(t.intermediate_values) < 3 for t in pruned)


def test_report_without_enough_trials_explains_what_is_missing(tmp_path: Path) -> None:
    url = make_study(tmp_path, {"study": {"n_trials": 1}, "fixed": {"epochs": 1}})
    study = optuna.load_study(study_name="micro", storage=url)
    path = write_report(study, tmp_path / "rep", url)
    report = path.read_text()
    assert "Not computed: needs at least 2 complete trials, the study has 1." in report
    assert "Not drawn: needs at least 2 complete trials" in report
    assert not (tmp_path / "rep" / "param_importances.png").exists()
    assert (tmp_path / "rep" / "optimization_history.png").exists()
    assert "### Trial 0 (best)" in report
