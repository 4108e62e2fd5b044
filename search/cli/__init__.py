"""``hpsearch`` (also ``python -m search``): parse, call, print.

One module per command, each holding its own arguments (``register``) next to its action.
Exit codes: 0 done, 1 the study stopped short (repeated failures), 2 bad input (one line on
stderr, nothing written), 130 interrupted (the study is intact; rerun the command to resume).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from search.cli import (
    _audit,
    _dashboard,
    _delete,
    _export,
    _listing,
    _report,
    _retrain,
    _run,
    _show,
    _storage_proxy,
    _validate,
)
from search.cli._common import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_STOPPED, Parser
from search.errors import USER_ERRORS, WorkerError
from search.study import apply_command_policy, prefer_passive_threads
from search.version import __version__

__all__ = ["build_parser", "entry_point", "main"]

Command = Callable[[argparse.Namespace], int]
COMMAND_MODULES = (
    _run,
    _validate,
    _listing,
    _show,
    _export,
    _report,
    _delete,
    _retrain,
    _audit,
    _dashboard,
    _storage_proxy,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="hpsearch",
        description="Optuna hyperparameter search for Transformer training.",
        epilog="Exit codes: 0 done, 1 stopped short, 2 bad input, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"hpsearch {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True

    def add(name: str, help_text: str, action: Command) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks on errors",
        )
        sub.set_defaults(action=action)
        return sub

    for module in COMMAND_MODULES:
        module.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code. Errors print one line unless ``--debug``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Before torch is imported: idle OpenMP threads sleep instead of spinning.
    prefer_passive_threads()
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        apply_command_policy(debug)
        return int(args.action(args))
    except WorkerError as e:
        # Not bad input: a worker died (killed, out of memory). Its trial is retried on rerun.
        if debug:
            traceback.print_exc()
        print(f"hpsearch: error: {e}", file=sys.stderr)
        return EXIT_STOPPED
    except USER_ERRORS as e:
        if debug:
            traceback.print_exc()
        print(f"hpsearch: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            "hpsearch: interrupted; the study is intact: rerun the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `hpsearch show ... | head`: the reader left; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def entry_point() -> None:
    sys.exit(main())
