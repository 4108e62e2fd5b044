"""Device placement: which device each worker trains on.

A run has one *slot* per worker. ``--devices cpu,cuda:0,cuda:1 --trials-per-device 2`` gives six
slots (each device named twice, in order); ``--workers K`` gives K slots on one device, or spread
over the visible GPUs when that device is ``cuda`` (or ``auto`` on a machine with GPUs).

A worker process is pinned to its GPU before torch starts there: it is spawned with
``CUDA_VISIBLE_DEVICES`` naming only that GPU, so it sees it as ``cuda:0`` and never creates a
context on another device. A run's single in-process worker cannot be pinned that way (torch is
already loaded); it trains on ``cuda:N`` and makes it the current device.

GPUs are counted without creating a CUDA context (``torch.cuda.device_count``), so planning in
the parent process does not touch any device.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from search.errors import ConfigError

DEVICE_HELP = "auto, cpu, cuda or cuda:N"
_NAME = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


@dataclass(frozen=True)
class Slot:
    """One worker's place: its number and the device it was given, as the user named it."""

    worker: int
    device: str  # "cpu", "cuda" or "cuda:N"

    @property
    def gpu(self) -> int | None:
        """The GPU index (``cuda`` alone is GPU 0), or None on the CPU."""
        match = _NAME.match(self.device)
        if match is None or match.group(1) != "cuda":
            return None
        return int(match.group(2) or 0)

    def label(self, workers: int) -> str:
        """``cuda:1`` for a run with one worker, ``cuda:1 w3`` when several share the run."""
        return self.device if workers <= 1 else f"{self.device} w{self.worker}"

    def train_device(self, pinned: bool) -> str:
        """The torch device name inside the worker: ``cuda:0`` once pinned to its one GPU."""
        if self.gpu is None:
            return "cpu"
        return "cuda:0" if pinned else f"cuda:{self.gpu}"

    def visible_devices(self) -> str | None:
        """``CUDA_VISIBLE_DEVICES`` for a worker pinned to this slot's GPU (None on the CPU).

        Indices count the GPUs this process sees, so a parent started with
        ``CUDA_VISIBLE_DEVICES=2,3`` gives ``cuda:1`` the physical GPU 3.
        """
        gpu = self.gpu
        if gpu is None:
            return None
        inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
        if inherited:
            visible = [v.strip() for v in inherited.split(",") if v.strip()]
            if gpu < len(visible):
                return visible[gpu]
        return str(gpu)


def use_device(device: str) -> None:
    """Per-device settings for the whole process: TF32 matrix products on NVIDIA GPUs."""
    if device.startswith("cuda"):
        import torch

        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def gpu_count() -> int:
    """Visible CUDA GPUs (0 without CUDA); does not initialise CUDA."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse_devices(text: str, gpus: int, option: str = "--devices") -> list[str]:
    """``auto``, ``cpu``, ``cuda`` or a comma list of ``cpu`` / ``cuda`` / ``cuda:N``.

    ``auto`` is every visible GPU (``cuda:0,...``), else the CPU; ``cuda`` alone is every
    visible GPU too. Raises :class:`ConfigError` (one line) for a bad name, a GPU index that
    does not exist, or ``cuda`` on a machine without one.
    """
    names = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not name for name in names):
        raise ConfigError(f"{option} {text!r}: expected {DEVICE_HELP}, or a comma-separated list")
    if names == ["auto"]:
        return [f"cuda:{i}" for i in range(gpus)] if gpus else ["cpu"]
    devices: list[str] = []
    for name in names:
        match = _NAME.match(name.lower())
        if match is None:
            raise ConfigError(
                f"{option} {text!r}: unknown device {name!r}; use {DEVICE_HELP} "
                "(e.g. --devices cuda:0,cuda:1)"
            )
        kind, index = match.group(1), match.group(2)
        if kind == "cpu":
            if index is not None:
                raise ConfigError(f"{option} {text!r}: {name!r}: the CPU has no index; use cpu")
            devices.append("cpu")
            continue
        if not gpus:
            raise ConfigError(
                f"{option} {text!r}: no CUDA device is available here; use cpu or auto"
            )
        if index is None:
            devices.extend(f"cuda:{i}" for i in range(gpus))
            continue
        if int(index) >= gpus:
            raise ConfigError(
                f"{option} {text!r}: there is no {name} (this machine shows {gpus} CUDA "
                f"device{'s' if gpus != 1 else ''}: cuda:0"
                f"{f'..cuda:{gpus - 1}' if gpus > 1 else ''})"
            )
        devices.append(f"cuda:{int(index)}")
    return devices


def plan_slots(devices: Sequence[str], trials_per_device: int) -> list[Slot]:
    """``trials_per_device`` slots per device, the devices taking turns: cuda:0, cuda:1, ..."""
    if trials_per_device < 1:
        raise ConfigError(f"--trials-per-device must be at least 1, got {trials_per_device}")
    order = [device for _ in range(trials_per_device) for device in devices]
    return [Slot(worker, device) for worker, device in enumerate(order)]


def spread(device: str, workers: int, gpus: int | None = None) -> list[Slot]:
    """``workers`` slots on ``device``; ``cuda`` (no index) takes the visible GPUs in turn."""
    if device == "cuda":
        count = gpu_count() if gpus is None else gpus
        if count > 1:
            return [Slot(w, f"cuda:{w % count}") for w in range(workers)]
        return [Slot(w, "cuda:0") for w in range(workers)]
    return [Slot(w, device) for w in range(workers)]
