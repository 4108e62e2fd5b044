"""The MiniLM headline: replayed epochs and winners over every seed, on curves made by hand."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.ablation_minilm_report import section

OVERFITS = [1.0, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4]  # minimum at epoch 2
LEARNS = [1.0, 0.9, 0.8, 0.7, 0.65, 0.6, 0.55, 0.5]  # minimum at epoch 8
OVERFITS_LATER = [0.9, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]


def _trial(number: int, curve: list[float], test: float) -> dict[str, object]:
    low = min(curve)
    return {
        "number": number,
        "state": "COMPLETE",
        "params": {"lr": 1e-4},
        "val_loss": curve,
        "val_accuracy": [0.5] * len(curve),
        "best_epoch": curve.index(low) + 1,
        "value": low,
        "test_accuracy": test,
    }


def test_the_headline_counts_every_seeds_epochs_and_checks_the_winner(tmp_path: Path) -> None:
    rows = tmp_path / "minilm.jsonl"
    with rows.open("w") as out:
        for seed in (1, 2):
            trials = [
                _trial(0, OVERFITS, 0.80),
                _trial(1, LEARNS, 0.85),
                _trial(2, OVERFITS_LATER, 0.82),
            ]
            row = {"label": f"minilm-A-s{seed}", "wall_seconds": 60.0, "trials": trials}
            out.write(json.dumps(row) + "\n")

    lines = section(rows, 8)

    # A trains 3 x 8 epochs per seed. Patience 2 stops both overfitting trials at epoch 4,
    # patience 5 at epoch 7; the learning trial runs to its end and wins everywhere.
    assert "| A neither | 48 | 1.00x | -50.0% | 2/2 | +0.000, +0.000 |" in lines
    assert "| B early stopping (patience 2) | 32 | 1.50x | 0.0% | 2/2 | +0.000, +0.000 |" in lines
    assert "| B as shipped (patience 5) | 44 | 1.09x | -37.5% | 2/2 | +0.000, +0.000 |" in lines
    assert lines[-2].startswith(
        "The default as shipped (no pruner, early stopping patience 5) trains 1.09x fewer epochs"
    )
    assert "(patience 2, which is B) 1.50x" in lines[-2]
    assert lines[-2].endswith("target is missed on MiniLM.")


def test_a_winner_stopped_before_its_best_epoch_has_no_test_accuracy(tmp_path: Path) -> None:
    # The winner dips at epoch 2, climbs for 3 epochs, then reaches its lowest at epoch 8:
    # patience 2 stops it at epoch 4 on its epoch-2 value, whose test accuracy nobody measured.
    late = [1.0, 0.6, 0.7, 0.8, 0.9, 0.5, 0.45, 0.4]
    rows = tmp_path / "minilm.jsonl"
    row = {
        "label": "minilm-A-s1",
        "wall_seconds": 60.0,
        "trials": [_trial(0, late, 0.9), _trial(1, OVERFITS, 0.8)],
    }
    rows.write_text(json.dumps(row) + "\n")

    lines = section(rows, 8)

    assert any(
        line.startswith("| B early stopping (patience 2) | ") and "| ? |" in line for line in lines
    )
    assert any(line.startswith("| A neither | ") and "| +0.000 |" in line for line in lines)
