"""The median (percentile) stopping rule, judging curves by their best so far or current value.

Optuna's ``PercentilePruner`` compares a running trial's *best* value so far with its peers'
*raw* values at the same step. On a task that overfits that mixes two things: a peer past its
minimum reports a worse value than it reached, so the bar drifts with the peers' overfitting.
This pruner applies one rule to both sides, chosen by ``judge``:

- ``best``: each curve is judged by the best value it has reached up to the step (what early
  stopping would keep of it). A trial is pruned when even its best so far is worse than the
  percentile of the peers' bests so far. This is the default: an overfitting trial that has
  already reached a good minimum is not pruned for rising afterwards (early stopping ends it
  and keeps that minimum), and only trials whose best cannot compete are cut.
- ``current``: each curve is judged by its value at the step. A trial past its minimum is
  pruned as soon as its current value falls behind, and loses its best epoch with it.

Only what the pruner compares changes: the stored intermediate values stay each epoch's raw
metric (what the dashboard draws). ``benchmarks/pruning.py`` measures both.

``spare`` (trials, 0 = off) gives the sampler a few full curves from wherever the pruner cuts
learners that are still improving. The pruner's cuts cost little by themselves; what costs is
the sampler's path after them. A model-based sampler such as TPE sees a slow starter's cut
beginning as a bad result and does not go back to its region, so a study that prunes never
finds the slow corner an unpruned study finds (``benchmarks/RESULTS-warmup.md``, follow-up 5).
With ``spare: K`` hpsearch's trial runner lets the first K trials the rule would cut while
their best so far is still improving (by at least ``spare_gain``, 2 % by default, of it over
the last ``spare_window`` steps, 2 by default) run on, unjudged, to their end or their early stop
(``search.study``'s trial runner; the count is study-wide, read from the trials'
``spared_while_improving`` attr). A trial that has stopped improving is cut as before.

``leaders`` (trials, 0 = off) keeps a trial behind the bar while it is on the pace of one of
the study's ``leaders`` best complete trials: its value at the step is no worse than the slowest
of those trials had at the same step. The median rule assumes that a trial behind its peers
early stays behind; the leaders' own curves test that on the study itself. Where a slow starter
has become one of the best, the trials that start as slowly as it did are no longer cut for it,
so TPE's proposals near it are run to their end (``benchmarks/RESULTS-warmup.md``, follow-up
7). Where the best trials were fast from the start, their pace is stricter than the median and
changes nothing.

``lookahead`` (epochs, 0 = off) spares a trial that is behind but still catching up. On a task
that overfits, the best configurations are often slow learners: at the end of the warm-up they
trail the fast ones (whose minima set the bar) while their loss still falls steeply. With
``lookahead: K`` a trial behind the bar is pruned only if, going on at its recent pace (the
improvement of its best so far over the last two steps) for K more steps, it would still be
behind the peers' bar K steps later. A trial that has stopped improving projects no gain, so
this only delays the cut of trials that are closing the gap; the projection is linear, so
optimistic on a flattening curve, and the trial is judged again at every step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

Judge = Literal["best", "current"]
JUDGES = ("best", "current")
# The arguments of this project's own; a median or percentile pruner given none of them is
# Optuna's own class.
CUSTOM_ARGS = ("judge", "lookahead", "spare", "leaders", "spare_gain", "spare_window")
PACE_STEPS = 2  # `lookahead`: a trial's pace is the mean gain of its best so far over this many
# `spare`: a trial is still improving when its best so far gained at least `spare_gain` of its
# value over the last `spare_window` steps (a flat start at the loss of a guess gains ~0).
SPARE_GAIN = 0.02
SPARE_WINDOW = 2


class CurvePercentilePruner(BasePruner):
    """Prune when a trial's curve is worse than ``percentile`` of its complete peers at a step."""

    def __init__(
        self,
        percentile: float = 50.0,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        n_min_trials: int = 1,
        judge: Judge = "best",
        lookahead: int = 0,
        spare: int = 0,
        leaders: int = 0,
        spare_gain: float = SPARE_GAIN,
        spare_window: int = SPARE_WINDOW,
    ) -> None:
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be between 0 and 100, got {percentile}")
        if n_startup_trials < 0 or n_warmup_steps < 0:
            raise ValueError("n_startup_trials and n_warmup_steps must be >= 0")
        if interval_steps < 1 or n_min_trials < 1:
            raise ValueError("interval_steps and n_min_trials must be >= 1")
        if judge not in JUDGES:
            raise ValueError(f"judge must be one of {', '.join(JUDGES)}, got {judge!r}")
        if isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 0:
            raise ValueError(f"lookahead must be a whole number of steps >= 0, got {lookahead!r}")
        if isinstance(spare, bool) or not isinstance(spare, int) or spare < 0:
            raise ValueError(f"spare must be a whole number of trials >= 0, got {spare!r}")
        if isinstance(leaders, bool) or not isinstance(leaders, int) or leaders < 0:
            raise ValueError(f"leaders must be a whole number of trials >= 0, got {leaders!r}")
        if not 0.0 <= spare_gain < 1.0:
            raise ValueError(f"spare_gain must be a share in [0, 1), got {spare_gain!r}")
        if isinstance(spare_window, bool) or not isinstance(spare_window, int) or spare_window < 1:
            raise ValueError(
                f"spare_window must be a whole number of steps >= 1, got {spare_window!r}"
            )
        self.percentile = percentile
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps
        self.interval_steps = interval_steps
        self.n_min_trials = n_min_trials
        self.judge = judge
        self.lookahead = lookahead
        self.spare = spare
        self.leaders = leaders
        self.spare_gain = spare_gain
        self.spare_window = spare_window

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return self.prune_curve(
            trial.intermediate_values,
            [peer.intermediate_values for peer in complete],
            study.direction == StudyDirection.MAXIMIZE,
        )

    def prune_curve(
        self,
        curve: Mapping[int, float],
        peers: Sequence[Mapping[int, float]],
        maximize: bool,
    ) -> bool:
        """The rule on plain curves (step -> value): ``curve`` against complete ``peers``.

        A multi-objective study keeps its curves in the ``epochs`` record rather than in
        Optuna's intermediate values, and asks this directly (``_multi_objective.py``).
        """
        step = max(curve) if curve else None
        # As Optuna's: judged from step `n_warmup_steps` on, every `interval_steps` steps (a
        # check that falls on a step with no report is made at the next reported step).
        if step is None or step < self.n_warmup_steps:
            return False
        due = (step - self.n_warmup_steps) // self.interval_steps * self.interval_steps
        previous = max((s for s in curve if s != step), default=-1)
        if previous >= due + self.n_warmup_steps:
            return False
        if len(peers) < max(1, self.n_startup_trials):
            return False
        ours = self._value(curve, step, maximize)
        if math.isnan(ours):
            return True
        # One rule for every bar (this median, `leaders`, `lookahead`): a peer is judged as the
        # trial is. With `best`, a peer that ended before the step counts with its final best
        # (what early stopping kept of it); with `current`, only peers with a value at the step.
        bar = self._bar(peers, step, maximize)
        if bar is None:
            return False
        behind = ours < bar if maximize else ours > bar
        if behind and self.leaders:
            # On the pace of one of the study's best trials at this step? Then the peers'
            # median is not evidence against it: those trials were there too.
            pace = self._leaders_bar(peers, step, maximize)
            if pace is not None and not (ours < pace if maximize else ours > pace):
                return False
        if not behind or not self.lookahead:
            return behind
        # Still catching up? Project the recent pace of its best so far `lookahead` steps on and
        # compare with where the same peers' bests were that many steps later.
        ahead = self._bar(peers, step + self.lookahead, maximize, judge="best")
        earlier = self._value(curve, max(1, step - PACE_STEPS), maximize, judge="best")
        best_now = self._value(curve, step, maximize, judge="best")
        if ahead is None or math.isnan(earlier) or math.isnan(best_now):
            return True
        pace = (best_now - earlier) / min(PACE_STEPS, max(1, step - 1))
        projected = best_now + pace * self.lookahead
        return projected < ahead if maximize else projected > ahead

    def still_improving(self, curve: Mapping[int, float], maximize: bool) -> bool:
        """Did the best so far gain >= ``spare_gain`` of its value over ``spare_window`` steps?

        The test ``spare`` applies to a trial the rule would cut (module docstring).
        """
        step = max(curve) if curve else None
        if step is None or step <= self.spare_window:
            return False
        now = self._value(curve, step, maximize, judge="best")
        before = self._value(curve, step - self.spare_window, maximize, judge="best")
        if math.isnan(now) or math.isnan(before) or before == 0:
            return False
        gain = (now - before) if maximize else (before - now)
        return gain >= self.spare_gain * abs(before)

    def _leaders_bar(
        self, peers: Sequence[Mapping[int, float]], step: int, maximize: bool
    ) -> float | None:
        """The slowest of the ``leaders`` best complete peers at ``step``, judged as ``judge`` says.

        Leaders are ranked by the best value of their whole curve (what a complete trial
        reports). As for the median bar, with ``judge: best`` a leader that ended before
        ``step`` counts with its final best; with ``current`` it has no value there.
        """
        ranked = [
            (final, peer)
            for peer in peers
            if peer and not math.isnan(final := self._value(peer, max(peer), maximize, "best"))
        ]
        ranked.sort(key=lambda pair: -pair[0] if maximize else pair[0])
        paces = [self._value(peer, step, maximize) for _, peer in ranked[: self.leaders]]
        paces = [value for value in paces if not math.isnan(value)]
        if not paces:
            return None
        return min(paces) if maximize else max(paces)

    def _bar(
        self,
        peers: Sequence[Mapping[int, float]],
        step: int,
        maximize: bool,
        judge: Judge | None = None,
    ) -> float | None:
        """The top ``percentile`` of the peers' values at ``step`` (as Optuna's: 50 = median)."""
        values = [
            value
            for peer in peers
            if not math.isnan(value := self._value(peer, step, maximize, judge))
        ]
        if len(values) < self.n_min_trials:
            return None
        rank = 100.0 - self.percentile if maximize else self.percentile
        return float(np.percentile(values, rank))

    def _value(
        self,
        curve: Mapping[int, float],
        step: int,
        maximize: bool,
        judge: Judge | None = None,
    ) -> float:
        if (judge or self.judge) == "current":
            return float(curve.get(step, math.nan))
        values = [v for s, v in curve.items() if s <= step and not math.isnan(v)]
        if not values:
            return math.nan
        return max(values) if maximize else min(values)
