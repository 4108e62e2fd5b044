"""Planning a retrain: load the fixed configurations, check them, name their studies and seeds.

Everything that can be checked before a storage is touched is checked here (the same
preparation step as ``run``), so a bad file is one line and nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from search.config import SAME_TASK_KEYS, StudyConfig, get_path, load_config
from search.errors import ConfigError
from search.study import check_buildable, companion_config
from storage.urls import parse_storage_url

DEFAULT_SEEDS = 5
WINNER_SUFFIX = "/retrain"
BASELINE_SUFFIX = "/retrain-baseline"


@dataclass(frozen=True)
class RetrainPlan:
    """One configuration to retrain: its file, its retrain study's config and its seeds."""

    role: str  # "winner" or "baseline"
    path: Path
    config: StudyConfig  # the retrain study's config (name, storage, no pruner)
    seeds: tuple[int, ...]


def load_fixed_config(path: str | Path, overrides: Sequence[str], role: str) -> StudyConfig:
    """Load a config that trains one configuration (empty ``search:``), or raise ConfigError."""
    config = load_config(path, overrides)
    if config.search:
        names = ", ".join(config.search)
        hint = (
            "export the best of a study with `hpsearch export STUDY -o best.yaml` and retrain that"
            if role == "winner"
            else "give a config with `search: {}` and every parameter in `fixed:`"
        )
        raise ConfigError(
            f"{path}: search: retrain trains one fixed configuration, but this {role} config "
            f"searches {names}; {hint}"
        )
    return config


def source_study_name(config: StudyConfig) -> str:
    """The study the configuration came from: ``best.study`` of an exported file, else its name."""
    best = config.best
    if isinstance(best, dict) and isinstance(best.get("study"), str) and best["study"].strip():
        return str(best["study"])
    return config.study.name


def retrain_prefix(config: StudyConfig, source: str) -> str:
    """The retrain studies' name prefix: the source study's, or ``<source>-trial-N`` for a
    trial exported with ``export --trial N`` (two members of one Pareto front retrain apart)."""
    best = config.best
    if isinstance(best, dict) and config.study.name == f"{source}-trial-{best.get('trial')}":
        return config.study.name
    return source


def retrain_seeds(config: StudyConfig, count: int) -> tuple[int, ...]:
    """``study.seed + 1 ... study.seed + count``: never the seed the search trained with."""
    return tuple(config.study.seed + 1 + index for index in range(count))


def retrain_config(config: StudyConfig, study_name: str, storage: str, count: int) -> StudyConfig:
    """The config of a retrain study: its own name, no pruner, one failure stops it."""
    # A failing seed is a bug to look at, not something to paper over with another run.
    return companion_config(
        config, name=study_name, storage=storage, n_trials=count, max_consecutive_failures=1
    )


def plan_retrain(
    best_path: str | Path,
    *,
    seeds: int = DEFAULT_SEEDS,
    baseline_path: str | Path | None = None,
    storage: str | None = None,
    overrides: Sequence[str] = (),
) -> tuple[RetrainPlan, RetrainPlan | None, str]:
    """Check everything that can be checked before a storage is touched; return the plans.

    Returns (winner plan, baseline plan or None, source study name).
    """
    if seeds < 2:
        raise ConfigError(
            f"--seeds: needs at least 2 seeds for a spread and a confidence interval, got {seeds}"
        )
    winner = load_fixed_config(best_path, overrides, "winner")
    source = source_study_name(winner)
    prefix = retrain_prefix(winner, source)
    url = storage or winner.study.storage
    parse_storage_url(url)
    check_buildable(winner, str(best_path))
    seed_list = retrain_seeds(winner, seeds)
    winner_plan = RetrainPlan(
        "winner",
        Path(best_path),
        retrain_config(winner, prefix + WINNER_SUFFIX, url, seeds),
        seed_list,
    )
    if baseline_path is None:
        return winner_plan, None, source
    if Path(baseline_path).resolve() == Path(best_path).resolve():
        raise ConfigError(
            f"--baseline {baseline_path}: is the retrained file itself; give another config"
        )
    baseline = load_fixed_config(baseline_path, overrides, "baseline")
    _check_same_task(winner, baseline, str(best_path), str(baseline_path))
    check_buildable(baseline, str(baseline_path))
    baseline_plan = RetrainPlan(
        "baseline",
        Path(baseline_path),
        retrain_config(baseline, prefix + BASELINE_SUFFIX, url, seeds),
        seed_list,
    )
    return winner_plan, baseline_plan, source


def _check_same_task(
    winner: StudyConfig, baseline: StudyConfig, winner_source: str, baseline_source: str
) -> None:
    winner_data = winner.to_dict()
    baseline_data = baseline.to_dict()
    winner_data["data"] = winner.data_config().model_dump(mode="json")
    baseline_data["data"] = baseline.data_config().model_dump(mode="json")
    for key in SAME_TASK_KEYS:
        ours, theirs = get_path(winner_data, key), get_path(baseline_data, key)
        if ours != theirs:
            raise ConfigError(
                f"{baseline_source}: {key}: the baseline must be trained on the same task and "
                f"split as {winner_source} for a paired comparison, but it has {theirs!r} where "
                f"the winner has {ours!r}; make them equal"
            )
