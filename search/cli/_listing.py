"""``hpsearch list``: the studies in a storage, with their trial counts and best values."""

from __future__ import annotations

import argparse
import json
from typing import Any

import optuna
from optuna.trial import TrialState

from search.cli._common import EXIT_OK, add_storage, storage_of
from search.formatting import format_table
from search.trial import StudyRecord
from storage.connect import open_storage
from storage.urls import parse_storage_url


def register(commands: Any) -> None:
    sub = commands("list", "list the studies in a storage", list_studies)
    add_storage(sub)
    sub.add_argument("--json", action="store_true", help="print JSON")


def list_studies(args: argparse.Namespace) -> int:
    url = parse_storage_url(storage_of(args))
    storage = open_storage(url, create=False)
    rows = []
    for summary in optuna.study.get_all_study_summaries(storage, include_best_trial=True):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
        # A study with several metrics has a Pareto front, no best trial (`hpsearch show`).
        several = len(summary.directions) > 1
        best = None if several else summary.best_trial
        rows.append(
            {
                "name": summary.study_name,
                "direction": ", ".join(d.name.lower() for d in summary.directions),
                "metric": ", ".join(StudyRecord.from_study(study).metrics),
                "trials": len(trials),
                **{k: counts[k] for k in ("complete", "pruned", "fail", "running")},
                "best_value": best.value if best else None,
                "best_trial": best.number if best else None,
                "started": summary.datetime_start.isoformat(timespec="seconds")
                if summary.datetime_start
                else None,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print(f"no studies in {url.masked}")
        return EXIT_OK
    headers = [
        "Study",
        "Metric",
        "Trials",
        "Complete",
        "Pruned",
        "Failed",
        "Running",
        "Best",
        "Best trial",
        "Started",
    ]
    print(
        format_table(
            headers,
            [
                [
                    r["name"],
                    r["metric"] or r["direction"],
                    r["trials"],
                    r["complete"],
                    r["pruned"],
                    r["fail"],
                    r["running"],
                    r["best_value"],
                    r["best_trial"],
                    r["started"],
                ]
                for r in rows
            ],
        )
    )
    return EXIT_OK
