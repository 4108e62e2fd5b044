"""The search space: config ``search:`` entries -> ``trial.suggest_*`` calls."""

from __future__ import annotations

from typing import Any

import optuna

from search.config import CategoricalSpace, FloatSpace, IntSpace, StudyConfig


def suggest(trial: optuna.Trial, name: str, space: FloatSpace | IntSpace | CategoricalSpace) -> Any:
    """Sample one parameter from its space."""
    if isinstance(space, FloatSpace):
        return trial.suggest_float(name, space.low, space.high, log=space.log, step=space.step)
    if isinstance(space, IntSpace):
        return trial.suggest_int(name, space.low, space.high, log=space.log, step=space.step)
    return trial.suggest_categorical(name, space.choices)


def sample_params(trial: optuna.Trial, config: StudyConfig) -> dict[str, Any]:
    """Every parameter of one trial: the fixed ones, then the sampled ones in config order."""
    params = dict(config.fixed)
    for name, space in config.search.items():
        params[name] = suggest(trial, name, space)
    return params


def distributions(config: StudyConfig) -> dict[str, optuna.distributions.BaseDistribution]:
    """The Optuna distributions of the searched parameters (for drift checks and samplers)."""
    result: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, space in config.search.items():
        if isinstance(space, FloatSpace):
            result[name] = optuna.distributions.FloatDistribution(
                space.low, space.high, log=space.log, step=space.step
            )
        elif isinstance(space, IntSpace):
            result[name] = optuna.distributions.IntDistribution(
                space.low, space.high, log=space.log, step=space.step
            )
        else:
            result[name] = optuna.distributions.CategoricalDistribution(space.choices)
    return result


def grid(config: StudyConfig) -> dict[str, list[Any]]:
    """The grid sampler's grid: every categorical choice of every searched parameter."""
    return {
        name: list(space.choices)
        for name, space in config.search.items()
        if isinstance(space, CategoricalSpace)
    }
