"""``hpsearch delete``: remove a study and its artifacts, after asking."""

from __future__ import annotations

import argparse
from typing import Any

from search.cli._common import add_study, storage_of
from search.study import delete_study


def register(commands: Any) -> None:
    sub = commands("delete", "delete a study and its artifacts from a storage", delete)
    add_study(sub)
    sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def delete(args: argparse.Namespace) -> int:
    return delete_study(storage_of(args), args.study, assume_yes=args.yes)
