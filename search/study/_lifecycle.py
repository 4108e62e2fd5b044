"""Study lifecycle: storage + sampler + pruner -> create or resume -> run trials to the target.

``run_study`` runs until the study holds ``study.n_trials`` finished (complete + pruned) trials,
counting those from earlier commands, so rerunning the same command resumes instead of doubling
the study. With ``workers > 1`` it creates the study first, then starts that many processes that
share one budget, so one command never overshoots the target whatever the worker count.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import signal
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.algorithms import build_pruner, build_sampler
from search.config import PrunerSection, StudyConfig, config_from_dict
from search.devices import Slot, spread, use_device
from search.drift import config_differences, describe
from search.errors import ConfigError, StudyError, WorkerError
from search.live import ProgressPlan
from search.process import (
    apply_worker_policy,
    deferred_interrupts,
    stop_at_safe_point,
    threads_per_worker,
    trial_failure_tracebacks_hidden,
)
from search.record import CONFIG, ENQUEUE_INDEX, ENVIRONMENT, FINISHED
from search.space import grid
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
        study.set_user_attr(CONFIG, config.to_dict(mask_password=True))
        _enqueue_once(study, config.enqueue)
    return study, created


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


def run_queued(
    study: optuna.Study,
    config: StudyConfig,
    *,
    device: str,
    workers: int = 1,
    on_trial: TrialCallback | None = None,
) -> None:
    """Run exactly the trials queued (WAITING) in ``study``, so none runs without its attrs."""
    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    if not waiting:
        return
    target = count_finished(study) + waiting
    run_config = config.model_copy(
        update={"study": config.study.model_copy(update={"n_trials": target})}
    )
    optimize_study(run_config, device=device, workers=workers, on_trial=on_trial)


TrialCallback = Callable[[optuna.Study, FrozenTrial], None]


def optimize_study(
    config: StudyConfig,
    *,
    device: str,
    workers: int = 1,
    allow_config_change: bool = False,
    on_trial: TrialCallback | None = None,
    on_start: Callable[[optuna.Study, int, int], None] | None = None,
    slots: Sequence[Slot] | None = None,
    progress: ProgressPlan | None = None,
) -> RunSummary:
    """Run trials until the study holds ``n_trials`` finished ones (or time / failures stop it).

    One worker per slot: ``slots`` (from ``search.devices``) places each on its device; without
    it, ``workers`` slots on ``device`` (``cuda`` spreads them over the visible GPUs).
    """
    slots = list(slots) if slots else spread(device, workers)
    workers = len(slots)
    study, _ = open_study(config, allow_config_change=allow_config_change, check_proxy=True)
    threads = threads_per_worker(workers, config.spec.max_threads)
    devices = list(dict.fromkeys(slot.device for slot in slots))
    study.set_user_attr(ENVIRONMENT, environment(devices[0], threads, devices))
    target = effective_target(config)
    finished_before = count_finished(study)
    remaining = max(0, target - finished_before)
    if on_start is not None:
        on_start(study, finished_before, target)
    summary = RunSummary(config.study.name, finished_before, finished_before, target)
    if remaining == 0:
        return summary
    deadline = time.monotonic() + config.study.timeout if config.study.timeout else None
    plan = progress or ProgressPlan()
    if workers <= 1:
        import torch

        torch.set_num_threads(threads)
        budget = _Budget(
            multiprocessing.Value("i", remaining),
            multiprocessing.Value("i", 0),
            multiprocessing.Value("i", 0),
        )
        worker = _Worker(slots[0], pinned=False, workers=1, progress=plan)
        with deferred_interrupts():
            _work(study, config, worker, budget, deadline, on_trial, summary.trials_run)
    else:
        budget = _run_workers(config, slots, remaining, deadline, on_trial, plan)
    summary.finished_after = count_finished(study)
    if budget.stop_code.value == _STOP_FAILURES:
        summary.stopped_because = (
            f"{config.study.max_consecutive_failures} trials failed in a row; see their `reason` "
            "with `hpsearch show` (many failed trials mean a bug, not bad luck), fix it and rerun"
        )
    elif summary.finished_after < target:
        summary.stopped_because = "timeout" if deadline else "stopped"
    return summary


_STOP_FAILURES = 1


@dataclass
class _Budget:
    """Shared between worker processes: trials left to start, failures in a row, stop code."""

    slots: Any  # multiprocessing.Value("i")
    consecutive_failures: Any
    stop_code: Any


@dataclass(frozen=True)
class _Worker:
    """One worker's place and what it shows (picklable: it goes to a spawned worker)."""

    slot: Slot
    pinned: bool  # spawned with CUDA_VISIBLE_DEVICES naming only its GPU
    workers: int  # how many share the run
    progress: ProgressPlan

    @property
    def device(self) -> str:
        return self.slot.train_device(self.pinned)

    def setup(self) -> None:
        """Make this worker's GPU the current device, with its per-device settings."""
        device = self.device
        use_device(device)
        if device.startswith("cuda"):
            import torch

            torch.cuda.set_device(torch.device(device))


