"""``hpsearch retrain``: train one fixed configuration with K seeds, touch the test set once each.

The search picked its winner on validation with one training seed. This module answers the
honest final question: how good is that configuration over seeds, and does it really beat a
baseline? Each seed varies initialisation, data order and dropout; the train/validation/test
split stays the one fixed by ``study.seed``. Every run keeps its best epoch by validation and
evaluates the test split once, on that epoch's weights (the training loop does this).

Runs are ordinary studies in the storage, named ``<source study>/retrain`` and
``<source study>/retrain-baseline``: each seed is one trial enqueued with the user attr
``training_seed``. Rerunning the same command resumes: seeds with a finished trial are not
trained again. The seeds are ``study.seed + 1 ... study.seed + K``, never the seed the search
itself trained with, so the winner's lucky draw in the search does not count a second time.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.config import PrunerSection, StudyConfig, dump_yaml, load_config, parse_yaml
from search.errors import ConfigError, StudyError
from search.results import format_table, trial_summary
from search.stats import BETTER, WORSE, Comparison, Summary, compare_paired, summarize

DEFAULT_SEEDS = 5
WINNER_SUFFIX = "/retrain"
BASELINE_SUFFIX = "/retrain-baseline"
# The reported test metrics and whether a larger value is better. Accuracy is the primary one:
# the verdict line is about it.
TEST_METRICS: dict[str, bool] = {"test_accuracy": True, "test_loss": False}
PRIMARY_METRIC = "test_accuracy"
# Parts of the config that must match between winner and baseline for a paired comparison:
# the same task, the same split, the same rule for picking the best epoch.
_SAME_TASK_KEYS = ("objective", "study.seed", "study.metric", "data")


@dataclass(frozen=True)
class RetrainPlan:
    """One configuration to retrain: its file, its retrain study's config and its seeds."""

    role: str  # "winner" or "baseline"
    path: Path
    config: StudyConfig  # the retrain study's config (name, storage, no pruner)
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class SeedRun:
    """What one seed's trial produced (``None`` metrics when it has not finished)."""

    seed: int
    trial: int | None
    state: str  # COMPLETE, PRUNED (diverged), or MISSING (no finished trial)
    best_epoch: int | None = None
    epochs_run: int | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    test_loss: float | None = None
    test_accuracy: float | None = None
    seconds: float | None = None
    reason: str | None = None

    def metric(self, name: str) -> float | None:
        value = getattr(self, name)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "seed": self.seed,
            "trial": self.trial,
            "state": self.state,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
            "test_loss": self.test_loss,
            "test_accuracy": self.test_accuracy,
            "seconds": self.seconds,
        }
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass
class SideResult:
    """The runs of one configuration and the spread of its test metrics."""

    plan: RetrainPlan
    runs: list[SeedRun]
    summaries: dict[str, Summary | None] = field(default_factory=dict)

    @property
    def missing(self) -> list[int]:
        return [run.seed for run in self.runs if run.state == "MISSING"]


