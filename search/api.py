"""The public Python API, importable from ``search``: the CLI's commands as typed functions.

Each function takes the same preparation step as its command (``search/prepare.py``): a bad
storage URL, sampler argument, model name, data file or device raises one clear error up front
(:class:`~search.errors.ConfigError`, ``StorageError`` or ``ObjectiveError``, all one line)
instead of failing every trial.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import optuna

from search.config import DEFAULT_STORAGE, StudyConfig
from search.export import export_model, exported_config, write_export
from search.prepare import prepare, setup_device
from search.report import render_report
from search.retrain import DEFAULT_SEEDS, RetrainResult, retrain
from search.study import RunSummary, open_existing_study, optimize_study

TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


def run_study(
    config: StudyConfig,
    *,
    device: str = "auto",
    workers: int = 1,
    allow_config_change: bool = False,
    on_trial: TrialCallback | None = None,
    on_start: Callable[[optuna.Study, int, int], None] | None = None,
    source: str = "config",
) -> RunSummary:
    """Create or resume the study of ``config`` and run trials until it holds ``n_trials``.

    ``device`` is ``auto`` (CUDA when available), ``cpu`` or ``cuda``; ``workers`` processes
    share the budget. ``on_trial(study, trial)`` is called after each trial (it must be
    picklable when ``workers > 1``). Returns what the call did; rerunning resumes.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    resolved = prepare(config, source, device)
    return optimize_study(
        config,
        device=resolved,
        workers=workers,
        allow_config_change=allow_config_change,
        on_trial=on_trial,
        on_start=on_start,
    )


def export_best(
    study_name: str,
    *,
    storage: str | None = None,
    output: str | Path | None = None,
    model_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The best trial as a runnable study config (plain data); written to ``output`` if given.

    ``model_dir`` also unpacks the best trial's saved model there, in its library's own form.
    """
    url = storage or DEFAULT_STORAGE
    study = open_existing_study(url, study_name)
    config = exported_config(study, storage)
    if model_dir is not None:
        export_model(study, url, Path(model_dir))
    if output is not None:
        write_export(config, Path(output))
    return config


def run_retrain(
    best_path: str | Path,
    *,
    seeds: int = DEFAULT_SEEDS,
    baseline: str | Path | None = None,
    storage: str | None = None,
    overrides: Sequence[str] = (),
    device: str = "auto",
    out: TextIO | None = None,
) -> RetrainResult:
    """Retrain an exported winner (and a baseline) with ``seeds`` seeds and compare them."""
    resolved = setup_device(device)
    return retrain(
        best_path,
        seeds=seeds,
        baseline_path=baseline,
        storage=storage,
        overrides=overrides,
        device=resolved,
        out=out or sys.stdout,
    )


def write_report(
    study_name: str, *, storage: str | None = None, folder: str | Path | None = None
) -> Path:
    """Write ``report.md`` and its figures (default folder ``report/STUDY``); return its path."""
    url = storage or DEFAULT_STORAGE
    study = open_existing_study(url, study_name)
    target = Path(folder) if folder is not None else Path("report") / study_name
    return render_report(study, target, url)
