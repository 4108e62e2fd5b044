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
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.audit import read_audit, summary_lines
from search.caveats import caveats
from search.formatting import markdown_table, number
from search.pareto import pareto_front
from search.record import Outcomes, StudyRecord, TrialRecord, records
from search.results import EPOCH_COLUMNS, epoch_table_rows, front_rows
from search.trial_files import study_artifact_dir
from storage.artifacts import (
    all_artifacts,
    artifact_bytes,
    checkpoint_of,
    copy_file,
    open_store,
    trial_artifacts,
)
from storage.urls import mask_password

TOP_TRIALS = 5
FIGURE_DPI = 90
REPORT_FILE = "report.md"


@dataclass(frozen=True)
class Figure:
    """One figure of the report: its file name, caption, and a note when it could not be drawn."""

    file: str | None
    caption: str
    note: str = ""


def render_report(study: optuna.Study, folder: Path, storage_url: str) -> Path:
    """Write ``report.md`` and its figures into ``folder``; return the path of ``report.md``."""
    folder.mkdir(parents=True, exist_ok=True)
    stored = StudyRecord.from_study(study)
    config = stored.config
    metric = stored.metric
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    maximize = stored.maximize
    several = stored.multi_objective
    # Several metrics: the top trials are the Pareto front's, ordered by the training metric.
    front = pareto_front(study) if several else complete
    ranked = sorted(front, key=lambda t: (-t.values[0] if maximize else t.values[0], t.number))
    importances, importance_note = _importances(study, complete, metric)
    figures = _figures(study, folder, metric, importances, importance_note)
    if several:
        figures.insert(0, _pareto_figure(study, folder, stored))
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
    if several:
        lines += ["", "## Pareto front", ""]
        lines += _front(study, ranked, stored)
    else:
        lines += ["", "## Best trial", ""]
        lines += _best(study, ranked, stored)
    warnings_found = [] if several else caveats(records(trials), stored)
    if warnings_found:
        lines += [""] + [
            f"> **{line.split(': ', 1)[0]}**: {line.split(': ', 1)[1]}" for line in warnings_found
        ]
    lines += ["", "## Parameter importances", ""]
    if importances:
        lines += markdown_table(
            ["Parameter", "Importance"], [[name, f"{v:.3f}"] for name, v in importances.items()]
        )
        lines += [
            "",
            "Computed by Optuna's default evaluator over the complete trials"
            + (f", for the first metric ({metric})." if stored.multi_objective else "."),
        ]
    else:
        lines.append(f"Not computed: {importance_note}.")
    lines += ["", "## Figures", ""]
    for figure in figures:
        if figure.file:
            lines += [f"### {figure.caption}", "", f"![{figure.caption}]({figure.file})", ""]
        else:
            lines += [f"### {figure.caption}", "", f"Not drawn: {figure.note}.", ""]
    top = "Pareto front's first" if several else "top"
    lines += [f"## Per-epoch tables of the {top} {min(TOP_TRIALS, len(ranked))} trials", ""]
    if not ranked:
        lines.append("No trial has completed yet.")
    for rank, trial in enumerate(ranked[:TOP_TRIALS], start=1):
        label = "best" if rank == 1 else f"#{rank}"
        if several:
            label = "on the front" + (f", best {metric}" if rank == 1 else "")
        lines += [
            f"### Trial {trial.number} ({label}): {metric} {number(trial.values[0])}",
            "",
            f"Parameters: {_params_text(trial.params)}",
            "",
        ]
        lines += epoch_table_markdown(trial, stored.test_metric)
        lines.append("")
        if trial.number in curves:
            lines += [f"![learning curves of trial {trial.number}]({curves[trial.number]})", ""]
    audit = read_audit(study, storage_url)
    if audit is not None:
        lines += ["## Audit", ""]
        lines += [
            f"`hpsearch audit {study.study_name}` trained {len(audit.rows)} of the "
            f"{audit.candidates} pruned or early-stopped trials again to full length (same "
            f"parameters and seed, no pruner, no early stopping) in study "
            f"`{study.study_name}/audit`.",
            "",
        ]
        lines += [f"- {line}" for line in summary_lines(audit)]
        lines += [""]
        lines += markdown_table(
            ["Trial", "Ended", "Epochs", f"{metric} then", "At full length", "Beats best"],
            [
                [
                    row.trial,
                    row.ended,
                    row.epochs_run,
                    row.value_when_stopped,
                    row.full_value,
                    "yes" if row.beats_best else "no",
                ]
                for row in audit.rows
            ],
        )
        lines.append("")
    lines += ["## All trials", ""]
    lines += _trials_table(trials, stored)
    path = folder / REPORT_FILE
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def epoch_table_markdown(trial: FrozenTrial, test_metric: str = "test_accuracy") -> list[str]:
    """A trial's epochs as a Markdown table: ``Epoch | Training Loss | Validation Accuracy |
    Validation Loss | Test Accuracy``, test accuracy on the best epoch's row only (N/A elsewhere).
    A study selecting on another test metric (``test_mcc``) gets that column as well.
    """
    record = TrialRecord.from_trial(trial)
    rows = epoch_table_rows(record)
    headers = list(EPOCH_COLUMNS)
    if test_metric not in ("test_accuracy", "test_loss"):
        headers.append(f"Test {test_metric.removeprefix('test_')}")
        for row, extra in zip(rows, epoch_table_rows(record, test_metric), strict=True):
            row.append(extra[-1])
    return markdown_table(headers, rows)


