"""Reading a study config: YAML file + ``--set`` overrides -> one validated, frozen object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from objectives.command import NAME as COMMAND_OBJECTIVE
from objectives.errors import ObjectiveError
from objectives.registry import get_objective, objective_names
from search.config._checks import check_semantics, one_line, with_defaults
from search.config._overrides import apply_override
from search.config._schema import CategoricalSpace, FloatSpace, IntSpace, StudyConfig
from search.config._yaml_text import parse_yaml
from search.errors import ConfigError


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> StudyConfig:
    """Read, override and validate a study config file."""
    source = str(path)
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"{source}: config file not found; check the path")
    if file.is_dir():
        raise ConfigError(f"{source}: is a directory; give the path of a study YAML file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{source}: cannot read the config file: {e}") from e
    raw = parse_yaml(text, source)
    if raw is None:
        raise ConfigError(
            f"{source}: the file is empty; a study config needs at least `study: {{name: ...}}` "
            "and `objective:` (see study_configs/toy_transformer.yaml)"
        )
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of sections (study, sampler, pruner, "
            f"objective, fixed, search, ...), got {type(raw).__name__}"
        )
    for override in overrides:
        apply_override(raw, override)
    return config_from_dict(raw, source, folder=file.resolve().parent)


def config_from_dict(
    raw: Mapping[str, Any], source: str = "<config>", folder: Path | None = None
) -> StudyConfig:
    """Validate raw config data (as parsed from YAML) into a :class:`StudyConfig`.

    A command's relative ``cwd`` is resolved against ``folder`` (the config file's folder; the
    working directory when there is none) and stored absolute.
    """
    _check_objective_name(raw, source)
    raw = _absolute_command_cwd(raw, folder or Path.cwd())
    try:
        config = StudyConfig.model_validate(dict(raw))
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, source)) from e
    check_semantics(config, source)
    return with_defaults(config)


def _absolute_command_cwd(raw: Mapping[str, Any], folder: Path) -> Mapping[str, Any]:
    command = raw.get("command")
    if raw.get("objective") != COMMAND_OBJECTIVE or not isinstance(command, dict):
        return raw
    cwd = command.get("cwd", ".")
    if not isinstance(cwd, str):
        return raw  # the schema names the problem
    return {**raw, "command": {**command, "cwd": str((folder / cwd).resolve())}}


def _check_objective_name(raw: Mapping[str, Any], source: str) -> None:
    name = raw.get("objective")
    if name is None:
        raise ConfigError(
            f"{source}: objective: missing; choose one of {', '.join(objective_names())}"
        )
    if not isinstance(name, str):
        raise ConfigError(
            f"{source}: objective: unknown objective {name!r}; "
            f"choose one of {', '.join(objective_names())}"
        )
    if name == COMMAND_OBJECTIVE:
        if not isinstance(raw.get("command"), dict):
            raise ConfigError(
                f"{source}: command: missing; objective: command needs a `command:` section "
                "with `argv` and `metrics` (see study_configs/command_pytorch.yaml)"
            )
        return
    try:
        get_objective(name)
    except ObjectiveError as e:
        raise ConfigError(one_line(f"{source}: objective: {e}")) from e


_SPACE_TAGS = {"float", "int", "categorical"}


def _format_validation_error(error: ValidationError, source: str) -> str:
    problems = error.errors(include_url=False)
    first = problems[0]
    loc = [str(part) for part in first["loc"]]
    space_model: type[BaseModel] | None = None
    # A discriminated union puts the tag in the path (search.lr.float.low): drop it.
    if len(loc) >= 3 and loc[0] == "search" and loc[2] in _SPACE_TAGS:
        space_model = {"float": FloatSpace, "int": IntSpace, "categorical": CategoricalSpace}[
            loc.pop(2)
        ]
    kind = first["type"]
    value = first.get("input")
    path = ".".join(loc) if loc else "(top level)"
    if kind == "extra_forbidden":
        parent = space_model if space_model is not None else _model_at(loc[:-1])
        valid = ", ".join(parent.model_fields) if parent else ""
        message = f"unknown key {loc[-1]!r}" + (f"; valid keys here: {valid}" if valid else "")
    elif kind == "missing":
        message = "missing; this key is required"
    elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
        message = (
            f"`type` must be one of float, int, categorical (got {value.get('type')!r})"
            if isinstance(value, dict)
            else f"expected a mapping like {{type: float, low: 1e-5, high: 1e-2}}, got {value!r}"
        )
    elif kind == "literal_error":
        message = f"{first['msg'].lower()}, got {value!r}"
    else:
        message = f"{first['msg']}, got {value!r}"
    more = len(problems) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return one_line(f"{source}: {path}: {message}{suffix}")


def _model_at(loc: Sequence[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = StudyConfig
    for part in loc:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return None
    return model
