"""The learning-rate schedule: linear warmup to the peak, then linear decay to zero.

A schedule that silently ignored warmup or decay would still train, just worse, and no other
test would notice; these read the learning rate the optimizer actually uses at every step.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from objectives.loop import LoopData, LoopSettings, _make_schedule, train
from objectives.specs import ToyDataConfig
from objectives.toy_transformer import ToyTransformer, loop_data, make_task

PEAK = 0.01
MICRO = ToyDataConfig(n_train=400, n_val=200, n_test=200, seq_len=12)


def one_parameter_optimizer(kind: str) -> torch.optim.Optimizer:
    weight = torch.nn.Parameter(torch.ones(1))
    if kind == "sgd":
        return torch.optim.SGD([weight], lr=PEAK)
    return torch.optim.AdamW([weight], lr=PEAK)


def learning_rates(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    steps: int,
) -> list[float]:
    """The lr of each of ``steps`` training steps, then the lr after the last one."""
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # a real step, as the loop does, before the schedule moves on
        if scheduler is not None:
            scheduler.step()
    rates.append(optimizer.param_groups[0]["lr"])
    return rates


def assert_linear(values: list[float], what: str) -> None:
    steps = [b - a for a, b in itertools.pairwise(values)]
    assert steps, f"{what}: too few steps to be linear: {values}"
    assert steps == pytest.approx([steps[0]] * len(steps), rel=1e-6, abs=1e-12), (
        f"{what} is not linear: {values}"
    )


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
@pytest.mark.parametrize(
    ("warmup_ratio", "total_steps"), [(0.1, 100), (0.5, 20), (0.25, 8), (0.3, 50)]
)
def test_warmup_rises_linearly_to_the_peak_then_decays_linearly_to_zero(
    kind: str, warmup_ratio: float, total_steps: int
) -> None:
    optimizer = one_parameter_optimizer(kind)
    scheduler = _make_schedule(optimizer, warmup_ratio, total_steps)
    assert scheduler is not None, f"warmup_ratio={warmup_ratio} must give a schedule"
    rates = learning_rates(optimizer, scheduler, total_steps)
    used, after_last = rates[:-1], rates[-1]

    peak = max(used)
    assert peak == pytest.approx(PEAK), "the schedule reaches the optimizer's lr, never more"
    first_peak = used.index(peak)
    last_peak = len(used) - 1 - used[::-1].index(peak)
    warmup_steps = warmup_ratio * total_steps

    # Warmup: starts low, rises in equal steps and peaks after about warmup_ratio of the run.
    assert abs((first_peak + 1) - warmup_steps) <= 1, (
        f"peak at step {first_peak}, expected after ~{warmup_steps:g} warmup steps: {used}"
    )
    rise = used[: first_peak + 1]
    assert_linear(rise, "the warmup")
    increment = rise[1] - rise[0] if len(rise) > 1 else peak
    assert increment > 0, f"the warmup does not rise: {rise}"
    assert used[0] <= increment * (1 + 1e-6), f"the warmup does not start near 0: {used[0]}"

    # Decay: the peak holds for at most one step more, then falls in equal steps to 0.
    assert last_peak - first_peak <= 1, f"the peak lr is held for {used}"
    fall = [*used[last_peak:], after_last]
    assert_linear(fall, "the decay")
    assert fall[1] < fall[0], f"the lr does not fall after the peak: {fall}"
    assert after_last == pytest.approx(0.0, abs=1e-12 * PEAK), f"the decay ends at {after_last}"
    assert used[-1] <= 2 * peak / (total_steps - last_peak), (
        f"the last step's lr {used[-1]} is not near 0"
    )


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_no_warmup_means_a_constant_learning_rate(kind: str) -> None:
    optimizer = one_parameter_optimizer(kind)
    scheduler = _make_schedule(optimizer, 0.0, 30)
    rates = learning_rates(optimizer, scheduler, 30)
    assert rates == [PEAK] * 31


def model_and_data(seed: int = 0) -> tuple[ToyTransformer, LoopData]:
    splits = make_task(MICRO, seed=0)
    torch.manual_seed(seed)
    model = ToyTransformer(splits.vocab_size, splits.seq_len, splits.num_classes, 32, 2, 1, 0.1)
    return model, loop_data(splits, 32, seed)


def first_epoch_train_loss(warmup_ratio: float) -> float:
    model, data = model_and_data()
    settings = LoopSettings(epochs=2, lr=3e-3, warmup_ratio=warmup_ratio)
    return train(model, data, settings, "cpu").epochs[0].train_loss


def test_the_training_loop_follows_the_schedule() -> None:
    """Same seed, same data: only the schedule differs, so epoch 1's training loss must too."""
    constant = first_epoch_train_loss(0.0)
    assert first_epoch_train_loss(0.0) == constant, "a run is reproducible from its seed"
    warmed = first_epoch_train_loss(0.5)
    assert warmed != constant, "warmup_ratio=0.5 trained exactly like a constant lr"