def _work(
    study: optuna.Study,
    config: StudyConfig,
    worker: _Worker,
    budget: _Budget,
    deadline: float | None,
    on_trial: TrialCallback | None,
    trials_run: list[int] | None = None,
) -> None:
    # The training stack (torch) loads only where trials run: list, show, export, report and
    # validate never import it, and stay quick.
    from objectives.loop import free_device_memory
    from search.bridge import run_trial

    last: list[FrozenTrial] = []

    def remember(study: optuna.Study, trial: FrozenTrial) -> None:
        last.append(trial)
        if on_trial is not None:
            on_trial(study, trial)

    device = worker.device
    worker.setup()
    progress = worker.progress.for_worker(worker.slot.worker, worker.slot.label(worker.workers))
    if progress is not None and worker.workers > 1:
        progress.ready()

    def objective(trial: optuna.Trial) -> float:
        return run_trial(trial, config, device, slot=worker.slot, progress=progress)

    while True:
        stop_at_safe_point()  # SIGTERM / Ctrl-C between two trials
        with budget.slots.get_lock():
            if budget.slots.value <= 0 or budget.stop_code.value:
                return
            budget.slots.value -= 1
        if deadline is not None and time.monotonic() >= deadline:
            with budget.slots.get_lock():
                budget.slots.value += 1
            return
        # Another command on the same study (another machine) may have reached the target.
        if count_finished(study) >= effective_target(config):
            return
        last.clear()
        study.optimize(
            objective,
            n_trials=1,
            catch=(Exception,),
            callbacks=[remember],
            gc_after_trial=True,
        )
        free_device_memory(device)
        trial = last[-1] if last else None
        if trial is not None and trials_run is not None:
            trials_run.append(trial.number)
        with budget.slots.get_lock():
            if trial is None or trial.state not in FINISHED:
                budget.slots.value += 1  # a failed trial does not count: run another
                budget.consecutive_failures.value += 1
                if budget.consecutive_failures.value >= config.study.max_consecutive_failures:
                    budget.stop_code.value = _STOP_FAILURES
            else:
                budget.consecutive_failures.value = 0


def _run_workers(
    config: StudyConfig,
    slots: Sequence[Slot],
    remaining: int,
    deadline: float | None,
    on_trial: TrialCallback | None,
    progress: ProgressPlan,
) -> _Budget:
    context = multiprocessing.get_context("spawn")
    budget = _Budget(context.Value("i", remaining), context.Value("i", 0), context.Value("i", 0))
    quiet = trial_failure_tracebacks_hidden()
    workers = len(slots)
    processes = [
        context.Process(
            target=_worker_main,
            args=(
                config.to_dict(mask_password=False),
                _Worker(slot, pinned=slot.gpu is not None, workers=workers, progress=progress),
                budget,
                deadline,
                on_trial,
                quiet,
            ),
            name=f"hpsearch-worker-{slot.worker}",
        )
        for slot in slots
    ]
    for process, slot in zip(processes, slots, strict=True):
        _start_pinned(process, slot)
    try:
        _wait_for_all(processes)
    except KeyboardInterrupt:
        _stop_workers(processes)
        raise
    failed = [p for p in processes if p.exitcode not in (0, None)]
    if failed and any(p.exitcode == 130 for p in failed):
        raise KeyboardInterrupt
    if failed:
        raise WorkerError(
            f"{len(failed)} of {workers} workers exited with an error (exit codes "
            f"{', '.join(str(p.exitcode) for p in failed)}); see the messages above and rerun "
            "the same command to resume"
        )
    return budget


def _wait_for_all(processes: list[Any]) -> None:
    """Wait until every worker has exited, back in the interpreter at least twice a second.

    A Ctrl-C or SIGTERM can be delivered to any thread of this process (libraries start native
    threads); Python then runs its handler only when the main thread next executes bytecode. A
    main thread blocked in ``join()`` without a timeout would not notice the signal until a
    worker exits on its own, after the study has finished.
    """
    from multiprocessing.connection import wait

    pending = list(processes)
    while pending:
        wait([process.sentinel for process in pending], timeout=0.5)
        pending = [process for process in pending if process.exitcode is None]
    for process in processes:
        process.join()


def _start_pinned(process: Any, slot: Slot) -> None:
    """Start a spawned worker that sees only its slot's GPU (``CUDA_VISIBLE_DEVICES``).

    A spawned process takes its environment from this one when it starts, before it imports
    torch: the variable is set for the start only, then put back.
    """
    visible = slot.visible_devices()
    if visible is None:
        process.start()
        return
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = visible
    try:
        process.start()
    finally:
        if previous is None:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = previous


def _stop_workers(processes: list[Any]) -> None:
    """Interrupt the workers and wait until each has recorded its trial as failed.

    Workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group) and stop on
    the SIGTERM sent here: one signal each, whether this process got Ctrl-C or ``kill PID``.
    """
    for process in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        process.join(timeout=30)
    for process in processes:
        if process.is_alive():
            # Stuck: its trial stays RUNNING until the heartbeat grace marks it failed.
            process.kill()
            process.join()


def _worker_main(
    config_data: dict[str, Any],
    worker: _Worker,
    budget: _Budget,
    deadline: float | None,
    on_trial: TrialCallback | None,
    quiet: bool = True,
) -> None:
    import torch

    apply_worker_policy(quiet)
    config = config_from_dict(config_data)
    torch.set_num_threads(threads_per_worker(worker.workers, config.spec.max_threads))
    index = worker.slot.worker
    try:
        study, _ = open_study(config, allow_config_change=True, worker_index=index)
        # The monotonic clock is system-wide on Linux, so the parent's deadline holds here.
        _work(study, config, worker, budget, deadline, on_trial)
    except KeyboardInterrupt:
        sys.exit(130)


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