@dataclass
class RetrainResult:
    """Everything ``hpsearch retrain`` reports."""

    source_study: str
    storage: str
    winner: SideResult
    baseline: SideResult | None = None
    comparisons: dict[str, Comparison | None] = field(default_factory=dict)
    compared_seeds: list[int] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    device: str = "cpu"

    @property
    def complete(self) -> bool:
        sides = [self.winner] + ([self.baseline] if self.baseline else [])
        return not any(side.missing for side in sides)

    @property
    def verdict(self) -> str | None:
        comparison = self.comparisons.get(PRIMARY_METRIC)
        return comparison.verdict if comparison else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the result file and the ``retrain:`` section of the exported file."""
        data: dict[str, Any] = {
            "source_study": self.source_study,
            "storage": self.storage,
            "seeds": list(self.winner.plan.seeds),
            "selection_metric": self.winner.plan.config.study.metric,
            "device": self.device,
            "winner": _side_dict(self.winner),
        }
        if self.overrides:
            data["overrides"] = list(self.overrides)
        if self.baseline is not None:
            data["baseline"] = _side_dict(self.baseline)
            data["comparison"] = {
                "seeds": list(self.compared_seeds),
                **{
                    name: comparison.to_dict() if comparison else None
                    for name, comparison in self.comparisons.items()
                },
            }
            data["verdict"] = self.verdict
        data["conclusion"] = conclusion(self)
        return data


def _side_dict(side: SideResult) -> dict[str, Any]:
    fixed = side.plan.config.fixed
    return {
        "config": str(side.plan.path),
        "study": side.plan.config.study.name,
        "params": dict(fixed),
        "runs": [run.to_dict() for run in side.runs],
        **{
            name: summary.to_dict() if summary else None for name, summary in side.summaries.items()
        },
    }


# --------------------------------------------------------------------------- planning


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


def retrain_seeds(config: StudyConfig, count: int) -> tuple[int, ...]:
    """``study.seed + 1 ... study.seed + count``: never the seed the search trained with."""
    return tuple(config.study.seed + 1 + index for index in range(count))


def retrain_config(config: StudyConfig, study_name: str, storage: str, count: int) -> StudyConfig:
    """The config of a retrain study: its own name, no pruner, one failure stops it."""
    study = config.study.model_copy(
        update={
            "name": study_name,
            "storage": storage,
            "n_trials": count,
            "timeout": None,
            # A failing seed is a bug to look at, not something to paper over with another run.
            "max_consecutive_failures": 1,
        }
    )
    return config.model_copy(
        update={
            "study": study,
            "pruner": PrunerSection(name="none"),
            "enqueue": [],
            "best": None,
            "retrain": None,
        }
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
    from storage.urls import parse_storage_url

    if seeds < 2:
        raise ConfigError(
            f"--seeds: needs at least 2 seeds for a spread and a confidence interval, got {seeds}"
        )
    winner = load_fixed_config(best_path, overrides, "winner")
    source = source_study_name(winner)
    url = storage or winner.study.storage
    parse_storage_url(url)
    winner.spec.check(winner, str(best_path))
    seed_list = retrain_seeds(winner, seeds)
    winner_plan = RetrainPlan(
        "winner",
        Path(best_path),
        retrain_config(winner, source + WINNER_SUFFIX, url, seeds),
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
    baseline.spec.check(baseline, str(baseline_path))
    baseline_plan = RetrainPlan(
        "baseline",
        Path(baseline_path),
        retrain_config(baseline, source + BASELINE_SUFFIX, url, seeds),
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
    for key in _SAME_TASK_KEYS:
        ours, theirs = _dotted(winner_data, key), _dotted(baseline_data, key)
        if ours != theirs:
            raise ConfigError(
                f"{baseline_source}: {key}: the baseline must be trained on the same task and "
                f"split as {winner_source} for a paired comparison, but it has {theirs!r} where "
                f"the winner has {ours!r}; make them equal"
            )


def _dotted(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


# --------------------------------------------------------------------------- running


@dataclass
class SeedPrinter:
    """Optuna callback: one line per finished seed."""

    role: str
    stream: TextIO | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        out = self.stream or sys.stdout
        run = _seed_run(_seed_of(trial), trial)
        seed = "?" if run.seed < 0 else str(run.seed)
        if trial.state == TrialState.COMPLETE:
            detail = (
                f"best epoch {run.best_epoch}/{run.epochs_run} val_loss {_fmt(run.val_loss)} "
                f"val_acc {_fmt(run.val_accuracy)} test_loss {_fmt(run.test_loss)} "
                f"test_acc {_fmt(run.test_accuracy)}"
            )
        else:
            detail = trial.user_attrs.get("reason") or "no reason recorded"
        seconds = f" ({run.seconds:.1f}s)" if run.seconds is not None else ""
        out.write(f"  {self.role} seed {seed}: {trial.state.name} {detail}{seconds}\n")
        out.flush()


def run_seeds(plan: RetrainPlan, device: str, out: TextIO) -> list[SeedRun]:
    """Train every seed of ``plan`` that has no finished trial yet; return one row per seed."""
    from objectives.trial_run import TRAINING_SEED_ATTR
    from search.study import open_study, run_study
    from storage.urls import mask_password

    config = plan.config
    _check_no_drift(config)
    study, _ = open_study(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A trial whose process was killed is failed here and re-queued with its seed.
        optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    finished = _finished_by_seed(trials)
    queued = {_seed_of(t) for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)}
    todo = [s for s in plan.seeds if s not in finished]
    for seed in todo:
        # enqueue_trial(skip_if_exists=True) compares params only, and there are none here:
        # the seed bookkeeping is ours.
        if seed not in queued:
            study.enqueue_trial({}, user_attrs={TRAINING_SEED_ATTR: seed})
    running_elsewhere = [
        s for s in todo if any(_seed_of(t) == s and t.state == TrialState.RUNNING for t in trials)
    ]
    out.write(
        f"{plan.role}: {plan.path} -> study {config.study.name!r} on "
        f"{mask_password(config.study.storage)}: {len(plan.seeds) - len(todo)}/{len(plan.seeds)} "
        f"seeds finished"
        + (f", training seeds {', '.join(map(str, todo))}" if todo else ", nothing to train")
        + "\n"
    )
    out.flush()
    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    if waiting:
        # Exactly as many trials as are queued, so no trial ever runs without a seed.
        from search.study import count_finished

        target = count_finished(study) + waiting
        run_config = config.model_copy(
            update={"study": config.study.model_copy(update={"n_trials": target})}
        )
        run_study(run_config, device=device, on_trial=SeedPrinter(plan.role, out))
    trials = study.get_trials(deepcopy=False)
    finished = _finished_by_seed(trials)
    runs = []
    for seed in plan.seeds:
        trial = finished.get(seed)
        if trial is not None:
            runs.append(_seed_run(seed, trial))
            continue
        failed = [t for t in trials if _seed_of(t) == seed and t.state == TrialState.FAIL]
        reason = (
            "still running in another process (or killed less than heartbeat_grace ago)"
            if seed in running_elsewhere
            else (failed[-1].user_attrs.get("reason") if failed else None)
        )
        runs.append(SeedRun(seed, None, "MISSING", reason=reason or "not run"))
    return runs


def _check_no_drift(config: StudyConfig) -> None:
    """A retrain study continues only with the same configuration (a retrain-specific hint)."""
    from search.study import CONFIG_ATTR, config_differences
    from storage.rdb import open_storage
    from storage.urls import parse_storage_url

    url = parse_storage_url(config.study.storage)
    if url.sqlite_path is not None and not url.sqlite_path.exists():
        return
    try:
        existing = optuna.load_study(
            study_name=config.study.name, storage=open_storage(url, create=False)
        )
    except KeyError:
        return
    stored = existing.user_attrs.get(CONFIG_ATTR)
    if not isinstance(stored, dict):
        return
    differences = config_differences(stored, config.to_dict())
    if differences:
        raise ConfigError(
            f"study {config.study.name!r} in {url.masked} holds runs of another configuration "
            f"({'; '.join(differences[:4])}{'; ...' if len(differences) > 4 else ''}); "
            f"retrain into another --storage, or delete that study first "
            f"(`hpsearch delete '{config.study.name}' --storage '{url.masked}'`)"
        )


def _finished_by_seed(trials: Sequence[FrozenTrial]) -> dict[int, FrozenTrial]:
    """The first finished trial of each seed (COMPLETE preferred over PRUNED = diverged)."""
    result: dict[int, FrozenTrial] = {}
    for state in (TrialState.COMPLETE, TrialState.PRUNED):
        for trial in sorted(trials, key=lambda t: t.number):
            seed = _seed_of(trial)
            if trial.state == state and seed >= 0 and seed not in result:
                result[seed] = trial
    return result


def _seed_of(trial: FrozenTrial) -> int:
    from objectives.trial_run import TRAINING_SEED_ATTR

    seed = trial.user_attrs.get(TRAINING_SEED_ATTR)
    return int(seed) if isinstance(seed, int) else -1


def _seed_run(seed: int, trial: FrozenTrial) -> SeedRun:
    summary = trial_summary(trial)
    return SeedRun(
        seed=seed,
        trial=trial.number,
        state=trial.state.name,
        best_epoch=summary["best_epoch"],
        epochs_run=summary["epochs_run"],
        val_loss=summary["val_loss"],
        val_accuracy=summary["val_accuracy"],
        test_loss=summary["test_loss"],
        test_accuracy=summary["test_accuracy"],
        seconds=summary["seconds"],
        reason=summary["reason"] if trial.state != TrialState.COMPLETE else None,
    )


# --------------------------------------------------------------------------- statistics


def summarize_side(plan: RetrainPlan, runs: list[SeedRun]) -> SideResult:
    """Mean, std and 95 % t-interval of each test metric over the seeds that have it."""
    side = SideResult(plan, runs)
    for name in TEST_METRICS:
        values = [v for v in (run.metric(name) for run in runs) if v is not None]
        side.summaries[name] = summarize(values) if len(values) >= 2 else None
    return side


def compare(result: RetrainResult) -> None:
    """Fill ``result.comparisons``: paired over the seeds where both sides have test metrics."""
    assert result.baseline is not None
    winner = {run.seed: run for run in result.winner.runs}
    baseline = {run.seed: run for run in result.baseline.runs}
    seeds = [
        seed
        for seed in result.winner.plan.seeds
        if all(
            winner[seed].metric(name) is not None and baseline[seed].metric(name) is not None
            for name in TEST_METRICS
        )
    ]
    result.compared_seeds = seeds
    for name, higher_is_better in TEST_METRICS.items():
        if len(seeds) < 2:
            result.comparisons[name] = None
            continue
        ours = [winner[s].metric(name) for s in seeds]
        theirs = [baseline[s].metric(name) for s in seeds]
        result.comparisons[name] = compare_paired(
            [float(v) for v in ours if v is not None],
            [float(v) for v in theirs if v is not None],
            higher_is_better=higher_is_better,
        )


def conclusion(result: RetrainResult) -> str:
    """The plain-language verdict line (about test accuracy, the primary metric)."""
    winner_accuracy = result.winner.summaries.get(PRIMARY_METRIC)
    if result.baseline is None:
        if winner_accuracy is None:
            return "fewer than 2 seeds finished with test metrics; rerun to finish the others"
        low, high = winner_accuracy.ci95
        return (
            f"test accuracy {winner_accuracy.mean:.4f} ± {winner_accuracy.std:.4f} (std) over "
            f"{winner_accuracy.n} seeds, 95 % CI {low:.4f} to {high:.4f}; pass --baseline to "
            "compare it with another configuration"
        )
    comparison = result.comparisons.get(PRIMARY_METRIC)
    if comparison is None:
        return (
            "fewer than 2 seeds finished with test metrics on both sides; rerun to finish the "
            "others before comparing"
        )
    n = comparison.n
    if comparison.identical:
        return (
            f"the winner and the baseline are indistinguishable on this test set: the same test "
            f"accuracy for each of the {n} seeds (difference 0, p = 1.0)"
        )
    low, high = comparison.ci95
    numbers = (
        f"difference {comparison.difference:+.4f} (95 % CI {low:+.4f} to {high:+.4f}), "
        f"p = {_fmt_p(comparison.p_value)}, paired t-test over {n} seeds"
    )
    if comparison.std == 0.0:
        numbers = (
            f"difference {comparison.difference:+.4f} on every one of the {n} seeds (no spread, "
            "so the paired t-test reads it as certain: p = 0)"
        )
    if comparison.verdict == BETTER:
        return f"the winner is better than the baseline on test accuracy: {numbers}"
    if comparison.verdict == WORSE:
        return f"the winner is worse than the baseline on test accuracy: {numbers}"
    return (
        f"no significant difference in test accuracy at the 5 % level: {numbers}; "
        "the winner does not reliably beat the baseline on this test set"
    )


# --------------------------------------------------------------------------- the command


def retrain(
    best_path: str | Path,
    *,
    seeds: int = DEFAULT_SEEDS,
    baseline_path: str | Path | None = None,
    storage: str | None = None,
    overrides: Sequence[str] = (),
    device: str = "cpu",
    out: TextIO | None = None,
) -> RetrainResult:
    """Retrain the winner (and the baseline) with ``seeds`` seeds and compare them."""
    from storage.urls import mask_password

    stream = out or sys.stdout
    winner_plan, baseline_plan, source = plan_retrain(
        best_path, seeds=seeds, baseline_path=baseline_path, storage=storage, overrides=overrides
    )
    winner_runs = run_seeds(winner_plan, device, stream)
    baseline_runs = run_seeds(baseline_plan, device, stream) if baseline_plan else None
    result = RetrainResult(
        source_study=source,
        storage=mask_password(winner_plan.config.study.storage),
        winner=summarize_side(winner_plan, winner_runs),
        overrides=list(overrides),
        device=device,
    )
    if baseline_plan is not None and baseline_runs is not None:
        result.baseline = summarize_side(baseline_plan, baseline_runs)
        compare(result)
    return result


def default_output(best_path: str | Path) -> Path:
    """``<BEST stem>-retrain.yaml`` beside BEST."""
    path = Path(best_path)
    return path.with_name(f"{path.stem}-retrain.yaml")


def write_result(result: RetrainResult, output: Path) -> None:
    """Write the result file (the same mapping as the ``retrain:`` section)."""
    text = (
        f"# hpsearch retrain of {result.winner.plan.path} over {len(result.winner.plan.seeds)} "
        'seeds; see README "Retrain" for how to read it.\n' + dump_yaml(result.to_dict())
    )
    _write(output, text)


def add_to_config_file(result: RetrainResult, path: Path) -> None:
    """Add (or replace) the ``retrain:`` section of the retrained file, keeping the rest.

    The file is re-read as written (without ``--set`` overrides); its leading comment lines are
    kept, other comments are lost in the round trip.
    """
    text = path.read_text(encoding="utf-8")
    raw = parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level is not a mapping; cannot add `retrain:`")
    raw["retrain"] = result.to_dict()
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    _write(path, "".join(line + "\n" for line in header) + dump_yaml(raw))


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise StudyError(f"cannot write {path}: {e.strerror or e}; choose another -o FILE") from e


# --------------------------------------------------------------------------- printing


def format_result(result: RetrainResult) -> str:
    """The per-seed tables, the spread of each side and the comparison, as text."""
    parts = []
    for side in [result.winner] + ([result.baseline] if result.baseline else []):
        parts.append(
            f"{side.plan.role} ({side.plan.path}; study {side.plan.config.study.name!r}):\n"
            + format_table(
                [
                    "Seed",
                    "Trial",
                    "State",
                    "Best epoch",
                    "Val loss",
                    "Val acc",
                    "Test loss",
                    "Test acc",
                    "Seconds",
                ],
                [
                    [
                        run.seed,
                        run.trial if run.trial is not None else "-",
                        run.state,
                        run.best_epoch,
                        run.val_loss,
                        run.val_accuracy,
                        run.test_loss,
                        run.test_accuracy,
                        f"{run.seconds:.1f}" if run.seconds is not None else "-",
                    ]
                    for run in side.runs
                ],
            )
        )
    rows = []
    for side in [result.winner] + ([result.baseline] if result.baseline else []):
        for name, summary in side.summaries.items():
            if summary is None:
                rows.append([side.plan.role, name, "-", "-", "-", "-"])
            else:
                low, high = summary.ci95
                rows.append(
                    [side.plan.role, name, summary.n, summary.mean, summary.std, _ci(low, high)]
                )
    parts.append(
        "over seeds (95 % CI: t-distribution):\n"
        + format_table(["Config", "Metric", "Seeds", "Mean", "Std", "95 % CI"], rows)
    )
    if result.baseline is not None:
        rows = []
        for name, comparison in result.comparisons.items():
            if comparison is None:
                rows.append([name, "-", "-", "-", "-"])
                continue
            low, high = comparison.ci95
            rows.append(
                [
                    name,
                    f"{comparison.difference:+.4g}"
                    if 0 < abs(comparison.difference) < 1e-3
                    else f"{comparison.difference:+.4f}",
                    _ci(low, high, signed=True),
                    _fmt_p(comparison.p_value),
                    comparison.verdict,
                ]
            )
        parts.append(
            f"winner - baseline, paired over seeds {', '.join(map(str, result.compared_seeds))} "
            "(paired t-test; accuracy: higher is better, loss: lower is better):\n"
            + format_table(["Metric", "Difference", "95 % CI", "p-value", "Verdict"], rows)
        )
    parts.append(f"verdict: {conclusion(result)}")
    return "\n\n".join(parts) + "\n"


def _ci(low: float, high: float, *, signed: bool = False) -> str:
    # Four decimals, or three significant digits for values too small for that (a loss of 4e-05).
    small = any(value != 0 and abs(value) < 1e-3 for value in (low, high))
    spec = ("+" if signed else "") + (".3g" if small else ".4f")
    return f"[{low:{spec}}, {high:{spec}}]"


def _fmt(value: float | None) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "n/a"


def _fmt_p(p_value: float) -> str:
    return f"{p_value:.3g}" if p_value >= 1e-4 or p_value == 0.0 else f"{p_value:.1e}"
