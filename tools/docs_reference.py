"""The generated parts of the reference pages, built from the code so that they cannot drift.

``cli_reference`` walks ``search.cli.build_parser()``; ``config_reference`` reads the pydantic
schema of a study config, the built-in objectives' ``ObjectiveSpec`` (parameters with defaults
and valid ranges, metrics, the ``data:`` schema) and the arguments hpsearch's own median
pruner takes. ``tools/gen_reference_pages.py`` appends them to ``docs/reference/cli.md`` and
``docs/reference/config.md`` at site-build time (mkdocs-gen-files); nothing is written to the
repository.
"""

from __future__ import annotations

import argparse
import inspect
import types
import typing
from collections.abc import Iterable
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    return f"`{value}`"


def _yaml_value(value: Any) -> str:
    """A default as it is written in YAML: null, true, false."""
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, tuple):
        return _code(list(value))
    return _code(value)


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    names = list(header)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# -- the command line ---------------------------------------------------------------------------


def _flag_form(action: argparse.Action) -> str:
    if not action.option_strings:
        return _code(action.metavar or action.dest)
    flags = ", ".join(action.option_strings)
    if action.nargs == 0:
        return _code(flags)
    metavar = action.metavar or action.dest.upper()
    if action.choices and not action.metavar:
        metavar = "|".join(str(choice) for choice in action.choices)
    suffix = (
        " ..." if action.nargs in ("*", "+") or isinstance(action, argparse._AppendAction) else ""
    )
    return _code(f"{flags} {metavar}{suffix}")


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS, [], ()):
        return ""
    return _code(action.default)


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
    ]


def cli_reference() -> str:
    """Every command of ``hpsearch`` with its arguments, from the parser the CLI runs."""
    from search.cli import build_parser

    parser = build_parser()
    out = [
        "## Every command and flag",
        "",
        "Generated from `search.cli.build_parser()` when the site is built; "
        "`hpsearch COMMAND --help` prints the same.",
        "",
        "Global flags: "
        + ", ".join(
            f"{_flag_form(action)} ({action.help})" for action in _arguments(parser) if action.help
        )
        + ".",
    ]
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in commands._choices_actions}
    for name, sub in commands.choices.items():
        usage = " ".join(sub.format_usage().removeprefix("usage: ").split())
        out += ["", f"### `hpsearch {name}`", "", helps.get(name) or "", "", "```", usage, "```"]
        rows = [
            (_flag_form(action), action.help or "", _default(action))
            for action in _arguments(sub)
            if action.help != argparse.SUPPRESS and action.dest != "debug"
        ]
        if rows:
            out += ["", _table(("argument", "meaning", "default"), rows)]
    return "\n".join(out) + "\n"


