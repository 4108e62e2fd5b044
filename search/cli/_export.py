"""``hpsearch export``: the best trial as a study config that trains the winner again."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from search.api import export_best, export_front
from search.cli._common import EXIT_OK, add_study, non_negative_int
from search.errors import ConfigError
from search.readout import export_text


def register(commands: Any) -> None:
    sub = commands(
        "export",
        "write the best trial (or --trial N, or a Pareto front) as a runnable study config",
        export,
    )
    add_study(sub)
    sub.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="YAML file to write (default: stdout); with --pareto, a new or empty folder",
    )
    sub.add_argument(
        "--model-dir",
        metavar="DIR",
        help="also write the trial's saved model there, in its library's own form",
    )
    sub.add_argument(
        "--trial",
        type=non_negative_int,
        metavar="N",
        help="export complete trial N instead of the best (a study with several metrics has no "
        "single best: pick a member of its Pareto front, which `hpsearch show` lists)",
    )
    sub.add_argument(
        "--pareto",
        action="store_true",
        help="export every member of the Pareto front, one runnable trial-N.yaml each in -o DIR",
    )


def export(args: argparse.Namespace) -> int:
    if args.pareto:
        if not args.output:
            raise ConfigError("export --pareto: name the folder to write with -o DIR")
        if args.trial is not None or args.model_dir:
            raise ConfigError(
                "export --pareto: --trial and --model-dir export one trial; drop them"
            )
        paths = export_front(args.study, args.output, storage=args.storage)
        print(
            f"wrote {len(paths)} configs of the Pareto front to {args.output}: "
            + ", ".join(p.name for p in paths)
            + "; train one again with `hpsearch run FILE`"
        )
        return EXIT_OK
    output = Path(args.output) if args.output else None
    config = export_best(
        args.study,
        storage=args.storage,
        output=output,
        model_dir=args.model_dir,
        trial=args.trial,
    )
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
