"""The one training loop, shared by every objective.

It trains any model that maps a batch (a dict of tensors with a ``labels`` entry) to outputs
scored by the data's :class:`~objectives.tasks.Task` (class logits and cross-entropy for the
built-in objectives), evaluates on the validation split after each epoch, keeps the best epoch's
weights, and evaluates the test split exactly once, on those weights. It knows nothing of Optuna
or of studies: after each epoch it calls ``on_epoch``, which may raise to stop the run (the
search's bridge raises ``TrialPruned`` there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from objectives.tasks import Classification, Task

Batch = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class LoopSettings:
    """The training knobs the loop itself uses."""

    epochs: int
    lr: float
    metric: str = "val_loss"  # the per-epoch metric that picks the best epoch
    maximize: bool = False
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0  # > 0: linear warmup over this share of steps, then linear decay
    max_grad_norm: float | None = None
    early_stopping_patience: int | None = None


@dataclass(frozen=True)
class LoopData:
    """Batches for one run. ``train(epoch)`` yields that epoch's (shuffled) batches."""

    train: Callable[[int], Iterable[Batch]]
    train_steps: int  # batches per training epoch (for the warmup/decay schedule)
    validation: Callable[[], Iterable[Batch]]
    test: Callable[[], Iterable[Batch]] | None = None  # None: no labelled test split
    task: Task = field(default_factory=Classification)


