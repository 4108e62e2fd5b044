"""``python -m benchmarks``: run the benchmarks and write RESULTS.md and results.json.

``make bench`` runs every figure at full size and writes ``benchmarks/RESULTS.md`` and
``benchmarks/results.json``. ``make bench-quick`` (``--quick``) runs the same figures on smaller
settings within a budget per figure and writes ``benchmarks/RESULTS-quick.md`` /
``results-quick.json``; ``--only`` runs some figures and writes ``*-partial`` files. So a quick
or partial run never overwrites a full one unless ``--output`` names its files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from benchmarks import report
from benchmarks.harness import Figure, Settings, load_average, machine_facts

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "benchmarks"
DATA_ENV = "HPSEARCH_BENCH_DATA"
# Figures in report order; the two study figures share their tuned studies.
FIGURES = (
    "pruning",
    "grid",
    "pareto",
    "throughput",
    "storage",
    "storage_scale",
    "workers",
    "real_data",
    "resume",
    "sampler_scale",
    "command",
)
# Run order: the epoch-counting studies first (their numbers do not depend on the machine's
# load, and they take longest), the timed comparisons later, when a shared machine is quieter.
RUN_ORDER = (
    "pruning",
    "grid",
    "pareto",
    "real_data",
    "sampler_scale",
    "storage",
    "storage_scale",
    "throughput",
    "workers",
    "resume",
    "command",
)
# Seconds each figure may take in --quick mode (the whole quick run stays under 15 minutes).
QUICK_BUDGET_S = {
    "storage": 120,
    "storage_scale": 120,
    "throughput": 150,
    "workers": 90,
    "pruning": 360,  # pruning and grid run their studies together: 420 s between them
    "grid": 60,
    "pareto": 120,
    "real_data": 120,
    "resume": 150,
    "sampler_scale": 60,
    "command": 120,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller settings, < 15 min in all")
    size.add_argument(
        "--smoke", action="store_true", help="tiny settings that only check the plumbing"
    )
    parser.add_argument(
        "--only", default=None, help=f"comma-separated figures to run, of: {', '.join(FIGURES)}"
    )
    parser.add_argument(
        "--output",
        default=None,
        help="Markdown results path (JSON beside it, lower-case stem); default "
        "benchmarks/RESULTS.md for a full run of every figure, else RESULTS-quick/-partial.md",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="merge into the results already at the output path: replace the figures run now, "
        "keep the others (e.g. rerun the timed figures when the machine is quiet)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"the shared benchmark data folder (default ${DATA_ENV} or ../shared/data)",
    )
    # One thread: the timed comparisons measure a loop's own overhead, and on a shared machine
    # several OpenMP threads per process wait on each other for busy cores, which swamps it.
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for the timed comparisons (1)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="studies run side by side in the epoch-counting figures",
    )
    args = parser.parse_args(argv)
    names = FIGURES if args.only is None else tuple(n.strip() for n in args.only.split(","))
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        parser.error(f"--only: unknown figure(s) {', '.join(unknown)}; use {', '.join(FIGURES)}")
    args.names = [n for n in FIGURES if n in names]
    return args


def output_paths(args: argparse.Namespace, mode: str) -> tuple[Path, Path]:
    if args.output is not None:
        markdown = Path(args.output)
    else:
        suffix = "" if mode == "full" else f"-{mode}"
        if args.only is not None:
            suffix += "-partial"
        markdown = BENCH_DIR / f"RESULTS{suffix}.md"
    return markdown, markdown.with_name(markdown.stem.lower() + ".json")


def data_dir(args: argparse.Namespace) -> str:
    """The shared data folder: --data-dir, else $HPSEARCH_BENCH_DATA, else ../shared/data."""
    return args.data_dir or os.environ.get(DATA_ENV) or str(REPO.parent / "shared" / "data")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "quick" if args.quick else "smoke" if args.smoke else "full"
    markdown_path, json_path = output_paths(args, mode)
    workdir = tempfile.mkdtemp(prefix="hpsearch-bench-")
    settings = Settings(
        mode=mode, threads=args.threads, jobs=args.jobs, data_dir=data_dir(args), workdir=workdir
    )
    command = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
    facts = machine_facts(args.threads)
    facts["data_dir"] = settings.data_dir
    started = time.perf_counter()
    figures: list[Figure] = []
    kept = _earlier_figures(json_path) if args.update else []
    log(
        f"benchmarks ({mode}): {', '.join(args.names)} -> {markdown_path}; "
        f"load {facts['load_at_start']}"
    )
    try:
        for name in sorted(args.names, key=RUN_ORDER.index):
            if name == "grid" and "pruning" in args.names:
                continue  # reported together with pruning (shared studies)
            figures.extend(_run_figure(name, args.names, settings))
            _write(markdown_path, json_path, command, mode, facts, _merge(kept, figures), started)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _write(markdown_path, json_path, command, mode, facts, _merge(kept, figures), started)
    log(f"done in {time.perf_counter() - started:.0f} s; wrote {markdown_path} and {json_path}")
    return 0


def _earlier_figures(json_path: Path) -> list[Figure]:
    """The figures of an earlier run at ``json_path``, each noting when and how it was made."""
    if not json_path.is_file():
        return []
    earlier = json.loads(json_path.read_text(encoding="utf-8"))
    when = earlier.get("machine", {}).get("date_utc", "?")
    load = earlier.get("machine", {}).get("load_at_start")
    figures = []
    for data in earlier.get("figures", []):
        figure = Figure(**data)
        note = f"from the earlier run of {when} (`{earlier.get('command')}`, load at start {load})"
        if not any(n.startswith("from the earlier run") for n in figure.notes):
            figure.notes.append(note)
        figures.append(figure)
    return figures


def _merge(kept: list[Figure], new: list[Figure]) -> list[Figure]:
    """Earlier figures, each replaced by a new one of the same key, in the run order."""
    by_key = {f.key: f for f in kept}
    by_key.update({f.key: f for f in new})
    order = [*FIGURES]
    return sorted(by_key.values(), key=lambda f: order.index(f.key) if f.key in order else 99)


def _run_figure(name: str, names: list[str], settings: Settings) -> list[Figure]:
    log(f"[{time.strftime('%H:%M:%S')}] {name} ...")
    load = load_average()
    started = time.perf_counter()
    try:
        figures = _dispatch(name, names, settings)
    except Exception as e:  # one broken figure must not lose the others' numbers
        traceback.print_exc()
        figures = [
            Figure(
                key=name,
                title=name,
                command=f"python -m benchmarks --only {name}",
                status="failed",
                notes=[f"failed: {type(e).__name__}: {e}"],
            )
        ]
    seconds = time.perf_counter() - started
    for figure in figures:
        figure.seconds = seconds / len(figures)
        figure.load_before = load
        if settings.quick:
            budget = sum(QUICK_BUDGET_S[f.key] for f in figures)
            figure.budget_s = QUICK_BUDGET_S[figure.key]
            if seconds > budget:
                figure.notes.append(f"over its quick budget: {seconds:.0f} s > {budget} s")
    log(f"[{time.strftime('%H:%M:%S')}] {name} took {seconds:.0f} s")
    return figures


def _dispatch(name: str, names: list[str], settings: Settings) -> list[Figure]:
    if name == "storage":
        from benchmarks import storage_overhead

        return [storage_overhead.run(settings, log)]
    if name == "storage_scale":
        from benchmarks import storage_scale

        return [storage_scale.run(settings, log)]
    if name == "throughput":
        from benchmarks import throughput

        return [throughput.run(settings, log)]
    if name == "workers":
        from benchmarks import workers

        return [workers.run(settings, log)]
    if name == "command":
        from benchmarks import command_overhead

        return [command_overhead.run(settings, log)]
    if name in ("pruning", "grid"):
        from benchmarks import grid_vs_search, pruning
        from benchmarks.studies import run_studies

        wanted = [n for n in ("pruning", "grid") if n in names]
        specs = []
        if "pruning" in wanted:
            specs += pruning.specs(settings)
        if "grid" in wanted:
            specs += grid_vs_search.specs(settings)
        # The longest studies first, so the last one running alone is a short one.
        specs.sort(key=lambda s: ("none" not in s.label, "grid" not in s.label))
        outcomes = run_studies(specs, settings.workdir, settings.jobs, log)
        modules: dict[str, Callable[..., Figure]] = {
            "pruning": pruning.report,
            "grid": grid_vs_search.report,
        }
        return [modules[n](settings, outcomes) for n in wanted]
    if name == "pareto":
        from benchmarks import pareto
        from benchmarks.studies import run_studies

        specs = sorted(pareto.specs(settings), key=lambda s: "none" not in s.label)
        return [pareto.report(settings, run_studies(specs, settings.workdir, settings.jobs, log))]
    if name == "real_data":
        from benchmarks import real_data

        return [real_data.run(settings, log)]
    if name == "resume":
        from benchmarks import resume

        return [resume.run(settings, log)]
    if name == "sampler_scale":
        from benchmarks import sampler_scale

        return [sampler_scale.run(settings, log)]
    raise AssertionError(name)


def _write(
    markdown_path: Path,
    json_path: Path,
    command: str,
    mode: str,
    facts: dict[str, object],
    figures: list[Figure],
    started: float,
) -> None:
    total = time.perf_counter() - started
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "command": command,
        "mode": mode,
        "machine": facts,
        "total_seconds": round(total, 1),
        "figures": [asdict(f) for f in figures],
    }
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    markdown_path.write_text(
        report.markdown(command, mode, facts, figures, total), encoding="utf-8"
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
