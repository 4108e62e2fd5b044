"""The pruning ablation: which part of the default pruning earns its place, on held-out seeds.

Every variant runs the default toy study (``study_configs/toy_transformer.yaml``, one worker)
on the same (sampler seed, data seed) pairs, and each study is audited right after it ran (a
random sample of its pruned and early-stopped trials, fixed by the study's seed, trained again
to full length). One study is one row of ``benchmarks/ablation/rows.jsonl``, appended as soon as
it and its audit finish: a run stopped anywhere resumes at the next missing row, so the whole
ablation (about 7 hours on 2 cores) runs as pieces of at most an hour, each committing its rows.

    python -m benchmarks.ablation run --group heldout --variants A,B,C,D,H --minutes 55
    python -m benchmarks.ablation report          # RESULTS-ablation.md and the plot, from rows
    python -m benchmarks.ablation run --quick     # minutes: tiny studies, rows of their own

The seeds and the decision rule below were fixed on 2026-12-07, before any variant ran on the
held-out seeds (``benchmarks/RESULTS-ablation.md`` repeats them with that date).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ROWS = REPO / "benchmarks" / "ablation" / "rows.jsonl"
QUICK_ROWS = REPO / "benchmarks" / "ablation" / "rows-quick.jsonl"
# Rows of an acceptance check on seeds of the checker's own: outside the repository.
CHECK_ROWS = Path("/tmp/hpsearch-ablation-check/rows.jsonl")
CONFIG = "study_configs/toy_transformer.yaml"
FIXED_ON = "2026-12-07"

# --------------------------------------------------------------------------- seeds (fixed)
# Development seeds: the pruner settings were tuned on sampler seeds 0-4 (and calibrated on
# 10-15) with the data seed equal to the sampler seed. They get their own row, never a verdict.
DEVELOPMENT = tuple((seed, seed) for seed in range(5))
# Held-out: 5 sampler seeds x 4 data seeds, none used by any earlier run of this project. The
# order interleaves the sampler seeds, so the first 5 and the first 10 pairs (the sizes of the
# smaller variant sets) each hold every sampler seed.
HELDOUT_SAMPLER_SEEDS = (7103, 7211, 7307, 7417, 7523)
HELDOUT_DATA_SEEDS = (9109, 9203, 9311, 9419)
HELDOUT = tuple((s, d) for d in HELDOUT_DATA_SEEDS for s in HELDOUT_SAMPLER_SEEDS)

# --------------------------------------------------------------------------- variants
NO_PRUNER = ("pruner.name=none", "pruner.args={}")
NO_EARLY_STOP = ("fixed.early_stopping_patience=null",)
# Optuna's own median rule, first cut at epoch 5 as the default's (Optuna judges from step
# n_warmup_steps on), the default's 5 start-up trials.
STOCK_MEDIAN = ("pruner.name=median", "pruner.args={n_startup_trials: 5, n_warmup_steps: 5}")
JUDGE_BEST = (*STOCK_MEDIAN, "pruner.args.judge=best")
# The default's pruning as shipped on 2026-12-07, spelled out: H stays that study whatever the
# default later becomes.
DEFAULT_20261207 = (
    "pruner.name=median",
    "pruner.args={n_startup_trials: 5, n_warmup_steps: 5, judge: best, spare: 3, leaders: 3}",
    "fixed.early_stopping_patience=5",
)


@dataclass(frozen=True)
class Variant:
    letter: str
    name: str
    overrides: tuple[str, ...]


VARIANTS = {
    v.letter: v
    for v in (
        Variant("A", "neither (no pruner, no early stopping)", (*NO_PRUNER, *NO_EARLY_STOP)),
        Variant("B", "early stopping only", NO_PRUNER),
        Variant("C", "stock MedianPruner only", (*STOCK_MEDIAN, *NO_EARLY_STOP)),
        Variant("D", "stock MedianPruner + early stopping", STOCK_MEDIAN),
        Variant("E", "D + judge: best", JUDGE_BEST),
        Variant("F", "E + spare: 3", (*JUDGE_BEST, "pruner.args.spare=3")),
        Variant("G", "E + leaders: 3", (*JUDGE_BEST, "pruner.args.leaders=3")),
        Variant("H", "the default config as shipped on 2026-12-07", DEFAULT_20261207),
        Variant(
            "I",
            "PatientPruner(MedianPruner) + early stopping",
            (
                "pruner.name=patient",
                "pruner.args={patience: 3, wrapped: {name: median, args: "
                "{n_startup_trials: 5, n_warmup_steps: 5}}}",
            ),
        ),
        Variant(
            "J",
            "successive halving + early stopping",
            ("pruner.name=successive_halving", "pruner.args={}"),
        ),
        Variant("K", "hyperband + early stopping", ("pruner.name=hyperband", "pruner.args={}")),
    )
}
# Not a variant of the pre-registered ablation: the default config as it is shipped now, with no
# override, for the acceptance check on seeds of the checker's own (`--seeds`).
SHIPPED = Variant("S", "the default config as shipped now", ())
ALL_VARIANTS = {**VARIANTS, SHIPPED.letter: SHIPPED}
# How many held-out pairs each variant needs (the minimum): the verdict waits for them.
REQUIRED_PAIRS = {"A": 20, "B": 20, "C": 20, "D": 20, "H": 20, "E": 10, "F": 10, "G": 10}
REQUIRED_PAIRS |= {"I": 5, "J": 5, "K": 5}

# A second regime, never used for tuning: more training data, less label noise.
REGIMES = {"hard": (), "second": ("data.n_train=800", "data.label_noise=0.1")}
GROUPS = {"development": DEVELOPMENT, "heldout": HELDOUT, "second": HELDOUT[:10]}
AUDIT_TRIALS = 5  # per study, a random sample fixed by the study's seed

# --------------------------------------------------------------------------- the rule (fixed)
DECISION_RULE = """\
Fixed on 2026-12-07, before any variant ran on the held-out seeds. On the held-out pairs of the
hard regime, for each setting S compared with the variant without it (in this order: early
stopping, B vs A; the pruner over early stopping, D vs B; judge: best, E vs D; spare, F vs E;
leaders, G vs E; and the whole custom bundle, H vs D):
  d_acc = the winner's test accuracy with S minus without S, paired by seed pair;
  saving = 1 - (total epochs with S) / (total epochs without S), summed over the pairs;
  wrong = the audit's wrong-stop rate, pooled over the pairs.
