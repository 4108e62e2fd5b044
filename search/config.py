"""The study config: YAML file + ``--set`` overrides -> one typed, validated, frozen object.

This is the only module that reads YAML for settings. Every problem is a :class:`ConfigError`
whose message is one line naming the file, the key path and the bad value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from objectives.specs import METRIC_MAXIMIZE, OBJECTIVES, ObjectiveSpec
from search.errors import ConfigError

SAMPLERS = ("tpe", "random", "grid", "cmaes", "gp", "qmc")
PRUNERS = (
    "median",
    "percentile",
    "successive_halving",
    "hyperband",
    "patient",
    "threshold",
    "wilcoxon",
    "none",
)
DEFAULT_STORAGE = "sqlite:///studies/hpsearch.db"


# --------------------------------------------------------------------------- YAML reading


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads numbers the way people write them and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise _DuplicateKeyError(key, key_node.start_mark.line + 1, seen[key])
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


class _DuplicateKeyError(Exception):
    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key!r} at line {line} (first at line {first_line})")


# YAML 1.1 (PyYAML) needs a dot in a float ("1.0e-5"); YAML 1.2 and people write "1e-5".
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text with the project's number rule; errors become one-line ConfigErrors."""
    try:
        return yaml.load(text, Loader=_Loader)
    except _DuplicateKeyError as e:
        raise ConfigError(f"{source}: {e}; remove one of them") from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source}: YAML syntax error{where}: {e.problem}") from e
    except yaml.YAMLError as e:
        # e.g. a control character (ReaderError): its text spans lines; the message must not.
        raise ConfigError(f"{source}: YAML error: {' '.join(str(e).split())}") from e


def dump_yaml(data: Any) -> str:
    """Dump plain data as block-style YAML in key order."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


# --------------------------------------------------------------------------- the schema


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class StudySection(_Section):
    name: str = Field(min_length=1, max_length=512)
    storage: str = DEFAULT_STORAGE
    metric: str = "val_loss"
    n_trials: int = Field(30, ge=1)
    timeout: float | None = Field(None, gt=0)
    seed: int = Field(0, ge=0)
    heartbeat_interval: int = Field(30, ge=1)
    heartbeat_grace: int = Field(90, ge=2)
    max_consecutive_failures: int = Field(5, ge=1)


class SamplerSection(_Section):
    name: Literal["tpe", "random", "grid", "cmaes", "gp", "qmc"] = "tpe"
    args: dict[str, Any] = Field(default_factory=dict)


class PrunerSection(_Section):
    name: Literal[
        "median",
        "percentile",
        "successive_halving",
        "hyperband",
        "patient",
        "threshold",
        "wilcoxon",
        "none",
    ] = "median"
    args: dict[str, Any] = Field(default_factory=dict)


class FloatSpace(_Section):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)


class IntSpace(_Section):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)


class CategoricalSpace(_Section):
    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


ParamSpace = Annotated[FloatSpace | IntSpace | CategoricalSpace, Field(discriminator="type")]


class ArtifactsSection(_Section):
    dir: str | None = None
    keep_checkpoints: Literal["best", "none", "all"] = "best"


class StudyConfig(_Section):
    """A whole, validated study config. Build it with :func:`load_config`."""

    study: StudySection
    sampler: SamplerSection = Field(default_factory=SamplerSection)
    pruner: PrunerSection = Field(default_factory=PrunerSection)
    objective: str
    fixed: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, ParamSpace] = Field(default_factory=dict)
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)
    artifacts: ArtifactsSection = Field(default_factory=ArtifactsSection)
    # Written by `hpsearch export` / `hpsearch retrain`; accepted and ignored by `run`.
    best: Any = None
    retrain: Any = None

    @property
    def spec(self) -> ObjectiveSpec:
        return OBJECTIVES[self.objective]

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return "maximize" if METRIC_MAXIMIZE[self.study.metric] else "minimize"

    def data_config(self) -> BaseModel:
        """The objective's typed ``data:`` section."""
        return self.spec.data_model.model_validate(self.data)

    def to_dict(self, *, mask_password: bool = True) -> dict[str, Any]:
        """Plain data (as YAML would hold it); the storage password masked by default."""
        data = self.model_dump(mode="json", exclude_none=False)
        if data.get("best") is None:
            data.pop("best", None)
        if data.get("retrain") is None:
            data.pop("retrain", None)
        if mask_password:
            from storage.urls import mask_password as _mask

            data["study"]["storage"] = _mask(data["study"]["storage"])
        return data


