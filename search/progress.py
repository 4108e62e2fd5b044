"""What ``hpsearch run`` prints while it works: one line per trial, then the best trial."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.results import best_epoch_record, format_params, trial_summary
from search.study import FINISHED, RunSummary


@dataclass
class TrialPrinter:
    """Optuna callback printing ``[finished/target] trial N STATE value epochs time params``."""

    metric: str
    target: int
    stream: TextIO | None = None  # None: sys.stdout at call time (picklable for workers)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        out = self.stream or sys.stdout
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        summary = trial_summary(trial)
        epochs = trial.params.get("epochs") or _fixed_epochs(study)
        value = (
            f"{self.metric}={summary['value']:.4g}" if summary["value"] is not None else "no value"
        )
        state = trial.state.name
        detail = ""
        if trial.state == TrialState.PRUNED and (summary["reason"] or "").startswith("diverged"):
            detail = f" ({summary['reason']})"
        elif trial.state == TrialState.PRUNED:
            detail = f" at epoch {summary['epochs_run']}"
        elif trial.state == TrialState.FAIL:
            detail = f" ({summary['reason'] or 'no reason recorded'})"
        acc = summary["val_accuracy"]
        accuracy = f" val_acc={acc:.3f}" if isinstance(acc, float) else ""
        seconds = f"{summary['seconds']:.1f}s" if summary["seconds"] is not None else ""
        out.write(
            f"[{finished:>{len(str(self.target))}}/{self.target}] trial {trial.number:<4} "
            f"{state:<8}{detail} {value}{accuracy} epochs {summary['epochs_run']}"
            f"{f'/{epochs}' if epochs else ''} {seconds}  {format_params(trial.params)}\n"
        )
        out.flush()


def _fixed_epochs(study: optuna.Study) -> int | None:
    config = study.user_attrs.get("config") or {}
    epochs = (config.get("fixed") or {}).get("epochs")
    return epochs if isinstance(epochs, int) else None


def print_start(study: optuna.Study, finished: int, target: int, storage: str, out: TextIO) -> None:
    config = study.user_attrs.get("config") or {}
    sampler = (config.get("sampler") or {}).get("name", "?")
    pruner = (config.get("pruner") or {}).get("name", "?")
    metric = (config.get("study") or {}).get("metric", "?")
    arrow = "lower is better" if study.direction.name == "MINIMIZE" else "higher is better"
    todo = max(0, target - finished)
    action = f"running {todo} more" if todo else "nothing to run"
    out.write(
        f"study {study.study_name!r} on {storage}: {finished}/{target} finished, {action} "
        f"(sampler {sampler}, pruner {pruner}, metric {metric}: {arrow})\n"
    )
    out.flush()


def print_summary(study: optuna.Study, summary: RunSummary, storage: str, out: TextIO) -> None:
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(t.state == state for t in trials) for state in TrialState}
    out.write(
        f"\nstudy {study.study_name!r}: {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed "
        f"({summary.finished_after}/{summary.target} finished)\n"
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        record = best_epoch_record(best) or {}
        test_accuracy = best.user_attrs.get("test_accuracy")
        out.write(
            f"best trial {best.number}: value {best.value:.4g} at epoch "
            f"{best.user_attrs.get('best_epoch')}; val_accuracy "
            f"{_number(record.get('val_accuracy'))}, test_accuracy {_number(test_accuracy)}\n"
            f"  params: {format_params(best.params) or '(none searched)'}\n"
        )
    else:
        out.write("no trial completed yet\n")
    storage_flag = "" if storage == "sqlite:///studies/hpsearch.db" else f" --storage '{storage}'"
    name = study.study_name
    dashboard = f"hpsearch dashboard{storage_flag}" if storage_flag else "make dashboard"
    steps = [
        (f"hpsearch show {name}{storage_flag}", "trials and the best trial's epochs"),
        (f"hpsearch export {name}{storage_flag} -o best.yaml", "the winner as a runnable config"),
        (f"hpsearch report {name}{storage_flag}", f"report/{name}/report.md with figures"),
        (dashboard, "watch it in optuna-dashboard"),
    ]
    width = max(len(command) for command, _ in steps) + 2
    out.write("next:\n")
    for command, what in steps:
        out.write(f"  {command:<{width}}# {what}\n")
    out.flush()


def _number(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "n/a"
