"""The curve pruner: one comparison for every curve, best so far or current value."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search.config import PrunerSection
from search.errors import ConfigError
from search.pruning import CurvePercentilePruner, build_pruner
from search.trial import SPARED_WHILE_IMPROVING


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
    assert CurvePercentilePruner(n_startup_trials=3, n_warmup_steps=5).prune(study, worst) is False
    assert CurvePercentilePruner(n_startup_trials=3).prune(study, worst) is True


@pytest.mark.parametrize("warmup", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("interval", [1, 2])
def test_warmup_and_interval_mean_what_they_mean_in_optuna(warmup: int, interval: int) -> None:
    """With ``judge: current`` the rule is Optuna's median rule: the same steps are judged."""
    study = _study(PEERS)
    ours = CurvePercentilePruner(
        n_startup_trials=3, n_warmup_steps=warmup, interval_steps=interval, judge="current"
    )
    stock = optuna.pruners.MedianPruner(
        n_startup_trials=3, n_warmup_steps=warmup, interval_steps=interval
    )
    for steps in range(1, 5):
        # Far behind at every step: pruned wherever a step is judged at all.
        trial = _curve([9.0] * steps, TrialState.RUNNING)
        assert ours.prune(study, trial) == bool(stock.prune(study, trial)), (
            warmup,
            interval,
            steps,
        )


def test_the_config_selects_it_with_judge_and_checks_the_value() -> None:
    pruner = build_pruner(PrunerSection(name="median", args={"judge": "current"}))
    assert isinstance(pruner, CurvePercentilePruner) and pruner.judge == "current"
    assert pruner.percentile == 50.0
    assert not isinstance(build_pruner(PrunerSection(name="median")), CurvePercentilePruner)
    # Only Optuna's own arguments: Optuna's own class, not a subclass or a wrapper.
    stock = build_pruner(
        PrunerSection(name="median", args={"n_startup_trials": 5, "n_warmup_steps": 5})
    )
    assert type(stock) is optuna.pruners.MedianPruner
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


# A slow starter that became the study's best (1.0 at step 9, on the plateau until step 4).
SLOW_LEADER = [2.3, 2.28, 2.25, 2.2, 2.1, 1.8, 1.5, 1.2, 1.0]


@pytest.mark.parametrize(
    ("ours", "leaders", "pruned"),
    [
        # On the leader's pace at step 5 (2.1), far behind the fast peers' median (1.2).
        ([2.3, 2.27, 2.24, 2.18, 2.08], 1, False),
        ([2.3, 2.27, 2.24, 2.18, 2.08], 0, True),
        # Slower than the leader was at the same step: cut as before.
        ([2.3, 2.3, 2.29, 2.29, 2.28], 1, True),
        # leaders: 4 counts the fast peers too; the slowest of the four sets the pace.
        ([2.3, 2.3, 2.29, 2.29, 2.1], 4, False),
    ],
)
def test_leaders_keeps_a_trial_on_the_pace_of_one_of_the_best_and_only_that(
    ours: list[float], leaders: int, pruned: bool
) -> None:
    study = _study([*FAST, SLOW_LEADER])
    pruner = CurvePercentilePruner(n_startup_trials=3, n_warmup_steps=4, leaders=leaders)
    assert pruner.prune(study, _curve(ours, TrialState.RUNNING)) is pruned


def test_leaders_are_the_best_trials_not_the_slowest() -> None:
    # The slow trial ended worst (1.5): it leads nothing, so its pace spares no one.
    slow_loser = [2.3, 2.28, 2.25, 2.2, 2.1, 1.9, 1.7, 1.6, 1.5]
    study = _study([*FAST, slow_loser])
    pruner = CurvePercentilePruner(n_startup_trials=3, n_warmup_steps=4, leaders=1)
    assert pruner.prune(study, _curve([2.3, 2.27, 2.24, 2.18, 2.08], TrialState.RUNNING))


def test_leaders_works_on_a_maximized_metric() -> None:
    study = optuna.create_study(direction="maximize")
    for _ in range(3):
        study.add_trial(_curve([0.5, 0.6, 0.7, 0.75, 0.74, 0.72]))
    study.add_trial(_curve([0.1, 0.12, 0.15, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9]))
    pruner = CurvePercentilePruner(n_startup_trials=3, n_warmup_steps=4, leaders=1)
    assert pruner.prune(study, _curve([0.1, 0.1, 0.14, 0.2, 0.31], TrialState.RUNNING)) is False
    assert pruner.prune(study, _curve([0.1, 0.1, 0.11, 0.11, 0.12], TrialState.RUNNING)) is True


