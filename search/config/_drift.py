"""Whether two configs define the same study: the parts that give a trial its meaning.

``run`` refuses to continue a study whose config changed in these parts (unless told to), and
``retrain`` refuses to continue a retrain study of another configuration and to compare a winner
with a baseline trained on another task. All three use :func:`config_differences`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Parts of the config that define what a trial means; changing them mid-study mixes results.
DRIFT_KEYS = ("objective", "study.metric", "search", "fixed", "data")
# Parts that must match between a retrained winner and its baseline for a paired comparison:
# the same task, the same split, the same rule for picking the best epoch.
SAME_TASK_KEYS = ("objective", "study.seed", "study.metric", "data")


def get_path(data: Any, dotted: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; None where a part is missing or not a mapping."""
    node: Any = data
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def config_differences(
    stored: dict[str, Any], current: dict[str, Any], keys: Sequence[str] = DRIFT_KEYS
) -> list[str]:
    """``path: old -> new`` for every difference in ``keys`` (nested keys named in full)."""
    differences: list[str] = []
    for key in keys:
        differences.extend(_diff(key, get_path(stored, key), get_path(current, key)))
    return differences


def describe(differences: Sequence[str], limit: int = 6) -> str:
    """The first ``limit`` differences joined, with ``...`` when there are more."""
    return "; ".join(differences[:limit]) + ("; ..." if len(differences) > limit else "")


def _diff(path: str, old: Any, new: Any) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        result: list[str] = []
        for key in list(old) + [k for k in new if k not in old]:
            result.extend(_diff(f"{path}.{key}", old.get(key), new.get(key)))
        return result
    if old != new:
        return [f"{path}: {old!r} -> {new!r}"]
    return []