@dataclass
class TrainingJob:
    """What a builder returns: a model on its device, its batches, and how to save it.

    ``save_model(folder)`` writes the model (holding its best epoch's weights after training)
    in its library's own form: ``save_pretrained`` for Hugging Face models, a state dict plus
    its constructor arguments for the toy model. ``trial_attrs`` and ``study_attrs`` are facts
    about the data worth keeping with the trial or the study (label names, the majority-class
    accuracy, data sizes); the search stores them.
    """

    model: nn.Module
    data: LoopData
    save_model: Callable[[Path], None] | None = None
    trial_attrs: dict[str, Any] = field(default_factory=dict)
    study_attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch produced: the training loss and every validation metric of the task."""

    epoch: int
    train_loss: float
    val: dict[str, float]  # task metric name -> value on the validation split ("loss", ...)
    seconds: float

    @property
    def val_loss(self) -> float:
        return self.val["loss"]

    def metric(self, name: str) -> float:
        """``train_loss`` or ``val_<metric>``."""
        if name == "train_loss":
            return self.train_loss
        if name.startswith("val_") and name[4:] in self.val:
            return self.val[name[4:]]
        raise KeyError(f"no metric {name!r} in this epoch (val metrics: {', '.join(self.val)})")

    def to_dict(self) -> dict[str, Any]:
        """``{epoch, train_loss, val_loss, val_accuracy, ..., seconds}``."""
        return {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            **{f"val_{name}": value for name, value in self.val.items()},
            "seconds": self.seconds,
        }


@dataclass
class LoopResult:
    epochs: list[EpochRecord]
    best_epoch: int | None
    best_value: float | None
    test_metrics: dict[str, float] | None
    stop_reason: str | None  # None (ran all epochs), "early_stopped" or "diverged"
    best_state: dict[str, torch.Tensor] | None = None
    train_samples: int = 0
    train_seconds: float = 0.0


def train(
    model: nn.Module,
    data: LoopData,
    settings: LoopSettings,
    device: torch.device | str,
    on_epoch: Callable[[EpochRecord, bool], None] | None = None,
) -> LoopResult:
    """Train ``model`` (already on ``device``) and return what happened, epoch by epoch."""
    device = torch.device(device)
    optimizer = _make_optimizer(model, settings)
    total_steps = max(1, settings.epochs * data.train_steps)
    scheduler = _make_schedule(optimizer, settings.warmup_ratio, total_steps)
    autocast = _autocast(device)

    result = LoopResult(
        epochs=[], best_epoch=None, best_value=None, test_metrics=None, stop_reason=None
    )
    epochs_without_improvement = 0
    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        model.train()
        loss_sum, samples = 0.0, 0
        diverged = False
        for batch in data.train(epoch):
            labels = batch["labels"].to(device, non_blocking=True)
            inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "labels"}
            with autocast:
                outputs = _outputs(model(**inputs))
            loss = data.task.loss(outputs, labels)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                diverged = True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(
                    model.parameters(), settings.max_grad_norm, foreach=True
                )
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            loss_sum += loss_value * labels.shape[0]
            samples += labels.shape[0]
        train_seconds = time.perf_counter() - started
        result.train_samples += samples
        result.train_seconds += train_seconds
        if diverged:
            result.stop_reason = "diverged"
            break
        record = EpochRecord(
            epoch=epoch,
            train_loss=loss_sum / max(samples, 1),
            val=evaluate(model, data.validation(), device, data.task),
            seconds=time.perf_counter() - started,
        )
        if not math.isfinite(record.val_loss):
            result.stop_reason = "diverged"
            break
        value = record.metric(settings.metric)
        improved = result.best_value is None or (
            value > result.best_value if settings.maximize else value < result.best_value
        )
        result.epochs.append(record)
        if improved:
            result.best_epoch, result.best_value = epoch, value
            result.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
            epochs_without_improvement = 0
        else:
            epochs_without_improvement += 1
        if on_epoch is not None:
            on_epoch(record, improved)
        patience = settings.early_stopping_patience
        if (
            patience is not None
            and epochs_without_improvement >= patience
            and epoch < settings.epochs
        ):
            result.stop_reason = "early_stopped"
            break

    if result.best_state is not None and result.stop_reason != "diverged":
        # The model leaves the loop holding its best epoch's weights (its checkpoint), and the
        # test split is read once, on them: never used for selection.
        model.load_state_dict(result.best_state)
        if data.test is not None:
            test = evaluate(model, data.test(), device, data.task)
            result.test_metrics = {f"test_{k}": v for k, v in test.items()}
    return result


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device | str,
    task: Task | None = None,
) -> dict[str, float]:
    """The task's metrics (classification: loss and accuracy) over every batch of a split."""
    device = torch.device(device)
    task = task or Classification()
    model.eval()
    autocast = _autocast(device)
    outputs: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    for batch in batches:
        labels = batch["labels"].to(device, non_blocking=True)
        inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "labels"}
        with autocast:
            outputs.append(_outputs(model(**inputs)).float())
        targets.append(labels)
    if not targets:
        raise ValueError("evaluation split is empty")
    return task.metrics(torch.cat(outputs), torch.cat(targets))


def _outputs(output: Any) -> torch.Tensor:
    # A plain tensor, or a Hugging Face ModelOutput carrying .logits.
    return output if isinstance(output, torch.Tensor) else output.logits


def free_device_memory(device: str) -> None:
    """Give cached accelerator memory back between trials."""
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def _make_optimizer(model: nn.Module, settings: LoopSettings) -> torch.optim.Optimizer:
    # No weight decay on biases and normalisation weights (every parameter with < 2 dims),
    # as in BERT's recipe; decaying them only hurts.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused kernel (one pass over all parameters) is what Hugging Face's Trainer uses; on
    # the CPU it makes MiniLM's optimizer step ~7x cheaper than the default per-tensor loop and
    # a toy step ~7 % faster. It needs float parameters on CPU or CUDA; else fall back to
    # foreach, which PyTorch only picks by itself on CUDA.
    params = [p for g in groups for p in g["params"]]
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    options = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=settings.lr, **options)


def _make_schedule(
    optimizer: torch.optim.Optimizer, warmup_ratio: float, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR | None:
    if warmup_ratio <= 0:
        return None  # constant learning rate
    warmup_steps = max(1, round(warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _autocast(device: torch.device) -> torch.autocast:
    # bf16 autocast on GPUs that support it; float32 everywhere else.
    enabled = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)
