"""A retrain's result: the spread of each configuration over seeds, and the paired comparison.

The metrics compared are the test counterpart of the study's metric (``test_mcc`` for a study
that selected on ``val_mcc``), on which the verdict is stated, and the task's test accuracy and
loss beside it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from search.config import StudyConfig
from search.formatting import p_value, signed
from search.retrain._plan import DEFAULT_SEEDS, RetrainPlan, plan_retrain
from search.retrain._runs import SeedRun, run_seeds
from search.retrain._stats import BETTER, WORSE, Comparison, Summary, compare_paired, summarize
from storage.urls import mask_password


def compared_metrics(config: StudyConfig) -> dict[str, bool]:
    """The test metrics reported, primary first, and whether a larger value is better."""
    directions = config.spec.test_metrics
    names = dict.fromkeys((config.test_metric, "test_accuracy", "test_loss"))
    return {name: directions[name] for name in names if name in directions}


def primary_metric(config: StudyConfig) -> str:
    """The metric the verdict is about: the test counterpart of the study metric."""
    return config.test_metric


@dataclass
class SideResult:
    """The runs of one configuration and the spread of its test metrics."""

    plan: RetrainPlan
    runs: list[SeedRun]
    summaries: dict[str, Summary | None] = field(default_factory=dict)

    @property
    def missing(self) -> list[int]:
        return [run.seed for run in self.runs if run.state == "MISSING"]


@dataclass
class RetrainResult:
    """Everything ``hpsearch retrain`` reports."""

    source_study: str
    storage: str
    winner: SideResult
    baseline: SideResult | None = None
    comparisons: dict[str, Comparison | None] = field(default_factory=dict)
    compared_seeds: list[int] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    device: str = "cpu"

    @property
    def primary(self) -> str:
        return primary_metric(self.winner.plan.config)

    @property
    def complete(self) -> bool:
        sides = [self.winner] + ([self.baseline] if self.baseline else [])
        return not any(side.missing for side in sides)

    @property
    def verdict(self) -> str | None:
        comparison = self.comparisons.get(self.primary)
        return comparison.verdict if comparison else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the result file and the ``retrain:`` section of the exported file."""
        data: dict[str, Any] = {
            "source_study": self.source_study,
            "storage": self.storage,
            "seeds": list(self.winner.plan.seeds),
            "selection_metric": self.winner.plan.config.metric,
            "verdict_metric": self.primary,
            "device": self.device,
            "winner": _side_dict(self.winner),
        }
        if self.overrides:
            data["overrides"] = list(self.overrides)
        if self.baseline is not None:
            data["baseline"] = _side_dict(self.baseline)
            data["comparison"] = {
                "seeds": list(self.compared_seeds),
                **{
                    name: comparison.to_dict() if comparison else None
                    for name, comparison in self.comparisons.items()
                },
            }
            data["verdict"] = self.verdict
        data["conclusion"] = conclusion(self)
        return data


def _side_dict(side: SideResult) -> dict[str, Any]:
    fixed = side.plan.config.fixed
    return {
        "config": str(side.plan.path),
        "study": side.plan.config.study.name,
        "params": dict(fixed),
        "runs": [run.to_dict() for run in side.runs],
        **{
            name: summary.to_dict() if summary else None for name, summary in side.summaries.items()
        },
    }


def summarize_side(plan: RetrainPlan, runs: list[SeedRun]) -> SideResult:
    """Mean, std and 95 % t-interval of each test metric over the seeds that have it."""
    side = SideResult(plan, runs)
    for name in compared_metrics(plan.config):
        values = [v for v in (run.metric(name) for run in runs) if v is not None]
        bounds = plan.config.spec.metric_bounds(name)
        side.summaries[name] = summarize(values, bounds) if len(values) >= 2 else None
    return side


