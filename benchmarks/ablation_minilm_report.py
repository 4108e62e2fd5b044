"""The MiniLM part of ``RESULTS-ablation.md``: the overfitting, the replays, the TPE pair."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.ablation import load_rows
from benchmarks.ablation_minilm import REPLAYS, SEEDS
from benchmarks.replay import Curve, Rules, replay, winner

Row = dict[str, Any]


def curves_of(row: Row) -> list[Curve]:
    return [
        Curve(t["number"], t["val_loss"], t["best_epoch"], t["test_accuracy"])
        for t in row["trials"]
        if t["state"] == "COMPLETE" and t["best_epoch"] is not None
    ]


def overfitting_lines(row: Row) -> list[str]:
    """Per trial of a full-length run: lr, the epoch of its validation-loss minimum, the rise."""
    lines = []
    for t in sorted(row["trials"], key=lambda t: t["number"]):
        losses = [v for v in t["val_loss"] if v is not None]
        if not losses:
            continue
        low = min(losses)
        at = losses.index(low) + 1
        lines.append(
            f"| {t['number']} | {t['params'].get('lr', float('nan')):.2e} | {at} | {low:.4f} | "
            f"{losses[-1]:.4f} ({losses[-1] / low - 1:+.0%}) |"
        )
    return lines


def replay_lines(row: Row, epochs: int) -> list[str]:
    curves = curves_of(row)
    full = replay(curves, Rules(*REPLAYS["A neither"], epochs))
    a_best = winner(full)
    a_epochs = sum(t.epochs for t in full)
    lines = []
    for name, (pruner, patience) in REPLAYS.items():
        trials = replay(curves, Rules(pruner, patience, epochs))
        best = winner(trials)
        spent = sum(t.epochs for t in trials)
        same = best is not None and a_best is not None and best.number == a_best.number
        test = (
            "unknown" if best is None or best.test_accuracy is None else f"{best.test_accuracy:.3f}"
        )
        lines.append(
            f"| {row['label']} | {name} | {spent} | {a_epochs / spent:.2f}x | "
            f"{sum(t.state == 'PRUNED' for t in trials)} | "
            f"{best.number if best else '-'} | {best.value if best else float('nan'):.4f} | "
            f"{test} | {'yes' if same else 'no'} |"
        )
    return lines


# The shipped default (no pruner, early stopping patience 5) as is, and scaled to 8 epochs.
SHIPPED = "B as shipped (patience 5)"
SCALED = "B early stopping (patience 2)"
TARGET = 3.0


def headline_lines(full_runs: list[Row], epochs: int) -> list[str]:
    """Over every seed: each replayed variant's epochs against A and against B (patience 2),
    how often its winner is A's, and its winner's test accuracy against A's, seed by seed."""
    if not full_runs:
        return []
    played = {
        name: [replay(curves_of(row), Rules(pruner, patience, epochs)) for row in full_runs]
        for name, (pruner, patience) in REPLAYS.items()
    }

    def spent(name: str) -> int:
        return sum(t.epochs for trials in played[name] for t in trials)

    a_runs = played["A neither"]
    lines = [
        f"Headline over the {len(full_runs)} seeds (replays; d test acc: the variant's winner "
        "minus A's, per seed, `?` where the winner stopped before its full-length best epoch):",
        "",
        "| variant | epochs | A / this | saved vs B (patience 2) | winner = A's | d test acc |",
        "|---|---|---|---|---|---|",
    ]
    for name in REPLAYS:
        same, deltas = 0, []
        for trials, a_trials in zip(played[name], a_runs, strict=True):
            best, a_best = winner(trials), winner(a_trials)
            same += best is not None and a_best is not None and best.number == a_best.number
            mine = None if best is None else best.test_accuracy
            theirs = None if a_best is None else a_best.test_accuracy
            deltas.append("?" if mine is None or theirs is None else f"{mine - theirs:+.3f}")
        lines.append(
            f"| {name} | {spent(name)} | {spent('A neither') / spent(name):.2f}x | "
            f"{1 - spent(name) / spent(SCALED):.1%} | {same}/{len(full_runs)} | "
            f"{', '.join(deltas)} |"
        )
    ratio = spent("A neither") / spent(SHIPPED)
    scaled = spent("A neither") / spent(SCALED)
    lines += [
        "",
        f"The default as shipped (no pruner, early stopping patience 5) trains {ratio:.2f}x fewer "
        f"epochs than A here; scaled to {epochs} epochs (patience 2, which is B) {scaled:.2f}x. "
        f"The project's >= {TARGET:.0f}x target is "
        + ("met" if max(ratio, scaled) >= TARGET else "missed")
        + " on MiniLM.",
    ]
    return lines


def section(path: Path, epochs: int) -> list[str]:
    rows = load_rows(path)
    full_runs = [rows[k] for k in sorted(rows) if "-A-s" in k]
    if not full_runs:
        return []
    lines = [
        "### MiniLM on rotten_tomatoes (`benchmarks/ablation_minilm.py`)",
        "",
        f"Seeds fixed before the runs: {', '.join(map(str, SEEDS))}. Wall time: "
        + ", ".join(f"{r['label']} {r['wall_seconds'] / 60:.0f} min" for r in rows.values())
        + ".",
        "",
        "The overfitting (variant A, every trial to its end):",
        "",
    ]
    for row in full_runs:
        lines += [
            f"{row['label']}:",
            "",
            "| trial | lr | val_loss minimum at epoch | minimum | last (rise) |",
            "|---|---|---|---|---|",
            *overfitting_lines(row),
            "",
        ]
    lines += [
        "Replayed on those curves (exact; a winner stopped before its full-length best epoch has "
        "no test accuracy, since the test split was read once, on the full run's best epoch):",
        "",
        "| run | variant | epochs | A / this | pruned | winner | winner val_loss | winner test "
        "acc | A's winner |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in full_runs:
        lines += replay_lines(row, epochs)
    lines += ["", *headline_lines(full_runs, epochs)]
    tpe = [rows[k] for k in sorted(rows) if "-tpe-" in k]
    if tpe:
        lines += [
            "",
            "The real TPE pair (the default rules vs early stopping alone, one seed):",
            "",
            "| run | epochs | winner val_loss | winner test acc |",
            "|---|---|---|---|",
        ]
        for row in tpe:
            done = [t for t in row["trials"] if t["state"] == "COMPLETE" and t["value"] is not None]
            best = min(done, key=lambda t: t["value"]) if done else None
            epochs_run = sum(len(t["val_loss"]) for t in row["trials"])
            lines.append(
                f"| {row['label']} | {epochs_run} | "
                f"{best['value'] if best else float('nan'):.4f} | "
                f"{best['test_accuracy'] if best else '-'} |"
            )
    return [*lines, ""]
