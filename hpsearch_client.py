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

With Hugging Face ``Trainer`` (evaluating every epoch), one callback does it all::

    trainer = Trainer(..., callbacks=[hp.HpsearchCallback()])
    trainer.train(resume_from_checkpoint=hp.last_checkpoint())   # None: a fresh start

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

# HpsearchCallback, a transformers.TrainerCallback, is made on first use (module __getattr__).
__all__ = [
    "checkpoint_dir",
    "in_trial",
    "last_checkpoint",
    "params",
    "report",
    "resume_step",
    "seed",
]

PREFIX = "HPSEARCH "
ANSWER_WAIT_S = 5.0  # how long ``report`` waits for the worker's answer before going on
# Trainer's evaluation metrics that are timings, not metrics.
TIMINGS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")


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


def last_checkpoint() -> str | None:
    """The newest ``checkpoint-<N>`` folder a ``Trainer`` saved in :func:`checkpoint_dir` (to
    resume a retried trial), or None."""
    folder = checkpoint_dir()
    if folder is None or not folder.is_dir():
        return None
    found = [
        (int(p.name.split("-", 1)[1]), p)
        for p in folder.glob("checkpoint-*")
        if p.is_dir() and p.name.split("-", 1)[1].isdigit()
    ]
    return str(max(found)[1]) if found else None


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


def _callback_class() -> type:
    from transformers import TrainerCallback  # only when the callback is used

    class HpsearchCallback(TrainerCallback):  # type: ignore[misc]
        """Reports each evaluation to hpsearch and stops training when the trial must stop.

        The step is the epoch as an integer from 1; ``eval_loss`` is reported as ``val_loss``
        and every ``eval_<m>`` as ``val_<m>`` (not the timings). Under ``torchrun`` only rank 0
        reports, and every rank gets its answer. It never raises: a stop sets
        ``control.should_training_stop``.
        """

        def on_evaluate(  # type: ignore[no-untyped-def]
            self, args, state, control, metrics=None, **kwargs
        ):
            if not metrics:
                return control
            step = max(1, round(state.epoch or 0))
            values = {
                "val_" + name.removeprefix("eval_"): value
                for name, value in metrics.items()
                if name.startswith("eval_")
                and name not in TIMINGS
                and isinstance(value, int | float)
            }
            stop = report(step, **values) if state.is_world_process_zero else False
            if _same_on_every_rank(stop):
                control.should_training_stop = True
            return control

    return HpsearchCallback


def _same_on_every_rank(stop: bool) -> bool:
    """Rank 0's decision, on every rank of a torch.distributed run (itself when there is none)."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        return stop
    if not (dist.is_available() and dist.is_initialized()):
        return stop
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    flag = torch.tensor([1 if stop else 0], device=device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def __getattr__(name: str) -> Any:
    if name == "HpsearchCallback":
        cls = _callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
