"""Worker processes: a study's trials run to its target in one process or several, one budget.

``optimize_study`` runs until the study holds ``study.n_trials`` finished (complete + pruned)
trials, counting those from earlier commands, so rerunning the same command resumes instead of
doubling the study. With ``workers > 1`` it creates the study first, then starts that many
processes that share one budget, so one command never overshoots the target whatever the worker
count. ``run_queued`` runs a companion study's enqueued trials (retrain seeds, audit runs).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.config import StudyConfig, config_from_dict
from search.errors import WorkerError
from search.study._devices import Slot, spread, use_device
from search.study._lifecycle import (
    RunSummary,
    count_finished,
    effective_target,
    environment,
    open_study,
)
from search.study._live import ProgressPlan
from search.study._process import (
    apply_worker_policy,
    deferred_interrupts,
    stop_at_safe_point,
    threads_per_worker,
    trial_failure_tracebacks_hidden,
)
from search.trial import ENVIRONMENT, FINISHED


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

    One worker per slot: ``slots`` (from ``search.study``) places each on its device; without
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
    from search.study._runner import run_trial

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
        # A command trial's script gets its kill_grace_s to save, then up to 10 s more to die.
        grace = config.command.kill_grace_s + 10 if config.command is not None else 0.0
        _stop_workers(processes, wait_s=30 + grace)
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


def _stop_workers(processes: list[Any], wait_s: float = 30) -> None:
    """Interrupt the workers and wait until each has recorded its trial as failed.

    Workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group) and stop on
    the SIGTERM sent here: one signal each, whether this process got Ctrl-C or ``kill PID``.
    """
    for process in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
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
