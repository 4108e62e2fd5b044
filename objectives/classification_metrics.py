"""Macro-F1 and Matthews correlation from predicted and true class ids (no sklearn needed).

Both follow scikit-learn's definitions: macro-F1 averages the per-class F1 over every class that
occurs in the labels or the predictions (a class with no true and no predicted example has no
F1); the Matthews correlation is the multi-class form (Gorodkin 2004), which equals the usual
binary formula for two classes and is 0 when it is undefined (one class predicted or present).
"""

from __future__ import annotations

import math

import torch


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Counts (float64) with true classes as rows and predicted classes as columns."""
    predicted, labels = predicted.long().flatten(), labels.long().flatten()
    classes = int(max(predicted.max().item(), labels.max().item())) + 1
    counts = torch.bincount(labels * classes + predicted, minlength=classes * classes)
    return counts.reshape(classes, classes).double()


def macro_f1(matrix: torch.Tensor) -> float:
    """Mean F1 over the classes that occur (as truth or prediction)."""
    true_positive = matrix.diagonal()
    predicted = matrix.sum(dim=0)
    actual = matrix.sum(dim=1)
    present = (predicted + actual) > 0
    f1 = 2 * true_positive[present] / (predicted[present] + actual[present])
    return float(f1.mean().item())


def matthews_correlation(matrix: torch.Tensor) -> float:
    """Multi-class Matthews correlation coefficient; 0 when undefined."""
    total = matrix.sum()
    correct = matrix.diagonal().sum()
    predicted = matrix.sum(dim=0)
    actual = matrix.sum(dim=1)
    numerator = correct * total - (predicted * actual).sum()
    denominator = math.sqrt(
        float((total**2 - (predicted**2).sum()) * (total**2 - (actual**2).sum()))
    )
    return float(numerator.item()) / denominator if denominator > 0 else 0.0


def classification_metrics(predicted: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """``{"f1": macro-F1, "mcc": Matthews correlation}`` (the loop prefixes val_ / test_)."""
    matrix = confusion_matrix(predicted, labels)
    return {"f1": macro_f1(matrix), "mcc": matthews_correlation(matrix)}
