"""Reading a study back as text: the trials table and a trial's per-epoch table.

The columns follow the study's own metrics: the study metric, the validation metrics its trials
recorded and the test counterpart of the study metric, besides accuracy for classification.
"""

from __future__ import annotations

from collections.abc import Sequence

from optuna.trial import FrozenTrial

from search.formatting import format_table
from search.trial import TrialRecord

EPOCH_COLUMNS = (
    "Epoch",
    "Training Loss",
    "Validation Accuracy",
    "Validation Loss",
    "Test Accuracy",
)


def epoch_table_rows(record: TrialRecord, test_metric: str = "test_accuracy") -> list[list[object]]:
    """Rows in the report's form: test metric on the best epoch's row only (N/A elsewhere)."""
    rows: list[list[object]] = []
    for row in record.epoch_rows():
        test = row.get(test_metric)
        rows.append(
            [
                row["epoch"],
                row.get("train_loss"),
                row.get("val_accuracy"),
                row.get("val_loss"),
                test if test is not None else "N/A",
            ]
        )
    return rows


def format_epoch_table(trial: FrozenTrial) -> str:
    return format_table(EPOCH_COLUMNS, epoch_table_rows(TrialRecord.from_trial(trial)))


def format_trials_table(
    trials: Sequence[FrozenTrial],
    metric: str,
    test_metric: str,
    other_metrics: Sequence[str] = (),
) -> str:
    """One row per trial: state, value, epochs, best epoch, and the metrics at the best epoch
    (a study with several metrics: its other metrics too, costs included)."""
    records = [TrialRecord.from_trial(t) for t in trials]
    param_names = list(dict.fromkeys(name for r in records for name in r.params))
    metric_columns = [(name, name) for name in other_metrics if name != "val_accuracy"]
    metric_columns += [("val_accuracy", "Val acc")]
    if metric not in ("val_loss", "val_accuracy"):
        metric_columns.append((metric, metric.replace("val_", "Val ")))
    metric_columns.append(("test_accuracy", "Test acc"))
    if test_metric not in ("test_loss", "test_accuracy"):
        metric_columns.append((test_metric, test_metric.replace("test_", "Test ")))
    headers = ["#", "State", metric, "Epochs", "Best ep", *[h for _, h in metric_columns]]
    rows = []
    for record in records:
        rows.append(
            [
                record.number,
                record.state.name,
                record.value if record.value is not None else "-",
                record.epochs_run,
                record.best_epoch if record.best_epoch is not None else "-",
                *[_or_dash(record.metric(name)) for name, _ in metric_columns],
                *[record.params.get(name, "-") for name in param_names],
            ]
        )
    return format_table([*headers, *param_names], rows)


def format_front_table(
    front: Sequence[FrozenTrial], metrics: Sequence[str], directions: Sequence[str]
) -> str:
    """The Pareto front: one row per member, every metric, the winner's test accuracy, params."""
    return format_table(*front_rows(front, metrics, directions))


def front_rows(
    front: Sequence[FrozenTrial], metrics: Sequence[str], directions: Sequence[str]
) -> tuple[list[str], list[list[object]]]:
    """Headers and rows of the Pareto front table (plain text and Markdown share them)."""
    records = [TrialRecord.from_trial(t) for t in front]
    param_names = list(dict.fromkeys(name for r in records for name in r.params))
    arrows = {"maximize": "↑", "minimize": "↓"}
    headers = [
        "#",
        *[
            f"{name} {arrows.get(d, '')}".strip()
            for name, d in zip(metrics, directions, strict=True)
        ],
        "Epochs",
        "Test acc",
        *param_names,
    ]
    rows = [
        [
            record.number,
            *(
                [
                    round(v) if name == "num_params" else v
                    for name, v in zip(metrics, record.values, strict=True)
                ]
                if record.values
                else ["-"] * len(metrics)
            ),
            record.epochs_run,
            _or_dash(record.metric("test_accuracy")),
            *[record.params.get(name, "-") for name in param_names],
        ]
        for record in records
    ]
    return headers, rows


def _or_dash(value: float | None) -> object:
    return value if value is not None else "-"
