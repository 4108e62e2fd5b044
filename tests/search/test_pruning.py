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
