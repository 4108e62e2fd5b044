"""Figure 5: worker scaling.

The same fixed toy study (every parameter fixed, no pruner, so every trial is the same work)
with ``optimize_study(config, device="cpu", workers=K)`` for K = 1 and 2, alternating, each run on a
new SQLite file. Wall time includes what a user waits for: spawning workers, opening the storage,
every trial. Speed-up = wall(1 worker) / wall(2 workers).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import Figure, Paired, Settings, alternate

CONFIG = "study_configs/toy_transformer.yaml"
FIXED = (
    "fixed.lr=2e-3",
    "fixed.batch_size=32",
    "fixed.hidden_dim=32",
    "fixed.num_heads=2",
    "fixed.num_layers=2",
    "fixed.max_grad_norm=1.0",
    "pruner.name=none",
    "pruner.args={}",
    "artifacts.keep_checkpoints=none",
)


def sizes(settings: Settings) -> dict[str, int]:
    if settings.mode == "smoke":
        return {"n_trials": 2, "epochs": 1, "pairs": 1}
    # Long enough that the trials, not starting the worker processes, dominate the wall time.
    if settings.quick:
        return {"n_trials": 4, "epochs": 5, "pairs": 2}
    return {"n_trials": 8, "epochs": 10, "pairs": 3}


def overrides(settings: Settings) -> list[str]:
    size = sizes(settings)
    return [*FIXED, f"study.n_trials={size['n_trials']}", f"fixed.epochs={size['epochs']}"]


def run(settings: Settings, log: Callable[[str], None] = print) -> Figure:
    import optuna

    from search.config import load_config
    from search.study import optimize_study as run_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    size = sizes(settings)
    folder = Path(settings.workdir) / f"workers-{settings.mode}"
    folder.mkdir(parents=True, exist_ok=True)
    counter = itertools.count()

    def wall(workers: int) -> float:
        index = next(counter)
        storage = f"sqlite:///{(folder / f'run{index}-w{workers}.db').resolve()}"
        config = load_config(
            CONFIG, [*overrides(settings), f"study.storage={storage}", f"study.name=w{workers}"]
        )
        started = time.perf_counter()
        summary = run_study(config, device="cpu", workers=workers)
        seconds = time.perf_counter() - started
        if summary.finished_after != size["n_trials"]:
            raise RuntimeError(f"worker run finished {summary.finished_after} trials")
        log(f"  {workers} worker(s): {seconds:.1f} s")
        return seconds

    # Warm-up of the 2-worker side would only warm the parent; skip it, and warm the 1-worker
    # side's imports with the first pair instead (alternation puts either side first in turn).
    timed = alternate(lambda: wall(1), lambda: wall(2), pairs=size["pairs"], warmup=False)
    speedup = timed.median_of_pair_ratios
    command = (
        "hpsearch run "
        + CONFIG
        + " --workers K --storage sqlite:///w.db "
        + " ".join(f"--set {o}" for o in overrides(settings))
    )
    figure = Figure(
        key="workers",
        title=f"Worker scaling on this {os.cpu_count()}-core machine (fixed toy study)",
        command=command,
        settings={**size, "config": CONFIG, "fixed": list(FIXED)},
        target="none set (informational); ideal speed-up on 2 free cores is < 2x",
        table=[
            {
                "workers": 1,
                "median wall s": timed.median_a,
                "runs": [round(v, 1) for v in timed.a],
            },
            {
                "workers": 2,
                "median wall s": timed.median_b,
                "runs": [round(v, 1) for v in timed.b],
            },
        ],
        numbers={"one_worker_s": timed.a, "two_workers_s": timed.b, "speedup": speedup},
        ratio=speedup,
        ratio_label="wall(1 worker) / wall(2 workers), median of pairs",
    )
    threads = _thread_scaling(settings, size["pairs"])
    log(f"  toy loop, 1 thread {threads.a} vs {os.cpu_count()} threads {threads.b} samples/s")
    figure.numbers["toy_loop_samples_per_s_1_thread"] = threads.a
    figure.numbers["toy_loop_samples_per_s_all_threads"] = threads.b
    figure.table.append(
        {
            "workers": "toy loop alone, no study",
            f"samples/s 1 thread / {os.cpu_count()} threads": threads.median_of_pair_ratios,
            "runs": [f"{a:.0f}/{b:.0f}" for a, b in zip(threads.a, threads.b, strict=True)],
        }
    )
    figure.notes.append(
        f"the toy loop alone runs {threads.median_of_pair_ratios:.2f}x as fast with 1 torch "
        f"thread as with {os.cpu_count()} on this machine now (median of pairs): why the toy "
        "objective runs one thread per worker, and more workers are the way to use more cores"
    )
    return figure


def _thread_scaling(settings: Settings, pairs: int) -> Paired:
    """Toy-loop samples/s with 1 torch thread vs every core: what one worker's threads buy."""
    import torch

    from objectives.loop import LoopSettings, train
    from objectives.specs import ToyDataConfig
    from objectives.toy_transformer import ToyTransformer, loop_data, make_task

    splits = make_task(ToyDataConfig(), seed=0)
    data = loop_data(splits, 32, seed=0)
    before = torch.get_num_threads()

    def samples_per_s(threads: int) -> float:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = ToyTransformer(splits.vocab_size, splits.seq_len, splits.num_classes, 32, 2, 2, 0.0)
        result = train(model, data, LoopSettings(epochs=1, lr=2e-3, max_grad_norm=1.0), "cpu")
        return result.train_samples / result.train_seconds

    try:
        return alternate(
            lambda: samples_per_s(1), lambda: samples_per_s(os.cpu_count() or 1), pairs
        )
    finally:
        torch.set_num_threads(before)
