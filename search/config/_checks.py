"""Checks across keys that the schema alone cannot express (parameters against the objective).

Each failure is a ConfigError whose message is one line: file, key path, value, and the fix.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from objectives.command import NAME as COMMAND_OBJECTIVE
from objectives.command import PLACEHOLDER, argv_problem
from objectives.specs import (
    COST_METRICS,
    PRE_TRAINING_METRICS,
    ObjectiveSpec,
    ParamRule,
    ParamValues,
)
from search.config._schema import DATA_SEED, CategoricalSpace, FloatSpace, IntSpace, StudyConfig
from search.errors import ConfigError

Fail = Callable[[str, str], None]


def one_line(text: str) -> str:
    # Keys and values come from the user's file and may hold line breaks; the message may not.
    return text.replace("\r", "\\r").replace("\n", "\\n")


def check_semantics(config: StudyConfig, source: str) -> None:
    spec = config.spec

    def fail(path: str, message: str) -> None:
        raise ConfigError(one_line(f"{source}: {path}: {message}"))

    if config.objective == COMMAND_OBJECTIVE:
        _check_command_metrics(config, fail)
    _check_metrics(config, fail)
    _check_cost_constraints(config, fail)
    if config.study.heartbeat_grace <= config.study.heartbeat_interval:
        fail(
            "study.heartbeat_grace",
            f"must be larger than study.heartbeat_interval ({config.study.heartbeat_interval}), "
            f"got {config.study.heartbeat_grace}",
        )
    if config.objective == COMMAND_OBJECTIVE:
        _check_command(config, fail)
    known = ", ".join(spec.params)
    for name, value in config.fixed.items():
        rule = _rule_of(spec, name)
        if rule is None:
            fail(f"fixed.{name}", f"unknown parameter for {spec.name}; known: {known}")
            continue
        if isinstance(value, float) and not math.isfinite(value):
            fail(f"fixed.{name}", f"must be a finite number, got {value!r}")
        problem = rule.check(value)
        if problem:
            fail(f"fixed.{name}", problem)
    for name, space in config.search.items():
        rule = _rule_of(spec, name)
        if rule is None:
            fail(f"search.{name}", f"unknown parameter for {spec.name}; known: {known}")
            continue
        if name in config.fixed:
            fail(
                f"search.{name}",
                "is both fixed and searched; remove it from `fixed:` or from `search:`",
            )
        _check_space(f"search.{name}", space, rule, fail)
    if config.sampler.name == "grid":
        bad = [name for name, space in config.search.items() if space.type != "categorical"]
        if bad:
            fail(
                "sampler.name",
                "the grid sampler needs categorical parameters only; "
                f"make these categorical or use another sampler: {', '.join(bad)}",
            )
    _check_constraints(config, fail)
    for index, entry in enumerate(config.enqueue):
        for name, value in entry.items():
            path = f"enqueue[{index}].{name}"
            if name not in config.search:
                hint = " (it is fixed; remove it here)" if name in config.fixed else ""
                fail(path, f"not a searched parameter{hint}; searched: {', '.join(config.search)}")
            space = config.search[name]
            if not _space_contains(space, value):
                fail(path, f"{value!r} lies outside the search space {_describe_space(space)}")
    seed = config.data.get(DATA_SEED)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        fail(
            "data.seed",
            f"must be a whole number >= 0 (it fixes the data and its split), got {seed!r}",
        )
    try:
        config.data_config()
    except ValidationError as e:
        raise ConfigError(_format_data_error(e, source)) from e


@dataclass(frozen=True)
class _ScalarRule(ParamRule):
    """Any one scalar: a command's parameters are its own, with no rule of ours."""

    def check(self, value: Any) -> str | None:
        if value is None or isinstance(value, str | int | float):
            return None
        return f"a command parameter is one scalar (string, number, bool), got {value!r}"


_ANY_SCALAR = _ScalarRule(object, None, nullable=True)
# The service's own settings among a command's parameters.
_COMMAND_RULES = {
    "epochs": ParamRule(int, None, low=1, high=100000),
    "early_stopping_patience": ParamRule(int, None, low=1, nullable=True),
}


def _rule_of(spec: ObjectiveSpec, name: str) -> ParamRule | None:
    """The rule of parameter ``name`` (None: the objective has no such parameter)."""
    if spec.name == COMMAND_OBJECTIVE:
        return _COMMAND_RULES.get(name, _ANY_SCALAR)
    return spec.params.get(name)


