"""Report a training script's metrics to an hpsearch command trial (standard library only).

Installed with hpsearch; or copy this one file next to a script that runs in another
environment. Outside a trial every function still works: ``report`` prints the step and returns
False, so the same script runs by hand.

    import hpsearch_client as hp

    args = parse_args()                      # hpsearch passes --name=value with "{args}"
    for epoch in range(1, args.epochs + 1):
        train_one_epoch()
        if hp.report(epoch, val_loss=val_loss, val_accuracy=val_accuracy):
            break                            # pruned or early-stopped: save if you like, exit 0

Without this module a script prints ``HPSEARCH {"step": 3, "val_loss": 0.41}`` lines itself, or
appends such JSON lines (without the prefix) to ``$HPSEARCH_METRICS_FILE``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["checkpoint_dir", "in_trial", "params", "report", "resume_step", "seed"]

PREFIX = "HPSEARCH "
ANSWER_WAIT_S = 5.0  # how long ``report`` waits for the worker's answer before going on


def in_trial() -> bool:
    """True when hpsearch runs this process as a trial."""
    return "HPSEARCH_TRIAL_NUMBER" in os.environ


def params() -> dict[str, Any]:
    """The trial's parameters (what ``{args}`` passes), or {} outside a trial."""
    return dict(json.loads(os.environ.get("HPSEARCH_PARAMS", "{}")))


def seed() -> int | None:
    """The trial's seed, or None outside a trial."""
    value = os.environ.get("HPSEARCH_SEED")
    return int(value) if value else None


def checkpoint_dir() -> Path | None:
    """The trial's checkpoint folder (the same for its retries), or None outside a trial."""
    value = os.environ.get("HPSEARCH_CHECKPOINT_DIR")
    return Path(value) if value else None


def resume_step() -> int:
    """The last step hpsearch has recorded for this trial's chain (0 when it starts fresh)."""
    return int(os.environ.get("HPSEARCH_RESUME_STEP", "0") or 0)


def report(step: int, **metrics: float) -> bool:
    """Report one step (an epoch, from 1); True when the trial must stop (pruned, early-stopped,
    or the study is stopping): the script may save and exit 0.

    Values go as written, in full precision (``val_loss=1.2e-05``); ``test_<m>`` values are
    recorded for the best step and never select or prune.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be an integer from 1, got {step!r}")
    line = json.dumps({"step": step, **metrics})
    if not in_trial():
        shown = " ".join(f"{name}={value}" for name, value in metrics.items())
        print(f"step {step}: {shown}", flush=True)
        return False
    sys.stdout.write(PREFIX + line + "\n")
    sys.stdout.flush()
    return _answer(step)


def _answer(step: int) -> bool:
    path = os.environ.get("HPSEARCH_CONTROL_FILE")
    if not path:
        return False
    deadline = time.monotonic() + ANSWER_WAIT_S
    while time.monotonic() < deadline:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
        for text in reversed(lines):
            try:
                answer = json.loads(text)
            except ValueError:
                continue
            if isinstance(answer, dict) and answer.get("step") == step:
                return bool(answer.get("stop"))
        time.sleep(0.02)
    return False  # no answer in time: the script goes on; the worker still decides
