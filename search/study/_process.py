"""Process policy: threads, signals and library logging, set once per command or worker.

The CLI applies :func:`apply_command_policy` before it runs a command; worker processes apply
:func:`apply_worker_policy`. A library caller (``search.run_study``) gets neither: logging and
signals belong to whoever owns the process (Optuna logs as it always does there).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import optuna


def prefer_passive_threads() -> None:
    """Idle OpenMP threads sleep instead of spinning.

    A spinning thread that shares a core with another worker or the dashboard slows training
    ten-fold. Only effective before torch is first imported; a value the user set wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def threads_per_worker(workers: int, cap: int | None = None) -> int:
    """``cores // workers`` torch threads, capped by what the objective can use.

    Tiny models (the toy Transformer) run fastest on one thread: intra-op parallelism costs
    more than it saves on their small matrices, and spinning threads collapse when another
    process shares the cores. Use ``--workers`` to use more cores with them.
    """
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    return min(threads, cap) if cap else threads


class _TrialFailureLogFilter(logging.Filter):
    """Drops Optuna's per-failure warning (a traceback); ``run`` prints one line with the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Trial ") and " failed with " in message)


_TRIAL_FAILURE_FILTER = _TrialFailureLogFilter()
_OPTIMIZE_LOGGER = "optuna.study._optimize"


def quiet_libraries(debug: bool = False) -> None:
    """Optuna logs warnings only (our per-trial lines replace its INFO log), and unless ``debug``
    no traceback per failed trial (the reason is stored with the trial and printed in one line).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not debug:
        logger = logging.getLogger(_OPTIMIZE_LOGGER)
        if _TRIAL_FAILURE_FILTER not in logger.filters:
            logger.addFilter(_TRIAL_FAILURE_FILTER)


def trial_failure_tracebacks_hidden() -> bool:
    return _TRIAL_FAILURE_FILTER in logging.getLogger(_OPTIMIZE_LOGGER).filters


def redeliver_lost_interrupts(signum: int = signal.SIGINT) -> None:
    """Send a Ctrl-C / SIGTERM again when Python swallowed it.

    A KeyboardInterrupt raised while a finalizer runs (``__del__``, a weakref callback) is
    printed as "Exception ignored in ..." and dropped, and the command would go on training.
    Raise it again at the next safe point instead, quietly.
    """
    if getattr(sys.unraisablehook, "_hpsearch", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            os.kill(os.getpid(), signum)
            return
        previous(unraisable)

    hook._hpsearch = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


# Set by apply_command_policy: this process is an `hpsearch` command (signals are ours).
_COMMAND_POLICY = False
# Set by the first SIGTERM / Ctrl-C while trials run (see deferred_interrupts).
_STOP_REQUESTED = False


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def apply_command_policy(debug: bool) -> None:
    """What every ``hpsearch`` command process does first: quiet logs, SIGTERM as Ctrl-C."""
    global _COMMAND_POLICY
    quiet_libraries(debug)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    redeliver_lost_interrupts()
    _COMMAND_POLICY = True


def apply_worker_policy(quiet: bool) -> None:
    """A spawned worker: Ctrl-C is for the parent; the parent's SIGTERM stops the worker.

    A terminal's Ctrl-C reaches the whole process group, so the worker ignores SIGINT and waits
    for the parent's one SIGTERM, which it takes as a stop request (:func:`deferred_interrupts`):
    the trial in progress saves its state at the next step and is recorded as interrupted.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _request_stop)
    redeliver_lost_interrupts(signal.SIGTERM)
    quiet_libraries(debug=not quiet)


# --------------------------------------------------------------------------- stop requests


def interrupt_requested() -> bool:
    """Whether SIGTERM or Ctrl-C asked this process to stop at the next safe point."""
    return _STOP_REQUESTED


def stop_at_safe_point() -> None:
    """Raise ``KeyboardInterrupt`` here when a stop was requested."""
    if _STOP_REQUESTED:
        raise KeyboardInterrupt


def _request_stop(signum: int, frame: Any) -> None:
    global _STOP_REQUESTED
    if _STOP_REQUESTED:
        raise KeyboardInterrupt  # asked twice: stop now
    _STOP_REQUESTED = True


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """While trials run in this process, SIGTERM and Ctrl-C request a stop instead of raising.

    A ``KeyboardInterrupt`` raised at an arbitrary point can land inside a storage write and
    leave a connection holding the database's write lock; a request is acted on at safe points
    instead: between training steps (the trial saves its state and ends as interrupted) and
    between trials. A second signal raises at once. Only in ``hpsearch`` command processes:
    a library caller's signals stay its own.
    """
    if not _COMMAND_POLICY or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, _request_stop)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
