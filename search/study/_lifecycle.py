"""Study lifecycle: storage + sampler + pruner -> a study created, or opened to resume.

``open_study`` creates a study or opens the one a config names (refusing a changed config unless
told), enqueues a grid or fixed trials once, and records the resolved config and environment.
The workers that then run its trials are ``_workers.py``'s; ``RunSummary`` is what they report.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import optuna

from search.config import PrunerSection, StudyConfig, config_differences, describe
from search.errors import ConfigError, StudyError
from search.pruning import build_pruner, build_sampler
from search.trial import CONFIG, DATA_VERSION, ENQUEUE_INDEX, FINISHED, grid
from search.version import __version__
from storage.connect import open_storage
from storage.proxy import ProxyClient
from storage.urls import StorageUrl, parse_storage_url


@dataclass
class RunSummary:
    """What one ``run_study`` call did."""

    study_name: str
    finished_before: int
    finished_after: int
    target: int
    stopped_because: str | None = None  # None when the target was reached
    trials_run: list[int] = field(default_factory=list)


def open_study(
    config: StudyConfig,
    *,
    allow_config_change: bool = False,
    worker_index: int = 0,
    check_proxy: bool = False,
) -> tuple[optuna.Study, bool]:
    """Create the study, or load it and check its config has not drifted. Returns (study, new).

    With ``check_proxy``, a gRPC proxy that cannot recover dead workers' trials (Optuna's plain
    one rather than ``hpsearch storage-proxy``) gets a warning on stderr.
    """
    sampler = build_sampler(config)
    pruner = build_pruner(config.pruner)
    storage_url = parse_storage_url(config.study.storage)
    storage = open_storage(
        storage_url,
        create=True,
        heartbeat_interval=config.study.heartbeat_interval,
        heartbeat_grace=config.study.heartbeat_grace,
    )
    existing = _find_study(storage, config.study.name)
    if existing is not None:
        stored = existing.user_attrs.get(CONFIG)
        stored_directions = [d.name.lower() for d in existing.directions]
        if stored_directions != config.directions:
            raise ConfigError(
                f"study {config.study.name!r} already exists in {storage_url.masked} with "
                f"direction {', '.join(stored_directions)}, but metric "
                f"{config.study.metric!r} needs {', '.join(config.directions)}; use another "
                "--study-name"
            )
        stored_metric = ((stored or {}).get("study") or {}).get("metric")
        if stored_metric is not None:
            before = [stored_metric] if isinstance(stored_metric, str) else list(stored_metric)
            if len(before) > 1 and before != list(config.metrics):
                # Each trial's values are stored in this order: even --allow-config-change
                # cannot reorder or rename them without mixing up the columns.
                raise ConfigError(
                    f"study {config.study.name!r} in {storage_url.masked} stores the values of "
                    f"metrics {', '.join(before)} in that order; metric "
                    f"{', '.join(config.metrics)} cannot continue it; use another --study-name"
                )
        _check_data_version(config, existing, storage_url)
        if stored is not None and not allow_config_change:
            differences = config_differences(stored, config.to_dict())
            if differences:
                raise ConfigError(
                    f"study {config.study.name!r} in {storage_url.masked} was run with another "
                    f"config ({describe(differences)}); use a new --study-name, or "
                    "pass --allow-config-change to continue it with the new config anyway"
                )
    study, created = _create_or_load(config, storage, sampler, pruner, existing is None)
    if (
        check_proxy
        and isinstance(storage, ProxyClient)
        and not storage.relays_heartbeats(storage.get_study_id_from_name(config.study.name))
    ):
        print(
            f"hpsearch: warning: {storage_url.masked} is not `hpsearch storage-proxy` (a plain "
            "Optuna proxy has no heartbeats): a killed worker's trial stays RUNNING and is "
            "never retried; serve the database with `hpsearch storage-proxy` instead",
            file=sys.stderr,
        )
    existing_trials = len(study.get_trials(deepcopy=False))
    if not created or worker_index:
        # Resumed, a worker, or a second command that raced to create the same study: a seed
        # of its own (the process id), or it would sample what the others sample.
        offset = existing_trials + 7919 * worker_index + (0 if created else os.getpid())
        study.sampler = build_sampler(config, seed_offset=offset)
    if not created and CONFIG not in study.user_attrs:
        _wait_for_creator(study)
    if CONFIG not in study.user_attrs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # The dashboard then says "val_loss" instead of "Objective 0".
            study.set_metric_names(list(config.metrics))
        if config.spec.data_version is not None:
            study.set_user_attr(DATA_VERSION, config.spec.data_version)
        study.set_user_attr(CONFIG, config.to_dict(mask_password=True))
        _enqueue_once(study, config.enqueue)
    return study, created


def _check_data_version(
    config: StudyConfig, existing: optuna.study.Study, storage_url: StorageUrl
) -> None:
    """Refuse to resume a study whose trials trained on data of another generator version."""
    version = config.spec.data_version
    if version is None or CONFIG not in existing.user_attrs:
        return
    # Studies from before versions were recorded hold no version: generator 1.
    stored = existing.user_attrs.get(DATA_VERSION) or 1
    if stored != version:
        raise ConfigError(
            f"study {config.study.name!r} in {storage_url.masked} was made by version {stored} "
            f"of the {config.objective} data generator, and this hpsearch has version {version}: "
            "its trials trained on other data; run it under a new --study-name"
        )


def _create_or_load(
    config: StudyConfig,
    storage: optuna.storages.BaseStorage,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    try_create: bool,
) -> tuple[optuna.Study, bool]:
    """The study, and whether this call created it (of two commands racing, exactly one did)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if try_create:
            try:
                study = optuna.create_study(
                    storage=storage,
                    sampler=sampler,
                    pruner=pruner,
                    study_name=config.study.name,
                    directions=config.directions,
                )
                return study, True
            except optuna.exceptions.DuplicatedStudyError:
                pass
        study = optuna.load_study(
            study_name=config.study.name, storage=storage, sampler=sampler, pruner=pruner
        )
        return study, False