# --------------------------------------------------------------------------- loading


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
    return config_from_dict(raw, source)


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one ``KEY=VALUE`` override (dotted key, YAML value) to raw config data in place.

    Setting ``fixed.X`` removes ``search.X`` and vice versa, so one ``--set`` can move a
    parameter between searched and fixed.
    """
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {override!r}: expected KEY=VALUE, e.g. --set fixed.epochs=5")
    parts = key.split(".")
    if any(not part for part in parts):
        raise ConfigError(f"--set {key}: empty part in the dotted key; write e.g. search.lr.high")
    valid_top = list(StudyConfig.model_fields)
    if parts[0] not in valid_top:
        raise ConfigError(
            f"--set {key}: unknown key {parts[0]!r}; valid top-level keys: {', '.join(valid_top)}"
        )
    value = parse_yaml(text, f"--set {key}") if text.strip() else None
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"--set {key}: {where} is {child!r}, not a mapping")
        node = child
    node[parts[-1]] = value
    if len(parts) >= 2 and parts[0] in ("fixed", "search"):
        other = raw.get("search" if parts[0] == "fixed" else "fixed")
        if isinstance(other, dict):
            other.pop(parts[1], None)


def config_from_dict(raw: Mapping[str, Any], source: str = "<config>") -> StudyConfig:
    """Validate raw config data (as parsed from YAML) into a :class:`StudyConfig`."""
    _check_objective_name(raw, source)
    try:
        config = StudyConfig.model_validate(dict(raw))
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, source)) from e
    _check_semantics(config, source)
    return _with_defaults(config)


def _check_objective_name(raw: Mapping[str, Any], source: str) -> None:
    name = raw.get("objective")
    if name is None:
        raise ConfigError(
            f"{source}: objective: missing; choose one of {', '.join(sorted(OBJECTIVES))}"
        )
    if not isinstance(name, str) or name not in OBJECTIVES:
        raise ConfigError(
            f"{source}: objective: unknown objective {name!r}; "
            f"choose one of {', '.join(sorted(OBJECTIVES))}"
        )


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
    return _one_line(f"{source}: {path}: {message}{suffix}")


def _one_line(text: str) -> str:
    # Keys and values come from the user's file and may hold line breaks; the message may not.
    return text.replace("\r", "\\r").replace("\n", "\\n")


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


def _check_semantics(config: StudyConfig, source: str) -> None:
    spec = config.spec

    def fail(path: str, message: str) -> None:
        raise ConfigError(_one_line(f"{source}: {path}: {message}"))

    if config.study.metric not in spec.metrics:
        fail(
            "study.metric",
            f"{config.study.metric!r} is not a metric of objective {spec.name!r}; "
            f"choose one of {', '.join(spec.metrics)}",
        )
    if config.study.heartbeat_grace <= config.study.heartbeat_interval:
        fail(
            "study.heartbeat_grace",
            f"must be larger than study.heartbeat_interval ({config.study.heartbeat_interval}), "
            f"got {config.study.heartbeat_grace}",
        )
    known = ", ".join(spec.params)
    for name, value in config.fixed.items():
        rule = spec.params.get(name)
        if rule is None:
            fail(f"fixed.{name}", f"unknown parameter for {spec.name}; known: {known}")
            continue
        if isinstance(value, float) and not math.isfinite(value):
            fail(f"fixed.{name}", f"must be a finite number, got {value!r}")
        problem = rule.check(value)
        if problem:
            fail(f"fixed.{name}", problem)
    for name, space in config.search.items():
        rule = spec.params.get(name)
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
    _check_head_divisibility(config, fail)
    for index, entry in enumerate(config.enqueue):
        for name, value in entry.items():
            path = f"enqueue[{index}].{name}"
            if name not in config.search:
                hint = " (it is fixed; remove it here)" if name in config.fixed else ""
                fail(path, f"not a searched parameter{hint}; searched: {', '.join(config.search)}")
            space = config.search[name]
            if not _space_contains(space, value):
                fail(path, f"{value!r} lies outside the search space {_describe_space(space)}")
    try:
        config.data_config()
    except ValidationError as e:
        raise ConfigError(_format_data_error(e, source)) from e


def _check_space(path: str, space: Any, rule: Any, fail: Any) -> None:
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
        return any(value == choice and type(value) is type(choice) for choice in space.choices) or (
            value in space.choices
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


def _values_of(config: StudyConfig, name: str) -> list[Any] | None:
    """Every value a parameter can take (None when it is a range)."""
    if name in config.search:
        space = config.search[name]
        if isinstance(space, CategoricalSpace):
            return list(space.choices)
        if isinstance(space, IntSpace) and (space.high - space.low) // space.step < 4096:
            return list(range(space.low, space.high + 1, space.step))
        return None
    if name in config.fixed:
        return [config.fixed[name]]
    rule = config.spec.params.get(name)
    return [rule.default] if rule is not None else None


def _check_head_divisibility(config: StudyConfig, fail: Any) -> None:
    if "hidden_dim" not in config.spec.params or "num_heads" not in config.spec.params:
        return
    hidden = _values_of(config, "hidden_dim")
    heads = _values_of(config, "num_heads")
    if hidden is None or heads is None:
        fail(
            "search.hidden_dim",
            "use categorical choices (or int) so every pair with num_heads can be checked",
        )
        return
    bad = [
        f"{h}/{n}"
        for h in hidden
        for n in heads
        if isinstance(h, int) and isinstance(n, int) and n > 0 and h % n
    ]
    if bad:
        fail(
            "search",
            "hidden_dim must be divisible by num_heads for every combination; bad pairs "
            f"(hidden_dim/num_heads): {', '.join(bad[:12])}{' ...' if len(bad) > 12 else ''}",
        )
    for index, entry in enumerate(config.enqueue):
        h = entry.get("hidden_dim", config.fixed.get("hidden_dim"))
        n = entry.get("num_heads", config.fixed.get("num_heads"))
        if isinstance(h, int) and isinstance(n, int) and n > 0 and h % n:
            fail(f"enqueue[{index}]", f"hidden_dim {h} is not divisible by num_heads {n}")


def _format_data_error(error: ValidationError, source: str) -> str:
    first = error.errors(include_url=False)[0]
    path = ".".join(["data", *(str(p) for p in first["loc"])])
    if first["type"] == "extra_forbidden":
        return _one_line(f"{source}: {path}: unknown key")
    return _one_line(f"{source}: {path}: {first['msg']}, got {first.get('input')!r}")


def _with_defaults(config: StudyConfig) -> StudyConfig:
    """Fill ``fixed`` with the default of every parameter that is neither fixed nor searched."""
    fixed = dict(config.fixed)
    for name, rule in config.spec.params.items():
        if name not in config.search and name not in fixed:
            fixed[name] = rule.default
    return config.model_copy(update={"fixed": fixed})


def searched_names(config: StudyConfig) -> Iterable[str]:
    return config.search.keys()
