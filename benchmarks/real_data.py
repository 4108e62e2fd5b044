"""Figure 6: a small MiniLM study on real data (SST-2 from the shared benchmark data folder).

It runs what a user runs, as subprocesses: ``hpsearch run study_configs/bert_minilm_local.yaml``
on a training subset, ``hpsearch export`` of the winner, and ``hpsearch retrain`` of it with two
new seeds (test accuracy read once per seed). Reported: the best validation accuracy, the
winner's own test accuracy, the retrained winner's test accuracy, and wall times.
Skipped with a message when the folder has no ``sst2``: a fresh clone has no ``../shared``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import Figure, Settings, median

CONFIG = "study_configs/bert_minilm_local.yaml"
STUDY = "bert-minilm-local"
RETRAIN_SEEDS = 2


def sizes(settings: Settings) -> dict[str, int]:
    if settings.mode == "smoke":
        return {"train": 40, "eval": 20, "n_trials": 2, "epochs": 1}
    if settings.quick:
        return {"train": 100, "eval": 100, "n_trials": 2, "epochs": 1}
    # A full-size MiniLM study takes hours on two CPU cores; this one takes about ten minutes.
    return {"train": 300, "eval": 200, "n_trials": 4, "epochs": 2}


def run(settings: Settings, log: Callable[[str], None] = print) -> Figure:
    size = sizes(settings)
    folder = Path(settings.data_dir) / "sst2" if settings.data_dir else None
    overrides = [
        f"data.dir={folder}",
        f"data.max_train_samples={size['train']}",
        f"data.max_eval_samples={size['eval']}",
        f"study.n_trials={size['n_trials']}",
        f"fixed.epochs={size['epochs']}",
    ]
    sets = [item for o in overrides for item in ("--set", o)]
    figure = Figure(
        key="real_data",
        title="Real data: a small MiniLM study on SST-2",
        command=f"hpsearch run {CONFIG} --storage sqlite:///bert.db --device cpu "
        + " ".join(sets).replace(str(folder), "../shared/data/sst2")
        + f" ; hpsearch export {STUDY} -o best.yaml ; hpsearch retrain best.yaml "
        f"--seeds {RETRAIN_SEEDS} --device cpu",
        settings={**size, "config": CONFIG, "retrain_seeds": RETRAIN_SEEDS},
        target="none set (informational)",
    )
    if folder is None or not (folder / "train.csv").is_file():
        figure.status = "skipped"
        figure.notes.append(
            f"skipped: no SST-2 data at {folder or '../shared/data/sst2'} (train.csv, "
            "validation.csv, test.csv); pass --data-dir or set HPSEARCH_BENCH_DATA"
        )
        return figure
    work = Path(settings.workdir) / f"bert-{settings.mode}"
    work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(work / 'bert.db').resolve()}"
    best = work / "best.yaml"
    started = time.perf_counter()
    _hpsearch(["run", CONFIG, "--storage", storage, "--device", "cpu", *sets], log)
    search_seconds = time.perf_counter() - started
    _hpsearch(["export", STUDY, "--storage", storage, "-o", str(best)], log)
    started = time.perf_counter()
    retrained = True
    try:
        retrain_args = ["retrain", str(best), "--seeds", str(RETRAIN_SEEDS)]
        _hpsearch([*retrain_args, "--storage", storage, "--device", "cpu"], log)
    except RuntimeError as e:
        retrained = False
        figure.notes.append(f"retrain failed, so the winner's own test accuracy is shown: {e}")
    retrain_seconds = time.perf_counter() - started
    numbers = _read(storage, retrained)
    numbers.update({"search_seconds": search_seconds, "retrain_seconds": retrain_seconds})
    figure.numbers = numbers
    figure.table.append(
        {
            "training subset": f"first {size['train']} of train.csv (eval {size['eval']})",
            "trials": numbers["trials"],
            "best val acc": numbers["best_val_accuracy"],
            "winner's test acc": numbers["winner_test_accuracy"],
            f"retrained winner test acc (median of {RETRAIN_SEEDS} seeds)": numbers.get(
                "retrained_test_accuracy"
            ),
            "search wall s": search_seconds,
            "retrain wall s": retrain_seconds if retrained else None,
        }
    )
    return figure


def _hpsearch(args: list[str], log: Callable[[str], None]) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env["TRANSFORMERS_OFFLINE"] = "1"
    log(f"  hpsearch {' '.join(args[:2])} ...")
    done = subprocess.run(
        [sys.executable, "-m", "search", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"hpsearch {args[0]} exited {done.returncode}: {tail}")


def _read(storage: str, retrained: bool) -> dict[str, object]:
    import optuna

    from search.retrain import WINNER_SUFFIX

    study = optuna.load_study(study_name=STUDY, storage=storage)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = study.best_trial
    numbers: dict[str, object] = {
        "trials": len(study.trials),
        "complete": len(complete),
        "best_val_accuracy": best.value,
        "winner_test_accuracy": best.user_attrs.get("test_accuracy"),
        "winner_params": best.params,
    }
    if retrained:
        retrain = optuna.load_study(study_name=STUDY + WINNER_SUFFIX, storage=storage)
        tests = [
            t.user_attrs["test_accuracy"] for t in retrain.trials if "test_accuracy" in t.user_attrs
        ]
        numbers["retrained_test_accuracies"] = tests
        numbers["retrained_test_accuracy"] = median(tests) if tests else None
    return numbers
