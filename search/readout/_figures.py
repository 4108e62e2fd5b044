"""The report's figures: Optuna's matplotlib plots as PNG files, importances, learning curves."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.trial import (
    StudyRecord,
)
from storage.artifacts import (
    copy_file,
    open_store,
    trial_artifacts,
)

FIGURE_DPI = 90


@dataclass(frozen=True)
class Figure:
    """One figure of the report: its file name, caption, and a note when it could not be drawn."""

    file: str | None
    caption: str
    note: str = ""


def pareto_figure(study: optuna.Study, folder: Path, stored: StudyRecord) -> Figure:
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


def parameter_importances(
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


def draw_figures(
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


def copy_curves(
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
