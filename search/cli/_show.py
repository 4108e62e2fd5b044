"""``hpsearch show``: a study's trials, and the best (or a given) trial's epochs."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from search.cli._common import EXIT_OK, add_study, non_negative_int, storage_of
from search.errors import StudyError
from search.readout import caveats, format_epoch_table, format_front_table, format_trials_table
from search.study import open_existing_study
from search.trial import Outcomes, StudyRecord, TrialRecord, best_trial, pareto_front, records


def register(commands: Any) -> None:
    sub = commands("show", "print a study's trials and the best (or given) trial's epochs", show)
    add_study(sub)
    sub.add_argument("--trial", type=non_negative_int, metavar="N", help="trial number")
    sub.add_argument("--json", action="store_true", help="print JSON")


def show(args: argparse.Namespace) -> int:
    study = open_existing_study(storage_of(args), args.study)
    trials = study.get_trials(deepcopy=False)
    stored = StudyRecord.from_study(study)
    metric = stored.metric
    if args.trial is not None:
        chosen = next((t for t in trials if t.number == args.trial), None)
        if chosen is None:
            raise StudyError(
                f"study {args.study!r} has no trial {args.trial} (trials 0..{len(trials) - 1})"
            )
    else:
        chosen = best_trial(study)
    front = pareto_front(study) if stored.multi_objective else []
    if args.json:
        print(
            json.dumps(
                {
                    "study": study.study_name,
                    "direction": stored.directions[0],
                    "metric": metric,
                    "metrics": list(stored.metrics),
                    "directions": list(stored.directions),
                    "pareto_front": [t.number for t in front] if stored.multi_objective else None,
                    "outcomes": dataclasses.asdict(Outcomes.of(trials)),
                    "warnings": caveats(records(trials), stored),
                    "trials": [TrialRecord.from_trial(t).summary() for t in trials],
                    "best_trial": best_trial(study).number if best_trial(study) else None,
                    "trial": {
                        **TrialRecord.from_trial(chosen).summary(),
                        "epochs": TrialRecord.from_trial(chosen).epoch_rows(),
                    }
                    if chosen
                    else None,
                },
                indent=2,
                default=str,
            )
        )
        return EXIT_OK
    goals = "; ".join(f"{m}, {d}" for m, d in zip(stored.metrics, stored.directions, strict=True))
    outcomes = Outcomes.of(trials).text()
    print(f"study {study.study_name!r} ({goals}), {len(trials)} trials: {outcomes}\n")
    print(
        format_trials_table(trials, metric, stored.test_metric, stored.metrics[1:])
        if trials
        else "no trials yet"
    )
    if stored.multi_objective:
        print(
            f"\nPareto front: {len(front)} trials (no other complete trial is better on every "
            "metric); export one with `hpsearch export STUDY --trial N`"
        )
        if front:
            print(format_front_table(front, stored.metrics, stored.directions))
    if chosen is not None:
        label = "trial" if args.trial is not None else "best trial"
        summary = TrialRecord.from_trial(chosen).summary()
        print(
            f"\n{label} {chosen.number} ({chosen.state.name}"
            f"{', ' + summary['reason'] if summary['reason'] else ''}): "
            f"best epoch {summary['best_epoch']}"
        )
        if TrialRecord.from_trial(chosen).epochs_run:
            print(format_epoch_table(chosen))
        else:
            print("no epoch trained")
        if summary["note"]:
            print(f"note: {summary['note']}")
    for line in caveats(records(trials), stored):
        print(line)
    return EXIT_OK
