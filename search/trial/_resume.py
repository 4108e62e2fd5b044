"""Preemption-safe trials: save a running trial's state, and continue it when it is retried.

A trial that is killed (SIGKILL, reaped by the heartbeat) or interrupted (SIGTERM, Ctrl-C) is
retried with the same parameters: the heartbeat's callback or :func:`enqueue_retry` queues a
new trial marked with Optuna's ``failed_trial`` (the first trial of the chain) and
``retry_history`` system attrs. The retry loads the chain's state file (``storage.resume_files``),
checks that it belongs to the same run (config, parameters, seed, torch and hpsearch major
versions), carries over the dead trial's epochs and intermediate values, and continues the loop
where it stopped. Anything unusable: the retry trains from epoch 1 and says why in ``reason``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from objectives.loop_state import LoopState
from search.config import StudyConfig
from search.trial._files import config_artifact_dir
from search.trial._keys import AUDITED_TRIAL, ENQUEUE_INDEX, TRAINING_SEED
from search.version import __version__
from storage import resume_files

FORMAT = 1
# User attrs that say what a trial runs (not what it produced): a retry keeps them.
INPUT_ATTRS = (TRAINING_SEED, AUDITED_TRIAL, ENQUEUE_INDEX)
FAILED_TRIAL = "failed_trial"  # Optuna's system attrs on a retry
RETRY_HISTORY = "retry_history"


def _major(version: str) -> str:
    return version.split(".")[0].split("+")[0]


@dataclass(frozen=True)
class Chain:
    """A trial's place in its chain of retries."""

    first: int  # the number of the chain's first trial (names the state file)
    previous: int | None  # the trial this one retries; None for a first attempt


def chain_of(trial: optuna.Trial) -> Chain:
    system = _system_attrs(trial)
    history = system.get(RETRY_HISTORY) or []
    if not history:
        return Chain(trial.number, None)
    return Chain(int(system.get(FAILED_TRIAL, history[0])), int(history[-1]))


def _system_attrs(trial: optuna.Trial) -> dict[str, Any]:
    return trial.study._storage.get_trial_system_attrs(trial._trial_id)


def fingerprint(config: StudyConfig, params: dict[str, Any], seed: int) -> str:
    """What must be equal for a state to continue this run: objective, data, parameters, seed."""
    what = {
        "objective": config.objective,
        "data": config.data_config().model_dump(mode="json"),
        "data_seed": config.data_seed,
        "seed": seed,
        "params": params,
        "metric": config.metric,
        "maximize": config.maximize,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


class TrialResume:
    """Where one trial saves its state, whether it continues an earlier one, and its writer.

    Saving costs the loop only a copy of the state in memory: the file is written (serialised,
    flushed to disk, moved into place) by a background thread while training goes on. One write
    at a time; :meth:`flush` waits for it (before the process ends or the file is removed).
    """

    def __init__(self, path: Path, fingerprint: str, chain: Chain, trial_number: int) -> None:
        self.path, self.fingerprint = path, fingerprint
        self.chain, self.trial_number = chain, trial_number
        self._writing: threading.Thread | None = None
        self._error: BaseException | None = None
        # Set when a write failed (a full disk): the trial trains on without saving and says so.
        self.problem: str | None = None

    @classmethod
    def of(
        cls,
        trial: optuna.Trial,
        chain: Chain,
        config: StudyConfig,
        params: dict[str, Any],
        seed: int,
    ) -> TrialResume:
        path = resume_files.resume_path(
            config_artifact_dir(config), trial.study.study_name, chain.first
        )
        return cls(path, fingerprint(config, params, seed), chain, trial.number)

    def load(self) -> tuple[LoopState | None, str | None]:
        """The state to continue from, or None and why not (None, None: not a retry)."""
        if self.chain.previous is None:
            return None, None
        if not self.path.exists():
            return None, f"no resume state of trial {self.chain.previous}"
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            meta, loop = saved["hpsearch"], saved["loop"]
        except Exception as e:  # corrupt, truncated, not ours: never a crash
            return None, f"resume state {self.path.name} unreadable ({type(e).__name__})"
        why = self._incompatible(meta)
        if why:
            return None, why
        try:
            return LoopState.from_dict(loop), None
        except Exception as e:
            return None, f"resume state {self.path.name} unusable ({type(e).__name__}: {e})"

    def _incompatible(self, meta: Any) -> str | None:
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            return "resume state of another format"
        if meta.get("hpsearch") != _major(__version__):
            return f"resume state from hpsearch {meta.get('hpsearch')}.x"
        if meta.get("torch") != _major(torch.__version__):
            return f"resume state from torch {meta.get('torch')}.x"
        if meta.get("fingerprint") != self.fingerprint:
            return "resume state from a different config or parameter set"
        return None

    def save(self, state: LoopState) -> None:
        """Copy the state (the loop goes on changing the model) and write it in the background."""
        self.flush()
        if self.problem is not None:
            return
        meta = {
            "format": FORMAT,
            "hpsearch": _major(__version__),
            "torch": _major(torch.__version__),
            "fingerprint": self.fingerprint,
            "trial": self.trial_number,
        }
        content = {"hpsearch": meta, "loop": snapshot(state.to_dict())}
        self._writing = threading.Thread(
            target=self._write, args=(content,), name="hpsearch-resume-writer", daemon=True
        )
        self._writing.start()

    def _write(self, content: dict[str, Any]) -> None:
        try:
            resume_files.write(self.path, lambda stream: torch.save(content, stream))
        except BaseException as e:  # reported by the next flush, in the trial's thread
            self._error = e

    def flush(self) -> None:
        """Wait for the write in progress; a failed write turns saving off (``problem``)."""
        if self._writing is not None:
            self._writing.join()
            self._writing = None
        if self._error is not None:
            error, self._error = self._error, None
            if not isinstance(error, Exception):
                raise error
            self.problem = f"resume state not saved: {error}"

    def discard(self) -> None:
        """The run's work is finished: no state is needed any more."""
        self.flush()
        resume_files.remove(self.path)


def snapshot(value: Any) -> Any:
    """A copy of nested dicts and lists with every tensor copied to CPU memory."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(snapshot(v) for v in value)
    return value


def enqueue_retry(trial: optuna.Trial) -> None:
    """Queue the same parameters again as a retry of ``trial`` (run before new samples)."""
    system = _system_attrs(trial)
    history = [*(system.get(RETRY_HISTORY) or []), trial.number]
    inputs = {k: v for k, v in trial.user_attrs.items() if k in INPUT_ATTRS}
    kept = {k: v for k, v in system.items() if not k.startswith(("artifacts:", "dashboard:"))}
    trial.study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=inputs,
            system_attrs={**kept, FAILED_TRIAL: history[0], RETRY_HISTORY: history},
        )
    )
