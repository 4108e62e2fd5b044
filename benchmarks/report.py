"""Render a benchmark run as Markdown: commands, machine, a summary, then one section a figure."""

from __future__ import annotations

from typing import Any

from benchmarks.harness import Figure, fmt, verdict

# The pruning figure runs on the seeds the pruner was tuned on; the held-out evidence is elsewhere.
ABLATION_NOTE = (
    "The pruning figure runs on the development seeds 0-4, the seeds the default's pruner "
    "settings were tuned on. The pruning ablation, pre-registered on 2026-12-07 with 20 held-out "
    "(sampler seed, data seed) pairs, a second toy regime and MiniLM, is in "
    "`benchmarks/RESULTS-ablation.md` (`make bench-ablation`): it, not this figure, decides "
    "the default.",
)


def markdown(
    command: str, mode: str, facts: dict[str, Any], figures: list[Figure], total_s: float
) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` ({mode} mode) in {total_s / 60:.1f} min. "
        "Rerun with `make bench` (full) or `make bench-quick`.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    for key in (
        "date_utc",
        "cpu_model",
        "cores",
        "torch_threads",
        "python",
        "torch",
        "optuna",
        "platform",
        "data_dir",
    ):
        lines.append(f"| {key.replace('_', ' ')} | {facts.get(key)} |")
    one, five, fifteen = facts["load_at_start"]
    lines.append(f"| load at start (1/5/15 min) | {one} / {five} / {fifteen} |")
    lines.append("")
    busy = facts.get("busy_processes_at_start") or []
    if busy:
        lines += [
            "Other processes were using the CPU when the run started (timings share the cores "
            "with them; every comparison alternates its two sides so both share alike):",
            "",
        ]
        lines += [f"- `{row}`" for row in busy]
        lines.append("")
    lines += [
        "## Summary",
        "",
        "| figure | headline ratio | target | verdict | seconds | load before |",
        "|---|---|---|---|---|---|",
    ]
    for figure in figures:
        head = f"{fmt(figure.ratio)} ({figure.ratio_label})" if figure.ratio is not None else "-"
        state = verdict(figure.met) if figure.status == "ran" else figure.status
        load = figure.load_before[0] if figure.load_before else "-"
        cells = (figure.title, head, figure.target, state, f"{figure.seconds:.0f}", load)
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", *ABLATION_NOTE, ""]
    for figure in figures:
        lines += _section(figure)
    return "\n".join(lines) + "\n"


def _section(figure: Figure) -> list[str]:
    lines = [f"## {figure.title}", ""]
    lines.append(f"Command: `{figure.command}`")
    lines.append("")
    if figure.settings:
        lines.append(
            "Settings: " + ", ".join(f"{k} = {_plain(v)}" for k, v in figure.settings.items())
        )
        lines.append("")
    if figure.table:
        columns = list(dict.fromkeys(k for row in figure.table for k in row))
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "---|" * len(columns))
        for row in figure.table:
            lines.append("| " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
        lines.append("")
    if figure.ratio is not None:
        lines.append(f"Ratio: **{fmt(figure.ratio)}** — {figure.ratio_label}.")
        lines.append("")
    lines.append(f"Target: {figure.target or 'none'} — **{_state(figure)}**.")
    lines.append("")
    budget = f" (quick budget {figure.budget_s} s)" if figure.budget_s else ""
    lines.append(f"Took {figure.seconds:.0f} s{budget}.")
    lines.append("")
    for note in figure.notes:
        lines.append(f"- {note}")
    if figure.notes:
        lines.append("")
    profile_keys = [k for k in figure.numbers if k.startswith("profile ")]
    for key in profile_keys:
        lines += [f"{key} (one block, top functions by own time):", "", "```"]
        lines += figure.numbers[key]
        lines += ["```", ""]
    return lines


def _state(figure: Figure) -> str:
    return verdict(figure.met) if figure.status == "ran" else figure.status


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_plain(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return fmt(value)
