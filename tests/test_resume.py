"""Preemption-safe trials on real processes: SIGTERM, SIGKILL, and what a retry continues from.

Every test runs the CLI as a subprocess on a real SQLite file, signals it for real once the
storage shows the state the test needs, and compares the resumed trial with the same trial run
without interruption (same seed, same parameters): bit-identical epochs on the CPU.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from optuna.trial import FrozenTrial, TrialState

from tests.test_reliability import (
    INTERRUPTED,
    finish,
    freeze_when,
    load_trials,
    resume_states,
    start,
    states,
    write,
)

# One trial of 12 epochs of 75 steps (2400 sequences, batch 32): each epoch is many steps to stop
# inside, and the run is long enough (a second or more) for the test to catch it training.
LONG_TRIAL: dict[str, Any] = {
    "study": {"n_trials": 1},
    "fixed": {"epochs": 12, "dropout": 0.1},
    "data": {"n_train": 2400},
}


def saved_states(folder: Path) -> list[Path]:
    return [p for p in resume_states(folder) if p.suffix == ".pt"]


def training(least: int, most: int) -> Callable[[list[FrozenTrial]], bool]:
    """A running trial with ``least`` to ``most`` epochs stored: it is inside its training loop
    (or writing the next epoch's record), where a stop request lands at the next step."""

    def ready(trials: list[FrozenTrial]) -> bool:
        return any(
            t.state == TrialState.RUNNING and least <= len(t.user_attrs.get("epochs") or []) <= most
            for t in trials
        )

    return ready


def stop_while_training(
    folder: Path, process: subprocess.Popen[str], least: int, most: int, how: signal.Signals
) -> None:
    """Freeze the run inside a trial's training loop, signal it, let it go on."""
    freeze_when(folder, training(least, most), process)
    process.send_signal(how)
    process.send_signal(signal.SIGCONT)


def uninterrupted(folder: Path) -> FrozenTrial:
    folder.mkdir()
    config = write(folder, LONG_TRIAL)
    code, _, err = finish(start("run", str(config), cwd=folder))
    assert code == 0, err
    (trial,) = load_trials(folder)
    return trial


def assert_same_trial(resumed: FrozenTrial, reference: FrozenTrial) -> None:
    assert resumed.params == reference.params
    assert resumed.intermediate_values == reference.intermediate_values  # each epoch once, equal
    ours, theirs = resumed.user_attrs["epochs"], reference.user_attrs["epochs"]
    assert [e["epoch"] for e in ours] == [e["epoch"] for e in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert (a["train_loss"], a["val_loss"], a["val_accuracy"]) == (
            b["train_loss"],
            b["val_loss"],
            b["val_accuracy"],
        )
    assert resumed.value == reference.value
    assert resumed.user_attrs["best_epoch"] == reference.user_attrs["best_epoch"]
    for key in ("test_loss", "test_accuracy"):
        assert resumed.user_attrs[key] == reference.user_attrs[key]


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_the_state_and_the_rerun_continues_exactly(
    tmp_path: Path,
) -> None:
    reference = uninterrupted(tmp_path / "reference")
    config = write(tmp_path, LONG_TRIAL)
    process = start("run", str(config), cwd=tmp_path)
    stop_while_training(tmp_path, process, 2, 10, signal.SIGTERM)
    code, out, err = finish(process, timeout=120)
    assert code == 130 and err == INTERRUPTED, (out, err)

    (dead, retry) = sorted(load_trials(tmp_path), key=lambda t: t.number)
    assert (dead.state, retry.state) == (TrialState.FAIL, TrialState.WAITING)
    assert retry.params == dead.params and retry.system_attrs["failed_trial"] == 0
    reason = dead.user_attrs["reason"]
    assert reason.startswith("interrupted at epoch ") and "resumes there" in reason, reason
    epoch, step = (int(x) for x in reason.split("epoch ")[1].split(";")[0].split(", step "))
    # Stopped inside an epoch, at the next step: not at the end of the epoch.
    assert epoch == len(dead.user_attrs["epochs"]) + 1 and step > 0
    assert [p.name for p in resume_states(tmp_path)] == ["trial-0.pt"]

    code, out, err = finish(start("run", str(config), cwd=tmp_path))
    assert code == 0 and err == "", err
    assert f"(continued trial 0 at epoch {epoch}, step {step})" in out
    trials = sorted(load_trials(tmp_path), key=lambda t: t.number)
    assert states(trials) == ["FAIL", "COMPLETE"]
    resumed = trials[1]
    assert resumed.user_attrs["resumed_from"] == {"trial": 0, "epoch": epoch, "step": step}
    # The dead trial's epochs are carried over as they were, timings included.
    assert resumed.user_attrs["epochs"][: epoch - 1] == dead.user_attrs["epochs"]
    assert_same_trial(resumed, reference)
    assert "reason" not in resumed.user_attrs or resumed.user_attrs["reason"] is None
    assert resume_states(tmp_path) == [], "a finished trial leaves no state behind"


@pytest.mark.slow
def test_kill_9_then_the_heartbeat_retry_continues_from_the_last_epoch(tmp_path: Path) -> None:
    reference = uninterrupted(tmp_path / "reference")
    config = write(tmp_path, LONG_TRIAL)
    process = start("run", str(config), cwd=tmp_path)
    # Frozen, the process cannot finish its trial between the check and the kill.
    trials = freeze_when(tmp_path, training(2, 10), process)
    dead = next(t for t in trials if t.state == TrialState.RUNNING)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    saved = torch.load(saved_states(tmp_path)[0], weights_only=True)["loop"]
    assert saved["step"] == 0 and saved["epoch"] >= len(dead.user_attrs["epochs"])
    # Not a race: the last heartbeat was written before the kill, so after the grace period
    # (2 s) the rerun finds it stale for certain, fails it and retries its parameters.
    time.sleep(2.5)
    code, _, err = finish(start("run", str(config), cwd=tmp_path))
    assert code == 0 and err == "", err
    trials = sorted(load_trials(tmp_path), key=lambda t: t.number)
    assert states(trials) == ["FAIL", "COMPLETE"]
    resumed = trials[1]
    assert resumed.system_attrs["failed_trial"] == 0
    assert resumed.user_attrs["resumed_from"] == {"trial": 0, "epoch": saved["epoch"], "step": 0}
    assert_same_trial(resumed, reference)
    assert resume_states(tmp_path) == []


@pytest.mark.slow
def test_an_unusable_state_is_never_resumed(tmp_path: Path) -> None:
    """End to end with a truncated file; every other unusable kind (another torch or hpsearch
    major, format or parameter set, a missing file) is refused in process, with its reason, by
    ``tests/search/test_trial_resume.py``."""
    config = write(tmp_path, deep_epochs(12))
    process = start("run", str(config), cwd=tmp_path)
    stop_while_training(tmp_path, process, 1, 10, signal.SIGTERM)
    code, _, err = finish(process, timeout=120)
    assert code == 130, err
    path = saved_states(tmp_path)[0]
    path.write_bytes(path.read_bytes()[:1000])
    expected = "unreadable"

    code, _, err = finish(start("run", str(config), cwd=tmp_path))
    assert code == 0 and err == "", err
    retry = sorted(load_trials(tmp_path), key=lambda t: t.number)[1]
    assert retry.state == TrialState.COMPLETE
    assert "resumed_from" not in retry.user_attrs
    assert [e["epoch"] for e in retry.user_attrs["epochs"]] == list(range(1, 13))
    assert (
        expected in retry.user_attrs["reason"]
        and "trained from epoch 1" in retry.user_attrs["reason"]
    )
    assert resume_states(tmp_path) == []


def deep_epochs(epochs: int) -> dict[str, Any]:
    return {**LONG_TRIAL, "fixed": {"epochs": epochs}}


@pytest.mark.slow
def test_delete_removes_the_studys_resume_states(tmp_path: Path) -> None:
    config = write(tmp_path, deep_epochs(12))
    process = start("run", str(config), cwd=tmp_path)
    stop_while_training(tmp_path, process, 1, 10, signal.SIGTERM)
    assert finish(process, timeout=120)[0] == 130
    assert [p.name for p in resume_states(tmp_path)] == ["trial-0.pt"]
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    code, _, err = finish(start("delete", "micro", "--storage", storage, "--yes", cwd=tmp_path))
    assert code == 0, err
    assert resume_states(tmp_path) == []
    assert not (tmp_path / "hp-artifacts" / "resume").exists()
