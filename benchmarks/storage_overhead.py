"""Figure 4: storage overhead per trial.

Trivial trials (one sampled float, 5 reports, ``should_prune`` after each, median pruner, random
sampler so that the sampler costs nothing) against each storage: the project's SQLite setup
(``storage.connect.open_storage``: WAL, busy timeout, heartbeats), the same without heartbeats,
Optuna's default SQLite storage (a ``sqlite:///`` string), the journal file storage, and memory.
The storages take turns in blocks of trials (round 1: block 1 of each storage, in rotating
order; round 2: block 2; ...), so every storage sees the machine's drift alike and the blocks
show how the cost grows with the number of trials already stored.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import Figure, Settings, median, ratio

REPORTS_PER_TRIAL = 5
PROJECT = "project sqlite"
SIDES = (PROJECT, "project sqlite, no heartbeat", "optuna sqlite", "journal file", "in-memory")


def sizes(settings: Settings) -> dict[str, int]:
    if settings.mode == "smoke":
        return {"trials": 20, "block": 10}
    if settings.quick:
        return {"trials": 200, "block": 50}
    return {"trials": 1000, "block": 100}


def _objective(trial: Any) -> float:
    import optuna

    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(1, REPORTS_PER_TRIAL + 1):
        trial.report(x * step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return x


def _make_study(side: str, folder: Path) -> Any:
    import optuna

    from storage.connect import open_storage
    from storage.urls import parse_storage_url

    slug = side.replace(" ", "-").replace(",", "")
    storage: Any
    if side == PROJECT:
        url = parse_storage_url(f"sqlite:///{folder / (slug + '.db')}")
        storage = open_storage(url, create=True, heartbeat_interval=30, heartbeat_grace=90)
    elif side == "project sqlite, no heartbeat":
        url = parse_storage_url(f"sqlite:///{folder / (slug + '.db')}")
        storage = open_storage(url, create=True)
    elif side == "optuna sqlite":
        storage = f"sqlite:///{folder / (slug + '.db')}"
    elif side == "journal file":
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / (slug + ".log"))))
    else:
        storage = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.create_study(
            storage=storage,
            study_name=slug,
            sampler=optuna.samplers.RandomSampler(seed=0),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
        )


def _block(study: Any, trials: int) -> float:
    """Run ``trials`` trials; return milliseconds per trial."""
    started = time.perf_counter()
    study.optimize(_objective, n_trials=trials, gc_after_trial=False)
    return (time.perf_counter() - started) * 1000 / trials


def _profile(study: Any, trials: int, top: int = 12) -> tuple[list[str], dict[str, float]]:
    """cProfile of one block: the top functions by own time, and SQLite's share per trial."""
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    study.optimize(_objective, n_trials=trials, gc_after_trial=False)
    profiler.disable()
    seconds = time.perf_counter() - started
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(top)
    lines = [line.rstrip() for line in stream.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    sqlite: dict[str, float] = {"statements": 0, "commits": 0, "seconds": 0.0}
    for (_, _, name), (_, calls, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        if name == "<method 'execute' of 'sqlite3.Cursor' objects>":
            sqlite["statements"] += calls
            sqlite["seconds"] += own
        elif name == "<method 'commit' of 'sqlite3.Connection' objects>":
            sqlite["commits"] += calls
            sqlite["seconds"] += own
    per_trial = {
        "sql_statements_per_trial": sqlite["statements"] / trials,
        "commits_per_trial": sqlite["commits"] / trials,
        "share_in_sqlite": sqlite["seconds"] / seconds,
    }
    return lines[start : start + top + 1], per_trial


def run(settings: Settings, log: Callable[[str], None] = print) -> Figure:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    size = sizes(settings)
    folder = Path(settings.workdir) / ("storage-quick" if settings.quick else "storage")
    folder.mkdir(parents=True, exist_ok=True)
    studies = {side: _make_study(side, folder) for side in SIDES}
    rounds = size["trials"] // size["block"]
    blocks: dict[str, list[float]] = {side: [] for side in SIDES}
    for round_index in range(rounds):
        order = SIDES[round_index % len(SIDES) :] + SIDES[: round_index % len(SIDES)]
        for side in order:
            blocks[side].append(_block(studies[side], size["block"]))
        log(
            f"  storage round {round_index + 1}/{rounds}: "
            + ", ".join(f"{s} {blocks[s][-1]:.1f} ms" for s in SIDES)
        )
    figure = Figure(
        key="storage",
        title="Storage overhead per trivial trial (5 reports, median pruner)",
        command="python -m benchmarks --only storage",
        settings={**size, "reports_per_trial": REPORTS_PER_TRIAL, "sampler": "random"},
        target="none set (informational); find the cause if the project's SQLite is far above "
        "journal / in-memory",
    )
    first, last = 0, rounds - 1
    for side in SIDES:
        per_round_ratio = median(
            [ratio(p, s) for p, s in zip(blocks[PROJECT], blocks[side], strict=True)]
        )
        figure.table.append(
            {
                "storage": side,
                "median ms/trial": median(blocks[side]),
                f"ms/trial, trials 1-{size['block']}": blocks[side][first],
                f"ms/trial, trials {size['trials'] - size['block'] + 1}-{size['trials']}": blocks[
                    side
                ][last],
                "growth last/first": ratio(blocks[side][last], blocks[side][first]),
                "project sqlite / this": per_round_ratio,
            }
        )
    figure.numbers = {"ms_per_trial_by_block": blocks}
    figure.ratio = median(
        [ratio(p, s) for p, s in zip(blocks[PROJECT], blocks["optuna sqlite"], strict=True)]
    )
    figure.ratio_label = "project sqlite / optuna default sqlite, ms per trial (median of rounds)"
    heartbeat_share = ratio(
        median(blocks[PROJECT]) - median(blocks["project sqlite, no heartbeat"]),
        median(blocks[PROJECT]),
    )
    figure.numbers["heartbeat_share_of_project_cost"] = heartbeat_share
    figure.notes.append(
        f"heartbeats account for {heartbeat_share:.0%} of the project's SQLite time per trial "
        "(project sqlite vs the same without heartbeats)"
    )
    if settings.quick:
        return figure
    # Where the time goes: profile one more block on the project's and Optuna's SQLite.
    for side in (PROJECT, "optuna sqlite"):
        lines, per_trial = _profile(studies[side], size["block"])
        figure.numbers[f"profile {side}"] = lines
        figure.numbers[f"sqlite calls {side}"] = per_trial
        figure.notes.append(
            f"{side}: {per_trial['sql_statements_per_trial']:.0f} SQL statements and "
            f"{per_trial['commits_per_trial']:.0f} commits per trial; "
            f"{per_trial['share_in_sqlite']:.0%} of the time inside sqlite3 (execute + commit), "
            "the rest in SQLAlchemy and Optuna's Python (profile below)"
        )
    return figure
