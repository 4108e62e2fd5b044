"""``hpsearch report``: a study as a folder of Markdown and figures."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from search.api import write_report
from search.cli._common import EXIT_OK, add_study


def register(commands: Any) -> None:
    sub = commands("report", "write a Markdown report with tables and figures for a study", report)
    add_study(sub)
    sub.add_argument("-o", "--output", metavar="DIR", help="report folder (default: report/STUDY)")


def report(args: argparse.Namespace) -> int:
    folder = Path(args.output) if args.output else Path("report") / args.study
    written = write_report(args.study, storage=args.storage, folder=folder)
    print(f"wrote {written} ({len(list(folder.iterdir()))} files in {folder})")
    return EXIT_OK
