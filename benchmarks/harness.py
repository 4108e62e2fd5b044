"""What every benchmark shares: alternating A/B measurement, medians and ratios, machine facts.

A comparison is always measured side by side in the same process and run, alternating the two
sides (A B A B ...) so that slow drift of the machine (other processes, thermal state) falls on
both sides alike, and summarised by medians, which one disturbed repetition cannot move.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Settings:
    """How big a run is: ``full``; ``quick`` (each figure within its own small time budget);
    ``smoke`` (seconds-sized settings that only check the plumbing; numbers mean nothing)."""

    mode: str
    threads: int  # torch threads for timed single-process measurements
    jobs: int  # independent studies run side by side (figures that count epochs, not seconds)
    data_dir: str | None  # the shared benchmark data folder (``../shared/data``); may not exist
    workdir: str  # a temporary folder for study databases

    @property
    def quick(self) -> bool:
        return self.mode != "full"


@dataclass
class Figure:
    """One figure's outcome: numbers, the headline ratio, the target and whether it was met."""

    key: str
    title: str
    command: str
    settings: dict[str, Any] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)  # rows for the Markdown table
    ratio: float | None = None
    ratio_label: str = ""
    target: str = ""
    met: bool | None = None  # None: no verdict (skipped, not run, or no target)
    notes: list[str] = field(default_factory=list)
    status: str = "ran"  # ran | skipped | not run | failed
    seconds: float = 0.0
    budget_s: float | None = None
    load_before: tuple[float, float, float] | None = None


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (which must not be empty)."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; infinity when the denominator is zero and the numerator not."""
    if denominator == 0:
        return float("inf") if numerator else float("nan")
    return numerator / denominator


@dataclass(frozen=True)
class Paired:
    """Values of two sides measured in alternation, pair by pair."""

    a: list[float]
    b: list[float]

    @property
    def median_a(self) -> float:
        return median(self.a)

    @property
    def median_b(self) -> float:
        return median(self.b)

    @property
    def ratio_of_medians(self) -> float:
        """median(A) / median(B)."""
        return ratio(self.median_a, self.median_b)

    @property
    def median_of_pair_ratios(self) -> float:
        """The median over pairs of A_i / B_i: robust to drift between pairs."""
        return median([ratio(a, b) for a, b in zip(self.a, self.b, strict=True)])


def alternate(
    measure_a: Callable[[], float],
    measure_b: Callable[[], float],
    pairs: int,
    *,
    warmup: bool = True,
) -> Paired:
    """Measure A B A B ... ``pairs`` times; with ``warmup`` run each side once untimed first.

    Which side goes first alternates too (A B, B A, A B, ...), so neither side always runs in
    the slot right after the other's garbage or cache state.
    """
    if pairs < 1:
        raise ValueError("pairs must be >= 1")
    if warmup:
        measure_a()
        measure_b()
    a_values: list[float] = []
    b_values: list[float] = []
    for index in range(pairs):
        if index % 2 == 0:
            a_values.append(measure_a())
            b_values.append(measure_b())
        else:
            b_values.append(measure_b())
            a_values.append(measure_a())
    return Paired(a_values, b_values)


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def busy_processes(limit: int = 8) -> list[str]:
    """The processes using most CPU right now (``ps``), excluding this one: who shares the cores."""
    try:
        output = subprocess.run(
            ["ps", "-eo", "pid,pcpu,etimes,args", "--sort=-pcpu"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    rows = []
    for line in output.splitlines()[1:]:
        parts = line.split(None, 3)
        if len(parts) < 4 or int(parts[0]) == os.getpid() or float(parts[1]) < 5.0:
            continue
        if parts[3].startswith("ps -eo "):  # this very ps, briefly at 100 %
            continue
        rows.append(f"{parts[1]}% {parts[3][:100]}")
    return rows[:limit]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts(threads: int) -> dict[str, Any]:
    """Cores, CPU model, threads, versions, date and load: the context every number needs."""
    import optuna
    import torch

    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "platform": platform.platform(),
        "load_at_start": load_average(),
        "busy_processes_at_start": busy_processes(),
    }


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def verdict(met: bool | None) -> str:
    return {True: "met", False: "missed", None: "n/a"}[met]


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers for tables: floats to ``digits`` significant digits, None as N/A."""
    if value is None:
        return "N/A"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "N/A"
        return f"{value:.{digits}g}" if abs(value) < 1e6 else f"{value:.3e}"
    return str(value)
