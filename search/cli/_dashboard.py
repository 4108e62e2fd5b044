"""``hpsearch dashboard``: optuna-dashboard on a storage, with its artifacts."""

from __future__ import annotations

import argparse
from typing import Any

from search.cli._common import add_storage, port, storage_of
from search.readout import serve


def register(commands: Any) -> None:
    sub = commands("dashboard", "serve optuna-dashboard on a storage", dashboard)
    add_storage(sub)
    sub.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    sub.add_argument("--port", type=port, default=8080, help="port (default 8080)")
    sub.add_argument(
        "--artifact-dir",
        metavar="DIR",
        help="artifact folder to serve (default: the studies' artifacts.dir, else beside the db)",
    )


def dashboard(args: argparse.Namespace) -> int:
    return serve(storage_of(args), args.host, args.port, args.artifact_dir)
