"""The public Python API, importable from ``search``: the CLI's commands as typed functions.

Each function takes the same preparation step as its command (``search/study/_prepare.py``): a bad
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
from search.readout import (
    export_model,
    exported_config,
    exported_front,
    render_report,
    write_export,
    write_front,
)
from search.retrain import DEFAULT_SEEDS, RetrainResult, retrain
from search.study import (
    ProgressPlan,
    RunSummary,
    check_buildable,
    open_existing_study,
    optimize_study,
    plan_placement,
    setup_device,
)

TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


def run_study(
    config: StudyConfig,
    *,
    device: str | None = None,
    workers: int | None = None,
    devices: str | None = None,
    trials_per_device: int | None = None,
    allow_config_change: bool = False,
    on_trial: TrialCallback | None = None,
    on_start: Callable[[optuna.Study, int, int], None] | None = None,
    progress: ProgressPlan | None = None,
    source: str = "config",
) -> RunSummary:
    """Create or resume the study of ``config`` and run trials until it holds ``n_trials``.

    Placement: ``device`` (``auto`` by default: every visible GPU, else the CPU; ``cpu``,
    ``cuda``, ``cuda:N``) with ``workers`` processes sharing the budget, or ``devices``
    (``"cuda:0,cuda:1"``, ``"cpu,cpu"``) with ``trials_per_device`` workers on each.
    ``on_trial(study, trial)`` is called after each trial (it must be picklable with several
    workers). ``progress`` shows training inside trials (``search.study``). Returns what the
    call did; rerunning resumes.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    check_buildable(config, source)
    slots = plan_placement(
        device=device, devices=devices, workers=workers, trials_per_device=trials_per_device
    )
    return optimize_study(
        config,
        device=slots[0].device,
        workers=len(slots),
        slots=slots,
        allow_config_change=allow_config_change,
        on_trial=on_trial,
        on_start=on_start,
        progress=progress,
    )


def export_best(
    study_name: str,
    *,
    storage: str | None = None,
    output: str | Path | None = None,
    model_dir: str | Path | None = None,
    trial: int | None = None,
) -> dict[str, Any]:
    """The best trial (or trial ``trial``) as a runnable study config (plain data); written to
    ``output`` if given.

    ``model_dir`` also unpacks that trial's saved model there, in its library's own form. A
    study with several metrics needs ``trial`` (or :func:`export_front`).
    """
    url = storage or DEFAULT_STORAGE
    study = open_existing_study(url, study_name)
    config = exported_config(study, storage, trial=trial)
    if model_dir is not None:
        export_model(study, url, Path(model_dir), trial=trial)
    if output is not None:
        write_export(config, Path(output))
    return config


def export_front(study_name: str, folder: str | Path, *, storage: str | None = None) -> list[Path]:
    """Every member of a multi-objective study's Pareto front as ``folder/trial-N.yaml``."""
    study = open_existing_study(storage or DEFAULT_STORAGE, study_name)
    return write_front(exported_front(study, storage), Path(folder))


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
