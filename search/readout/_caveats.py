"""When the best trial is not clearly a winner: one-line warnings for show, run and report.

Two cases, both measured on accuracy (the quantity whose sampling noise is known from the size
of the split alone):

- **The lead is inside the noise.** Every trial is scored on the same validation set of ``n``
  examples, and an accuracy measured on ``n`` examples has a 95 % interval of about
  ``± 1.96 · sqrt(p (1 - p) / n)`` (the Wilson interval below, which stays inside [0, 1]).
  When the runner-up's validation accuracy lies inside the winner's interval, the data cannot
  tell the two apart: a 200-example set cannot separate 0.80 from 0.78. (A paired test on the
  per-example predictions would be sharper; they are not stored, so this check is the
  conservative one.) For a loss metric the two best trials by loss are compared the same way,
  on their accuracies.
- **The winner is at chance.** Its validation or test accuracy is at or below the accuracy of
  always predicting the most frequent class (``majority_class_accuracy``, recorded with the
  study): a study whose every trial is at chance must say so, not crown a winner.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from optuna.trial import TrialState

from search.trial import StudyRecord, TrialRecord

Z95 = 1.959963984540054  # two-sided 95 % quantile of the standard normal


def wilson_interval(accuracy: float, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion measured on ``n`` examples."""
    if n <= 0:
        return (0.0, 1.0)
    z2 = Z95 * Z95
    centre = (accuracy + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(accuracy * (1 - accuracy) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def ranked(records: Sequence[TrialRecord], maximize: bool) -> list[TrialRecord]:
    """Complete trials, best first (ties: the lower trial number)."""
    complete = [r for r in records if r.state == TrialState.COMPLETE and r.value is not None]
    return sorted(complete, key=lambda r: (-r.value if maximize else r.value, r.number))  # type: ignore[operator]


def lead_within_noise(
    records: Sequence[TrialRecord], study: StudyRecord, n_validation: int | None
) -> str | None:
    """The warning when the best trial's lead over the runner-up is inside the sampling noise."""
    order = ranked(records, study.maximize)
    if len(order) < 2 or not n_validation:
        return None
    best, second = order[0], order[1]
    ours, theirs = best.metric("val_accuracy"), second.metric("val_accuracy")
    if ours is None or theirs is None:
        return None
    low, high = wilson_interval(ours, n_validation)
    if not low <= theirs <= high:
        return None
    return (
        f"warning: the best trial {best.number} (val_accuracy {ours:.4f}) is not clearly better "
        f"than trial {second.number} ({theirs:.4f}): on {n_validation} validation examples the "
        f"95 % interval of {ours:.4f} is [{low:.4f}, {high:.4f}]; retrain both with seeds "
        "(`hpsearch retrain`) before trusting the order"
    )


def winner_at_chance(records: Sequence[TrialRecord], study: StudyRecord) -> str | None:
    """The warning when the best trial is no better than predicting the most frequent class."""
    order = ranked(records, study.maximize)
    majority = study.majority_class_accuracy
    if not order or majority is None:
        return None
    best = order[0]
    for split in ("val", "test"):
        accuracy = best.metric(f"{split}_accuracy")
        if accuracy is not None and accuracy <= majority + 1e-12:
            everyone = all(
                (a := r.metric("val_accuracy")) is not None and a <= majority + 1e-12 for r in order
            )
            scope = "every complete trial is" if everyone else "the best trial is"
            return (
                f"warning: {scope} at chance: the best trial {best.number} has {split} accuracy "
                f"{accuracy:.4f}, no better than always predicting the most frequent class "
                f"({majority:.4f}); this winner has learned nothing; check the data, the labels "
                "and the learning-rate range"
            )
    return None


def caveats(records: Sequence[TrialRecord], study: StudyRecord) -> list[str]:
    """Every warning that applies to the study's winner, one line each.

    A study with several metrics has no single winner (its front is a choice), so none apply.
    """
    if study.multi_objective:
        return []
    n_validation = study.data_sizes.get("validation")
    found = [
        lead_within_noise(records, study, n_validation if isinstance(n_validation, int) else None),
        winner_at_chance(records, study),
    ]
    return [line for line in found if line]
