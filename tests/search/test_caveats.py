"""Warnings when the winner is not a winner: a lead inside the noise, or a winner at chance."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from search.readout import wilson_interval


def test_wilson_interval_matches_the_textbook_and_stays_in_bounds() -> None:
    low, high = wilson_interval(0.80, 200)
    # Wilson (1927): centre (p + z²/2n) / (1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n).
    assert low == pytest.approx(0.73915, abs=1e-4) and high == pytest.approx(0.84955, abs=1e-4)
    assert wilson_interval(1.0, 500)[1] == 1.0 and wilson_interval(0.0, 10)[0] == 0.0
    # A 200-example set cannot separate 0.80 from 0.78 (the example).
    assert low <= 0.78 <= high


# Two enqueued learning rates, everything else fixed: the order of the two trials is known.
FIXED = {"epochs": 3, "batch_size": 32, "num_layers": 1, "hidden_dim": 32, "num_heads": 2}


def _pair(low: float, high: float, n_val: int) -> dict[str, Any]:
    return {
        "study": {"n_trials": 2},
        "search": {"lr": {"type": "categorical", "choices": [low, high]}},
        "fixed": FIXED,
        "enqueue": [{"lr": low}, {"lr": high}],
        "data": {"n_train": 300, "n_val": n_val, "n_test": 100, "seq_len": 12},
    }


def _study(run_cli: Callable[..., Any], write_config: Callable[..., Path], **changes: Any) -> Any:
    done = run_cli("run", str(write_config(changes)))
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.slow
def test_a_lead_inside_the_noise_of_a_small_validation_set_is_flagged(
    run_cli: Callable[..., Any], write_config: Callable[..., Path], tmp_path: Path
) -> None:
    # Two good configurations scored on 20 validation examples: their order means nothing.
    done = _study(run_cli, write_config, **_pair(0.004, 0.005, n_val=20))
    assert "warning: the best trial" in done.stdout and "is not clearly better" in done.stdout
    assert "on 20 validation examples" in done.stdout
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    shown = run_cli("show", "micro", "--storage", storage)
    assert "is not clearly better" in shown.stdout
    data = json.loads(run_cli("show", "micro", "--storage", storage, "--json").stdout)
    assert data["outcomes"]["complete"] == 2
    assert len(data["warnings"]) == 1 and "not clearly better" in data["warnings"][0]
    report = run_cli("report", "micro", "--storage", storage, "-o", str(tmp_path / "rep"))
    assert report.returncode == 0, report.stderr
    assert "not clearly better" in (tmp_path / "rep" / "report.md").read_text()


def test_a_winner_at_chance_is_flagged_not_crowned(
    run_cli: Callable[..., Any], write_config: Callable[..., Path], tmp_path: Path
) -> None:
    # lr 1e-6 for one epoch: nothing is learned, every trial is at chance.
    done = _study(
        run_cli,
        write_config,
        study={"n_trials": 2},
        search={"lr": {"type": "float", "low": 1e-7, "high": 1e-6, "log": True}},
        fixed={"epochs": 1, "batch_size": 32, "num_layers": 1, "hidden_dim": 16, "num_heads": 2},
        data={"n_train": 100, "n_val": 200, "n_test": 100, "seq_len": 12},
    )
    assert "warning: every complete trial is at chance" in done.stdout
    assert "no better than always predicting the most frequent class" in done.stdout
    shown = run_cli("show", "micro", "--storage", f"sqlite:///{tmp_path / 'hp.db'}")
    assert "is at chance" in shown.stdout


def test_a_clear_winner_gets_no_warning(
    run_cli: Callable[..., Any], write_config: Callable[..., Path]
) -> None:
    # A learning configuration against one that learns nothing, on 200 examples: clear.
    done = _study(run_cli, write_config, **_pair(0.005, 1.0e-7, n_val=200))
    assert "warning" not in done.stdout


def test_the_summary_counts_early_stopped_trials(
    run_cli: Callable[..., Any], write_config: Callable[..., Path]
) -> None:
    # Maximising val_loss, no epoch after the first is better: patience 1 stops every trial.
    done = _study(
        run_cli,
        write_config,
        study={"n_trials": 2, "metric": "val_accuracy"},
        search={"lr": {"type": "categorical", "choices": [1.0e-7]}},
        fixed={"epochs": 4, "early_stopping_patience": 1},
    )
    assert "2 complete (2 early-stopped), 0 pruned, 0 failed" in done.stdout
