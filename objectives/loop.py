"""The one training loop, shared by every objective.

It trains any classifier that maps a batch (a dict of tensors with a ``labels`` entry) to logits,
evaluates on the validation split after each epoch, keeps the best epoch's weights, and evaluates
the test split exactly once, on those weights. It knows nothing of Optuna: after each epoch it
calls ``on_epoch``, which may raise (the Optuna bridge raises ``TrialPruned`` there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

Batch = Mapping[str, torch.Tensor]
# Extra classification metrics from (predicted labels, true labels), e.g. macro-F1 and MCC.
MetricsFn = Callable[[torch.Tensor, torch.Tensor], dict[str, float]]


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
    extra_metrics: MetricsFn | None = None


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch produced. ``extra`` holds objective-specific metrics (val_f1, ...)."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)

    def metric(self, name: str) -> float:
        if name in ("val_loss", "val_accuracy", "train_loss"):
            return float(getattr(self, name))
        return self.extra[name]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(data.pop("extra"))
        return data


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
    loss_fn = nn.CrossEntropyLoss()
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
                logits = _logits(model(**inputs))
            loss = loss_fn(logits.float(), labels)
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
        evaluation = evaluate(model, data.validation(), device, data.extra_metrics)
        record = EpochRecord(
            epoch=epoch,
            train_loss=loss_sum / max(samples, 1),
            val_loss=evaluation["loss"],
            val_accuracy=evaluation["accuracy"],
            seconds=time.perf_counter() - started,
            extra={f"val_{k}": v for k, v in evaluation.items() if k not in ("loss", "accuracy")},
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
            test = evaluate(model, data.test(), device, data.extra_metrics)
            result.test_metrics = {f"test_{k}": v for k, v in test.items()}
    return result


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device | str,
    extra_metrics: MetricsFn | None = None,
) -> dict[str, float]:
    """Mean cross-entropy loss, accuracy and any extra metrics over ``batches``."""
    device = torch.device(device)
    model.eval()
    autocast = _autocast(device)
    loss_sum, correct, count = 0.0, 0, 0
    predictions: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    for batch in batches:
        labels = batch["labels"].to(device, non_blocking=True)
        inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "labels"}
        with autocast:
            logits = _logits(model(**inputs)).float()
        loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        predicted = logits.argmax(dim=-1)
        correct += int((predicted == labels).sum().item())
        count += labels.shape[0]
        if extra_metrics is not None:
            predictions.append(predicted.cpu())
            targets.append(labels.cpu())
    if count == 0:
        raise ValueError("evaluation split is empty")
    metrics = {"loss": loss_sum / count, "accuracy": correct / count}
    if extra_metrics is not None:
        metrics.update(extra_metrics(torch.cat(predictions), torch.cat(targets)))
    return metrics


def _logits(output: Any) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.logits


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
