"""What a model's outputs are scored with: the training loss and the per-split metrics.

The loop trains on ``task.loss`` and, after each epoch, scores the whole validation split with
``task.metrics`` (and the test split once, on the best epoch's weights). The metric names a task
returns are the ``metrics`` of its objective's spec; the loop records them as ``val_<name>`` and
``test_<name>``. Every task returns ``loss``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from objectives.classification_metrics import classification_metrics


class Task(Protocol):
    """Scores a model's outputs against the labels of a batch or a whole split."""

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The mean training loss of one batch (a scalar tensor that can be backpropagated)."""
        ...

    def metrics(self, outputs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """Every metric over a whole split, ``loss`` included."""
        ...


@dataclass(frozen=True)
class Classification:
    """Cross-entropy over class logits; accuracy, and macro-F1 and MCC when asked for."""

    f1_and_mcc: bool = False

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs.float(), labels)

    def metrics(self, outputs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        logits = outputs.float()
        predicted = logits.argmax(dim=-1)
        metrics = {
            "loss": float(nn.functional.cross_entropy(logits, labels).item()),
            "accuracy": float((predicted == labels).double().mean().item()),
        }
        if self.f1_and_mcc:
            metrics.update(classification_metrics(predicted, labels))
        return metrics