# --------------------------------------------------------------------------- sections


def _summary(
    study: optuna.Study,
    config: dict[str, Any],
    trials: Sequence[FrozenTrial],
    metric: str,
    artifact_folder: Path,
) -> list[str]:
    stored = StudyRecord.from_study(study)
    outcomes = Outcomes.of(trials)
    states = outcomes.text() + (f", {outcomes.running} running" if outcomes.running else "")
    sampler = config.get("sampler") or {}
    pruner = config.get("pruner") or {}
    trained, full = _epoch_budget(trials, stored.fixed_epochs)
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
    environment = stored.environment
    artifacts = all_artifacts(study)
    rows = [
        ["Objective", f"`{config.get('objective', '?')}`"],
        [
            "Metric",
            ", ".join(
                f"`{name}` ({direction})"
                for name, direction in zip(stored.metrics, stored.directions, strict=True)
            ),
        ],
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
    return markdown_table(["Study", study.study_name], rows)


def _epoch_budget(trials: Sequence[FrozenTrial], fixed_epochs: int | None) -> tuple[int, int]:
    """Epochs trained by the finished trials, and what they would have cost at full length."""
    trained = full = 0
    for trial in trials:
        record = TrialRecord.from_trial(trial)
        if not trial.state.is_finished() or record.infeasible:
            continue  # an infeasible proposal was never going to train: nothing was saved
        trained += record.epochs_run
        length = trial.params.get("epochs", fixed_epochs)
        if isinstance(length, int):
            full += length
    return trained, full


def _best(study: optuna.Study, ranked: Sequence[FrozenTrial], stored: StudyRecord) -> list[str]:
    if not ranked:
        return ["No trial has completed yet."]
    best = TrialRecord.from_trial(ranked[0])
    checkpoint = checkpoint_of(study, ranked[0])
    test_names = list(dict.fromkeys((stored.test_metric, "test_accuracy")))
    tests = ", ".join(f"{n.replace('_', ' ')} {number(best.metric(n))}" for n in test_names)
    lines = [
        f"Trial {best.number}: {stored.metric} **{number(best.value)}** at epoch "
        f"{best.best_epoch} of {best.epochs_run}; validation accuracy "
        f"{number(best.metric('val_accuracy'))}, {tests} (read once, on the best epoch's "
        "weights; never used for selection).",
        "",
    ]
    lines += markdown_table(["Parameter", "Value"], [[name, v] for name, v in best.params.items()])
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


def _front(study: optuna.Study, front: Sequence[FrozenTrial], stored: StudyRecord) -> list[str]:
    if not front:
        return ["No trial has completed yet."]
    lines = [
        f"{len(front)} complete trials that no other beats on every metric at once, ordered by "
        f"{stored.metric}. Choose one by what you can afford; `hpsearch export "
        f"{study.study_name} --trial N` writes it as a runnable config, `--pareto -o DIR` all "
        "of them.",
        "",
    ]
    lines += markdown_table(*front_rows(front, stored.metrics, stored.directions))
    return lines


def _pareto_figure(study: optuna.Study, folder: Path, stored: StudyRecord) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as plots

    metrics = list(stored.metrics)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    skip = ""
    if len(metrics) > 3:
        skip = f"Optuna draws fronts of 2 or 3 metrics; this study has {len(metrics)}"
    elif not complete:
        skip = "no complete trial"
    return _draw(
        folder,
        "pareto_front.png",
        f"Pareto front ({' vs '.join(metrics)}; every complete trial, the front highlighted)",
        lambda: plots.plot_pareto_front(study, target_names=metrics),
        skip,
    )


def _trials_table(trials: Sequence[FrozenTrial], stored: StudyRecord) -> list[str]:
    records = [TrialRecord.from_trial(t) for t in trials]
    names = list(dict.fromkeys(name for r in records for name in r.params))
    metric_names = [
        name
        for name in dict.fromkeys(
            (*stored.metrics[1:], "val_accuracy", "test_accuracy", stored.test_metric)
        )
        if name != stored.metric
    ]
    headers = ["#", "State", stored.metric, "Epochs", "Best epoch", *metric_names, *names]
    rows = [
        [
            str(record.number),
            record.state.name.lower(),
            record.value,
            str(record.epochs_run),
            str(record.best_epoch) if record.best_epoch is not None else "-",
            *[record.metric(name) for name in metric_names],
            *[record.params.get(name) for name in names],
        ]
        for record in records
    ]
    return markdown_table(headers, rows) if rows else ["No trials yet."]


# --------------------------------------------------------------------------- figures


def _importances(
    study: optuna.Study, complete: Sequence[FrozenTrial], metric: str
) -> tuple[dict[str, float], str]:
    varying = {name for name in {n for t in complete for n in t.params} if _varies(complete, name)}
    if len(complete) < 2:
        return {}, f"needs at least 2 complete trials, the study has {len(complete)}"
    if not varying:
        return {}, "no searched parameter varies across the complete trials"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # Given a target, Optuna warns that it ranks towards low values: ours already is.
        warnings.simplefilter("ignore", UserWarning)
        try:
            return dict(
                optuna.importance.get_param_importances(study, target=_importance_target(study))
            ), ""
        except (ValueError, RuntimeError) as e:
            return {}, f"Optuna could not compute them ({e})"


def _first_value(study: optuna.Study) -> Callable[[FrozenTrial], float] | None:
    """The training metric as a plot's or importance's target (None: the study's one value)."""
    if len(study.directions) == 1:
        return None
    return lambda trial: trial.values[0]


def _importance_target(study: optuna.Study) -> Callable[[FrozenTrial], float] | None:
    """The training metric as lower-is-better (Optuna's evaluator ranks towards low targets)."""
    if len(study.directions) == 1:
        return None
    sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return lambda trial: sign * trial.values[0]


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
            lambda: plots.plot_optimization_history(
                study, target=_first_value(study), target_name=metric
            ),
            "" if complete else "no complete trial",
        ),
        _draw(
            folder,
            "intermediate_values.png",
            f"Learning curves ({metric} by epoch; x = pruned there)",
            lambda: _intermediate_values(study, plots, metric),
            ""
            if any(t.intermediate_values for t in finished)
            else (
                "a study with several metrics keeps its curves in each trial's epochs record "
                "(the per-trial curves below)"
                if len(study.directions) > 1
                else "no trial reported an epoch"
            ),
        ),
        _draw(
            folder,
            "parallel_coordinate.png",
            "Parallel coordinates",
            lambda: plots.plot_parallel_coordinate(
                study, target=_first_value(study), target_name=metric
            ),
            "" if complete and complete[0].params else "no complete trial with parameters",
        ),
        _draw(
            folder,
            "param_importances.png",
            "Parameter importances",
            lambda: plots.plot_param_importances(
                study, target=_importance_target(study), target_name=metric
            ),
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


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={number(v)}`" for k, v in params.items()) or "none searched"


def _args_text(args: Any) -> str:
    if not args:
        return ""
    return "(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"
