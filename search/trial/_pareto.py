"""The Pareto front of a study with several metrics: the complete trials no other one beats on
every metric at once."""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState


def dominates(a: Sequence[float], b: Sequence[float], maximize: Sequence[bool]) -> bool:
    """Whether point ``a`` is at least as good as ``b`` everywhere and better somewhere."""
    better = False
    for x, y, up in zip(a, b, maximize, strict=True):
        if (x < y) if up else (x > y):
            return False
        if x != y:
            better = True
    return better


def at_least_as_good(a: Sequence[float], b: Sequence[float], maximize: Sequence[bool]) -> bool:
    """Whether point ``a`` is as good as ``b`` or better on every metric (ties included)."""
    return all((x >= y) if up else (x <= y) for x, y, up in zip(a, b, maximize, strict=True))


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The complete trials no other complete trial dominates, by number."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return front_of(complete, [d == StudyDirection.MAXIMIZE for d in study.directions])


def front_of(trials: Sequence[FrozenTrial], maximize: Sequence[bool]) -> list[FrozenTrial]:
    valued = [t for t in trials if t.values is not None and len(t.values) == len(maximize)]
    return sorted(
        (
            t
            for t in valued
            if not any(dominates(o.values, t.values, maximize) for o in valued if o is not t)
        ),
        key=lambda t: t.number,
    )
