"""The ablation on a real Transformer that overfits: MiniLM on rotten_tomatoes.

``study_configs/minilm_rotten_tomatoes.yaml`` (no default was tuned on this data): 500 training
sentences, 1,000 validation and 1,000 test, ``max_length`` 64, 8 epochs, an lr range wide
enough that trials overfit from epoch 2, 12 trials. Per seed, variant A (no pruner, no early
stopping) runs for real with the random sampler; B, D and the default are replayed exactly on its
recorded curves (``benchmarks/replay.py``). One real TPE pair (the default vs B) on the first
seed shows what replays cannot: how TPE's path changes after cuts. Each seed, and each side of
the TPE pair, is one piece (a study on one core: 2.5 hours with two side by side), stored as
one row of ``benchmarks/ablation/minilm.jsonl`` as soon as it finishes; a rerun does only what
is missing.
Pieces named together run side by side, one per core (``--parallel``).

    python -m benchmarks.ablation_minilm run --seeds 8101          # one piece
    python -m benchmarks.ablation_minilm run --tpe                  # the TPE pair, two pieces
    python -m benchmarks.ablation_minilm run --quick                # minutes, plumbing only

Needs the shared data folder (``--data-dir``, default ``../shared/data/rotten_tomatoes``); it
never runs in ``make test`` or CI.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.ablation import REPO, append_row, load_rows

CONFIG = "study_configs/minilm_rotten_tomatoes.yaml"
ROWS = REPO / "benchmarks" / "ablation" / "minilm.jsonl"
QUICK_ROWS = REPO / "benchmarks" / "ablation" / "minilm-quick.jsonl"
DATA_DIR = REPO.parent / "shared" / "data" / "rotten_tomatoes"
# Fixed on 2026-12-07, before any run: three sampler/data seeds, the TPE pair on the first.
SEEDS = (8101, 8209, 8317)
EPOCHS = 8
# The replayed variants. 8 epochs are short for the toy default's warm-up of 5 and patience of
# 5, so the project's rules are also replayed scaled to this length (warm-up 2, patience 2),
# as a user fine-tuning for 8 epochs would set them; both were chosen before any run.
REPLAYS: dict[str, tuple[dict[str, Any], int | None]] = {
    "A neither": ({"name": "none", "args": {}}, None),
    "B early stopping (patience 2)": ({"name": "none", "args": {}}, 2),
    # Added 2026-12-08, before any MiniLM row existed, when the toy ablation's verdict made
    # "no pruner, early stopping patience 5" the shipped default: that default, unscaled.
    "B as shipped (patience 5)": ({"name": "none", "args": {}}, 5),
    "D stock median (warm-up 2) + B": (
        {"name": "median", "args": {"n_startup_trials": 5, "n_warmup_steps": 2}},
        2,
    ),
    "H default rules (warm-up 2) + B": (
        {
            "name": "median",
            "args": {
                "n_startup_trials": 5,
                "n_warmup_steps": 2,
                "judge": "best",
                "spare": 3,
                "leaders": 3,
            },
        },
        2,
    ),
    "H as shipped (warm-up 5, patience 5)": (
        {
            "name": "median",
            "args": {
                "n_startup_trials": 5,
                "n_warmup_steps": 5,
                "judge": "best",
                "spare": 3,
                "leaders": 3,
            },
        },
        5,
    ),
}
TPE_PAIR = {
    "tpe-default": REPLAYS["H default rules (warm-up 2) + B"],
    "tpe-early-stopping": REPLAYS["B early stopping (patience 2)"],
}
QUICK_SETS = (
    "study.n_trials=3",
    "fixed.epochs=2",
    "data.max_train_samples=32",
    "data.max_eval_samples=32",
)


def _overrides(
    seed: int, data_dir: Path, quick: bool, pruner: dict[str, Any], patience: int | None, tpe: bool
) -> list[str]:
    sets = [
        f"study.seed={seed}",
        f"data.dir={data_dir}",
        f"pruner.name={pruner['name']}",
        f"pruner.args={json.dumps(pruner['args'])}",
        f"fixed.early_stopping_patience={'null' if patience is None else patience}",
    ]
    if tpe:
        sets += ["sampler.name=tpe", "sampler.args={n_startup_trials: 5, multivariate: true}"]
    return sets + (list(QUICK_SETS) if quick else [])


def run_piece(label: str, overrides: list[str], workdir: str) -> dict[str, Any]:
    """One real study; its trials with their whole curves."""
    from benchmarks.studies import StudySpec, run_one

    spec = StudySpec(config=CONFIG, overrides=tuple(overrides), label=label)
    outcome = run_one(spec, workdir)
    return {
        "label": label,
        "command": spec.command(),
        "wall_seconds": outcome.wall_seconds,
        "failed": len(outcome.errors),
        "trials": [
            {
                "number": t.number,
                "state": t.state,
                "params": t.params,
                "val_loss": t.val_loss,
                "val_accuracy": t.val_accuracy,
                "best_epoch": t.best_epoch,
                "value": t.value,
                "test_accuracy": t.test_accuracy,
            }
            for t in outcome.trials
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ablation_minilm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--seeds", default=None, help="comma-separated; default: all three")
    parser.add_argument("--tpe", action="store_true", help="the real TPE pair instead")
    parser.add_argument("--quick", action="store_true", help="tiny studies; rows of their own")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--workdir", default="/tmp/hpsearch-ablation-minilm")
    parser.add_argument(
        "--parallel",
        type=int,
        default=os.cpu_count() or 1,
        help="pieces at a time, one torch thread each (default: one per core)",
    )
    args = parser.parse_args(argv)
    if not (args.data_dir / "train.csv").exists():
        print(
            f"--data-dir: {args.data_dir} holds no train.csv; point it at the rotten_tomatoes "
            "folder of the shared data",
            file=sys.stderr,
        )
        return 2
    rows_path = QUICK_ROWS if args.quick else ROWS
    done = set(load_rows(rows_path))
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(SEEDS)
    prefix = "quick-" if args.quick else ""
    pieces: list[tuple[str, list[str]]] = []
    if args.tpe:
        for name, (pruner, patience) in TPE_PAIR.items():
            sets = _overrides(SEEDS[0], args.data_dir.resolve(), args.quick, pruner, patience, True)
            pieces.append((f"{prefix}minilm-{name}-s{SEEDS[0]}", sets))
    else:
        pruner, patience = REPLAYS["A neither"]
        for seed in seeds:
            sets = _overrides(seed, args.data_dir.resolve(), args.quick, pruner, patience, False)
            pieces.append((f"{prefix}minilm-A-s{seed}", sets))
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    todo = []
    for label, sets in pieces:
        if label in done:
            print(f"{label}: done already", flush=True)
        else:
            todo.append((label, sets))
    context = get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=max(1, args.parallel), mp_context=context, max_tasks_per_child=1
    ) as pool:
        started = time.perf_counter()
        futures = {pool.submit(run_piece, label, sets, args.workdir): label for label, sets in todo}
        for future in as_completed(futures):
            row = future.result()
            append_row(rows_path, row)
            print(
                f"{futures[future]}: {len(row['trials'])} trials, {row['wall_seconds']:.0f} s "
                f"({time.perf_counter() - started:.0f} s since the start)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