def compare(result: RetrainResult) -> None:
    """Fill ``result.comparisons``: paired over the seeds where both sides have test metrics."""
    assert result.baseline is not None
    winner = {run.seed: run for run in result.winner.runs}
    baseline = {run.seed: run for run in result.baseline.runs}
    seeds = [
        seed
        for seed in result.winner.plan.seeds
        if all(
            winner[seed].metric(name) is not None and baseline[seed].metric(name) is not None
            for name in compared_metrics(result.winner.plan.config)
        )
    ]
    result.compared_seeds = seeds
    for name, higher_is_better in compared_metrics(result.winner.plan.config).items():
        if len(seeds) < 2:
            result.comparisons[name] = None
            continue
        ours = [winner[s].metric(name) for s in seeds]
        theirs = [baseline[s].metric(name) for s in seeds]
        result.comparisons[name] = compare_paired(
            [float(v) for v in ours if v is not None],
            [float(v) for v in theirs if v is not None],
            higher_is_better=higher_is_better,
        )


def conclusion(result: RetrainResult) -> str:
    """The plain-language verdict line, about the primary metric (see :func:`primary_metric`)."""
    primary = result.primary
    words = primary.replace("_", " ")
    summary = result.winner.summaries.get(primary)
    if result.baseline is None:
        if summary is None:
            return "fewer than 2 seeds finished with test metrics; rerun to finish the others"
        low, high = summary.ci95
        return (
            f"{words} {summary.mean:.4f} ± {summary.std:.4f} (std) over {summary.n} seeds, "
            f"95 % CI {low:.4f} to {high:.4f}; pass --baseline to compare it with another "
            "configuration"
        )
    comparison = result.comparisons.get(primary)
    if comparison is None:
        return (
            "fewer than 2 seeds finished with test metrics on both sides; rerun to finish the "
            "others before comparing"
        )
    n = comparison.n
    if comparison.identical:
        return (
            f"the winner and the baseline are indistinguishable on this test set: the same "
            f"{words} for each of the {n} seeds (difference 0, p = 1.0)"
        )
    low, high = comparison.ci95
    numbers = (
        f"difference {signed(comparison.difference)} (95 % CI {signed(low)} to {signed(high)}), "
        f"p = {p_value(comparison.p_value)}, paired t-test over {n} seeds"
    )
    if comparison.std == 0.0:
        numbers = (
            f"difference {signed(comparison.difference)} on every one of the {n} seeds (no "
            "spread, so the paired t-test reads it as certain: p = 0)"
        )
    if comparison.verdict == BETTER:
        return f"the winner is better than the baseline on {words}: {numbers}"
    if comparison.verdict == WORSE:
        return f"the winner is worse than the baseline on {words}: {numbers}"
    return (
        f"no significant difference in {words} at the 5 % level: {numbers}; "
        "the winner does not reliably beat the baseline on this test set"
    )


def retrain(
    best_path: str | Path,
    *,
    seeds: int = DEFAULT_SEEDS,
    baseline_path: str | Path | None = None,
    storage: str | None = None,
    overrides: Sequence[str] = (),
    device: str = "cpu",
    out: TextIO | None = None,
) -> RetrainResult:
    """Retrain the winner (and the baseline) with ``seeds`` seeds and compare them."""
    stream = out or sys.stdout
    winner_plan, baseline_plan, source = plan_retrain(
        best_path, seeds=seeds, baseline_path=baseline_path, storage=storage, overrides=overrides
    )
    winner_runs = run_seeds(winner_plan, device, stream)
    baseline_runs = run_seeds(baseline_plan, device, stream) if baseline_plan else None
    result = RetrainResult(
        source_study=source,
        storage=mask_password(winner_plan.config.study.storage),
        winner=summarize_side(winner_plan, winner_runs),
        overrides=list(overrides),
        device=device,
    )
    if baseline_plan is not None and baseline_runs is not None:
        result.baseline = summarize_side(baseline_plan, baseline_runs)
        compare(result)
    return result