S stays in the default only if the lower bound of the bootstrap 95 % interval of the mean d_acc
(10,000 resamples of the pairs, seed 20261207) is above -0.01, AND (saving >= 10 % OR wrong is
at least 2 points lower with S than without). Otherwise the simpler variant wins, ties
included. The default then becomes: stock Optuna semantics wherever a setting of this project's
does not pay, and early stopping alone if the pruner does not pay over it. The verdict is taken
only once every variant it compares has its required pairs (A-D, H: 20; E-G: 10)."""
COMPARISONS = (
    ("early stopping", "B", "A"),
    ("the pruner over early stopping", "D", "B"),
    ("judge: best", "E", "D"),
    ("spare: 3", "F", "E"),
    ("leaders: 3", "G", "E"),
    ("the custom bundle (judge, spare, leaders)", "H", "D"),
)
ACC_FLOOR = -0.01
MIN_SAVING = 0.10
WRONG_DROP = 0.02
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20261207


@dataclass(frozen=True)
class Size:
    n_trials: int
    epochs: int
    n_test: int
    audit: int


FULL = Size(n_trials=30, epochs=40, n_test=10_000, audit=AUDIT_TRIALS)
QUICK = Size(n_trials=8, epochs=8, n_test=2_000, audit=2)


@dataclass(frozen=True)
class Job:
    regime: str
    letter: str
    sampler_seed: int
    data_seed: int
    size: Size
    quick: bool

    @property
    def label(self) -> str:
        prefix = "quick-" if self.quick else ""
        return f"{prefix}{self.regime}-{self.letter}-s{self.sampler_seed}-d{self.data_seed}"

    def overrides(self) -> tuple[str, ...]:
        size = self.size
        startup = ("sampler.args.n_startup_trials=4",) if self.quick else ()
        return (
            f"study.n_trials={size.n_trials}",
            f"fixed.epochs={size.epochs}",
            f"data.n_test={size.n_test}",
            f"study.seed={self.sampler_seed}",
            f"data.seed={self.data_seed}",
            *startup,
            *REGIMES[self.regime],
            *ALL_VARIANTS[self.letter].overrides,
        )

    def command(self) -> str:
        sets = " ".join(f"--set '{o}'" for o in self.overrides())
        return f"hpsearch run {CONFIG} --workers 1 --study-name {self.label} {sets}"


def shipped_is(letter: str) -> bool:
    """Whether the default as shipped now (S) is variant ``letter``'s study exactly; then the
    acceptance check reads that variant's rows for S instead of running the same study twice."""
    from search.config import load_config

    def resolved(variant: Variant) -> dict[str, Any]:
        return load_config(REPO / CONFIG, list(variant.overrides)).model_dump()

    return resolved(SHIPPED) == resolved(VARIANTS[letter])


