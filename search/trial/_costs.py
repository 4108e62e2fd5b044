"""Cost metrics of a trial, measured before it trains, and the ``constraints:`` on them.

``num_params`` is recorded for every trial (counting is free). ``latency_ms`` is measured only
when the study optimises or constrains it (``objectives/costs.py``: warm-up passes, then the
median of timed forward passes of one example; the spread is kept in ``latency``).

A constraint is checked right after the model is built, before the first training step. Every
constraint's value goes to the sampler through Optuna's ``Trial.set_constraint`` (feasible when
<= 0: ``value - max`` or ``min - value``), so TPE learns to avoid the infeasible region (its
split ranks infeasible trials last; NSGA-II reads complete trials only and never sees them).
A proposal that violates one ends as PRUNED with a ``reason`` naming the constraint and the
value: it finished, it trained nothing, and it is not a failure (it never counts towards
``study.max_consecutive_failures``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from objectives.costs import count_parameters, measure_latency, one_example
from objectives.loop import TrainingJob
from search.config import StudyConfig
from search.trial._keys import INFEASIBLE, LATENCY, LATENCY_MS, NUM_PARAMS, TRAIN_SECONDS


class Infeasible(optuna.TrialPruned):
    """A proposal outside ``constraints:``, stopped before training; the message is the reason."""


def needs_latency(config: StudyConfig) -> bool:
    return LATENCY_MS in config.metrics or LATENCY_MS in config.constraints


def measure_costs(
    trial: optuna.Trial, config: StudyConfig, job: TrainingJob, device: str
) -> dict[str, float]:
    """Record the built model's costs on ``trial``; raise :class:`Infeasible` past a bound."""
    costs: dict[str, float] = {NUM_PARAMS: float(count_parameters(job.model))}
    trial.set_user_attr(NUM_PARAMS, int(costs[NUM_PARAMS]))
    if needs_latency(config):
        latency = measure_latency(job.model, one_example(job.data), device)
        costs[LATENCY_MS] = latency.median_ms
        trial.set_user_attr(LATENCY_MS, latency.median_ms)
        trial.set_user_attr(LATENCY, latency.to_dict())
    violated = []
    for name, bound in config.constraints.items():
        value = costs[name]
        excess = max(
            value - bound.max if bound.max is not None else -float("inf"),
            bound.min - value if bound.min is not None else -float("inf"),
        )
        trial.set_constraint(name, excess)
        if excess > 0:
            above = bound.max is not None and value > bound.max
            side, limit = ("max", bound.max) if above else ("min", bound.min)
            violated.append(
                f"{name}={_shown(value)} {'>' if above else '<'} {_shown(limit)} "
                f"(constraints.{name}.{side})"
            )
    if violated:
        raise Infeasible(f"{INFEASIBLE} {'; '.join(violated)}; not trained")
    return costs


def _shown(value: float | None) -> str:
    """A bound or measurement in full: whole numbers as integers (14250, not 1.425e+04)."""
    if value is None:
        return "?"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.6g}"


def objective_values(
    config: StudyConfig,
    best_row: Mapping[str, Any],
    costs: Mapping[str, float],
    train_seconds: float,
) -> list[float]:
    """One value per metric of a multi-objective study, in ``study.metric``'s order."""
    known = {**costs, TRAIN_SECONDS: train_seconds}
    values = []
    for name in config.metrics:
        value = known.get(name, best_row.get(name))
        if value is None:
            raise RuntimeError(f"metric {name!r} was not measured in this trial")
        values.append(float(value))
    return values