def test_the_config_selects_it_with_leaders_and_checks_the_value() -> None:
    pruner = build_pruner(PrunerSection(name="median", args={"leaders": 3}))
    assert isinstance(pruner, CurvePercentilePruner) and pruner.leaders == 3
    for bad in (-1, 2.5, "three", True):
        with pytest.raises(ConfigError, match=r"pruner\.args: invalid for median: leaders"):
            build_pruner(PrunerSection(name="median", args={"leaders": bad}))
    with pytest.raises(ConfigError, match=r"pruner\.args\.leaders: only the median"):
        build_pruner(PrunerSection(name="hyperband", args={"leaders": 3}))


@pytest.mark.parametrize(
    ("curve", "maximize", "improving"),
    [
        # Best so far 2.30 -> 2.24 over the last two steps: 2.6 % of it, at least SPARE_GAIN.
        ([2.30, 2.27, 2.24], False, True),
        # The loss of a guess, flat: nothing gained.
        ([2.30, 2.30, 2.30, 2.30], False, False),
        # Rising after a minimum: the best so far has not moved.
        ([1.5, 1.2, 1.3, 1.4], False, False),
        ([0.40, 0.45, 0.50], True, True),
        ([0.40, 0.401, 0.402], True, False),
        # Too short to have a pace.
        ([2.3, 1.0], False, False),
    ],
)
def test_still_improving_is_the_recent_gain_of_the_best_so_far(
    curve: list[float], maximize: bool, improving: bool
) -> None:
    pruner = CurvePercentilePruner(spare=1)
    assert pruner.still_improving(dict(enumerate(curve, start=1)), maximize) is improving


def test_the_config_selects_it_with_spare_and_checks_the_value() -> None:
    pruner = build_pruner(PrunerSection(name="median", args={"spare": 3}))
    assert isinstance(pruner, CurvePercentilePruner)
    assert (pruner.spare, pruner.judge, pruner.percentile) == (3, "best", 50.0)
    for bad in (-1, 2.5, "three", True):
        with pytest.raises(ConfigError, match=r"pruner\.args: invalid for median: spare"):
            build_pruner(PrunerSection(name="median", args={"spare": bad}))
    with pytest.raises(ConfigError, match=r"pruner\.args\.spare: only the median"):
        build_pruner(PrunerSection(name="hyperband", args={"spare": 2}))
    patient = {"wrapped": {"name": "median", "args": {"spare": 2}}}
    with pytest.raises(ConfigError, match=r"pruner\.args\.wrapped\.args\.spare"):
        build_pruner(PrunerSection(name="patient", args=patient))


# Three fast learners complete first and set the bar; then the same slow starter twice (same
# parameters, same seed: the same curve, behind the bar at epoch 3 but gaining ~2.7 % of its
# loss over two epochs) and a learner that does not move at all.
SPARE_STUDY: dict[str, Any] = {
    "study": {"name": "spare", "metric": "val_loss", "n_trials": 6, "seed": 0},
    "sampler": {"name": "random", "args": {}},
    "pruner": {"name": "median", "args": {"n_startup_trials": 3, "n_warmup_steps": 3, "spare": 1}},
    "objective": "toy_transformer",
    "fixed": {
        "epochs": 8,
        "hidden_dim": 16,
        "num_heads": 2,
        "num_layers": 1,
        "early_stopping_patience": None,
    },
    "search": {
        "lr": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
        "batch_size": {"type": "categorical", "choices": [16, 64]},
    },
    "enqueue": [
        {"lr": 5e-3, "batch_size": 16},
        {"lr": 4e-3, "batch_size": 16},
        {"lr": 3e-3, "batch_size": 16},
        {"lr": 1e-3, "batch_size": 64},
        {"lr": 1e-3, "batch_size": 64},
        {"lr": 1e-6, "batch_size": 64},
    ],
    "data": {"n_train": 128, "n_val": 64, "n_test": 64, "seq_len": 20},
}