def _check_command_metrics(config: StudyConfig, fail: Fail) -> None:
    command = config.command
    assert command is not None  # the loader refuses objective: command without it
    for name in command.metrics:
        if not name.startswith("val_") or name == "val_":
            fail(
                f"command.metrics.{name}",
                "the metrics a command declares are validation metrics named val_<m> "
                "(test_<m> values it reports are recorded without being declared)",
            )
    for name in config.metrics:
        if name in PRE_TRAINING_METRICS:
            fail(
                "study.metric",
                f"{name!r} is measured on a built model before training, which a command "
                "trial does not have; use a metric the command reports, or train_seconds",
            )
        if name not in command.metrics and name not in COST_METRICS:
            fail(
                "study.metric",
                f"{name!r} is not among the metrics the command reports; declare it in "
                f"command.metrics (declared: {', '.join(command.metrics)})",
            )
    if config.constraints:
        fail(
            "constraints",
            "constraints bound costs measured on a built model before training; a command "
            "trial builds no model here, so remove them",
        )


def _check_command(config: StudyConfig, fail: Fail) -> None:
    command = config.command
    assert command is not None
    names = [*config.fixed, *config.search]
    problem = argv_problem(command.argv, names)
    if problem:
        fail("command.argv", problem)
    cwd = Path(command.cwd)
    if not cwd.is_dir():
        fail(
            "command.cwd",
            f"{cwd} is not a folder; give the script's folder (relative to the config)",
        )
    program = command.argv[0]
    if PLACEHOLDER.fullmatch(program):
        fail("command.argv", f"the program itself cannot be a placeholder, got {program!r}")
    if "/" in program:
        found = (cwd / program).is_file() and os.access(cwd / program, os.X_OK)
    else:
        found = (
            shutil.which(program, path=command.env.get("PATH", os.environ.get("PATH"))) is not None
        )
    if not found:
        fail(
            "command.argv",
            f"executable {program!r} not found (on PATH, or relative to command.cwd {cwd}); "
            "check its name, or give its path",
        )
    if config.data:
        fail("data", "a command objective has no data section; the command reads its own data")


def _check_space(path: str, space: Any, rule: ParamRule, fail: Fail) -> None:
    if isinstance(space, CategoricalSpace):
        for choice in space.choices:
            problem = rule.check(choice)
            if problem:
                fail(f"{path}.choices", f"choice {choice!r}: {problem}")
        if len({repr(c) for c in space.choices}) != len(space.choices):
            fail(f"{path}.choices", f"repeated choice in {space.choices!r}")
        return
    if rule.kind is str:
        fail(
            f"{path}.type",
            f"this parameter takes text values; use type: categorical, got {space.type}",
        )
    if rule.kind is int and isinstance(space, FloatSpace):
        fail(f"{path}.type", "this parameter is an integer; use type: int or categorical")
    for bound in ("low", "high"):
        if not math.isfinite(getattr(space, bound)):
            fail(f"{path}.{bound}", f"must be a finite number, got {getattr(space, bound)!r}")
    if space.low > space.high:
        fail(f"{path}.low", f"low ({space.low!r}) is greater than high ({space.high!r})")
    if space.log and space.low <= 0:
        fail(f"{path}.low", f"log: true needs low > 0, got {space.low!r}")
    if isinstance(space, FloatSpace) and space.log and space.step is not None:
        fail(f"{path}.step", "step and log: true cannot be combined")
    if isinstance(space, IntSpace) and space.log and space.step != 1:
        fail(f"{path}.step", "step and log: true cannot be combined")
    for bound in ("low", "high"):
        problem = rule.check(getattr(space, bound))
        if problem:
            fail(f"{path}.{bound}", problem)


