"""Crash-safe resume, interrupts, parallel workers and trial faults, on real processes.

Every test runs the CLI as a subprocess on a real SQLite file and kills or signals it for real;
``tests/faulty_objective.py`` supplies a toy objective that fails for real on chosen parameters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

from tests.conftest import MICRO_TOY, REPO, cli_env, deep_update

FAULTY_CLI = str(REPO / "tests" / "faulty_objective.py")
INTERRUPTED = "hpsearch: interrupted; the study is intact: rerun the same command to resume\n"


def write(folder: Path, changes: dict[str, Any] | None = None) -> Path:
    """MICRO_TOY with short heartbeats and the storage in ``folder``."""
    data = deep_update(
        MICRO_TOY,
        {
            "study": {
                "storage": f"sqlite:///{folder / 'hp.db'}",
                "heartbeat_interval": 1,
                "heartbeat_grace": 2,
            }
        },
    )
    data = deep_update(data, changes or {})
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start(
    *args: str, cwd: Path, script: str | None = None, session: bool = False
) -> subprocess.Popen[str]:
    command = [sys.executable, script] if script else [sys.executable, "-m", "search"]
    return subprocess.Popen(
        [*command, *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=session,  # its own process group, like a command in a terminal
        # A terminal's command takes Ctrl-C; one started from a background job (`cmd &` in a
        # script, as a CI runner may do) inherits SIGINT ignored, and Python keeps it ignored.
        preexec_fn=_default_sigint if session else None,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def load_trials(folder: Path, name: str = "micro") -> list[FrozenTrial]:
    from storage.connect import open_storage
    from storage.urls import parse_storage_url

    # Opened like the dashboard opens it: read-only, never creating anything.
    storage = open_storage(parse_storage_url(f"sqlite:///{folder / 'hp.db'}"), create=False)
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def wait_for(
    folder: Path, ready: Callable[[list[FrozenTrial]], bool], process: subprocess.Popen[str]
) -> list[FrozenTrial]:
    """Poll the storage until ``ready(trials)``; fail if the command ends first."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the command ended early: {process.communicate()}"
        try:
            trials = load_trials(folder)
        except (KeyError, Exception):  # no database or no study yet
            trials = []
        if ready(trials):
            return trials
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the study")


def freeze_when(
    folder: Path, ready: Callable[[list[FrozenTrial]], bool], process: subprocess.Popen[str]
) -> list[FrozenTrial]:
    """Wait until ``ready(trials)``, then freeze the process (SIGSTOP) and check again.

    A micro trial can finish between a storage read and a signal; frozen, it cannot. Returns
    the trials as they stand with the process frozen: the caller signals it, then sends SIGCONT.
    """
    while True:
        wait_for(folder, ready, process)
        process.send_signal(signal.SIGSTOP)
        trials = load_trials(folder)
        if ready(trials):
            return trials
        process.send_signal(signal.SIGCONT)  # it moved on meanwhile: wait for the next chance


def running_with_an_epoch(count: int = 1) -> Callable[[list[FrozenTrial]], bool]:
    def ready(trials: list[FrozenTrial]) -> bool:
        running = [
            t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("epochs")
        ]
        return len(running) >= count

    return ready


def resume_states(folder: Path) -> list[Path]:
    """Resume-state files (and any being written) under the study's artifact folder."""
    return sorted((folder / "hp-artifacts" / "resume").rglob("trial-*"))


def states(trials: list[FrozenTrial]) -> list[str]:
    return [t.state.name for t in sorted(trials, key=lambda t: t.number)]


def killed_in(trials: list[FrozenTrial]) -> FrozenTrial:
    """The trial a one-worker study was inside when frozen, checked to be the last one.

    Which trial that is depends on how fast the micro trials run against the storage polls
    (on a loaded machine trial 0 may end between two polls): the caller asserts on the state
    of its number, not on a fixed one.
    """
    dead = next(t for t in trials if t.state == TrialState.RUNNING)
    assert states(trials) == ["COMPLETE"] * dead.number + ["RUNNING"]
    return dead


# --------------------------------------------------------------------------- kill -9


