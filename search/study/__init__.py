"""Running a study: open or create it, start its workers, run each trial, write its record.

Modules: ``_lifecycle`` (open, create, resume, the run's summary), ``_workers`` (one process
or several sharing one budget: ``optimize_study``, ``run_queued``), ``_runner`` (one Optuna trial
-> one training run: sample, build, train, report, prune), ``_writer`` (the trial record as it is
written), ``_devices`` and ``_prepare`` (which device each worker trains on, checked before
anything runs), ``_process`` (signals, threads and library noise per process), ``_live``
(progress bars and lines) and ``_delete``.

``run_trial`` and ``loop_settings`` load the training stack (torch); they load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.study._delete import delete_study
from search.study._devices import Slot, parse_devices, plan_slots, spread
from search.study._lifecycle import RunSummary, companion_config, open_existing_study, open_study
from search.study._live import MODES, BarDisplay, ProgressPlan, QueueStream, resolve_mode
from search.study._prepare import check_buildable, plan_placement, setup_device
from search.study._process import apply_command_policy, prefer_passive_threads, quiet_libraries
from search.study._workers import optimize_study, run_queued
from search.study._writer import TrialWriter

if TYPE_CHECKING:
    from search.study._runner import loop_settings, run_trial

__all__ = [
    "MODES",
    "BarDisplay",
    "ProgressPlan",
    "QueueStream",
    "RunSummary",
    "Slot",
    "TrialWriter",
    "apply_command_policy",
    "check_buildable",
    "companion_config",
    "delete_study",
    "loop_settings",
    "open_existing_study",
    "open_study",
    "optimize_study",
    "parse_devices",
    "plan_placement",
    "plan_slots",
    "prefer_passive_threads",
    "quiet_libraries",
    "resolve_mode",
    "run_queued",
    "run_trial",
    "setup_device",
    "spread",
]

# Names whose modules load torch: imported on first use (see the docstring).
_LAZY = {
    "loop_settings": "search.study._runner",
    "run_trial": "search.study._runner",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
