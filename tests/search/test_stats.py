"""search.retrain's statistics against values computed by hand (t-table quantiles, closed-form p-values).

For 2 degrees of freedom the two-sided p-value of Student's t has a closed form,
``p = 1 - |t| / sqrt(t**2 + 2)``, which the paired-test cases below use.
"""

from __future__ import annotations

import math

import pytest

from search.retrain import (
    BETTER,
    NO_DIFFERENCE,
    WORSE,
    compare_paired,
    summarize,
    t_quantile,
    verdict,
)


def test_t_quantiles_match_the_t_table() -> None:
    # Two-sided 95 % critical values from any t-table: df 1, 2, 4, 9.
    assert t_quantile(2) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(3) == pytest.approx(4.3027, abs=1e-4)
    assert t_quantile(5) == pytest.approx(2.7764, abs=1e-4)
    assert t_quantile(10) == pytest.approx(2.2622, abs=1e-4)


def test_summarize_one_to_five() -> None:
    summary = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    # mean 3; sample variance (4+1+0+1+4)/4 = 2.5; half-width 2.7764 * sqrt(2.5) / sqrt(5).
    half = 2.776445105 * math.sqrt(2.5) / math.sqrt(5)
    assert summary.n == 5
    assert summary.mean == pytest.approx(3.0)
    assert summary.std == pytest.approx(math.sqrt(2.5))
    assert summary.ci95 == pytest.approx((3.0 - half, 3.0 + half))
    assert summary.ci95 == pytest.approx((1.0368, 4.9632), abs=1e-4)
    assert summary.to_dict()["ci95"] == pytest.approx([1.0368, 4.9632], abs=1e-4)


def test_summarize_of_equal_values_has_no_spread() -> None:
    summary = summarize([1.0, 1.0, 1.0])
    assert (summary.mean, summary.std, summary.ci95) == (1.0, 0.0, (1.0, 1.0))


def test_summarize_needs_two_values() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        summarize([0.9])


def test_paired_test_not_significant() -> None:
    # differences 0.1, 0.0, 0.05: mean 0.05, std 0.05, t = 0.05 / (0.05 / sqrt 3) = sqrt 3.
    comparison = compare_paired([0.9, 0.8, 0.85], [0.8, 0.8, 0.8], higher_is_better=True)
    t = math.sqrt(3)
    assert comparison.difference == pytest.approx(0.05)
    assert comparison.std == pytest.approx(0.05)
    assert comparison.p_value == pytest.approx(1 - t / math.sqrt(t**2 + 2))
    assert comparison.p_value == pytest.approx(0.2254, abs=1e-4)
    half = 4.302653 * 0.05 / math.sqrt(3)
    assert comparison.ci95 == pytest.approx((0.05 - half, 0.05 + half), abs=1e-6)
    assert comparison.verdict == NO_DIFFERENCE
    assert not comparison.identical


def test_paired_test_significant_is_direction_aware() -> None:
    # differences 0.05, 0.06, 0.04: mean 0.05, std 0.01, t = 5 sqrt 3 = 8.660.
    winner, baseline = [0.95, 0.97, 0.96], [0.90, 0.91, 0.92]
    t = 5 * math.sqrt(3)
    accuracy = compare_paired(winner, baseline, higher_is_better=True)
    assert accuracy.p_value == pytest.approx(1 - t / math.sqrt(t**2 + 2))
    assert accuracy.p_value == pytest.approx(0.01307, abs=1e-5)
    assert accuracy.verdict == BETTER
    # The same numbers as losses: the winner's loss is higher, so it is worse.
    loss = compare_paired(winner, baseline, higher_is_better=False)
    assert loss.p_value == pytest.approx(accuracy.p_value)
    assert loss.verdict == WORSE
    # And the other way round.
    assert compare_paired(baseline, winner, higher_is_better=False).verdict == BETTER


def test_identical_results_are_indistinguishable_not_nan() -> None:
    # Both reach 1.00 on every seed: no difference at all.
    comparison = compare_paired([1.0] * 5, [1.0] * 5, higher_is_better=True)
    assert comparison.identical
    assert (comparison.difference, comparison.std, comparison.ci95) == (0.0, 0.0, (0.0, 0.0))
    assert comparison.p_value == 1.0
    assert comparison.verdict == NO_DIFFERENCE
    # Equal per seed but varying across seeds: still zero difference everywhere.
    varying = compare_paired([0.9, 0.95, 1.0], [0.9, 0.95, 1.0], higher_is_better=False)
    assert varying.identical and varying.p_value == 1.0 and varying.verdict == NO_DIFFERENCE


def test_constant_nonzero_difference_is_the_t_test_limit() -> None:
    # Every seed moves by the same 0.02 (float noise in the differences included).
    comparison = compare_paired([1.0, 0.99, 0.97], [0.98, 0.97, 0.95], higher_is_better=True)
    assert not comparison.identical
    assert comparison.difference == pytest.approx(0.02)
    assert comparison.std == 0.0
    assert comparison.ci95 == pytest.approx((0.02, 0.02))
    assert comparison.p_value == 0.0
    assert comparison.verdict == BETTER
    loss = compare_paired([0.5, 0.6], [0.4, 0.5], higher_is_better=False)
    assert (loss.p_value, loss.verdict) == (0.0, WORSE)
    assert not any(math.isnan(v) for v in (*comparison.ci95, comparison.p_value))


def test_verdict_at_the_five_percent_boundary() -> None:
    assert verdict(0.01, 0.049, higher_is_better=True) == BETTER
    assert verdict(0.01, 0.05, higher_is_better=True) == NO_DIFFERENCE
    assert verdict(-0.01, 0.01, higher_is_better=True) == WORSE
    assert verdict(-0.01, 0.01, higher_is_better=False) == BETTER


def test_paired_samples_need_equal_lengths() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        compare_paired([1.0, 2.0], [1.0, 2.0, 3.0], higher_is_better=True)


def test_an_interval_is_cut_at_the_metric_bounds_and_says_so() -> None:
    # Three accuracies near 1: the symmetric t-interval reaches above 1.
    values = [0.96, 1.0, 1.0]
    free = summarize(values)
    assert free.ci95[1] > 1.0 and not free.clipped
    bounded = summarize(values, (0.0, 1.0))
    assert bounded.ci95 == (free.ci95[0], 1.0) and bounded.clipped
    assert bounded.to_dict()["ci95_clipped"] is True
    assert "ci95_clipped" not in summarize([0.5, 0.6, 0.7], (0.0, 1.0)).to_dict()
