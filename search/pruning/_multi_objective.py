"""Several objectives: the Pareto front, and pruning that Optuna cannot do there.

Optuna refuses ``trial.report`` and ``should_prune`` in a study with several objectives, and its
TPE sampler fails once such a trial carries intermediate values. So a multi-objective study keeps
each trial's curve only in the ``epochs`` record and decides on pruning here:

1. The configured rule (median or percentile, ``_rules.py``) judges the first metric's
   curve -- the training metric -- against the complete trials' curves of the same metric, as
   in a single-objective study.
2. A trial that rule would cut is spared when its cost metrics, known before training
   (``num_params``, ``latency_ms``), would put it on the current Pareto front at the median
   training metric of the complete trials: a small or fast model is not pruned for learning
   more slowly than large ones, because even a middling result would be worth having.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from objectives.specs import PRE_TRAINING_METRICS
from search.config import PrunerSection, StudyConfig
from search.pruning._build import build_pruner
from search.pruning._rules import CurvePercentilePruner
from search.trial import at_least_as_good, trial_epochs


def curve_of(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[int, float]:
    """Per-epoch ``metric`` from ``epochs`` records (epoch -> value): a stored trial's
    (``trial_epochs``) or the running trial's own (``TrialWriter.epochs``)."""
    curve = {}
    for row in rows:
        value = row.get(metric)
        if isinstance(row.get("epoch"), int) and isinstance(value, int | float):
            curve[row["epoch"]] = float(value)
    return curve


def curve_rule(section: PrunerSection) -> CurvePercentilePruner | None:
    """The configured median or percentile pruner as hpsearch's curve rule (``none``: None).

    ``judge`` defaults to ``best``, as everywhere in hpsearch (``search/pruning/_rules.py``).
    """
    if section.name == "none":
        return None
    args = {"judge": "best", **section.args}
    rule = build_pruner(PrunerSection(name=section.name, args=args))
    if not isinstance(rule, CurvePercentilePruner):
        raise ValueError(f"pruner {section.name} cannot judge a multi-objective study")
    return rule


@dataclass(frozen=True)
class Verdict:
    prune: bool
    spared: bool = False  # the rule would cut it, its costs put it on the front


class MultiObjectivePruning:
    """The pruning decision of a multi-objective trial, from curves in the ``epochs`` record."""

    def __init__(self, config: StudyConfig) -> None:
        self.metric = config.metric
        self.metrics = config.metrics
        self.maximize = [d == "maximize" for d in config.directions]
        self.rule = curve_rule(config.pruner)

    def decide(
        self, study: optuna.Study, curve: Mapping[int, float], costs: Mapping[str, float]
    ) -> Verdict:
        if self.rule is None:
            return Verdict(False)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        peers = [curve_of(trial_epochs(peer.user_attrs), self.metric) for peer in complete]
        if not self.rule.prune_curve(curve, peers, self.maximize[0]):
            return Verdict(False)
        if self.on_front_at_median(complete, costs):
            return Verdict(False, spared=True)
        return Verdict(True)

    def on_front_at_median(
        self, complete: Sequence[FrozenTrial], costs: Mapping[str, float]
    ) -> bool:
        """Would a trial with these costs and the median of every other metric be on the front,
        with no complete trial at least as good on every metric?

        Only cost metrics known before training count; with none among the objectives there is
        nothing to spare a trial for.
        """
        known = [i for i, name in enumerate(self.metrics) if name in PRE_TRAINING_METRICS]
        if not any(self.metrics[i] in costs for i in known):
            return False
        valued = [t.values for t in complete if t.values is not None]
        if not valued:
            return False
        point = [
            costs[name] if name in costs else statistics.median(v[i] for v in valued)
            for i, name in enumerate(self.metrics)
        ]
        # A tie is not a place on the front: a complete trial as good on every metric (the same
        # architecture at the median, say) already holds it.
        return not any(at_least_as_good(values, point, self.maximize) for values in valued)