def _wait_for_creator(study: optuna.Study, seconds: float = 10.0) -> None:
    """Give the command that just created the study time to store its config and enqueue.

    Without this, a second command started at the same moment would enqueue the same entries
    again. A study still without config after that was left by a creator that died: adopt it.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not study.get_trials(deepcopy=False):
        time.sleep(0.2)
        if CONFIG in study.user_attrs:
            return


def _enqueue_once(study: optuna.Study, entries: list[dict[str, Any]]) -> None:
    """Enqueue each entry once, in order, even if two commands create the study together.

    Entries are told apart by position, not by parameters, so a config may enqueue the same
    parameters twice on purpose (e.g. to see the run-to-run noise).
    """
    done = {t.user_attrs.get(ENQUEUE_INDEX) for t in study.get_trials(deepcopy=False)}
    for index, params in enumerate(entries):
        if index not in done:
            study.enqueue_trial(params, user_attrs={ENQUEUE_INDEX: index})


def _find_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.study.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def environment(device: str, threads: int, devices: list[str] | None = None) -> dict[str, Any]:
    """Package versions, device(s) and thread count, stored with the study."""
    versions = {}
    for package in ("torch", "optuna", "transformers", "datasets", "sqlalchemy", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "hpsearch": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "devices": devices or [device],
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "packages": versions,
    }


def effective_target(config: StudyConfig) -> int:
    """``n_trials``, capped at the grid size for the grid sampler (it cannot run more)."""
    if config.sampler.name == "grid" and config.search:
        size = 1
        for choices in grid(config).values():
            size *= len(choices)
        return min(config.study.n_trials, size)
    return config.study.n_trials


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def companion_config(
    config: StudyConfig,
    *,
    name: str,
    storage: str,
    n_trials: int,
    max_consecutive_failures: int,
    fixed: dict[str, Any] | None = None,
) -> StudyConfig:
    """A study that trains given parameter sets of ``config`` (retrain seeds, audited trials).

    Its own name and storage, no pruner, nothing enqueued from the config: the caller enqueues
    each run with the user attrs that identify it and runs exactly those (:func:`run_queued`).
    A multi-objective config becomes a study of its training metric alone, without
    ``constraints:`` (the runs are compared on that metric; their costs were checked already).
    """
    study = config.study.model_copy(
        update={
            "name": name,
            "storage": storage,
            "n_trials": n_trials,
            "timeout": None,
            "max_consecutive_failures": max_consecutive_failures,
            # Trained again to be compared on the training metric: one objective, no bounds.
            "metric": config.metric,
        }
    )
    return config.model_copy(
        update={
            "study": study,
            "constraints": {},
            "pruner": PrunerSection(name="none"),
            "fixed": {**config.fixed, **(fixed or {})},
            "enqueue": [],
            "best": None,
            "retrain": None,
        }
    )


def open_existing_study(url: str, name: str) -> optuna.Study:
    """Load a study for reading; never creates a database or a study."""
    storage_url: StorageUrl = parse_storage_url(url)
    storage = open_storage(storage_url, create=False)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError as e:
        names = optuna.study.get_all_study_names(storage)
        known = ", ".join(names[:20]) if names else "none"
        raise StudyError(
            f"no study {name!r} in {storage_url.masked}; studies there: {known} "
            "(`hpsearch list` shows them)"
        ) from e