@pytest.mark.slow
def test_kill_9_mid_trial_then_the_same_command_retries_it(tmp_path: Path) -> None:
    n = 3
    config = write(tmp_path, {"study": {"n_trials": n}, "fixed": {"epochs": 8}})
    process = start("run", str(config), cwd=tmp_path)
    # Frozen first: the trial cannot finish between the storage read and the kill.
    dead = killed_in(freeze_when(tmp_path, running_with_an_epoch(), process))
    k = dead.number  # trials that completed before it
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert states(load_trials(tmp_path)) == ["COMPLETE"] * k + ["RUNNING"], (
        "no one told the storage"
    )
    # Not a race: the last heartbeat was written before the kill, so after the grace period
    # (2 s) the rerun finds it stale for certain.
    time.sleep(2.5)

    code, out, err = finish(start("run", str(config), cwd=tmp_path))
    assert code == 0, err
    assert err == ""
    trials = sorted(load_trials(tmp_path), key=lambda t: t.number)
    assert states(trials) == ["COMPLETE"] * k + ["FAIL"] + ["COMPLETE"] * (n - k)
    # The dead trial's parameters ran again, as the first trial of the rerun.
    retry = trials[k + 1]
    assert retry.params == dead.params
    assert retry.system_attrs["failed_trial"] == k
    assert len(retry.user_attrs["epochs"]) == 8
    assert f"{k}/{n} finished, running {n - k} more" in out and f"({n}/{n} finished)" in out


# --------------------------------------------------------------------------- Ctrl-C / SIGTERM


# SIGTERM to a one-worker run is tests/test_resume.py's (its state saved, the rerun continues
# exactly); here SIGTERM reaches two workers only through the command, Ctrl-C every process.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "workers"),
    [("ctrl-c", 1), ("ctrl-c", 2), ("sigterm", 2)],
)
def test_interrupt_fails_the_running_trials_exits_130_and_resumes(
    tmp_path: Path, how: str, workers: int
) -> None:
    # Trials of many seconds (16 epochs of 1200 sequences), so that both workers are inside one
    # at the same time even on a loaded machine: the test waits for that state in the storage.
    config = write(
        tmp_path,
        {"study": {"n_trials": 3}, "fixed": {"epochs": 16}, "data": {"n_train": 1200}},
    )
    args = ["run", str(config), "--workers", str(workers)]
    process = start(*args, cwd=tmp_path, session=True)
    wait_for(tmp_path, running_with_an_epoch(workers), process)
    if how == "ctrl-c":
        # A terminal sends SIGINT to the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
    else:
        # `kill PID`, a scheduler or a container stop: SIGTERM to the command only.
        process.send_signal(signal.SIGTERM)
    code, out, err = finish(process, timeout=120)
    assert code == 130, (out, err)
    assert err == INTERRUPTED
    trials = load_trials(tmp_path)
    assert TrialState.RUNNING not in {t.state for t in trials}, "all workers stopped cleanly"
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    # Each worker was inside a trial (one may just have finished it when the signal came).
    assert 1 <= len(interrupted) <= workers
    assert all(t.user_attrs["reason"].startswith("interrupted") for t in interrupted)
    # Each interrupted trial is queued again, with its parameters, for the next run.
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert sorted(t.system_attrs["failed_trial"] for t in waiting) == sorted(
        t.number for t in interrupted
    )
    # At most one resume state per unfinished trial.
    stopped_in_training = [t for t in interrupted if "resumes there" in t.user_attrs["reason"]]
    assert len(resume_states(tmp_path)) == len(stopped_in_training)

    code, out, err = finish(start(*args, cwd=tmp_path))
    assert code == 0 and err == "", err
    trials = load_trials(tmp_path)
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 3 and len(trials) == 3 + len(interrupted)
    assert TrialState.RUNNING not in {t.state for t in trials}
    # The retries continued where the interrupted trials stopped, and left no state behind.
    continued = {
        t.user_attrs["resumed_from"]["trial"] for t in finished if "resumed_from" in t.user_attrs
    }
    assert continued == {t.number for t in stopped_in_training}
    assert resume_states(tmp_path) == []


