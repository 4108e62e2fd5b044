"""The study config's one schema: typed, frozen sections (pydantic), one per YAML section."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from objectives.command import NAME as COMMAND_OBJECTIVE
from objectives.command import command_spec
from objectives.registry import get_objective
from objectives.specs import ObjectiveSpec
from storage.urls import mask_password as masked

DEFAULT_STORAGE = "sqlite:///studies/hpsearch.db"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class StudySection(_Section):
    name: str = Field(min_length=1, max_length=512)
    storage: str = DEFAULT_STORAGE
    # One metric, or a list for a multi-objective study: the first is then the training metric
    # (curves, early stopping, pruning), the others its other objectives (often cost metrics).
    metric: str | list[str] = "val_loss"
    n_trials: int = Field(30, ge=1)
    timeout: float | None = Field(None, gt=0)
    seed: int = Field(0, ge=0)
    heartbeat_interval: int = Field(30, ge=1)
    heartbeat_grace: int = Field(90, ge=2)
    max_consecutive_failures: int = Field(5, ge=1)


class SamplerSection(_Section):
    name: Literal["tpe", "random", "grid", "cmaes", "gp", "qmc", "nsgaii"] = "tpe"
    args: dict[str, Any] = Field(default_factory=dict)


class PrunerSection(_Section):
    name: Literal[
        "median",
        "percentile",
        "successive_halving",
        "hyperband",
        "patient",
        "threshold",
        "wilcoxon",
        "none",
    ] = "median"
    args: dict[str, Any] = Field(default_factory=dict)


class FloatSpace(_Section):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)


class IntSpace(_Section):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)


class CategoricalSpace(_Section):
    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


ParamSpace = Annotated[FloatSpace | IntSpace | CategoricalSpace, Field(discriminator="type")]


class ArtifactsSection(_Section):
    dir: str | None = None
    keep_checkpoints: Literal["best", "none", "all"] = "best"
    # A running trial's state (model, optimizer, RNGs, position) saved every `resume_every`
    # epochs and on SIGTERM / Ctrl-C, so that its retry continues instead of starting over.
    resume: bool = True
    resume_every: int = Field(1, ge=1)


class Bound(_Section):
    """A constraint on one cost metric: ``min`` and/or ``max`` (inclusive)."""

    min: float | None = None
    max: float | None = None


class CommandSection(_Section):
    """``objective: command``: the user's own training command, run once per trial."""

    argv: list[str]  # run without a shell; "{name}", "{args}" and "{seed}" are placeholders
    cwd: str = "."  # relative to the config file when loaded from one; stored absolute
    env: dict[str, str] = Field(default_factory=dict)
    # What the command reports: `val_<m>: minimize | maximize`.
    metrics: dict[str, Literal["minimize", "maximize"]] = Field(min_length=1)
    timeout_s: float | None = Field(None, gt=0)  # past it: FAIL, reason "timeout"
    kill_grace_s: float = Field(30.0, ge=0)  # after a stop: time to exit alone, then SIGTERM


DATA_SEED = "seed"  # data.seed: every objective's data section takes it


class StudyConfig(_Section):
    """A whole, validated study config. Build it with :func:`load_config`."""

    study: StudySection
    sampler: SamplerSection = Field(default_factory=SamplerSection)
    pruner: PrunerSection = Field(default_factory=PrunerSection)
    objective: str
    fixed: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, ParamSpace] = Field(default_factory=dict)
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)
    artifacts: ArtifactsSection = Field(default_factory=ArtifactsSection)
    # Bounds on cost metrics known before training (num_params, latency_ms): a proposal outside
    # them is recorded as infeasible without training a step.
    constraints: dict[str, Bound] = Field(default_factory=dict)
    command: CommandSection | None = None
    # Written by `hpsearch export` / `hpsearch retrain`; accepted and ignored by `run`.
    best: Any = None
    retrain: Any = None

    @property
    def spec(self) -> ObjectiveSpec:
        """The objective's spec (built in, or from a package's ``hpsearch.objectives`` entry;
        a command objective's is made from its ``command.metrics``)."""
        if self.objective == COMMAND_OBJECTIVE:
            return command_spec(self.command.metrics if self.command is not None else {})
        return get_objective(self.objective)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every objective of the study, in order (one for a single-objective study)."""
        metric = self.study.metric
        return (metric,) if isinstance(metric, str) else tuple(metric)

    @property
    def metric(self) -> str:
        """The training metric: the study's metric, or the first of its list. Curves, early
        stopping, the pruner and the checkpoint follow it."""
        return self.metrics[0]

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    @property
    def maximize(self) -> bool:
        return self.spec.objective_metrics[self.metric]

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return "maximize" if self.maximize else "minimize"

    @property
    def directions(self) -> list[Literal["minimize", "maximize"]]:
        """One direction per metric, in order."""
        known = self.spec.objective_metrics
        return ["maximize" if known[name] else "minimize" for name in self.metrics]

    @property
    def test_metric(self) -> str:
        """The test counterpart of the training metric (``val_mcc`` -> ``test_mcc``)."""
        return "test_" + self.metric.removeprefix("val_")

    @property
    def data_seed(self) -> int:
        """The seed that fixes the data and its split: ``data.seed``, else ``study.seed``.

        Separate from the sampler's seed (``study.seed``), so that the same search can be run on
        other draws of the data and the same data searched with other sampler seeds.
        """
        seed = self.data.get(DATA_SEED)
        return self.study.seed if seed is None else int(seed)

    def data_config(self) -> BaseModel:
        """The objective's typed ``data:`` section (without ``seed``, which every one takes)."""
        return self.spec.data_model.model_validate(
            {key: value for key, value in self.data.items() if key != DATA_SEED}
        )

    def to_dict(self, *, mask_password: bool = True) -> dict[str, Any]:
        """Plain data (as YAML would hold it); the storage password masked by default."""
        data = self.model_dump(mode="json", exclude_none=False)
        if data.get("best") is None:
            data.pop("best", None)
        if data.get("retrain") is None:
            data.pop("retrain", None)
        if not data.get("constraints"):
            data.pop("constraints", None)
        if data.get("command") is None:
            data.pop("command", None)
        if mask_password:
            data["study"]["storage"] = masked(data["study"]["storage"])
        return data
