"""``hpsearch report``: a study as a folder of Markdown and figures, in the form people write.

``report.md`` holds the study summary (sampler, pruner, trials by state, epochs trained against
what every trial at full length would have cost), the best parameters, parameter importances,
the figures, and the per-epoch tables of the top five trials in the columns of a hand-written
tuning report (``Epoch | Training Loss | Validation Accuracy | Validation Loss | Test Accuracy``,
test accuracy on the best epoch's row only). The figures come from
:mod:`optuna.visualization.matplotlib` and are written as PNG files beside ``report.md``.
"""

from __future__ import annotations

import datetime
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.results import EPOCH_COLUMNS, epoch_rows
from search.study import CONFIG_ATTR, ENVIRONMENT_ATTR
from storage.artifacts import (
    all_artifacts,
    artifact_bytes,
    checkpoint_of,
    copy_file,
    open_store,
    study_artifact_dir,
    trial_artifacts,
)
from storage.urls import mask_password

TOP_TRIALS = 5
_STATE_WORDS = {TrialState.FAIL: "failed"}
FIGURE_DPI = 90
REPORT_FILE = "report.md"


@dataclass(frozen=True)
class Figure:
    """One figure of the report: its file name, caption, and a note when it could not be drawn."""

    file: str | None
    caption: str
    note: str = ""