def _space_contains(space: Any, value: Any) -> bool:
    if isinstance(space, CategoricalSpace):
        # Equal values, and a boolean only for a boolean choice: True is not the choice 1.
        return any(
            value == choice and isinstance(value, bool) == isinstance(choice, bool)
            for choice in space.choices
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(space, IntSpace) and not isinstance(value, int):
        return False
    return space.low <= value <= space.high


def _describe_space(space: Any) -> str:
    if isinstance(space, CategoricalSpace):
        return f"choices {space.choices!r}"
    return f"[{space.low!r}, {space.high!r}]"


def param_values(config: StudyConfig) -> ParamValues:
    """Every value each parameter can take: its fixed value, its choices, or None for a range."""
    values: dict[str, list[Any] | None] = {}
    for name, rule in config.spec.params.items():
        if name in config.search:
            space = config.search[name]
            if isinstance(space, CategoricalSpace):
                values[name] = list(space.choices)
            elif isinstance(space, IntSpace) and (space.high - space.low) // space.step < 4096:
                values[name] = list(range(space.low, space.high + 1, space.step))
            else:
                values[name] = None
        else:
            values[name] = [config.fixed.get(name, rule.default)]
    return values


def _check_constraints(config: StudyConfig, fail: Fail) -> None:
    """The objective's rules over several parameters, for every combination and enqueued set."""
    values = param_values(config)
    for constraint in config.spec.constraints:
        ranges = [name for name in constraint.names if values.get(name) is None]
        if ranges:
            others = ", ".join(n for n in constraint.names if n != ranges[0])
            fail(
                f"search.{ranges[0]}",
                f"use categorical choices (or int) so every combination with {others} can be "
                f"checked ({constraint.message})",
            )
        bad = ["/".join(map(str, c)) for c in config.spec.broken_combinations(constraint, values)]
        if bad:
            fail(
                "search",
                f"{constraint.message} for every combination; bad pairs "
                f"({'/'.join(constraint.names)}): {', '.join(bad[:12])}"
                f"{' ...' if len(bad) > 12 else ''}",
            )
        for index, entry in enumerate(config.enqueue):
            chosen = {name: [entry.get(name, config.fixed.get(name))] for name in constraint.names}
            broken = config.spec.broken_combinations(constraint, chosen)
            if broken:
                pairs = zip(constraint.names, broken[0], strict=True)
                fail(
                    f"enqueue[{index}]",
                    f"{constraint.message}: {', '.join(f'{n}={v}' for n, v in pairs)}",
                )


def _format_data_error(error: ValidationError, source: str) -> str:
    first = error.errors(include_url=False)[0]
    path = ".".join(["data", *(str(p) for p in first["loc"])])
    if first["type"] == "extra_forbidden":
        return one_line(f"{source}: {path}: unknown key")
    return one_line(f"{source}: {path}: {first['msg']}, got {first.get('input')!r}")


def with_defaults(config: StudyConfig) -> StudyConfig:
    """Fill ``fixed`` with the default of every parameter that is neither fixed nor searched."""
    fixed = dict(config.fixed)
    for name, rule in config.spec.params.items():
        if name not in config.search and name not in fixed:
            fixed[name] = rule.default
    return config.model_copy(update={"fixed": fixed})


# Pruners that can judge the training metric's curve of a multi-objective study (its curves live
# in the ``epochs`` record, not in Optuna's intermediate values; ``search.pruning``).
MULTI_OBJECTIVE_PRUNERS = ("median", "percentile", "none")


def _check_metrics(config: StudyConfig, fail: Fail) -> None:
    spec = config.spec
    metrics = config.metrics
    if not metrics:
        fail("study.metric", "empty list; name at least one metric, e.g. val_loss")
    choices = ", ".join(spec.objective_metrics)
    for index, name in enumerate(metrics):
        path = "study.metric" if isinstance(config.study.metric, str) else f"study.metric[{index}]"
        if name not in spec.objective_metrics:
            fail(
                path, f"{name!r} is not a metric of objective {spec.name!r}; choose from {choices}"
            )
        if name in metrics[:index]:
            fail(path, f"{name!r} is listed twice; list each metric once")
    if metrics[0] not in spec.study_metrics:
        fail(
            "study.metric" if len(metrics) == 1 else "study.metric[0]",
            f"{metrics[0]!r} is a cost metric; the first metric is the one trials train, stop "
            f"early and are pruned on, so it must be one of {', '.join(spec.study_metrics)} "
            f"(e.g. [{next(iter(spec.study_metrics))}, {metrics[0]}])",
        )
    if not config.multi_objective:
        return
    if config.sampler.name == "cmaes":
        fail(
            "sampler.name",
            "cmaes optimises a single metric; with several metrics use tpe, nsgaii, random, "
            "gp or qmc",
        )
    if config.pruner.name not in MULTI_OBJECTIVE_PRUNERS:
        fail(
            "pruner.name",
            f"{config.pruner.name} cannot prune a study with several metrics; use "
            f"{', '.join(MULTI_OBJECTIVE_PRUNERS)} (they judge the first metric's curve)",
        )
    if "spare" in config.pruner.args:
        fail(
            "pruner.args.spare",
            "applies to single-metric studies; with several metrics a trial the rule would cut "
            "is spared by its costs instead (docs/how-to/multi-objective.md); "
            "remove it",
        )


def _check_cost_constraints(config: StudyConfig, fail: Fail) -> None:
    for name, bound in config.constraints.items():
        path = f"constraints.{name}"
        if name not in PRE_TRAINING_METRICS:
            why = (
                "is measured after training, and constraints are checked before it"
                if name in COST_METRICS
                else "is not a cost metric"
            )
            fail(path, f"{name!r} {why}; constrain one of {', '.join(PRE_TRAINING_METRICS)}")
        if bound.min is None and bound.max is None:
            fail(path, "needs `min` and/or `max`, e.g. {max: 2.0e6}")
        for side in ("min", "max"):
            value = getattr(bound, side)
            if value is not None and not math.isfinite(value):
                fail(f"{path}.{side}", f"must be a finite number, got {value!r}")
        if bound.min is not None and bound.max is not None and bound.min > bound.max:
            fail(path, f"min ({bound.min:g}) is above max ({bound.max:g}); swap them")
