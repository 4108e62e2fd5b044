"""Progress inside trials: a live bar per worker on a terminal, one line per epoch otherwise.

Modes (``hpsearch run --progress``):

- ``bars``: one bar per worker, drawn by the command's process with ``rich``: trial, epoch,
  step, samples/s and the trial's remaining time. Workers send events over a queue; the
  per-trial summary lines go through the same display, so they never tear a bar;
- ``epochs``: one line per finished epoch, written by the worker that trained it;
- ``off``: nothing inside trials (the per-trial lines stay);
- ``auto``: ``bars`` when stdout is a terminal, else ``epochs``.

Workers hold a :class:`TrialProgress` (picklable: a mode, a queue and a label); the loop calls
it after every step, and it sends at most one step event per ``STEP_EVENT_SECONDS``, so a
progress bar costs no measurable time per step.
"""

from __future__ import annotations

import os
import queue as queue_module
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from search.formatting import number

MODES = ("auto", "bars", "epochs", "off")
STEP_EVENT_SECONDS = 0.25


def resolve_mode(mode: str, stream: TextIO | None = None) -> str:
    """``auto`` -> ``bars`` on a terminal, else ``epochs``; other modes stay."""
    if mode not in MODES:
        raise ValueError(f"progress mode {mode!r}: use one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    stream = stream or sys.stdout
    return "bars" if stream.isatty() else "epochs"


@dataclass
class TrialProgress:
    """A worker's side: what its running trial has done, sent as events or printed as lines."""

    mode: str  # "bars", "epochs" or "off" (resolved)
    label: str  # the worker's slot, e.g. "cpu w1"
    worker: int = 0
    events: Any = None  # a queue to the display (bars mode)
    # The running trial (not sent between processes: set by start()).
    _trial: int | None = field(default=None, repr=False)
    _epochs: int = field(default=0, repr=False)
    _steps: int = field(default=0, repr=False)
    _started: float = field(default=0.0, repr=False)
    _samples: int = field(default=0, repr=False)
    _last_event: float = field(default=0.0, repr=False)

    def ready(self) -> None:
        """The worker starts: it says which slot it was given (and its process id)."""
        text = f"worker {self.worker} on {self.label.split()[0]} (pid {os.getpid()})\n"
        if self.mode == "epochs":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            self._send("line", text)

    def start(self, trial: int, epochs: int, steps_per_epoch: int, first_epoch: int = 1) -> None:
        self._trial, self._epochs, self._steps = trial, epochs, max(1, steps_per_epoch)
        self._started, self._samples, self._last_event = time.monotonic(), 0, 0.0
        self._send("start", trial, epochs, self._steps, (first_epoch - 1) * self._steps)

    def step(self, epoch: int, step: int, samples: int) -> None:
        """After a training step: ``samples`` trained since this run started (or resumed)."""
        self._samples = samples
        if self.mode != "bars":
            return
        now = time.monotonic()
        if now - self._last_event < STEP_EVENT_SECONDS:
            return
        self._last_event = now
        self._send("step", epoch, step, (epoch - 1) * self._steps + step, self._rate(now))

    def epoch(self, record: dict[str, Any]) -> None:
        """After an epoch's evaluation: its record (``EpochRecord.to_dict()``)."""
        epoch = int(record["epoch"])
        if self.mode == "epochs":
            metrics = " ".join(
                f"{name}={number(value)}"
                for name, value in record.items()
                if name.startswith("val_") or name == "train_loss"
            )
            rate = self._rate(time.monotonic())
            speed = f", {rate:.0f} samples/s" if rate else ""
            width = len(str(self._epochs))
            # A command trial without `fixed.epochs` does not say how many it will run.
            of = f"{epoch:>{width}}/{self._epochs}" if self._epochs else f"{epoch}"
            sys.stdout.write(
                f"  trial {self._trial} epoch {of}: {metrics} "
                f"({record['seconds']:.1f}s{speed}) on {self.label}\n"
            )
            sys.stdout.flush()
        elif self.mode == "bars":
            self._send("epoch", epoch, epoch * self._steps)

    def end(self) -> None:
        self._send("end")
        self._trial = None

    def _rate(self, now: float) -> float | None:
        elapsed = now - self._started
        return self._samples / elapsed if elapsed > 0 and self._samples else None

    def _send(self, kind: str, *values: Any) -> None:
        if self.mode == "bars" and self.events is not None:
            self.events.put((self.worker, self.label, kind, *values))


@dataclass
class QueueStream:
    """A text stream whose lines go to the bar display (picklable with its queue)."""

    events: Any

    def write(self, text: str) -> int:
        self.events.put((-1, "", "line", text))
        return len(text)

    def flush(self) -> None:
        pass


class BarDisplay:
    """The command's side in bars mode: one ``rich`` bar per worker, lines printed above them."""

    def __init__(self, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = Console(file=stream or sys.stdout)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[position]}"),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.tasks: dict[int, Any] = {}  # worker -> its bar
        self.trials: dict[int, tuple[int, int, int]] = {}  # worker -> (trial, epochs, steps)

    def handle(self, event: tuple[Any, ...]) -> None:
        worker, label, kind, *values = event
        if kind == "line":
            self.progress.console.print(
                values[0], end="", markup=False, highlight=False, soft_wrap=True
            )
            return
        task = self.tasks.get(worker)
        if task is None:
            task = self.tasks[worker] = self.progress.add_task("", total=1, position="", speed="")
        if kind == "start":
            trial, epochs, steps, done = values
            self.trials[worker] = (trial, epochs, steps)
            self.progress.reset(
                task,
                total=epochs * steps,
                completed=done,
                description=f"{label:<9} trial {trial}",
                position=f"epoch {done // steps + 1}/{epochs}",
                speed="",
                visible=True,
            )
            self.progress.refresh()  # drawn once per trial at least, however short it is
        elif kind == "step" and worker in self.trials:
            epoch, step, done, rate = values
            _, epochs, steps = self.trials[worker]
            speed = f"{rate:,.0f} samples/s" if rate else ""
            self.progress.update(
                task,
                completed=done,
                position=f"epoch {epoch}/{epochs} step {step}/{steps}",
                speed=speed,
            )
        elif kind == "epoch" and worker in self.trials:
            epoch, done = values
            _, epochs, _ = self.trials[worker]
            self.progress.update(
                task, completed=done, position=f"epoch {min(epoch + 1, epochs)}/{epochs}"
            )
        elif kind == "end":
            self.trials.pop(worker, None)
            self.progress.update(task, visible=False)

    @contextmanager
    def running(self, events: Any) -> Iterator[None]:
        """Draw the bars from ``events`` while the block runs (a thread drains the queue)."""
        done = threading.Event()

        def drain() -> None:
            while True:
                try:
                    event = events.get(timeout=0.1)
                except queue_module.Empty:
                    if done.is_set():
                        return
                    continue
                except (EOFError, OSError):
                    return
                self.handle(event)

        thread = threading.Thread(target=drain, name="hpsearch-progress", daemon=True)
        with self.progress:
            thread.start()
            try:
                yield
            finally:
                done.set()
                thread.join(timeout=5)


@dataclass
class ProgressPlan:
    """What a run shows inside trials (picklable: it goes to each worker)."""

    mode: str = "off"  # resolved: "bars", "epochs" or "off"
    events: Any = None  # the display's queue in bars mode

    def for_worker(self, worker: int, label: str) -> TrialProgress | None:
        if self.mode == "off":
            return None
        return TrialProgress(self.mode, label, worker, self.events)
