"""The curve pruner: one comparison for every curve, best so far or current value."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search.algorithms import build_pruner
from search.config import PrunerSection
from search.errors import ConfigError
from search.pruning import CurvePercentilePruner


def _curve(
    values: list[float], state: TrialState = TrialState.COMPLETE
) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=state,
        value=min(values) if state == TrialState.COMPLETE else None,
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0.0, 1.0)},
        intermediate_values=dict(enumerate(values, start=1)),
    )


def _study(peers: list[list[float]]) -> optuna.Study:
    study = optuna.create_study(direction="minimize")
    for values in peers:
        study.add_trial(_curve(values))
    return study


# Peers that overfit: their loss falls to 0.2 by step 2, then rises to 0.9 by step 4.
PEERS = [[0.5, 0.2, 0.5, 0.9], [0.55, 0.25, 0.6, 0.95], [0.6, 0.3, 0.55, 0.85]]


@pytest.mark.parametrize(
    ("judge", "ours", "pruned"),
    [
        # At step 4 our trial (best 0.22, now 0.7) is behind the peers' bests (0.25) and
        # ahead of their current values (0.9).
        ("best", [0.4, 0.22, 0.5, 0.7], False),
        ("current", [0.4, 0.22, 0.5, 0.7], False),
        # A trial that never got below 0.4: worse than every best, better than every current.
        ("best", [0.6, 0.45, 0.42, 0.4], True),
        ("current", [0.6, 0.45, 0.42, 0.4], False),
        # A trial past a good minimum (0.1) that now rises to 0.99.
        ("best", [0.3, 0.1, 0.5, 0.99], False),
        ("current", [0.3, 0.1, 0.5, 0.99], True),
    ],
)
def test_judge_best_compares_bests_and_current_compares_current_values(
    judge: str, ours: list[float], pruned: bool
) -> None:
    study = _study(PEERS)
    pruner = CurvePercentilePruner(percentile=50.0, n_startup_trials=3, judge=judge)  # type: ignore[arg-type]
    trial = _curve(ours, TrialState.RUNNING)
    assert pruner.prune(study, trial) is pruned


def test_startup_and_warmup_hold_pruning_off() -> None:
    study = _study(PEERS)
    worst = _curve([9.0, 9.0, 9.0, 9.0], TrialState.RUNNING)
    assert CurvePercentilePruner(n_startup_trials=4).prune(study, worst) is False
    assert CurvePercentilePruner(n_startup_trials=3, n_warmup_steps=4).prune(study, worst) is False
    assert CurvePercentilePruner(n_startup_trials=3).prune(study, worst) is True


def test_the_config_selects_it_with_judge_and_checks_the_value() -> None:
    pruner = build_pruner(PrunerSection(name="median", args={"judge": "current"}))
    assert isinstance(pruner, CurvePercentilePruner) and pruner.judge == "current"
    assert pruner.percentile == 50.0
    assert not isinstance(build_pruner(PrunerSection(name="median")), CurvePercentilePruner)
    with pytest.raises(ConfigError, match=r"pruner\.args\.judge: must be one of best, current"):
        build_pruner(PrunerSection(name="median", args={"judge": "last"}))
    with pytest.raises(ConfigError, match="only the median and percentile pruners take it"):
        build_pruner(PrunerSection(name="hyperband", args={"judge": "best"}))


# Fast learners: at their minimum (1.2) by step 4, then overfitting.
FAST = [[2.0, 1.6, 1.3, 1.2, 1.25, 1.3, 1.4, 1.5, 1.6]] * 3


@pytest.mark.parametrize(
    ("ours", "lookahead", "pruned"),
    [
        # A slow learner still falling 0.15 a step: behind the bar (1.2) at step 5, but at that
        # pace 4 steps on (1.6 - 0.6 = 1.0) it would be ahead of the peers' bests there (1.2).
        ([2.1, 2.0, 1.9, 1.75, 1.6], 4, False),
        ([2.1, 2.0, 1.9, 1.75, 1.6], 0, True),
        # Falling too slowly to catch up within 4 steps (1.6 - 4 * 0.05 = 1.4 > 1.2).
        ([1.8, 1.75, 1.7, 1.65, 1.6], 4, True),
        # Stalled: no pace, nothing to project.
        ([2.1, 1.9, 1.7, 1.7, 1.7], 8, True),
        # Ahead of the bar: never pruned, whatever the lookahead.
        ([1.5, 1.3, 1.2, 1.15, 1.1], 4, False),
    ],
)
def test_lookahead_spares_a_trial_closing_the_gap_and_only_that(
    ours: list[float], lookahead: int, pruned: bool
) -> None:
    study = _study(FAST)
    pruner = CurvePercentilePruner(n_startup_trials=3, n_warmup_steps=4, lookahead=lookahead)
    assert pruner.prune(study, _curve(ours, TrialState.RUNNING)) is pruned


def test_lookahead_works_on_a_maximized_metric() -> None:
    study = optuna.create_study(direction="maximize")
    for _ in range(3):
        study.add_trial(_curve([0.5, 0.6, 0.7, 0.8, 0.78, 0.75]))
    climbing = _curve([0.4, 0.45, 0.5, 0.6, 0.7], TrialState.RUNNING)  # +0.1 a step
    stalled = _curve([0.4, 0.5, 0.6, 0.6, 0.6], TrialState.RUNNING)
    pruner = CurvePercentilePruner(n_startup_trials=3, n_warmup_steps=4, lookahead=3)
    assert pruner.prune(study, climbing) is False
    assert pruner.prune(study, stalled) is True


def test_the_config_selects_it_with_lookahead_and_checks_the_value() -> None:
    pruner = build_pruner(PrunerSection(name="median", args={"lookahead": 5}))
    assert isinstance(pruner, CurvePercentilePruner)
    assert (pruner.lookahead, pruner.judge, pruner.percentile) == (5, "best", 50.0)
    for bad in (-1, 2.5, "five", True):
        with pytest.raises(ConfigError, match=r"pruner\.args: invalid for median: lookahead"):
            build_pruner(PrunerSection(name="median", args={"lookahead": bad}))
    with pytest.raises(ConfigError, match=r"pruner\.args\.lookahead: only the median"):
        build_pruner(PrunerSection(name="successive_halving", args={"lookahead": 4}))
