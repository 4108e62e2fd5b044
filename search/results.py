"""Reading a study back: trial rows, per-epoch tables and the best trial, as data and as text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

EPOCH_COLUMNS = (
    "Epoch",
    "Training Loss",
    "Validation Accuracy",
    "Validation Loss",
    "Test Accuracy",
)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial, or None when no trial has completed."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study.best_trial if complete else None


def best_epoch_record(trial: FrozenTrial) -> dict[str, Any] | None:
    best = trial.user_attrs.get("best_epoch")
    for record in trial.user_attrs.get("epochs", []):
        if record.get("epoch") == best:
            return record
    return None


def trial_summary(trial: FrozenTrial) -> dict[str, Any]:
    """One trial as plain data (what ``show --json`` prints per trial)."""
    epochs = trial.user_attrs.get("epochs", [])
    best = best_epoch_record(trial) or {}
    duration = (
        (trial.datetime_complete - trial.datetime_start).total_seconds()
        if trial.datetime_complete and trial.datetime_start
        else None
    )
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "params": trial.params,
        "epochs_run": len(epochs),
        "best_epoch": trial.user_attrs.get("best_epoch"),
        "val_loss": best.get("val_loss"),
        "val_accuracy": best.get("val_accuracy"),
        "test_loss": trial.user_attrs.get("test_loss"),
        "test_accuracy": trial.user_attrs.get("test_accuracy"),
        "reason": trial.user_attrs.get("reason"),
        "note": trial.user_attrs.get("note"),
        "seconds": round(duration, 2) if duration is not None else None,
    }


def epoch_rows(trial: FrozenTrial) -> list[dict[str, Any]]:
    """Per-epoch rows in the report's form: test accuracy on the best epoch's row only."""
    best = trial.user_attrs.get("best_epoch")
    test_accuracy = trial.user_attrs.get("test_accuracy")
    rows = []
    for record in trial.user_attrs.get("epochs", []):
        row = dict(record)
        row["test_accuracy"] = test_accuracy if record.get("epoch") == best else None
        rows.append(row)
    return rows


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with a header rule; numbers right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str], raw: Sequence[Any] | None = None) -> str:
        parts = []
        for i, value in enumerate(values):
            numeric = (
                raw is not None and isinstance(raw[i], int | float) and not isinstance(raw[i], bool)
            )
            parts.append(value.rjust(widths[i]) if numeric else value.ljust(widths[i]))
        return " | ".join(parts).rstrip()

    out = [line(headers), "-+-".join("-" * w for w in widths)]
    out.extend(line(cell, raw) for cell, raw in zip(cells, rows, strict=True))
    return "\n".join(out)


def format_epoch_table(trial: FrozenTrial) -> str:
    rows = [
        (
            row["epoch"],
            row.get("train_loss"),
            row.get("val_accuracy"),
            row.get("val_loss"),
            row["test_accuracy"] if row["test_accuracy"] is not None else "N/A",
        )
        for row in epoch_rows(trial)
    ]
    return format_table(EPOCH_COLUMNS, rows)


def format_trials_table(trials: Sequence[FrozenTrial], metric: str) -> str:
    param_names: list[str] = []
    for trial in trials:
        for name in trial.params:
            if name not in param_names:
                param_names.append(name)
    headers = ["#", "State", metric, "Epochs", "Best ep", "Val acc", "Test acc", *param_names]
    rows = []
    for trial in trials:
        summary = trial_summary(trial)
        rows.append(
            [
                trial.number,
                trial.state.name,
                summary["value"] if summary["value"] is not None else "-",
                summary["epochs_run"],
                summary["best_epoch"] if summary["best_epoch"] is not None else "-",
                summary["val_accuracy"] if summary["val_accuracy"] is not None else "-",
                summary["test_accuracy"] if summary["test_accuracy"] is not None else "-",
                *[trial.params.get(name, "-") for name in param_names],
            ]
        )
    return format_table(headers, rows)


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={_cell(v)}" for k, v in params.items())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4f}"
    return str(value)
