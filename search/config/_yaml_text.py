"""YAML text in and out, with the number rule people expect and duplicate keys refused."""

from __future__ import annotations

import re
from typing import Any

import yaml

from search.errors import ConfigError


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