def write_report(study: optuna.Study, folder: Path, storage_url: str) -> Path:
    """Write ``report.md`` and its figures into ``folder``; return the path of ``report.md``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = study.user_attrs.get(CONFIG_ATTR) or {}
    metric = (config.get("study") or {}).get("metric", "value")
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    ranked = sorted(complete, key=lambda t: (-t.value if maximize else t.value, t.number))
    importances, importance_note = _importances(study, complete)
    figures = _figures(study, folder, metric, importances, importance_note)
    artifact_folder = study_artifact_dir(study, storage_url)
    curves = _copy_curves(study, ranked[:TOP_TRIALS], artifact_folder, folder)

    lines = [f"# Study `{study.study_name}`", ""]
    lines += [
        f"Written by `hpsearch report {study.study_name}` on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC from "
        f"`{mask_password(storage_url)}`.",
        "",
        "## Summary",
        "",
    ]
    lines += _summary(study, config, trials, metric, artifact_folder)
    lines += ["", "## Best trial", ""]
    lines += _best(study, ranked, metric)
    lines += ["", "## Parameter importances", ""]
    if importances:
        lines += _markdown_table(
            ["Parameter", "Importance"], [[name, f"{v:.3f}"] for name, v in importances.items()]
        )
        lines += ["", "Computed by Optuna's default evaluator over the complete trials."]
    else:
        lines.append(f"Not computed: {importance_note}.")
    lines += ["", "## Figures", ""]
    for figure in figures:
        if figure.file:
            lines += [f"### {figure.caption}", "", f"![{figure.caption}]({figure.file})", ""]
        else:
            lines += [f"### {figure.caption}", "", f"Not drawn: {figure.note}.", ""]
    lines += [f"## Per-epoch tables of the top {min(TOP_TRIALS, len(ranked))} trials", ""]
    if not ranked:
        lines.append("No trial has completed yet.")
    for rank, trial in enumerate(ranked[:TOP_TRIALS], start=1):
        label = "best" if rank == 1 else f"#{rank}"
        lines += [
            f"### Trial {trial.number} ({label}): {metric} {_number(trial.value)}",
            "",
            f"Parameters: {_params_text(trial.params)}",
            "",
        ]
        lines += epoch_table_markdown(trial)
        lines.append("")
        if trial.number in curves:
            lines += [f"![learning curves of trial {trial.number}]({curves[trial.number]})", ""]
    lines += ["## All trials", ""]
    lines += _trials_table(trials, metric)
    path = folder / REPORT_FILE
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def epoch_table_markdown(trial: FrozenTrial) -> list[str]:
    """A trial's epochs as a Markdown table: ``Epoch | Training Loss | Validation Accuracy |
    Validation Loss | Test Accuracy``, test accuracy on the best epoch's row only (N/A elsewhere).
    """
    rows = [
        [
            str(row["epoch"]),
            _number(row.get("train_loss")),
            _number(row.get("val_accuracy")),
            _number(row.get("val_loss")),
            _number(row["test_accuracy"]) if row["test_accuracy"] is not None else "N/A",
        ]
        for row in epoch_rows(trial)
    ]
    return _markdown_table(list(EPOCH_COLUMNS), rows)


# --------------------------------------------------------------------------- sections


def _summary(
    study: optuna.Study,
    config: dict[str, Any],
    trials: Sequence[FrozenTrial],
    metric: str,
    artifact_folder: Path,
) -> list[str]:
    counts = {state: sum(t.state == state for t in trials) for state in TrialState}
    states = ", ".join(
        f"{counts[s]} {_STATE_WORDS.get(s, s.name.lower())}"
        for s in TrialState
        if counts[s] or s.is_finished()
    )
    sampler = config.get("sampler") or {}
    pruner = config.get("pruner") or {}
    trained, full = _epoch_budget(trials, config)
    budget = f"{trained} of {full}" if full else str(trained)
    if full:
        budget += (
            f" ({100 * trained / full:.0f}%) that all these trials at full length would have "
            "cost; pruning and early stopping saved the rest"
        )
    seconds = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in trials
        if t.datetime_complete and t.datetime_start
    )
    environment = study.user_attrs.get(ENVIRONMENT_ATTR) or {}
    artifacts = all_artifacts(study)
    rows = [
        ["Objective", f"`{config.get('objective', '?')}`"],
        ["Metric", f"`{metric}` ({study.direction.name.lower()})"],
        ["Sampler", f"`{sampler.get('name', '?')}` {_args_text(sampler.get('args'))}".rstrip()],
        ["Pruner", f"`{pruner.get('name', '?')}` {_args_text(pruner.get('args'))}".rstrip()],
        ["Trials", f"{len(trials)}: {states}"],
        ["Epochs trained", budget],
        ["Training time", f"{seconds / 60:.1f} min (sum over trials)"],
        ["Device", f"{environment.get('device', '?')}, {environment.get('threads', '?')} threads"],
        [
            "Artifacts",
            f"{len(artifacts)} files, {artifact_bytes(artifacts, artifact_folder) / 1e6:.1f} MB "
            f"in `{artifact_folder}`",
        ],
    ]
    return _markdown_table(["Study", study.study_name], rows)


def _epoch_budget(trials: Sequence[FrozenTrial], config: dict[str, Any]) -> tuple[int, int]:
    """Epochs trained by the finished trials, and what they would have cost at full length."""
    fixed_epochs = (config.get("fixed") or {}).get("epochs")
    trained = full = 0
    for trial in trials:
        if not trial.state.is_finished():
            continue
        trained += len(trial.user_attrs.get("epochs", []))
        length = trial.params.get("epochs", fixed_epochs)
        if isinstance(length, int):
            full += length
    return trained, full


def _best(study: optuna.Study, ranked: Sequence[FrozenTrial], metric: str) -> list[str]:
    if not ranked:
        return ["No trial has completed yet."]
    best = ranked[0]
    epochs = best.user_attrs.get("epochs", [])
    record = next((r for r in epochs if r.get("epoch") == best.user_attrs.get("best_epoch")), {})
    checkpoint = checkpoint_of(study, best)
    lines = [
        f"Trial {best.number}: {metric} **{_number(best.value)}** at epoch "
        f"{best.user_attrs.get('best_epoch')} of {len(epochs)}; validation accuracy "
        f"{_number(record.get('val_accuracy'))}, test accuracy "
        f"{_number(best.user_attrs.get('test_accuracy'))} (read once, on the best epoch's "
        "weights; never used for selection).",
        "",
    ]
    lines += _markdown_table(
        ["Parameter", "Value"], [[name, _number(v)] for name, v in best.params.items()]
    )
    lines.append("")
    if checkpoint is not None:
        lines.append(
            f"Its model is saved (`{checkpoint.filename}`): `hpsearch export "
            f"{study.study_name} -o best.yaml --model-dir best-model` writes it out."
        )
    else:
        lines.append(
            f"No model of it is saved; `hpsearch export {study.study_name} -o best.yaml` and "
            "`hpsearch run best.yaml` train it again."
        )
    return lines


def _trials_table(trials: Sequence[FrozenTrial], metric: str) -> list[str]:
    names = list(dict.fromkeys(name for t in trials for name in t.params))
    headers = ["#", "State", metric, "Epochs", "Best epoch", "Val acc", "Test acc", *names]
    rows = []
    for trial in trials:
        epochs = trial.user_attrs.get("epochs", [])
        best_epoch = trial.user_attrs.get("best_epoch")
        record = next((r for r in epochs if r.get("epoch") == best_epoch), {})
        rows.append(
            [
                str(trial.number),
                trial.state.name.lower(),
                _number(trial.value),
                str(len(epochs)),
                str(best_epoch) if best_epoch is not None else "-",
                _number(record.get("val_accuracy")),
                _number(trial.user_attrs.get("test_accuracy")),
                *[_number(trial.params.get(name)) for name in names],
            ]
        )
    return _markdown_table(headers, rows) if rows else ["No trials yet."]


# --------------------------------------------------------------------------- figures


def _importances(
    study: optuna.Study, complete: Sequence[FrozenTrial]
) -> tuple[dict[str, float], str]:
    varying = {name for name in {n for t in complete for n in t.params} if _varies(complete, name)}
    if len(complete) < 2:
        return {}, f"needs at least 2 complete trials, the study has {len(complete)}"
    if not varying:
        return {}, "no searched parameter varies across the complete trials"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return dict(optuna.importance.get_param_importances(study)), ""
        except (ValueError, RuntimeError) as e:
            return {}, f"Optuna could not compute them ({e})"


def _varies(trials: Sequence[FrozenTrial], name: str) -> bool:
    return len({repr(t.params.get(name)) for t in trials}) > 1


def _figures(
    study: optuna.Study,
    folder: Path,
    metric: str,
    importances: dict[str, float],
    importance_note: str,
) -> list[Figure]:
    import matplotlib

    # No display: draw into files only. Set before pyplot is first imported by Optuna.
    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as plots

    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    figures = [
        _draw(
            folder,
            "optimization_history.png",
            "Optimization history",
            lambda: plots.plot_optimization_history(study, target_name=metric),
            "" if complete else "no complete trial",
        ),
        _draw(
            folder,
            "intermediate_values.png",
            f"Learning curves ({metric} by epoch; x = pruned there)",
            lambda: _intermediate_values(study, plots, metric),
            "" if any(t.intermediate_values for t in finished) else "no trial reported an epoch",
        ),
        _draw(
            folder,
            "parallel_coordinate.png",
            "Parallel coordinates",
            lambda: plots.plot_parallel_coordinate(study, target_name=metric),
            "" if complete and complete[0].params else "no complete trial with parameters",
        ),
        _draw(
            folder,
            "param_importances.png",
            "Parameter importances",
            lambda: plots.plot_param_importances(study, target_name=metric),
            "" if importances else importance_note,
        ),
    ]
    return figures


def _draw(
    folder: Path, file: str, caption: str, plot: Callable[[], Any], skip_because: str
) -> Figure:
    import matplotlib.pyplot as plt

    target = folder / file
    target.unlink(missing_ok=True)  # a figure left from an earlier report would mislead
    if skip_because:
        return Figure(None, caption, skip_because)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # matplotlib warns when an axis has one value only (e.g. a single complete trial).
        warnings.simplefilter("ignore", UserWarning)
        axes = plot()
    figure = _figure_of(axes)
    figure.set_size_inches(9, 5)
    figure.savefig(target, dpi=FIGURE_DPI, bbox_inches="tight")
    plt.close(figure)
    return Figure(file, caption)


def _figure_of(axes: Any) -> Any:
    # Optuna returns one Axes, or an array of them for multi-panel plots.
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.get_figure()


def _intermediate_values(study: optuna.Study, plots: Any, metric: str) -> Any:
    """Optuna's intermediate-values plot, with each pruned trial's last epoch marked ``x``."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    axes = plots.plot_intermediate_values(study)
    pruned = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))}
    for line in list(axes.get_lines()):
        label = str(line.get_label())
        number = int(label[5:]) if label.startswith("Trial") and label[5:].isdigit() else None
        if number in pruned and len(line.get_xdata()):
            line.set_linestyle(":")
            axes.plot(
                [line.get_xdata()[-1]],
                [line.get_ydata()[-1]],
                marker="x",
                markersize=8,
                color=line.get_color(),
                linestyle="none",
            )
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} by epoch: complete trials solid, pruned dotted and cut at x")
    legend = axes.get_legend()
    if legend is not None and len(axes.get_lines()) > 12:
        legend.remove()  # a hundred trial labels hide the plot
    if axes.get_legend() is None:
        axes.legend(
            handles=[
                Line2D([], [], color="grey", label="complete"),
                Line2D([], [], color="grey", linestyle=":", marker="x", label="pruned"),
            ],
            loc="best",
        )
    return axes


def _copy_curves(
    study: optuna.Study, trials: Sequence[FrozenTrial], artifact_folder: Path, folder: Path
) -> dict[int, str]:
    """Copy the top trials' learning-curve PNGs (trial artifacts) into the report folder."""
    copied: dict[int, str] = {}
    if not artifact_folder.is_dir():
        return copied
    store = open_store(artifact_folder, create=False)
    for trial in trials:
        for artifact in trial_artifacts(study, trial):
            if artifact.filename.endswith("-curves.png"):
                if not (artifact_folder / artifact.artifact_id).is_file():
                    continue
                copy_file(store, artifact, folder / artifact.filename)
                copied[trial.number] = artifact.filename
    return copied


# --------------------------------------------------------------------------- formatting


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(headers), "|" + "|".join("---" for _ in headers) + "|", *map(line, rows)]


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4f}"
    return str(value)


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={_number(v)}`" for k, v in params.items()) or "none searched"


def _args_text(args: Any) -> str:
    if not args:
        return ""
    return "(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"
