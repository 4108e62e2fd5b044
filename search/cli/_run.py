"""``hpsearch run``: create or resume a study from a YAML config and run its trials."""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import sys
from typing import Any

from search.api import run_study
from search.cli._common import (
    EXIT_OK,
    EXIT_STOPPED,
    add_device,
    add_set,
    add_storage,
    load,
    positive_float,
    positive_int,
)
from search.readout import TrialPrinter, print_start, print_summary
from search.study import (
    MODES,
    BarDisplay,
    ProgressPlan,
    QueueStream,
    open_existing_study,
    resolve_mode,
)
from storage.urls import mask_password


def register(commands: Any) -> None:
    sub = commands("run", "create or resume a study from a YAML config and run its trials", run)
    sub.add_argument("config", metavar="CONFIG", help="study YAML file")
    add_storage(sub)
    sub.add_argument("--study-name", metavar="NAME", help="override study.name")
    sub.add_argument("--n-trials", type=positive_int, metavar="N", help="override study.n_trials")
    sub.add_argument(
        "--timeout", type=positive_float, metavar="S", help="override study.timeout (seconds)"
    )
    sub.add_argument(
        "--workers",
        type=positive_int,
        metavar="K",
        help="worker processes sharing the study (default 1), on --device; with --device cuda "
        "or auto on a machine with GPUs they take the visible GPUs in turn",
    )
    add_device(sub, default=None)
    sub.add_argument(
        "--devices",
        metavar="LIST",
        help="place workers on devices: auto (every visible GPU, else the CPU), cpu, or a comma "
        "list such as cuda:0,cuda:1 or cpu,cpu; one worker per device times "
        "--trials-per-device. --device X is the same as --devices X: give one of the two, and "
        "not --workers with --devices",
    )
    sub.add_argument(
        "--trials-per-device",
        type=positive_int,
        metavar="N",
        help="trials running at once on each device (default 1)",
    )
    sub.add_argument(
        "--progress",
        choices=MODES,
        default="auto",
        help="inside trials: bars (a live bar per worker), epochs (a line per epoch), off; "
        "auto = bars on a terminal, else epochs (default auto)",
    )
    sub.add_argument(
        "--allow-config-change",
        action="store_true",
        help="continue an existing study even though its config changed",
    )
    add_set(sub)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    storage = mask_password(config.study.storage)
    printer = TrialPrinter(metric=config.metric, target=config.study.n_trials)

    def on_start(study: Any, finished: int, target: int) -> None:
        printer.target = target
        print_start(study, finished, target, storage, sys.stdout)

    mode = resolve_mode(args.progress)
    plan = ProgressPlan(mode)
    display = contextlib.nullcontext()
    if mode == "bars":
        plan.events = multiprocessing.get_context("spawn").Queue()
        printer.stream = QueueStream(plan.events)
        display = BarDisplay().running(plan.events)
    with display:
        summary = run_study(
            config,
            source=args.config,
            device=args.device,
            workers=args.workers,
            devices=args.devices,
            trials_per_device=args.trials_per_device,
            allow_config_change=args.allow_config_change,
            on_trial=printer,
            on_start=on_start,
            progress=plan,
        )
    study = open_existing_study(config.study.storage, config.study.name)
    print_summary(study, summary, storage, sys.stdout)
    if summary.stopped_because and summary.stopped_because != "timeout":
        print(f"hpsearch: study stopped: {summary.stopped_because}", file=sys.stderr)
        return EXIT_STOPPED
    if summary.stopped_because == "timeout":
        print(
            f"timeout reached with {summary.finished_after}/{summary.target} finished; "
            "rerun the same command to continue"
        )
    return EXIT_OK
