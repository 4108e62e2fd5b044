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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.formatting import markdown_table, number
from search.readout._audit import read_audit, summary_lines
from search.readout._caveats import caveats
from search.readout._figures import copy_curves, draw_figures, parameter_importances, pareto_figure
from search.readout._results import EPOCH_COLUMNS, epoch_table_rows, front_rows
from search.trial import (
    Outcomes,
    StudyRecord,
    TrialRecord,
    pareto_front,
    records,
    study_artifact_dir,
)
from storage.artifacts import (
    all_artifacts,
    artifact_bytes,
    checkpoint_of,
)
from storage.urls import mask_password

TOP_TRIALS = 5
REPORT_FILE = "report.md"


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
    importances, importance_note = parameter_importances(study, complete, metric)
    figures = draw_figures(study, folder, metric, importances, importance_note)
    if several:
        figures.insert(0, pareto_figure(study, folder, stored))
    artifact_folder = study_artifact_dir(study, storage_url)
    curves = copy_curves(study, ranked[:TOP_TRIALS], artifact_folder, folder)

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
            f"cost; {_what_saved(outcomes.pruned, outcomes.early_stopped)} saved the rest"
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


def _what_saved(pruned: int, early_stopped: int) -> str:
    if pruned and early_stopped:
        return "pruning and early stopping"
    return "pruning" if pruned else "early stopping" if early_stopped else "stopping early"


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


# --------------------------------------------------------------------------- formatting


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={number(v)}`" for k, v in params.items()) or "none searched"


def _args_text(args: Any) -> str:
    if not args:
        return ""
    return "(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"
