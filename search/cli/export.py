"""``hpsearch export``: the best trial as a study config that trains the winner again."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from search.api import export_best
from search.cli.common import EXIT_OK, add_study
from search.export import export_text


def register(commands: Any) -> None:
    sub = commands("export", "write the best trial as a runnable study config", export)
    add_study(sub)
    sub.add_argument("-o", "--output", metavar="FILE", help="YAML file to write (default: stdout)")
    sub.add_argument(
        "--model-dir",
        metavar="DIR",
        help="also write the best trial's saved model there, in its library's own form",
    )


def export(args: argparse.Namespace) -> int:
    output = Path(args.output) if args.output else None
    config = export_best(args.study, storage=args.storage, output=output, model_dir=args.model_dir)
    if args.model_dir:
        print(
            f"wrote the model of trial {config['best']['trial']} to {args.model_dir}",
            file=sys.stderr,
        )
    text = export_text(config)
    if output is None:
        sys.stdout.write(text)
    else:
        best = config["best"]
        print(
            f"wrote {output}: trial {best['trial']} ({best['metric']} {best['value']:.4f}); "
            f"train it again with `hpsearch run {output}`"
        )
    return EXIT_OK
