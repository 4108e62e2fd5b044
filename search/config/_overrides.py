"""``--set KEY=VALUE``: one override by dotted path, applied to raw config data."""

from __future__ import annotations

from typing import Any

from search.config._schema import StudyConfig
from search.config._yaml_text import parse_yaml
from search.errors import ConfigError


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