def plan(
    group: str,
    letters: Sequence[str],
    quick: bool,
    pairs: int | None,
    seeds: Sequence[tuple[int, int]] | None = None,
) -> list[Job]:
    """The jobs of ``group`` (or of the hard regime on ``seeds``) for ``letters``, seed pair by
    seed pair (each pair's variants together, so a stopped piece leaves whole pairs behind)."""
    regime = "second" if group == "second" and not seeds else "hard"
    chosen = tuple(seeds) if seeds else GROUPS[group]
    if quick:
        chosen = chosen[:2]
    jobs = []
    if pairs is not None:
        chosen = chosen[:pairs]
    held = group == "heldout" and not seeds
    for index, (sampler_seed, data_seed) in enumerate(chosen):
        for letter in letters:
            needed = REQUIRED_PAIRS.get(letter, len(chosen)) if held else None
            if needed is not None and index >= needed and not quick:
                continue
            size = QUICK if quick else FULL
            jobs.append(Job(regime, letter, sampler_seed, data_seed, size, quick))
    return jobs


# --------------------------------------------------------------------------- running


def run_job(job: Job, workdir: str) -> dict[str, Any]:
    """One study and its audit, in this process; the row to store."""
    import io

    from benchmarks.studies import StudySpec, run_one
    from search.retrain import run_audit

    spec = StudySpec(config=CONFIG, overrides=job.overrides(), label=job.label)
    outcome = run_one(spec, workdir)
    storage = f"sqlite:///{(Path(workdir) / job.label / 'study.db').resolve()}"
    started = time.perf_counter()
    stopped = [t for t in outcome.trials if t.state == "PRUNED" or _early_stopped(t, job)]
    audit = (
        run_audit(job.label, storage, trials=job.size.audit, out=io.StringIO()).to_dict()
        if stopped
        else None
    )
    best = outcome.best_trial()
    return {
        "label": job.label,
        "regime": job.regime,
        "variant": job.letter,
        "sampler_seed": job.sampler_seed,
        "data_seed": job.data_seed,
        "quick": job.quick,
        "n_test": job.size.n_test,
        "command": job.command(),
        "total_epochs": outcome.total_epochs,
        "best_val_loss": best.value if best else None,
        "winner": best.number if best else None,
        "winner_params": best.params if best else None,
        "winner_test_accuracy": best.test_accuracy if best else None,
        "pruned": sum(t.state == "PRUNED" for t in outcome.trials),
        "early_stopped": sum(_early_stopped(t, job) for t in outcome.trials),
        "failed": len(outcome.errors),
        "trials": [
            [t.number, t.state, len(t.val_loss), t.value, t.test_accuracy, t.reason]
            for t in outcome.trials
        ],
        # Each trial's validation curve and best epoch: what replays of other rules need. Only
        # A's unstopped curves are replayed; the other variants' would only grow the file.
        "curves": (
            {str(t.number): [t.val_loss, t.best_epoch] for t in outcome.trials}
            if job.letter == "A"
            else {}
        ),
        "spared": _spared(storage, job.label),
        "audit": audit,
        "wall_seconds": outcome.wall_seconds,
        "audit_seconds": time.perf_counter() - started,
    }


def _early_stopped(trial: Any, job: Job) -> bool:
    return trial.state == "COMPLETE" and len(trial.val_loss) < job.size.epochs


def _spared(storage: str, name: str) -> list[dict[str, Any]]:
    """Trials `spare` let run on: where they would have been cut, and how they ended."""
    import optuna

    from search.trial import SPARED_WHILE_IMPROVING, TrialRecord

    study = optuna.load_study(study_name=name, storage=storage)
    complete = sorted(t.value for t in study.get_trials(deepcopy=False) if t.value is not None)
    found = []
    for trial in study.get_trials(deepcopy=False):
        epoch = trial.user_attrs.get(SPARED_WHILE_IMPROVING)
        if epoch is None:
            continue
        record = TrialRecord.from_trial(trial)
        rank = complete.index(trial.value) + 1 if trial.value in complete else None
        found.append(
            {
                "trial": trial.number,
                "at_epoch": epoch,
                "value": trial.value,
                "rank": rank,
                "epochs_run": record.epochs_run,
            }
        )
    return found


