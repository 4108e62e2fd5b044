"""What a built model costs, measured before it trains: its size and its inference latency.

These are the cost metrics a study may optimise or constrain besides its training metrics
(``objectives.specs.COST_METRICS``): ``num_params`` (trainable parameters) and ``latency_ms``
(the median time of one forward pass of one example, batch 1, at the configured length, on the
trial's device, after warm-up passes). ``train_seconds`` is known only after training and is
measured by the loop. Nothing here trains or changes the model's weights or the RNG streams:
the forward passes run in eval mode without gradients, so measuring leaves the run exactly as
it would have been.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from objectives.loop import Batch, LoopData

LATENCY_WARMUP = 3
LATENCY_REPEATS = 20


@dataclass(frozen=True)
class Latency:
    """Forward-pass times of one example in milliseconds: median, spread and how many."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "median_ms": self.median_ms,
            "p10_ms": self.p10_ms,
            "p90_ms": self.p90_ms,
            "repeats": self.repeats,
        }


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for parameter in model.parameters():
        if parameter.requires_grad and id(parameter) not in seen:
            seen.add(id(parameter))
            total += parameter.numel()
    return total


def one_example(data: LoopData) -> dict[str, torch.Tensor]:
    """The first validation example as a batch of one (the model's inputs, no labels)."""
    batch = _first(data.validation())
    return {k: v[:1] for k, v in batch.items() if k != "labels"}


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    inputs: dict[str, torch.Tensor],
    device: torch.device | str,
    *,
    warmup: int = LATENCY_WARMUP,
    repeats: int = LATENCY_REPEATS,
) -> Latency:
    """Time ``repeats`` forward passes of ``inputs`` after ``warmup`` untimed ones."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = torch.device(device)
    moved = {k: v.to(device) for k, v in inputs.items()}
    was_training = model.training
    model.eval()
    try:
        for _ in range(warmup):
            model(**moved)
        _sync(device)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model(**moved)
            _sync(device)
            times.append((time.perf_counter() - started) * 1000.0)
    finally:
        model.train(was_training)
    times.sort()
    return Latency(
        median_ms=statistics.median(times),
        p10_ms=times[int(0.1 * (len(times) - 1))],
        p90_ms=times[round(0.9 * (len(times) - 1))],
        repeats=repeats,
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _first(batches: Iterable[Batch]) -> Batch:
    for batch in batches:
        return batch
    raise ValueError("the validation split is empty: no example to time")
