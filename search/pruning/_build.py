"""Samplers and pruners from the config's ``sampler:`` and ``pruner:`` sections."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import optuna

from search.config import PrunerSection, SamplerSection, StudyConfig
from search.errors import ConfigError
from search.pruning._rules import CUSTOM_ARGS, JUDGES, CurvePercentilePruner
from search.trial import grid


def build_sampler(
    config: StudyConfig, source: str = "config", seed_offset: int = 0
) -> optuna.samplers.BaseSampler:
    """The sampler named in the config, seeded with ``study.seed + seed_offset``.

    A resumed study or a second worker must not replay the random stream of the first run
    (it would sample the very same startup trials again), so callers pass an offset such as
    the number of trials already in the study.
    """
    section = config.sampler
    seed = config.study.seed + seed_offset
    if not config.search:
        # Nothing to sample ("train this configuration"): any sampler will do; random has no
        # startup phase and no warnings about an empty space.
        return optuna.samplers.RandomSampler(seed=seed)
    factories: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "gp": optuna.samplers.GPSampler,
        "qmc": optuna.samplers.QMCSampler,
        "nsgaii": optuna.samplers.NSGAIISampler,
    }
    args = dict(section.args)
    if "seed" in args:
        raise ConfigError(
            f"{source}: sampler.args.seed: the sampler seed is study.seed; set that instead"
        )
    if section.name == "grid":
        if "search_space" in args:
            raise ConfigError(
                f"{source}: sampler.args.search_space: the grid comes from the categorical "
                "choices in `search:`; remove this key"
            )
        return _construct(optuna.samplers.GridSampler, section, source, grid(config), seed=seed)
    return _construct(factories[section.name], section, source, seed=seed, **args)


def build_pruner(section: PrunerSection, source: str = "config") -> optuna.pruners.BasePruner:
    """The pruner named in the config. ``patient`` wraps another: ``args: {wrapped: {...}}``.

    ``median`` and ``percentile`` with any of this project's own arguments (``CUSTOM_ARGS``:
    ``judge``, ``lookahead``, ``spare``, ``leaders``, ``spare_gain``, ``spare_window``) use
    :class:`~search.pruning.CurvePercentilePruner`, which compares every curve the same way
    (``judge`` defaults to ``best`` there); with only Optuna's arguments they are Optuna's own
    ``MedianPruner`` / ``PercentilePruner`` classes, not a subclass or a wrapper.
    """
    args = dict(section.args)
    if section.name == "none":
        if args:
            raise ConfigError(f"{source}: pruner.args: the `none` pruner takes no args; use {{}}")
        return optuna.pruners.NopPruner()
    if section.name == "patient":
        wrapped_raw = args.pop("wrapped", None)
        wrapped = None
        if wrapped_raw is not None:
            if not isinstance(wrapped_raw, dict):
                raise ConfigError(
                    f"{source}: pruner.args.wrapped: expected {{name: median, args: {{}}}}, "
                    f"got {wrapped_raw!r}"
                )
            try:
                wrapped_section = PrunerSection.model_validate(wrapped_raw)
            except Exception as e:
                raise ConfigError(
                    f"{source}: pruner.args.wrapped: not a pruner section ({wrapped_raw!r}); "
                    "write e.g. {name: median, args: {}}"
                ) from e
            wrapped = build_pruner(wrapped_section, source)
            if isinstance(wrapped, CurvePercentilePruner) and wrapped.spare:
                raise ConfigError(
                    f"{source}: pruner.args.wrapped.args.spare: hpsearch spares trials only for "
                    "a median or percentile pruner used directly; drop `patient` or `spare`"
                )
        args.setdefault("patience", 3)
        return _construct(optuna.pruners.PatientPruner, section, source, wrapped, **args)
    factories: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
        "median": optuna.pruners.MedianPruner,
        "percentile": optuna.pruners.PercentilePruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "threshold": optuna.pruners.ThresholdPruner,
        "wilcoxon": optuna.pruners.WilcoxonPruner,
    }
    if section.name == "threshold" and "lower" not in args and "upper" not in args:
        raise ConfigError(
            f"{source}: pruner.args: the threshold pruner needs `lower` or `upper` "
            "(e.g. {upper: 5.0} to stop trials whose val_loss exceeds 5)"
        )
    if section.name == "percentile" and "percentile" not in args:
        raise ConfigError(
            f"{source}: pruner.args.percentile: missing; e.g. {{percentile: 25.0}} keeps the "
            "best quarter"
        )
    ours = [key for key in CUSTOM_ARGS if key in args]
    if ours:
        # Our rule, one comparison for both sides: best so far, or the current value.
        if section.name not in ("median", "percentile"):
            raise ConfigError(
                f"{source}: pruner.args.{ours[0]}: only the median and percentile pruners take "
                f"it (got pruner {section.name!r}); remove it"
            )
        if args.setdefault("judge", "best") not in JUDGES:
            raise ConfigError(
                f"{source}: pruner.args.judge: must be one of {', '.join(JUDGES)}, "
                f"got {args['judge']!r}"
            )
        if section.name == "median":
            args["percentile"] = 50.0
        return _construct(CurvePercentilePruner, section, source, **args)
    return _construct(factories[section.name], section, source, **args)


def _construct(
    factory: Callable[..., Any],
    section: SamplerSection | PrunerSection,
    source: str,
    *args: Any,
    **kwargs: Any,
) -> Any:
    kind = "sampler" if isinstance(section, SamplerSection) else "pruner"
    for key, value in kwargs.items():
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{source}: {kind}.args.{key}: NaN is not a valid value")
    try:
        with warnings.catch_warnings():
            # Several samplers (gp, qmc, multivariate tpe) are "experimental" in Optuna; the
            # user chose them knowingly, so their warnings would only be noise on stderr.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return factory(*args, **kwargs)
    except TypeError as e:
        raise ConfigError(
            f"{source}: {kind}.args: {section.name} {kind} does not accept these args "
            f"({', '.join(map(str, section.args)) or 'none'}): {e}"
        ) from e
    except (ValueError, ImportError) as e:
        raise ConfigError(f"{source}: {kind}.args: invalid for {section.name}: {e}") from e
