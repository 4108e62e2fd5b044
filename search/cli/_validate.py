"""``hpsearch validate``: check a config and print it resolved; touches no storage."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from objectives.command import expand_argv
from search.cli._common import EXIT_OK, add_set, load
from search.config import dump_yaml
from search.study import check_buildable


def register(commands: Any) -> None:
    sub = commands(
        "validate", "check a config and print it resolved (touches no storage)", validate
    )
    sub.add_argument("config", metavar="CONFIG", help="study YAML file")
    add_set(sub)


def validate(args: argparse.Namespace) -> int:
    config = load(args)
    check_buildable(config, args.config)
    sys.stdout.write(
        f"# {args.config}: valid ({config.objective}, {len(config.search)} searched "
        f"parameters, metric {', '.join(config.metrics)})\n"
    )
    if config.command is not None:
        shown = {**config.fixed, **{name: f"<{name}>" for name in config.search}}
        argv = expand_argv(config.command.argv, shown, config.study.seed)
        sys.stdout.write(f"# a trial runs, in {config.command.cwd}: {shlex.join(argv)}\n")
    sys.stdout.write(dump_yaml(config.to_dict(mask_password=True)))
    return EXIT_OK
