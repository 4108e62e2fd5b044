"""What the training loop needs to continue a run exactly where it stopped.

A :class:`LoopState` is captured after an epoch (or mid-epoch, when the run is told to stop) and
holds everything that affects the rest of the run: the model, optimizer and schedule, the best
epoch's weights and value, the early-stopping counter, the epoch records so far, the position in
the current epoch with its partial loss sums, and every random-number generator training draws
from. Data order needs nothing: each epoch's order is a function of (seed, epoch), so continuing
at step ``k`` of an epoch means skipping its first ``k`` batches.

The state is a plain dict of tensors and numbers (``to_dict``/``from_dict``) so that whoever
stores it can write it with ``torch.save`` and read it back with ``weights_only=True``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

FORMAT = 1


@dataclass
class LoopState:
    """A run between two steps: ``step`` batches of ``epoch`` are trained (all of them: its
    validation comes next). ``stop_reason`` set, or ``epoch`` past the last: only the test
    evaluation is left."""

    epoch: int
    step: int
    stop_reason: str | None
    loss_sum: float
    samples: int
    epoch_seconds: float  # spent on this epoch before the stop
    epochs: list[dict[str, Any]]  # EpochRecord.to_dict() of every finished epoch
    best_epoch: int | None
    best_value: float | None
    epochs_without_improvement: int
    train_samples: int
    train_seconds: float
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    best_state: dict[str, torch.Tensor] | None
    rng: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.__dict__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        if data.get("format") != FORMAT:
            raise ValueError(f"loop state format {data.get('format')!r}, expected {FORMAT}")
        fields = {k: v for k, v in data.items() if k != "format"}
        return cls(**fields)

    @property
    def position(self) -> str:
        """``at epoch 3, step 12`` (or ``after epoch 2``) for messages."""
        if self.step == 0:
            return f"after epoch {self.epoch - 1}"
        return f"at epoch {self.epoch}, step {self.step}"


def cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def capture_rng() -> dict[str, Any]:
    """Every generator training may draw from: torch (CPU and CUDA), NumPy and Python's."""
    numpy_state = np.random.get_state()
    rng: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        # NumPy's legacy state as plain values (a weights-only load accepts no NumPy objects).
        "numpy": [
            str(numpy_state[0]),
            torch.from_numpy(numpy_state[1].astype(np.int64)),
            int(numpy_state[2]),
            int(numpy_state[3]),
            float(numpy_state[4]),
        ],
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    name, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(_python_state_from_plain(rng["python"]))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def _python_state_to_plain(state: tuple[Any, ...]) -> list[Any]:
    version, internal, gauss = state
    return [version, torch.tensor(internal, dtype=torch.int64), gauss]


def _python_state_from_plain(plain: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss = plain
    return (version, tuple(int(x) for x in internal.tolist()), gauss)
