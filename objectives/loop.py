"""The one training loop, shared by every objective.

It trains any model that maps a batch (a dict of tensors with a ``labels`` entry) to outputs
scored by the data's :class:`~objectives.tasks.Task` (class logits and cross-entropy for the
built-in objectives), evaluates on the validation split after each epoch, keeps the best epoch's
weights, and evaluates the test split exactly once, on those weights. It knows nothing of Optuna
or of studies: after each epoch it calls ``on_epoch``, which may raise to stop the run (the
search's bridge raises ``TrialPruned`` there).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from objectives.loop_state import LoopState, capture_rng, cpu_copy, restore_rng
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
    compile: bool = False  # torch.compile the model's forward pass (weights stay shared)


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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpochRecord:
        """The inverse of :meth:`to_dict`."""
        val = {k[4:]: float(v) for k, v in data.items() if k.startswith("val_")}
        return cls(int(data["epoch"]), float(data["train_loss"]), val, float(data["seconds"]))

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


# Steps between two reads of the running loss (a host synchronisation) to catch divergence.
FINITE_CHECK_EVERY = 32


class TrainingInterrupted(Exception):  # noqa: N818 - a stop, not an error
    """``should_stop`` said stop: the run stopped between two steps and ``state`` continues it
    (already handed to ``save_state``)."""

    def __init__(self, state: LoopState) -> None:
        super().__init__(f"interrupted {state.position}")
        self.state = state


@dataclass(frozen=True)
class RunControl:
    """How a run can be stopped, saved and continued (all optional).

    ``should_stop()`` is asked after every step and between evaluation batches; when it says
    yes, the loop captures its state, calls ``save_state`` and raises
    :class:`TrainingInterrupted`. ``save_state`` is also called after every ``save_every``-th
    epoch that the run survives (not pruned, not stopped early, not the last); it must serialise
    the state before it returns (the state holds the live model's tensors). ``resume`` continues
    a run from a state captured by an identical one (same model, data, settings and seed).
    ``on_step(epoch, step, samples)`` is called after every training step with the samples
    trained by this call so far (progress display; it must be cheap).
    """

    should_stop: Callable[[], bool] | None = None
    save_state: Callable[[LoopState], None] | None = None
    resume: LoopState | None = None
    save_every: int = 1
    on_step: Callable[[int, int, int], None] | None = None


class _Stopped(Exception):  # noqa: N818 - a stop, not an error
    """Internal: ``should_stop`` said yes inside an evaluation."""


def train(
    model: nn.Module,
    data: LoopData,
    settings: LoopSettings,
    device: torch.device | str,
    on_epoch: Callable[[EpochRecord, bool], None] | None = None,
    control: RunControl | None = None,
) -> LoopResult:
    """Train ``model`` (already on ``device``) and return what happened, epoch by epoch."""
    run = _Run(model, data, settings, torch.device(device), control or RunControl())
    return run.train(on_epoch)


class _Run:
    """One call of :func:`train`: the optimizer, schedule and counters between steps."""

    def __init__(
        self,
        model: nn.Module,
        data: LoopData,
        settings: LoopSettings,
        device: torch.device,
        control: RunControl,
    ) -> None:
        self.model, self.data, self.settings = model, data, settings
        self.device, self.control = device, control
        # The compiled module shares the model's parameters; states are read from ``model``.
        self.forward: nn.Module = torch.compile(model) if settings.compile else model  # type: ignore[assignment]
        self.optimizer = _make_optimizer(model, settings)
        total_steps = max(1, settings.epochs * data.train_steps)
        self.scheduler = _make_schedule(self.optimizer, settings.warmup_ratio, total_steps)
        self.autocast = _autocast(device)
        self.result = LoopResult(
            epochs=[], best_epoch=None, best_value=None, test_metrics=None, stop_reason=None
        )
        self.epochs_without_improvement = 0
        # Where the current epoch stands: batches trained, their loss sums, seconds spent.
        self.epoch, self.step, self.loss_sum, self.samples, self.spent = 1, 0, 0.0, 0, 0.0

    def train(self, on_epoch: Callable[[EpochRecord, bool], None] | None) -> LoopResult:
        if self.control.resume is not None:
            self._restore(self.control.resume)
        result, settings = self.result, self.settings
        while result.stop_reason is None and self.epoch <= settings.epochs:
            epoch = self.epoch
            started = time.perf_counter() - self.spent
            if not self._train_epoch(started):
                result.stop_reason = "diverged"
                break
            record = EpochRecord(
                epoch=epoch,
                train_loss=self.loss_sum / max(self.samples, 1),
                val=self._evaluate(self.data.validation(), started),
                seconds=time.perf_counter() - started,
            )
            if not math.isfinite(record.val_loss):
                result.stop_reason = "diverged"
                break
            improved = self._accept(record)
            if on_epoch is not None:
                on_epoch(record, improved)
            self.epoch, self.step = epoch + 1, 0
            self.loss_sum, self.samples, self.spent = 0.0, 0, 0.0
            patience = settings.early_stopping_patience
            if (
                patience is not None
                and self.epochs_without_improvement >= patience
                and epoch < settings.epochs
            ):
                result.stop_reason = "early_stopped"
            elif epoch < settings.epochs and epoch % self.control.save_every == 0:
                self._save()

        if result.best_state is not None and result.stop_reason != "diverged":
            # The model leaves the loop holding its best epoch's weights (its checkpoint), and the
            # test split is read once, on them: never used for selection.
            self.model.load_state_dict(result.best_state)
            if self.data.test is not None:
                test = self._evaluate(self.data.test(), time.perf_counter())
                result.test_metrics = {f"test_{k}": v for k, v in test.items()}
        return result

    def _train_epoch(self, started: float) -> bool:
        """Train the rest of the current epoch; False when the loss stopped being finite.

        The loss sum stays on the device (no host synchronisation per step): it is read every
        ``FINITE_CHECK_EVERY`` steps to catch a diverged run early, and at the end of the epoch.
        """
        model, device, settings = self.model, self.device, self.settings
        model.train()
        call_started = time.perf_counter()
        batches = self.data.train(self.epoch)
        if self.step:
            batches = itertools.islice(batches, self.step, None)  # trained before the stop
        # float64, as the sum was when it was a Python float; continued from a saved state.
        running = torch.tensor(self.loss_sum, dtype=torch.float64, device=device)
        on_step = self.control.on_step
        for batch in batches:
            labels, inputs = _to_device(batch, device)
            with self.autocast:
                outputs = _outputs(self.forward(**inputs))
            loss = self.data.task.loss(outputs, labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(
                    model.parameters(), settings.max_grad_norm, foreach=True
                )
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            self.step += 1
            running += loss.detach().to(torch.float64) * labels.shape[0]
            self.samples += labels.shape[0]
            self.result.train_samples += labels.shape[0]
            if on_step is not None:
                on_step(self.epoch, self.step, self.result.train_samples)
            if self.step % FINITE_CHECK_EVERY == 0 and not math.isfinite(running.item()):
                self.result.train_seconds += time.perf_counter() - call_started
                return False
            if self.control.should_stop is not None and self.control.should_stop():
                self.result.train_seconds += time.perf_counter() - call_started
                self.loss_sum = running.item()
                self._interrupt(started)
        self.result.train_seconds += time.perf_counter() - call_started
        self.loss_sum = running.item()
        return math.isfinite(self.loss_sum)

    def _evaluate(self, batches: Iterable[Batch], started: float) -> dict[str, float]:
        try:
            return evaluate(
                self.forward, batches, self.device, self.data.task, self.control.should_stop
            )
        except _Stopped:
            self._interrupt(started)
            raise AssertionError("unreachable") from None

    def _accept(self, record: EpochRecord) -> bool:
        result, settings = self.result, self.settings
        value = record.metric(settings.metric)
        improved = result.best_value is None or (
            value > result.best_value if settings.maximize else value < result.best_value
        )
        result.epochs.append(record)
        if improved:
            result.best_epoch, result.best_value = record.epoch, value
            result.best_state = cpu_copy(self.model.state_dict())
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        return improved

    def _interrupt(self, started: float) -> None:
        self.spent = time.perf_counter() - started
        state = self._save()
        raise TrainingInterrupted(state)

    def _save(self) -> LoopState:
        result = self.result
        state = LoopState(
            epoch=self.epoch,
            step=self.step,
            stop_reason=result.stop_reason,
            loss_sum=self.loss_sum,
            samples=self.samples,
            epoch_seconds=self.spent,
            epochs=[r.to_dict() for r in result.epochs],
            best_epoch=result.best_epoch,
            best_value=result.best_value,
            epochs_without_improvement=self.epochs_without_improvement,
            train_samples=result.train_samples,
            train_seconds=result.train_seconds,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=None if self.scheduler is None else self.scheduler.state_dict(),
            best_state=result.best_state,
            rng=capture_rng(),
        )
        if self.control.save_state is not None:
            self.control.save_state(state)
        return state

    def _restore(self, state: LoopState) -> None:
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        if self.scheduler is not None and state.scheduler is not None:
            self.scheduler.load_state_dict(state.scheduler)
        result = self.result
        result.epochs = [EpochRecord.from_dict(r) for r in state.epochs]
        result.best_epoch, result.best_value = state.best_epoch, state.best_value
        result.best_state = state.best_state
        result.stop_reason = state.stop_reason
        result.train_samples, result.train_seconds = state.train_samples, state.train_seconds
        self.epochs_without_improvement = state.epochs_without_improvement
        self.epoch, self.step = state.epoch, state.step
        self.loss_sum, self.samples, self.spent = state.loss_sum, state.samples, state.epoch_seconds
        restore_rng(state.rng)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[Batch],
    device: torch.device | str,
    task: Task | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, float]:
    """The task's metrics (classification: loss and accuracy) over every batch of a split."""
    device = torch.device(device)
    task = task or Classification()
    model.eval()
    autocast = _autocast(device)
    outputs: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    for batch in batches:
        if should_stop is not None and should_stop():
            raise _Stopped
        labels, inputs = _to_device(batch, device)
        with autocast:
            outputs.append(_outputs(model(**inputs)).float())
        targets.append(labels)
    if not targets:
        raise ValueError("evaluation split is empty")
    return task.metrics(torch.cat(outputs), torch.cat(targets))


def _to_device(batch: Batch, device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(labels, inputs) on ``device``. For a GPU the host tensors are pinned first: a copy from
    pinned memory is asynchronous (``non_blocking``), one from pageable memory is not."""
    pin = device.type == "cuda"
    moved = {
        k: (v.pin_memory() if pin and v.device.type == "cpu" else v).to(device, non_blocking=True)
        for k, v in batch.items()
    }
    labels = moved.pop("labels")
    return labels, moved


def _outputs(output: Any) -> torch.Tensor:
    # A plain tensor, or a Hugging Face ModelOutput carrying .logits.
    return output if isinstance(output, torch.Tensor) else output.logits


def is_out_of_memory(error: BaseException) -> bool:
    """A CUDA out-of-memory error, or the CPU allocator failing to get memory."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "out of memory" in text.lower() or "can't allocate memory" in text
    )


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
