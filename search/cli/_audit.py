"""``hpsearch audit``: train pruned and early-stopped trials to full length; what was lost."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from search.cli._common import (
    EXIT_OK,
    EXIT_STOPPED,
    add_device,
    add_study,
    positive_int,
    storage_of,
)
from search.readout import format_audit
from search.retrain import DEFAULT_AUDIT_TRIALS, run_audit
from search.study import setup_device


def register(commands: Any) -> None:
    sub = commands(
        "audit",
        "retrain a sample of a study's pruned and early-stopped trials to full length and "
        "report how many pruning got wrong",
        audit,
    )
    add_study(sub)
    sub.add_argument(
        "--trials",
        type=positive_int,
        default=DEFAULT_AUDIT_TRIALS,
        metavar="N",
        help=f"how many pruned / early-stopped trials to audit (default {DEFAULT_AUDIT_TRIALS})",
    )
    sub.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="K",
        help="worker processes training the audited trials (default 1)",
    )
    sub.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="for a study of objective: command, its config file: the audit runs the command "
        "written there (it must equal the study's), never one read from the storage",
    )
    add_device(sub)


def audit(args: argparse.Namespace) -> int:
    device = setup_device(args.device)
    result = run_audit(
        args.study,
        storage_of(args),
        trials=args.trials,
        device=device,
        workers=args.workers,
        config_path=args.config,
    )
    print()
    sys.stdout.write(format_audit(result))
    return EXIT_OK if result.complete else EXIT_STOPPED