def _run_job_args(args: tuple[Job, str]) -> dict[str, Any]:
    return run_job(*args)


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Store one finished study as one line, at once: a stopped run keeps every row before it."""
    with path.open("a") as out:
        out.write(json.dumps(row, sort_keys=True) + "\n")


def load_rows(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["label"]] = row
    return rows


def run(jobs: Sequence[Job], rows_path: Path, workdir: str, parallel: int, minutes: float) -> int:
    """Run the jobs that have no row yet, ``parallel`` at a time, until ``minutes`` are spent.

    Nothing new starts after the budget; what is running finishes and is stored.
    """
    done = load_rows(rows_path)
    todo = [job for job in jobs if job.label not in done]
    print(
        f"ablation: {len(jobs)} studies planned, {len(jobs) - len(todo)} done, "
        f"{len(todo)} to run, {parallel} at a time, {minutes:g} min budget",
        flush=True,
    )
    deadline = time.monotonic() + 60 * minutes
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    context = get_context("spawn")
    stored = 0
    with ProcessPoolExecutor(
        max_workers=parallel, mp_context=context, max_tasks_per_child=1
    ) as pool:
        running: dict[Future[dict[str, Any]], Job] = {}
        queue = list(todo)
        while queue or running:
            while queue and len(running) < parallel and time.monotonic() < deadline:
                job = queue.pop(0)
                running[pool.submit(_run_job_args, (job, workdir))] = job
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                row = future.result()
                append_row(rows_path, row)
                stored += 1
                print(
                    f"  {job.label}: {row['total_epochs']} epochs, best val_loss "
                    f"{row['best_val_loss']}, test acc {row['winner_test_accuracy']}, "
                    f"{row['wall_seconds']:.0f} s + audit {row['audit_seconds']:.0f} s",
                    flush=True,
                )
    left = len(todo) - stored
    print(f"ablation: stored {stored} rows in {rows_path}; {left} left", flush=True)
    return 0


def parse_seeds(text: str) -> list[tuple[int, int]]:
    """``"11:12,13:14"`` -> [(11, 12), (13, 14)]: (sampler seed, data seed) pairs."""
    pairs = []
    for item in text.split(","):
        sampler, sep, data = item.strip().partition(":")
        if not sep or not sampler.isdigit() or not data.isdigit():
            raise ValueError(
                f"--seeds: {item.strip()!r} is not SAMPLER:DATA (two whole numbers), "
                "e.g. --seeds 31:41,59:26"
            )
        pairs.append((int(sampler), int(data)))
    return pairs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ablation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run", help="run the studies that have no row yet")
    go.add_argument("--group", choices=sorted(GROUPS), default="heldout")
    go.add_argument("--variants", default="A,B,C,D,H", help="letters, comma-separated")
    go.add_argument("--pairs", type=int, default=None, help="only the first N seed pairs")
    go.add_argument("--minutes", type=float, default=55.0, help="start nothing after this")
    go.add_argument("--parallel", type=int, default=os.cpu_count() or 1)
    go.add_argument("--workdir", default="/tmp/hpsearch-ablation")
    go.add_argument("--quick", action="store_true", help="tiny studies (minutes), own rows")
    show = commands.add_parser(
        "report", help="write RESULTS-ablation.md and the plot (with --seeds: print the check)"
    )
    show.add_argument("--quick", action="store_true")
    for command in (go, show):
        command.add_argument(
            "--seeds",
            default=None,
            help="SAMPLER:DATA pairs of your own, e.g. 31:41,59:26: the acceptance check "
            "(hard regime; rows in --rows, never in the committed ones)",
        )
        command.add_argument("--rows", default=None, help="rows file (default: by the mode)")
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds) if args.seeds else None
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    default_rows = CHECK_ROWS if seeds else QUICK_ROWS if args.quick else ROWS
    rows = Path(args.rows) if args.rows else default_rows
    if args.command == "report":
        from benchmarks.ablation_report import print_check, write_report

        if seeds:
            return print_check(rows, seeds)
        write_report(rows, quick=args.quick)
        return 0
    letters = [x.strip().upper() for x in args.variants.split(",") if x.strip()]
    unknown = [x for x in letters if x not in ALL_VARIANTS]
    if unknown:
        print(
            f"--variants: unknown {', '.join(unknown)}; known: {', '.join(ALL_VARIANTS)}",
            file=sys.stderr,
        )
        return 2
    if seeds and "S" in letters and "B" in letters and shipped_is("B"):
        letters.remove("S")
        print("ablation: the default as shipped is variant B exactly; B's rows stand for S")
    jobs = plan(args.group, letters, args.quick, args.pairs, seeds)
    return run(jobs, rows, args.workdir, args.parallel, args.minutes)


if __name__ == "__main__":
    raise SystemExit(main())
