"""Numbers and tables for people: the one place where stored values are rounded for display.

Stored values keep full precision (``search.trial``); every readout (``show``, ``list``, the
progress lines, ``report``, ``retrain``) renders them with :func:`number`: four decimals, or
three significant digits for values too small or too large for that (a loss of 4e-05).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def number(value: Any, missing: str = "-") -> str:
    """A value as a table cell: floats to 4 decimals (3 significant digits when tiny or huge)."""
    if value is None:
        return missing
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4f}"
    return str(value)


def signed(value: float) -> str:
    """A difference with its sign: ``+0.0426``, or ``+4.2e-05`` when tiny."""
    return f"{value:+.3g}" if 0 < abs(value) < 1e-3 else f"{value:+.4f}"


def interval(low: float, high: float, *, signed_values: bool = False) -> str:
    """``[low, high]`` with 4 decimals, or 3 significant digits when an end is tiny."""
    small = any(value != 0 and abs(value) < 1e-3 for value in (low, high))
    spec = ("+" if signed_values else "") + (".3g" if small else ".4f")
    return f"[{low:{spec}}, {high:{spec}}]"


def p_value(value: float) -> str:
    return f"{value:.3g}" if value >= 1e-4 or value == 0.0 else f"{value:.1e}"


def params_text(params: dict[str, Any], separator: str = " ") -> str:
    return separator.join(f"{k}={number(v)}" for k, v in params.items())


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with a header rule; numbers right-aligned."""
    cells = [[number(value) for value in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str], raw: Sequence[Any] | None = None) -> str:
        parts = []
        for i, value in enumerate(values):
            numeric = (
                raw is not None and isinstance(raw[i], int | float) and not isinstance(raw[i], bool)
            )
            parts.append(value.rjust(widths[i]) if numeric else value.ljust(widths[i]))
        return " | ".join(parts).rstrip()

    out = [line(headers), "-+-".join("-" * w for w in widths)]
    out.extend(line(cell, raw) for cell, raw in zip(cells, rows, strict=True))
    return "\n".join(out)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table as lines; cells rendered with :func:`number`."""

    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(number(c).replace("|", "\\|") for c in cells) + " |"

    return [line(headers), "|" + "|".join("---" for _ in headers) + "|", *map(line, rows)]