# --------------------------------------------------------------------------- parallel workers

POLLER = textwrap.dedent(
    """
    import json, sys, time, collections
    import optuna
    from storage.connect import open_storage
    from storage.urls import parse_storage_url

    url, stop, result = sys.argv[1], sys.argv[2], sys.argv[3]
    polls, errors, seen = 0, collections.Counter(), 0
    storage = None
    while True:
        stopping = __import__("os").path.exists(stop)
        try:
            if storage is None:
                storage = open_storage(parse_storage_url(url), create=False)
            for summary in optuna.study.get_all_study_summaries(storage):
                study = optuna.load_study(study_name=summary.study_name, storage=storage)
                trials = study.get_trials(deepcopy=False)
                seen = max(seen, len(trials))
                [t.user_attrs.get("epochs") for t in trials]
            polls += 1
        except Exception as e:  # counted and reported, never hidden
            if storage is not None or "no study database" not in str(e):
                errors[f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"] += 1
        if stopping:
            break
        time.sleep(0.02)
    json.dump({"polls": polls, "errors": dict(errors), "seen": seen}, open(result, "w"))
    """
)


@pytest.mark.slow
def test_four_workers_and_a_polling_reader_share_one_sqlite_file(tmp_path: Path) -> None:
    n_trials = 12
    config = write(tmp_path, {"study": {"n_trials": n_trials}, "fixed": {"epochs": 1}})
    poller_script = tmp_path / "poller.py"
    poller_script.write_text(POLLER)
    stop, result = tmp_path / "stop", tmp_path / "poll.json"
    poller = subprocess.Popen(
        [
            sys.executable,
            str(poller_script),
            f"sqlite:///{tmp_path / 'hp.db'}",
            str(stop),
            str(result),
        ],
        cwd=tmp_path,
        env=cli_env(),
    )
    code, out, err = finish(start("run", str(config), "--workers", "4", cwd=tmp_path))
    stop.write_text("")
    poller.wait(timeout=60)
    assert code == 0, err
    assert "database is locked" not in out + err and err == ""
    polled = json.loads(result.read_text())
    assert polled["errors"] == {} and polled["polls"] > 10, polled
    trials = load_trials(tmp_path)
    assert sorted(t.number for t in trials) == list(range(n_trials))
    assert states(trials) == ["COMPLETE"] * n_trials
    assert len({t.params["lr"] for t in trials}) == n_trials, "workers sample different params"
    study = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path / 'hp.db'}")
    assert study.user_attrs["environment"]["threads"] == max(1, (os.cpu_count() or 1) // 4)


@pytest.mark.slow
def test_two_commands_at_once_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    # The folder does not exist yet: both commands create it, the schema and the study at once.
    folder = tmp_path / "new" / "place"
    enqueue = [{"lr": 0.005, "hidden_dim": 32, "num_heads": 2}]
    data = deep_update(
        MICRO_TOY,
        {
            "study": {"storage": f"sqlite:///{folder / 'hp.db'}", "n_trials": 3},
            "fixed": {"epochs": 1},
            "enqueue": enqueue,
        },
    )
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(data))
    first, second = start("run", str(config), cwd=tmp_path), start("run", str(config), cwd=tmp_path)
    (code1, _, err1), (code2, _, err2) = finish(first), finish(second)
    assert (code1, code2) == (0, 0), (err1, err2)
    trials = load_trials(folder)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    # Separate commands may overshoot by at most one trial each (docs/architecture.md).
    assert 3 <= len(trials) <= 5 and set(states(trials)) == {"COMPLETE"}
    assert [t.params for t in trials].count(enqueue[0]) == 1, "enqueued once, not per command"
    assert len({t.params["lr"] for t in trials}) == len(trials), "the commands sample apart"


# --------------------------------------------------------------------------- trial faults


