"""What every command shares: the one-line argparse parser, argument types, common options."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from search.config import DEFAULT_STORAGE, StudyConfig, load_config
from search.errors import HpsearchError

EXIT_OK, EXIT_STOPPED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(HpsearchError):
    """A command line argparse refused."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (argparse prints a multi-line usage block)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def add_storage(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--storage", metavar="URL", help=f"storage URL (default {DEFAULT_STORAGE})")


def add_device(sub: argparse.ArgumentParser, default: str | None = "auto") -> None:
    sub.add_argument(
        "--device",
        default=default,
        metavar="DEVICE",
        help="auto, cpu, cuda or cuda:N; auto = CUDA when available, else the CPU (default auto)",
    )


def add_set(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value by dotted path, e.g. --set fixed.epochs=5 (repeatable)",
    )


def add_study(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("study", metavar="STUDY", help="study name")
    add_storage(sub)


def storage_of(args: argparse.Namespace) -> str:
    return str(getattr(args, "storage", None) or DEFAULT_STORAGE)


def load(args: argparse.Namespace) -> StudyConfig:
    """The config file with ``--set`` overrides and the study flags applied."""
    config = load_config(args.config, list(args.overrides))
    updates: dict[str, Any] = {}
    if getattr(args, "storage", None):
        updates["storage"] = args.storage
    if getattr(args, "study_name", None):
        updates["name"] = args.study_name
    if getattr(args, "n_trials", None):
        updates["n_trials"] = args.n_trials
    if getattr(args, "timeout", None):
        updates["timeout"] = args.timeout
    if updates:
        config = config.model_copy(update={"study": config.study.model_copy(update=updates)})
    return config


def _whole_number(text: str, minimum: int, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {rule}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1, "at least 1")


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0, "0 or more")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def port(text: str) -> int:
    value = non_negative_int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a port between 1 and 65535, got {value}")
    return value


def port_or_zero(text: str) -> int:
    """A port, or 0 for any free one."""
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port up to 65535 (0: any free), got {value}")
    return value
