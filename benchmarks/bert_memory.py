"""Process memory (RSS) across consecutive BERT trials: does every trial free what it allocated?

Runs a real study of ``--trials`` MiniLM trials (alias ``minilm-l6``, tiny generated data, one
epoch, no checkpoints) in this process and prints the resident set size after each trial. Passes
(exit 0) when the RSS after the last trial is within ``--tolerance`` of the RSS after trial 2
(trial 1 includes one-time costs: imports, tokenisation, allocator pools).

    HF_HUB_OFFLINE=1 python -m benchmarks.bert_memory --trials 10
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def rss_mib() -> float:
    """Resident set size of this process (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def write_data(folder: Path, rows: int) -> None:
    """A two-class task: sentences with a positive or a negative cue word."""
    rng = random.Random(0)
    filler = [
        "the",
        "film",
        "story",
        "actor",
        "plot",
        "was",
        "very",
        "quite",
        "and",
        "but",
        "it",
        "this",
    ]
    cues = {0: ["awful", "boring", "dull"], 1: ["great", "superb", "lovely"]}
    for split, count in (("train", rows), ("validation", rows // 2), ("test", rows // 2)):
        with (folder / f"{split}.csv").open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["sentence", "label"])
            for _ in range(count):
                label = rng.randint(0, 1)
                words = [*rng.choices(filler, k=8), rng.choice(cues[label])]
                rng.shuffle(words)
                writer.writerow([" ".join(words), label])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--rows", type=int, default=64, help="training rows (eval: half)")
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    import optuna

    from search.config import config_from_dict
    from search.study import optimize_study as run_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_data(folder, args.rows)
        config = config_from_dict(
            {
                "study": {
                    "name": "bert-memory",
                    "storage": f"sqlite:///{folder / 'hp.db'}",
                    "metric": "val_accuracy",
                    "n_trials": args.trials,
                },
                "sampler": {"name": "random", "args": {}},
                "pruner": {"name": "none", "args": {}},
                "objective": "bert",
                "fixed": {"model": args.model, "epochs": 1, "batch_size": 16, "max_length": 32},
                "search": {"lr": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True}},
                "data": {"dir": str(folder)},
                "artifacts": {"keep_checkpoints": "none"},
            }
        )
        after: list[float] = []
        states: list[str] = []

        def on_trial(study: Any, trial: Any) -> None:
            after.append(rss_mib())
            states.append(trial.state.name)
            print(f"after trial {len(after):>2} ({trial.state.name}): RSS {after[-1]:.0f} MiB")

        before = rss_mib()
        print(f"before the study: RSS {before:.0f} MiB")
        run_study(config, device="cpu", on_trial=on_trial)
    if len(after) < 2:
        print("fewer than 2 trials ran; nothing to compare")
        return 1
    growth = after[-1] / after[1] - 1
    passed = growth <= args.tolerance and all(s == "COMPLETE" for s in states)
    print(
        f"after trial {len(after)} vs after trial 2: {after[-1]:.0f} / {after[1]:.0f} MiB "
        f"({growth:+.1%}; limit {args.tolerance:+.0%}): {'PASS' if passed else 'FAIL'}"
    )
    if args.output is not None:
        report = {"rss_mib_before": before, "rss_mib_after_trial": after, "growth": growth}
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
