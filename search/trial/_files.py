"""A trial's human-readable files: its per-epoch table (CSV) and learning curves (PNG).

Rendered here, in the search layer that knows what a trial records, and attached to the trial
through the storage layer's artifact store (``storage.artifacts.upload_files``) so they appear
under the trial in optuna-dashboard. Pruned trials get them too, for the epochs they ran.
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

from search.config import StudyConfig
from search.trial._record import StudyRecord
from storage.artifacts import artifact_dir, upload_files

CSV_COLUMNS = ("epoch", "train_loss", "val_loss", "val_accuracy")


def config_artifact_dir(config: StudyConfig) -> Path:
    """The artifact folder of a config: ``artifacts.dir``, else beside the SQLite file."""
    return artifact_dir(config.artifacts.dir, config.study.storage)


def study_artifact_dir(study: optuna.Study, storage_url: str) -> Path:
    """The artifact folder of a stored study: its config's ``artifacts.dir`` or the default."""
    return artifact_dir(StudyRecord.from_study(study).artifacts_dir, storage_url)


def epoch_csv(
    records: Sequence[Mapping[str, Any]], best_epoch: int | None, test: Mapping[str, Any]
) -> str:
    """The per-epoch table as CSV; the test metrics filled on the best epoch's row only."""
    extra = [k for r in records for k in r if k not in (*CSV_COLUMNS, "seconds")]
    test_columns = list(test) or ["test_accuracy"]
    columns = [*CSV_COLUMNS, *dict.fromkeys(extra), "seconds", *test_columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = {k: ("" if record.get(k) is None else record.get(k)) for k in columns}
        is_best = record.get("epoch") == best_epoch
        for name in test_columns:
            value = test.get(name)
            row[name] = value if is_best and value is not None else ""
        writer.writerow(row)
    return out.getvalue()


def plot_learning_curves(
    records: Sequence[Mapping[str, Any]], best_epoch: int | None, title: str, path: Path
) -> None:
    """Training and validation loss, and validation accuracy, by epoch; the best epoch marked."""
    # The object API (no pyplot) draws with Agg and touches no global backend state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in records]

    def series(key: str) -> list[float]:
        return [math.nan if r.get(key) is None else float(r[key]) for r in records]

    figure = Figure(figsize=(8, 3.2), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    loss_axes.plot(epochs, series("train_loss"), marker=".", label="training loss")
    loss_axes.plot(epochs, series("val_loss"), marker=".", label="validation loss")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_ylabel("loss")
    accuracy_axes.plot(epochs, series("val_accuracy"), marker=".", color="tab:green")
    accuracy_axes.set_xlabel("epoch")
    accuracy_axes.set_ylabel("validation accuracy")
    for axes in (loss_axes, accuracy_axes):
        if best_epoch is not None:
            axes.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_axes.legend(fontsize="small")
    figure.suptitle(title, fontsize="medium")
    figure.savefig(path)


def upload_trial_files(
    trial: optuna.Trial,
    directory: Path,
    records: Sequence[Mapping[str, Any]],
    best_epoch: int | None,
    test: Mapping[str, Any],
) -> None:
    """Attach the epoch table (CSV) and learning curves (PNG) to a still running trial."""
    if not records:
        return
    title = f"trial {trial.number}: {len(records)} epochs, best epoch {best_epoch}"
    accuracy = test.get("test_accuracy")
    if isinstance(accuracy, float):
        title += f", test accuracy {accuracy:.4f}"
    with tempfile.TemporaryDirectory(prefix="hpsearch-artifacts-") as scratch:
        table = Path(scratch) / f"trial-{trial.number}-epochs.csv"
        table.write_text(epoch_csv(records, best_epoch, test), encoding="utf-8")
        curves = Path(scratch) / f"trial-{trial.number}-curves.png"
        plot_learning_curves(records, best_epoch, title, curves)
        upload_files(trial, directory, [table, curves])
