"""What ``hpsearch run`` prints while it works: one line per trial, then the best trial."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.formatting import number, params_text
from search.readout._caveats import caveats
from search.readout._results import format_front_table
from search.study import RunSummary
from search.trial import (
    DEVICE,
    FINISHED,
    RESUMED_FROM,
    WORKER,
    Outcomes,
    StudyRecord,
    TrialRecord,
    pareto_front,
    records,
)


@dataclass
class TrialPrinter:
    """Optuna callback printing ``[finished/target] trial N STATE value epochs time params``."""

    metric: str
    target: int
    stream: TextIO | None = None  # None: sys.stdout at call time (picklable for workers)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        out = self.stream or sys.stdout
        finished = finished_rank(study, trial)
        record = TrialRecord.from_trial(trial)
        stored = StudyRecord.from_study(study)
        epochs = trial.params.get("epochs") or stored.fixed_epochs
        shown = record.value
        if shown is None and trial.state == TrialState.PRUNED:
            # Several metrics: a pruned trial has no value in Optuna; its curve says where it was.
            shown = record.best_value_so_far(self.metric, stored.maximize)
        value = f"{self.metric}={shown:.4g}" if shown is not None else "no value"
        state = trial.state.name
        detail = ""
        if record.infeasible:
            detail, value = f" ({record.reason})", ""
        elif trial.state == TrialState.PRUNED and (record.reason or "").startswith("diverged"):
            detail = f" ({record.reason})"
        elif trial.state == TrialState.PRUNED:
            detail = f" at epoch {record.epochs_run}"
        elif trial.state == TrialState.FAIL:
            detail = f" ({record.reason or 'no reason recorded'})"
        resumed = trial.user_attrs.get(RESUMED_FROM)
        if isinstance(resumed, dict):
            step = f", step {resumed['step']}" if resumed.get("step") else ""
            detail += f" (continued trial {resumed['trial']} at epoch {resumed['epoch']}{step})"
        acc = record.metric("val_accuracy")
        accuracy = f" val_acc={acc:.3f}" if acc is not None else ""
        seconds = f"{record.seconds:.1f}s" if record.seconds is not None else ""
        device, worker = trial.user_attrs.get(DEVICE), trial.user_attrs.get(WORKER)
        where = f" on {device}" if device else ""
        where += f" w{worker}" if device and worker is not None else ""
        out.write(
            f"[{finished:>{len(str(self.target))}}/{self.target}] trial {trial.number:<4} "
            f"{state:<8}{detail} {value}{accuracy} epochs {record.epochs_run}"
            f"{f'/{epochs}' if epochs else ''} {seconds}{where}  {params_text(trial.params)}\n"
        )
        out.flush()


def finished_rank(study: optuna.Study, trial: FrozenTrial) -> int:
    """How many trials had finished when ``trial`` ended (itself included, if it finished).

    Not the count at the time of printing: with several workers another trial may have finished
    in between, and two lines would show the same count.
    """
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    if trial.datetime_complete is None:
        return len(finished)
    key = (trial.datetime_complete, trial.number)
    return sum(
        1
        for t in finished
        if t.datetime_complete is not None and (t.datetime_complete, t.number) <= key
    )


def print_start(study: optuna.Study, finished: int, target: int, storage: str, out: TextIO) -> None:
    stored = StudyRecord.from_study(study)
    sampler = stored.section("sampler").get("name", "?")
    pruner = stored.section("pruner").get("name", "?")
    arrows = {"minimize": "lower is better", "maximize": "higher is better"}
    metric = ", ".join(
        f"{name}: {arrows[d]}" for name, d in zip(stored.metrics, stored.directions, strict=True)
    )
    todo = max(0, target - finished)
    action = f"running {todo} more" if todo else "nothing to run"
    out.write(
        f"study {study.study_name!r} on {storage}: {finished}/{target} finished, {action} "
        f"(sampler {sampler}, pruner {pruner}, metric {metric})\n"
    )
    out.flush()


def print_summary(study: optuna.Study, summary: RunSummary, storage: str, out: TextIO) -> None:
    trials = study.get_trials(deepcopy=False)
    outcomes = Outcomes.of(trials)
    out.write(
        f"\nstudy {study.study_name!r}: {outcomes.text()} "
        f"({summary.finished_after}/{summary.target} finished)\n"
    )
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    stored = StudyRecord.from_study(study)
    if complete and stored.multi_objective:
        front = pareto_front(study)
        out.write(
            f"Pareto front: {len(front)} of {len(complete)} complete trials "
            f"(no other trial is better on every metric)\n"
            + format_front_table(front, stored.metrics, stored.directions)
            + "\n"
        )
    elif complete:
        best = TrialRecord.from_trial(study.best_trial)
        test_metric = stored.test_metric
        readouts = [("val_accuracy", best.metric("val_accuracy"))]
        readouts += [
            (name, best.metric(name)) for name in dict.fromkeys((test_metric, "test_accuracy"))
        ]
        out.write(
            f"best trial {best.number}: value {best.value:.4g} at epoch {best.best_epoch}; "
            + ", ".join(f"{name} {number(value, 'n/a')}" for name, value in readouts)
            + f"\n  params: {params_text(best.params) or '(none searched)'}\n"
        )
    elif outcomes.infeasible and outcomes.infeasible == len(trials):
        out.write(
            "no trial trained: every proposal was outside `constraints:` (see their `reason` "
            "with `hpsearch show`); widen the bounds or narrow `search:`\n"
        )
    else:
        out.write("no trial completed yet\n")
    for line in caveats(records(trials), stored):
        out.write(line + "\n")
    storage_flag = "" if storage == "sqlite:///studies/hpsearch.db" else f" --storage '{storage}'"
    name = study.study_name
    dashboard = f"hpsearch dashboard{storage_flag}" if storage_flag else "make dashboard"
    steps = [
        (
            f"hpsearch show {name}{storage_flag}",
            "trials and the Pareto front"
            if stored.multi_objective
            else "trials and the best trial's epochs",
        ),
        (
            f"hpsearch export {name}{storage_flag} --pareto -o front/"
            if stored.multi_objective
            else f"hpsearch export {name}{storage_flag} -o best.yaml",
            "the front as runnable configs"
            if stored.multi_objective
            else "the winner as a runnable config",
        ),
        (f"hpsearch report {name}{storage_flag}", f"report/{name}/report.md with figures"),
        (dashboard, "watch it in optuna-dashboard"),
    ]
    width = max(len(command) for command, _ in steps) + 2
    out.write("next:\n")
    for command, what in steps:
        out.write(f"  {command:<{width}}# {what}\n")
    out.flush()
