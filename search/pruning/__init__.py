"""When to stop a trial, and how Optuna's samplers and pruners are built from the config.

Modules: ``_rules`` (the project's own pruners: the median/percentile rule on a curve, with
``judge``, ``spare`` and ``leaders``), ``_multi_objective`` (pruning a study with several
metrics on its training metric, spared by cost), ``_build`` (``build_sampler``,
``build_pruner``).
"""

from __future__ import annotations

from search.pruning._build import build_pruner, build_sampler
from search.pruning._multi_objective import MultiObjectivePruning, curve_of
from search.pruning._rules import CUSTOM_ARGS, CurvePercentilePruner

__all__ = [
    "CUSTOM_ARGS",
    "CurvePercentilePruner",
    "MultiObjectivePruning",
    "build_pruner",
    "build_sampler",
    "curve_of",
]
