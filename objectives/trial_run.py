"""The bridge between one Optuna trial and the training loop.

It turns sampled parameters into loop settings, reports the study metric after every epoch,
prunes when the pruner says so, and records what a trial records (DESIGN.md): per-epoch
``epochs``, ``best_epoch``, the best epoch's test metrics, and a ``reason`` for every trial that
did not simply run all its epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from torch import nn

from objectives.loop import EpochRecord, LoopData, LoopResult, LoopSettings, train
from objectives.specs import METRIC_MAXIMIZE
from search.config import StudyConfig
from storage.artifacts import artifact_dir, save_checkpoint, upload_trial_records

# User attr that an enqueued trial may carry to train with another seed (``hpsearch retrain``).
TRAINING_SEED_ATTR = "training_seed"


@dataclass
class TrainingJob:
    """A model on its device, the batches to train it on, and how to save it.

    ``save_model(folder)`` writes the model (holding its best epoch's weights after training)
    in its library's own form: ``save_pretrained`` for Hugging Face models, a state dict plus
    its constructor arguments for the toy model.
    """

    model: nn.Module
    data: LoopData
    save_model: Callable[[Path], None] | None = None


def training_seed(trial: optuna.Trial, config: StudyConfig) -> int:
    """The seed of initialisation, data order and dropout for this trial."""
    seed = trial.user_attrs.get(TRAINING_SEED_ATTR)
    return int(seed) if seed is not None else config.study.seed


def loop_settings(params: dict[str, Any], config: StudyConfig) -> LoopSettings:
    return LoopSettings(
        epochs=params["epochs"],
        lr=params["lr"],
        metric=config.study.metric,
        maximize=METRIC_MAXIMIZE[config.study.metric],
        weight_decay=params["weight_decay"],
        warmup_ratio=params["warmup_ratio"],
        max_grad_norm=params["max_grad_norm"],
        early_stopping_patience=params["early_stopping_patience"],
    )


def run_trial(
    trial: optuna.Trial,
    config: StudyConfig,
    params: dict[str, Any],
    build: Callable[[int], TrainingJob],
    device: str,
    on_result: Callable[[LoopResult, TrainingJob], None] | None = None,
) -> float:
    """Train one configuration as this trial; return the metric at the best epoch."""
    metric = config.study.metric
    settings = loop_settings(params, config)
    records: list[dict[str, Any]] = []

    def on_epoch(record: EpochRecord, improved: bool) -> None:
        records.append(_finite(record.to_dict()))
        trial.set_user_attr("epochs", records)
        if improved:
            trial.set_user_attr("best_epoch", record.epoch)
        value = record.metric(metric)
        trial.report(value, record.epoch)
        # Pruning after the last epoch saves nothing and would throw away the trial's test
        # evaluation and checkpoint: a trial that ran all its epochs completes.
        if record.epoch < settings.epochs and trial.should_prune():
            trial.set_user_attr(
                "reason", f"pruned at epoch {record.epoch}: {metric}={value:.4g} by the pruner"
            )
            raise optuna.TrialPruned(f"pruned at epoch {record.epoch}")

    try:
        job = build(training_seed(trial, config))
        try:
            result = train(job.model, job.data, settings, device, on_epoch)
            if on_result is not None:
                on_result(result, job)
            _save_checkpoint(trial, config, result, job)
        finally:
            del job
    except optuna.TrialPruned:
        _upload_records(trial, config, records, None)
        raise
    except KeyboardInterrupt:
        trial.set_user_attr("reason", "interrupted")
        raise
    except Exception as e:
        trial.set_user_attr("reason", f"failed: {type(e).__name__}: {e}"[:1000])
        raise

    _upload_records(trial, config, records, result)
    if result.train_seconds > 0:
        trial.set_user_attr(
            "train_samples_per_s", round(result.train_samples / result.train_seconds, 1)
        )
    if result.stop_reason == "diverged":
        epoch = len(result.epochs) + 1
        trial.set_user_attr("reason", f"diverged: non-finite loss in epoch {epoch}")
        raise optuna.TrialPruned(f"diverged in epoch {epoch}")
    if result.best_epoch is None or result.best_value is None:
        raise RuntimeError("the training loop finished no epoch")
    trial.set_user_attr("best_epoch", result.best_epoch)
    if result.test_metrics is not None:
        for name, value in result.test_metrics.items():
            trial.set_user_attr(name, value)
    if result.stop_reason == "early_stopped":
        trial.set_user_attr(
            "reason",
            f"early_stopped after epoch {len(result.epochs)}: no better {metric} for "
            f"{settings.early_stopping_patience} epochs",
        )
    return result.best_value


def _upload_records(
    trial: optuna.Trial,
    config: StudyConfig,
    records: list[dict[str, Any]],
    result: LoopResult | None,
) -> None:
    """Epoch table and learning curves as trial artifacts (pruned trials: their epochs so far)."""
    directory = artifact_dir(config.artifacts.dir, config.study.storage)
    best_epoch = trial.user_attrs.get("best_epoch") if result is None else result.best_epoch
    test = (result.test_metrics or {}).get("test_accuracy") if result is not None else None
    upload_trial_records(trial, directory, records, best_epoch, test)


def _save_checkpoint(
    trial: optuna.Trial, config: StudyConfig, result: LoopResult, job: TrainingJob
) -> None:
    """The best epoch's model (the model holds it after ``train``) per ``keep_checkpoints``."""
    if job.save_model is None or result.best_value is None or result.stop_reason == "diverged":
        return
    directory = artifact_dir(config.artifacts.dir, config.study.storage)
    save_checkpoint(
        trial, directory, config.artifacts.keep_checkpoints, result.best_value, job.save_model
    )


def _finite(record: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN/inf; storages and the dashboard choke on them.
    return {
        k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
        if not (isinstance(v, float) and not math.isfinite(v))
        else None
        for k, v in record.items()
    }


def free_device_memory(device: str) -> None:
    """Give cached accelerator memory back between trials."""
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
