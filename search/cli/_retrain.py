"""``hpsearch retrain``: a fixed configuration over several seeds, against a baseline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from search.api import run_retrain
from search.cli._common import EXIT_OK, EXIT_STOPPED, add_device, add_set, add_storage
from search.retrain import add_to_config_file, default_output, format_result, write_result


def register(commands: Any) -> None:
    sub = commands(
        "retrain",
        "train a fixed configuration (an exported best) with several seeds, evaluate the test "
        "set once per seed, and compare it with a baseline",
        retrain,
    )
    sub.add_argument(
        "config",
        metavar="BEST",
        help="exported YAML (`hpsearch export`) or a config with search: {}",
    )
    sub.add_argument(
        "--seeds", type=int, default=5, metavar="K", help="training seeds (default 5, at least 2)"
    )
    sub.add_argument(
        "--baseline", metavar="CONFIG", help="config with search: {} to compare with, same seeds"
    )
    add_storage(sub)
    sub.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="result YAML (default: <BEST stem>-retrain.yaml beside BEST)",
    )
    add_device(sub)
    add_set(sub)


def retrain(args: argparse.Namespace) -> int:
    result = run_retrain(
        args.config,
        seeds=args.seeds,
        baseline=args.baseline,
        storage=args.storage,
        overrides=args.overrides,
        device=args.device,
    )
    print()
    sys.stdout.write(format_result(result))
    if not result.complete:
        print(
            "hpsearch: some seeds did not finish (see the tables); rerun the same command to "
            "train them",
            file=sys.stderr,
        )
        return EXIT_STOPPED
    output = Path(args.output) if args.output else default_output(args.config)
    write_result(result, output)
    add_to_config_file(result, Path(args.config))
    print(f"wrote {output}; added `retrain:` to {args.config}")
    return EXIT_OK