@pytest.mark.slow
def test_spare_lets_the_first_improving_trial_run_on_and_cuts_the_rest(
    run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    config = {**SPARE_STUDY, "study": {**SPARE_STUDY["study"], "storage": storage}}
    (tmp_path / "spare.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = run_cli("run", "spare.yaml")
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="spare", storage=storage).get_trials()
    states = [t.state for t in trials]
    assert states[:4] == [TrialState.COMPLETE] * 4
    assert states[4:] == [TrialState.PRUNED] * 2
    slow, again, flat = trials[3], trials[4], trials[5]
    # The first slow starter was behind the bar at epoch 3 and still improving: spared, it
    # trained all 8 epochs. Its twin had the very same first epochs, but the budget (1) was used.
    assert slow.user_attrs[SPARED_WHILE_IMPROVING] == 3
    assert len(slow.intermediate_values) == 8
    assert again.intermediate_values == {k: slow.intermediate_values[k] for k in (1, 2, 3)}
    assert SPARED_WHILE_IMPROVING not in again.user_attrs
    # A flat learner is cut as without `spare`.
    assert len(flat.intermediate_values) == 3 and SPARED_WHILE_IMPROVING not in flat.user_attrs
    show = run_cli("show", "spare", "--storage", storage)
    assert "4 complete (0 early-stopped), 2 pruned, 0 failed; 1 spared while improving" in (
        show.stdout
    )


def test_spare_is_refused_for_a_study_with_several_metrics(
    run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    study = {**SPARE_STUDY["study"], "metric": ["val_loss", "num_params"], "storage": storage}
    config = {**SPARE_STUDY, "study": study}
    (tmp_path / "several.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = run_cli("run", "several.yaml")
    assert done.returncode == 2
    assert "pruner.args.spare: applies to single-metric studies" in done.stderr
    assert not (tmp_path / "hp.db").exists()


def test_spare_gain_and_window_are_arguments_of_the_spare_test() -> None:
    # The best so far falls 1.0 -> 0.9 -> 0.85 -> 0.84: 6.7 % over the last 2 steps, 1.2 % over 1.
    curve = dict(enumerate([1.0, 0.9, 0.85, 0.84], start=1))
    assert CurvePercentilePruner(spare=1).still_improving(curve, maximize=False)
    assert not CurvePercentilePruner(spare=1, spare_gain=0.1).still_improving(curve, False)
    assert not CurvePercentilePruner(spare=1, spare_window=1).still_improving(curve, False)
    assert CurvePercentilePruner(spare=1, spare_window=3).still_improving(curve, False)
    built = build_pruner(PrunerSection(name="median", args={"spare": 2, "spare_gain": 0.05}))
    assert isinstance(built, CurvePercentilePruner) and built.spare_gain == 0.05
    for bad in ({"spare_gain": 1.5}, {"spare_window": 0}, {"spare_window": 1.5}):
        with pytest.raises(ConfigError, match=r"pruner\.args: invalid for median: spare_"):
            build_pruner(PrunerSection(name="median", args={"spare": 1, **bad}))


def test_one_peer_rule_for_the_median_and_the_leaders_bars() -> None:
    """With judge best, a peer that ended before the step counts with its final best."""
    # Three peers early-stopped at step 3 with bests 0.30; two ran to step 6 with bests 0.80.
    ended = [{1: 0.9, 2: 0.5, 3: 0.3}] * 3
    long = [{1: 1.0, 2: 0.95, 3: 0.9, 4: 0.85, 5: 0.82, 6: 0.8}] * 2
    trial = {1: 1.0, 2: 0.9, 3: 0.8, 4: 0.7, 5: 0.65, 6: 0.6}
    best = CurvePercentilePruner(n_startup_trials=5, n_warmup_steps=4)
    current = CurvePercentilePruner(n_startup_trials=5, n_warmup_steps=4, judge="current")
    # Best so far 0.6 at step 6: behind the median of all five bests (0.3), ahead of 0.8.
    assert best.prune_curve(trial, [*ended, *long], maximize=False) is True
    # Judged by current values only the peers with a value at step 6 count (0.8): kept.
    assert current.prune_curve(trial, [*ended, *long], maximize=False) is False
    # The leaders bar follows the same rule: the 3 best peers ended at step 3 and count with
    # their final best (0.3), so a trial at 0.6 is not on their pace and is still cut.
    leading = CurvePercentilePruner(n_startup_trials=5, n_warmup_steps=4, leaders=3)
    assert leading.prune_curve(trial, [*ended, *long], maximize=False) is True