def test_a_failing_and_a_diverging_trial_do_not_stop_the_study(tmp_path: Path) -> None:
    from tests.faulty_objective import BAD_DATA_LR, NAN_LR

    config = write(
        tmp_path,
        {
            "objective": "faulty_toy",
            "study": {"n_trials": 3},
            "fixed": {"epochs": 2, "hidden_dim": 16, "num_heads": 2},
            "search": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
            "enqueue": [{"lr": BAD_DATA_LR}, {"lr": NAN_LR}],
        },
    )
    code, out, err = finish(start("run", str(config), cwd=tmp_path, script=FAULTY_CLI))
    assert code == 0, err
    assert err == "", "a failed trial is one line of the run's output, not a traceback"
    trials = sorted(load_trials(tmp_path), key=lambda t: t.number)
    assert states(trials) == ["FAIL", "PRUNED", "COMPLETE", "COMPLETE"]
    assert trials[0].user_attrs["reason"] == "failed: IndexError: index out of range in self"
    assert trials[1].user_attrs["reason"] == "diverged: non-finite loss in epoch 1"
    assert "trial 0    FAIL     (failed: IndexError: index out of range in self)" in out
    assert "(3/3 finished)" in out


def test_out_of_memory_fails_the_trial_with_its_parameters_and_the_study_goes_on(
    tmp_path: Path,
) -> None:
    from tests.faulty_objective import OOM_LR

    config = write(
        tmp_path,
        {
            "objective": "faulty_toy",
            "study": {"n_trials": 2},
            "fixed": {"epochs": 2, "hidden_dim": 16, "num_heads": 2},
            "search": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}},
            "enqueue": [{"lr": OOM_LR}],
        },
    )
    code, out, err = finish(start("run", str(config), cwd=tmp_path, script=FAULTY_CLI))
    assert code == 0 and err == "", err
    trials = sorted(load_trials(tmp_path), key=lambda t: t.number)
    assert states(trials) == ["FAIL", "COMPLETE", "COMPLETE"]
    reason = trials[0].user_attrs["reason"]
    assert reason.startswith("out of memory (batch_size=32, lr=0.0040): "), reason
    assert "can't allocate memory" in reason
    assert "trial 0    FAIL     (out of memory (batch_size=32, lr=0.0040)" in out
    assert "(2/2 finished)" in out


@pytest.mark.parametrize("workers", [1, 2])
def test_repeated_failures_stop_the_study_with_exit_1(tmp_path: Path, workers: int) -> None:
    from tests.faulty_objective import BAD_DATA_LR

    config = write(
        tmp_path,
        {
            "objective": "faulty_toy",
            "study": {"n_trials": 10, "max_consecutive_failures": 3},
            "fixed": {"epochs": 1, "lr": BAD_DATA_LR},
            "search": {"hidden_dim": {"type": "categorical", "choices": [16, 32]}},
        },
    )
    args = ["run", str(config), "--workers", str(workers)]
    code, out, err = finish(start(*args, cwd=tmp_path, script=FAULTY_CLI))
    assert code == 1, (out, err)
    assert err == (
        "hpsearch: study stopped: 3 trials failed in a row; see their `reason` with "
        "`hpsearch show` (many failed trials mean a bug, not bad luck), fix it and rerun\n"
    )
    trials = load_trials(tmp_path)
    # Workers already inside a trial finish it: at most one extra failure per other worker.
    assert 3 <= len(trials) <= 3 + workers - 1
    assert set(states(trials)) == {"FAIL"}
    assert all(t.user_attrs["reason"].startswith("failed: IndexError") for t in trials)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_a_second_command_on_a_new_study_samples_its_own_parameters(tmp_path: Path) -> None:
    # Two commands started at once on one new study (in this process: the same pid, so the
    # seeds can only differ because the second knows it did not create the study).
    from search.config import load_config
    from search.study import open_study
    from search.trial import sample_params

    config = load_config(write(tmp_path, {"sampler": {"name": "tpe", "args": {}}}))
    first, first_created = open_study(config)
    second, second_created = open_study(config)
    assert (first_created, second_created) == (True, False)
    drawn = [sample_params(study.ask(), config)["lr"] for study in (first, second)]
    assert drawn[0] != drawn[1]
    assert first.user_attrs["config"] == second.user_attrs["config"]
