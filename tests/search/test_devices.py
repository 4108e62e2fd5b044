"""Device placement: parsing device lists, slots per device, and workers on CPU slots for real."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from search.errors import ConfigError
from search.study import Slot, parse_devices, plan_placement, plan_slots, spread
from tests.conftest import cli_env

Run = Callable[..., subprocess.CompletedProcess[str]]


# --------------------------------------------------------------------------- planning


def test_auto_is_every_visible_gpu_else_the_cpu() -> None:
    assert parse_devices("auto", gpus=0) == ["cpu"]
    assert parse_devices("auto", gpus=2) == ["cuda:0", "cuda:1"]
    assert parse_devices("cuda", gpus=3) == ["cuda:0", "cuda:1", "cuda:2"]
    assert parse_devices(" cuda:1 , cpu ", gpus=2) == ["cuda:1", "cpu"]
    assert parse_devices("cpu,cpu", gpus=0) == ["cpu", "cpu"]


@pytest.mark.parametrize(
    ("text", "gpus", "expected"),
    [
        ("gpu0", 1, "unknown device 'gpu0'; use auto, cpu, cuda or cuda:N"),
        ("cuda:0", 0, "no CUDA device is available here; use cpu or auto"),
        ("cuda", 0, "no CUDA device is available here"),
        ("cuda:2", 2, "there is no cuda:2 (this machine shows 2 CUDA devices: cuda:0..cuda:1)"),
        ("cuda:1", 1, "there is no cuda:1 (this machine shows 1 CUDA device: cuda:0)"),
        ("cpu:1", 0, "'cpu:1': the CPU has no index; use cpu"),
        ("cpu,,cpu", 0, "expected auto, cpu, cuda or cuda:N, or a comma-separated list"),
        ("", 0, "expected auto, cpu, cuda or cuda:N"),
        ("mps", 0, "unknown device 'mps'"),
    ],
)
def test_bad_device_lists_are_one_line(text: str, gpus: int, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_devices(text, gpus)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_slots_take_the_devices_in_turn() -> None:
    slots = plan_slots(["cuda:0", "cuda:1"], trials_per_device=2)
    assert [(s.worker, s.device) for s in slots] == [
        (0, "cuda:0"),
        (1, "cuda:1"),
        (2, "cuda:0"),
        (3, "cuda:1"),
    ]
    assert [s.train_device(pinned=True) for s in slots] == ["cuda:0"] * 4
    assert slots[1].train_device(pinned=False) == "cuda:1"
    assert [s.device for s in spread("cuda", 3, gpus=2)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert [s.device for s in spread("cpu", 2)] == ["cpu", "cpu"]
    assert Slot(0, "cpu").visible_devices() is None


def test_a_pinned_worker_sees_the_gpu_its_index_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert Slot(0, "cuda:1").visible_devices() == "1"
    # Indices count the GPUs this process sees: cuda:1 of "2,3" is the physical GPU 3.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert Slot(0, "cuda:1").visible_devices() == "3"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"device": "cpu", "devices": "cpu"}, "give one of them (--device X is the same as"),
        ({"devices": "cpu", "workers": 2}, "--workers 2 and --devices cpu"),
        ({"workers": 2, "trials_per_device": 2}, "give one of them (--trials-per-device N"),
        ({"device": "cpu,cpu"}, "one device; use --devices for several"),
        ({"device": "tpu"}, "--device 'tpu': unknown device 'tpu'"),
    ],
)
def test_conflicting_placement_flags_are_refused(flags: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        plan_placement(**flags)


def test_placement_from_each_form_of_the_flags() -> None:
    assert plan_placement(device="cpu", workers=3) == [
        Slot(0, "cpu"),
        Slot(1, "cpu"),
        Slot(2, "cpu"),
    ]
    assert plan_placement(devices="cpu,cpu", trials_per_device=2) == [
        Slot(i, "cpu") for i in range(4)
    ]
    assert plan_placement(device="cpu", trials_per_device=2) == [Slot(0, "cpu"), Slot(1, "cpu")]


# --------------------------------------------------------------------------- real runs


@pytest.mark.slow
def test_cpu_slots_each_worker_reports_its_slot_and_trials_record_theirs(
    write_config: Callable[..., Path], run_cli: Run, tmp_path: Path
) -> None:
    config = write_config({"study": {"n_trials": 6}})
    done = run_cli(
        "run", str(config), "--devices", "cpu,cpu", "--trials-per-device", "2",
        "--progress", "epochs",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # Every worker says which slot it was given, from its own process.
    ready = re.findall(r"^worker (\d) on (\S+) \(pid (\d+)\)$", done.stdout, re.MULTILINE)
    assert sorted(int(w) for w, _, _ in ready) == [0, 1, 2, 3]
    assert {device for _, device, _ in ready} == {"cpu"}
    # Four processes of their own (the pid is compared with the pids the lines name, not searched
    # for in the whole output, where it can appear inside a number such as 0.5968).
    pids = {pid for _, _, pid in ready}
    assert len(pids) == 4 and str(os.getpid()) not in pids
    study = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path / 'hp.db'}")
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 6
    assert all(t.user_attrs["device"] == "cpu" for t in trials)
    assert {t.user_attrs["worker"] for t in trials} <= {0, 1, 2, 3}
    assert study.user_attrs["environment"]["devices"] == ["cpu"]
    # The trial lines say where each trial ran, as stored.
    for t in trials:
        line = next(x for x in done.stdout.splitlines() if f"] trial {t.number} " in x)
        assert f" on cpu w{t.user_attrs['worker']} " in line
    # One line per finished epoch, from the worker that trained it.
    epoch_lines = re.findall(r"^  trial (\d+) epoch (\d)/3: .* on cpu w(\d)$", done.stdout, re.M)
    assert len(epoch_lines) == sum(len(t.user_attrs["epochs"]) for t in trials) == 18
    for number, _, worker in epoch_lines:
        assert trials[int(number)].user_attrs["worker"] == int(worker)


def test_progress_off_prints_only_the_trial_lines(
    write_config: Callable[..., Path], run_cli: Run
) -> None:
    done = run_cli("run", str(write_config({"study": {"n_trials": 1}})), "--progress", "off")
    assert done.returncode == 0, done.stderr
    assert not re.search(r"trial \d epoch \d/3:", done.stdout)
    assert "worker 0 on" not in done.stdout
    assert "[1/1] trial 0    COMPLETE" in done.stdout and " on cpu w0 " in done.stdout


@pytest.mark.slow
def test_on_a_terminal_each_worker_gets_a_live_bar(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config({"study": {"n_trials": 3}})
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "search", "run", str(config), "--workers", "2"],
        cwd=tmp_path,
        env={**cli_env(), "COLUMNS": "160", "TERM": "xterm"},
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=300) == 0, process.stderr.read() if process.stderr else ""
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    # A bar per worker, labelled with its slot and trial, with the epoch it is in.
    assert re.search(r"cpu w[01]\s+trial \d", screen), screen[-2000:]
    assert re.search(r"epoch \d/3", screen)
    # The trial lines are printed whole through the display, and no per-epoch lines.
    assert len(re.findall(r"\[\d/3\] trial \d +COMPLETE", screen)) == 3
    assert not re.search(r"trial \d epoch \d/3:", screen)
