"""Statistics for ``hpsearch retrain``: seed-to-seed spread and a paired comparison.

Pure functions of lists of numbers (no Optuna, no torch). A retrain trains one configuration with
K seeds, so every metric is a small sample of K values:

- :func:`summarize` gives the mean, the sample standard deviation (``ddof=1``) and a 95 %
  confidence interval for the mean from Student's t-distribution with K - 1 degrees of freedom:
  ``mean ± t(0.975, K-1) · std / sqrt(K)``.
- :func:`compare_paired` compares two configurations trained with the same seeds on the same
  test set: the per-seed differences (winner - baseline), their mean with the same t-interval,
  and the two-sided p-value of the paired t-test (``scipy.stats.ttest_rel``). The verdict at the
  5 % level is direction-aware: for accuracy higher is better, for loss lower is better.

Degenerate samples get defined answers instead of NaN. When every difference is the same number
``d`` (common when both reach accuracy 1.00 on every seed), the t statistic is 0/0 or d/0:

- ``d == 0``: the two are indistinguishable on this test set: ``p_value`` 1.0, interval [0, 0],
  verdict "no significant difference";
- ``d != 0``: every seed moved by exactly the same amount, in the same direction. That is the
  limit of the t-test as the spread goes to zero: ``p_value`` 0.0, interval [d, d], verdict
  "better" or "worse" by the sign of ``d``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

ALPHA = 0.05  # significance level of the verdict
# Differences closer than this count as equal (metrics are floats read back from storage).
TOLERANCE = 1e-12

Verdict = Literal["better", "no significant difference", "worse"]
BETTER: Verdict = "better"
NO_DIFFERENCE: Verdict = "no significant difference"
WORSE: Verdict = "worse"


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and 95 % t-interval of the mean of ``n`` values."""

    n: int
    mean: float
    std: float
    ci95: tuple[float, float]
    clipped: bool = False  # the t-interval crossed the metric's bounds and was cut there

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "ci95": [self.ci95[0], self.ci95[1]],
        }
        if self.clipped:
            data["ci95_clipped"] = True
        return data


@dataclass(frozen=True)
class Comparison:
    """Paired comparison of two samples (``difference`` = mean of winner - baseline)."""

    n: int
    difference: float
    std: float
    ci95: tuple[float, float]
    p_value: float
    verdict: Verdict
    identical: bool  # every per-seed difference is zero

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "difference": self.difference,
            "std": self.std,
            "ci95": [self.ci95[0], self.ci95[1]],
            "p_value": self.p_value,
            "verdict": self.verdict,
        }


def t_quantile(n: int) -> float:
    """The two-sided 95 % quantile of Student's t with ``n - 1`` degrees of freedom."""
    from scipy import stats

    _check_n(n)
    return float(stats.t.ppf(1.0 - ALPHA / 2.0, n - 1))


def summarize(
    values: Sequence[float], bounds: tuple[float | None, float | None] = (None, None)
) -> Summary:
    """Mean, sample std (``ddof=1``) and 95 % t-interval of the mean; needs 2 or more values.

    ``bounds`` are the metric's own limits (accuracy: 0 and 1). The t-interval is symmetric and
    knows nothing of them: with few seeds near a bound it can cross it (an accuracy interval
    reaching 1.02). It is then cut at the bound and marked ``clipped``, and readouts say so.
    """
    n = len(values)
    _check_n(n)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    if std <= TOLERANCE:
        # All values equal: the interval is the value itself (t · 0 / sqrt(n)).
        return Summary(n, mean, 0.0, (mean, mean))
    half = t_quantile(n) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    lowest, highest = bounds
    clipped_low = lowest if lowest is not None and low < lowest else low
    clipped_high = highest if highest is not None and high > highest else high
    clipped = (clipped_low, clipped_high) != (low, high)
    return Summary(n, mean, std, (clipped_low, clipped_high), clipped)


def compare_paired(
    winner: Sequence[float], baseline: Sequence[float], *, higher_is_better: bool
) -> Comparison:
    """Paired t-test of ``winner`` against ``baseline`` (same seeds, same order).

    The verdict is "better" when the difference is significant at the 5 % level and in the good
    direction, "worse" when significant in the bad direction, else "no significant difference".
    """
    from scipy import stats

    if len(winner) != len(baseline):
        raise ValueError(
            f"paired samples need equal lengths, got {len(winner)} and {len(baseline)}"
        )
    differences = [w - b for w, b in zip(winner, baseline, strict=True)]
    summary = summarize(differences)
    constant = max(differences) - min(differences) <= TOLERANCE
    if constant:
        identical = abs(summary.mean) <= TOLERANCE
        p_value = 1.0 if identical else 0.0
        difference = 0.0 if identical else summary.mean
        return Comparison(
            n=summary.n,
            difference=difference,
            std=0.0,
            ci95=(difference, difference),
            p_value=p_value,
            verdict=verdict(difference, p_value, higher_is_better=higher_is_better),
            identical=identical,
        )
    p_value = float(stats.ttest_rel(winner, baseline).pvalue)
    return Comparison(
        n=summary.n,
        difference=summary.mean,
        std=summary.std,
        ci95=summary.ci95,
        p_value=p_value,
        verdict=verdict(summary.mean, p_value, higher_is_better=higher_is_better),
        identical=False,
    )


def verdict(difference: float, p_value: float, *, higher_is_better: bool) -> Verdict:
    """Better or worse when ``p_value < 0.05`` (by the sign of ``difference``), else neither."""
    if p_value >= ALPHA or abs(difference) <= TOLERANCE:
        return NO_DIFFERENCE
    improved = difference > 0 if higher_is_better else difference < 0
    return BETTER if improved else WORSE


def _check_n(n: int) -> None:
    if n < 2:
        raise ValueError(f"a spread and an interval need at least 2 values, got {n}")