# -- the config ---------------------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(str(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is not None:
        inner = ", ".join("..." if arg is Ellipsis else _type_name(arg) for arg in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(field: FieldInfo) -> str:
    symbols = {
        annotated_types.Ge: (">=", "ge"),
        annotated_types.Gt: (">", "gt"),
        annotated_types.Le: ("<=", "le"),
        annotated_types.Lt: ("<", "lt"),
        annotated_types.MinLen: ("length >=", "min_length"),
        annotated_types.MaxLen: ("length <=", "max_length"),
    }
    parts = []
    for item in field.metadata:
        for kind, (symbol, attribute) in symbols.items():
            if isinstance(item, kind):
                parts.append(f"{symbol} {getattr(item, attribute)}")
    return ", ".join(parts)


def _field_default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return _code(field.default_factory())  # type: ignore[call-arg]
    if field.default is PydanticUndefined:
        return ""
    return _yaml_value(field.default)


def _model_rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        rows.append(
            (
                _code(f"{prefix}{name}"),
                _type_name(field.annotation),
                _field_default(field),
                _bounds(field),
            )
        )
    return rows


def _nested(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _schema_section() -> list[str]:
    from search.config import (
        CategoricalSpace,
        FloatSpace,
        IntSpace,
        StudyConfig,
    )

    out = ["### Every key of a study config", ""]
    rows = []
    for name, field in StudyConfig.model_fields.items():
        nested = _nested(field.annotation)
        if nested is not None and typing.get_origin(field.annotation) is not dict:
            rows += _model_rows(nested, f"{name}.")
        elif nested is not None:
            rows.append(
                (_code(name), _type_name(field.annotation), _field_default(field), _bounds(field))
            )
            rows += _model_rows(nested, f"{name}.NAME.")
        else:
            rows.append(
                (_code(name), _type_name(field.annotation), _field_default(field), _bounds(field))
            )
    out += [_table(("key", "type", "default", "bounds"), rows), ""]
    out += ["### A searched parameter (`search.NAME`)", ""]
    rows = []
    for space in (FloatSpace, IntSpace, CategoricalSpace):
        kind = typing.get_args(space.model_fields["type"].annotation)[0]
        rows += [(f"`{kind}`", *row) for row in _model_rows(space, "") if row[0] != "`type`"]
    out += [_table(("type", "key", "value", "default", "bounds"), rows), ""]
    return out


def _range(rule: Any) -> str:
    low, high = rule.low, rule.high
    parts = []
    if low is not None:
        parts.append(f"{'>' if rule.low_exclusive else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    return ", ".join(parts)


def _objective_section(spec: Any) -> list[str]:
    out = [f"### `objective: {spec.name}`", ""]
    if spec.description:
        out += [spec.description[0].upper() + spec.description[1:] + ".", ""]
    rows = [
        (
            _code(name),
            rule.kind.__name__ + (" or null" if rule.nullable else ""),
            _yaml_value(rule.default),
            _range(rule),
        )
        for name, rule in sorted(spec.params.items())
    ]
    out += ["Parameters (`fixed:` or `search:`):", ""]
    out += [_table(("parameter", "type", "default", "valid values"), rows), ""]
    for constraint in spec.constraints:
        out += [f"Every combination must hold: {constraint.message}.", ""]
    metrics = ", ".join(
        f"`val_{m.name}` ({'higher' if m.maximize else 'lower'} is better)" for m in spec.metrics
    )
    out += [f"Study metrics: {metrics}; each also recorded as `test_<name>`.", ""]
    out += [f"`data:` ({spec.data_model.__name__}):", ""]
    rows = []
    for row, field in zip(
        _model_rows(spec.data_model, "data."), spec.data_model.model_fields.values(), strict=True
    ):
        rows.append(row)
        nested = _nested(field.annotation)
        if nested is not None:
            rows += _model_rows(nested, row[0].strip("`") + ".")
    # Every objective's data takes it (StudyConfig.data_seed), outside its own model.
    rows.append(("`data.seed`", "int", "`study.seed`", "≥ 0 (fixes the data and its split)"))
    out += [_table(("key", "type", "default", "bounds"), rows), ""]
    return out


def _pruner_section() -> list[str]:
    from search.pruning import CUSTOM_ARGS, CurvePercentilePruner

    signature = inspect.signature(CurvePercentilePruner.__init__)
    rows = [
        (_code(name), _code(parameter.default))
        for name, parameter in signature.parameters.items()
        if name != "self" and parameter.default is not inspect.Parameter.empty
    ]
    ours = ", ".join(_code(name) for name in CUSTOM_ARGS)
    intro = (
        "`median` and `percentile` with only Optuna's arguments are Optuna's own "
        "`MedianPruner` and `PercentilePruner`. Any of hpsearch's own arguments "
        f"({ours}: see [Pruning, early stopping and the audit](../concepts/pruning.md)) selects "
        "hpsearch's rule (`search.pruning.CurvePercentilePruner`), which takes Optuna's "
        "arguments too, with the same meaning. `median` is `percentile: 50`. Every other pruner "
        "passes `pruner.args` to its Optuna class."
    )
    return [
        "### `pruner.args` of `median` and `percentile`",
        "",
        intro,
        "",
        _table(("argument", "default"), rows),
        "",
    ]


def config_reference() -> str:
    """The schema of a study config and every built-in objective's parameters and data."""
    from objectives.specs import BUILTIN_OBJECTIVES

    out = [
        "## Every key, parameter and bound",
        "",
        "Generated from the pydantic schema (`search/config/_schema.py`), the built-in "
        "objectives' `ObjectiveSpec`s (`objectives/specs.py`) and the pruner's signature "
        "when the site is built.",
        "",
    ]
    out += _schema_section()
    out += _pruner_section()
    for spec in BUILTIN_OBJECTIVES.values():
        out += _objective_section(spec)
    return "\n".join(out).rstrip() + "\n"
