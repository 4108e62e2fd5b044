"""The objective contract: what an objective accepts, what it measures, and how it is built.

An objective is an :class:`ObjectiveSpec`: its parameters with defaults and valid ranges, the
metrics its task measures, the schema of its ``data:`` section, and a builder that turns one
parameter set into a model and its data (:class:`BuildRequest` -> ``TrainingJob``). The built-in
objectives are defined at the end of this module; other packages register theirs under the
entry-point group ``hpsearch.objectives`` (see ``objectives/registry.py``).

This module is deliberately free of torch and transformers so that ``hpsearch validate`` and the
config layer can check a study without loading a deep-learning stack: builders and pre-study
checks are named as ``"module:function"`` and imported only when used.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from objectives.loop import TrainingJob

# Every value each parameter can take (None: a continuous range that cannot be listed).
ParamValues = Mapping[str, Sequence[Any] | None]


@dataclass(frozen=True)
class ParamRule:
    """Type, default and valid range of one training parameter."""

    kind: type  # int, float or str
    default: Any
    low: float | None = None  # inclusive lower bound of valid values
    high: float | None = None  # inclusive upper bound of valid values
    nullable: bool = False  # ``None`` (YAML ``null``) is a meaningful value
    low_exclusive: bool = False

    def check(self, value: Any) -> str | None:
        """Return why ``value`` is invalid for this parameter, or ``None`` when it is fine."""
        if value is None:
            return None if self.nullable else "must not be null"
        if self.kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"expected a number, got {value!r}"
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return f"expected an integer, got {value!r}"
        elif not isinstance(value, self.kind):
            return f"expected a {self.kind.__name__}, got {value!r}"
        if self.low is not None:
            if self.low_exclusive and value <= self.low:
                return f"must be > {self.low:g}, got {value!r}"
            if not self.low_exclusive and value < self.low:
                return f"must be >= {self.low:g}, got {value!r}"
        if self.high is not None and value > self.high:
            return f"must be <= {self.high:g}, got {value!r}"
        return None


@dataclass(frozen=True)
class ParamConstraint:
    """A rule over several parameters together, checked for every combination of their values.

    ``check`` takes the named parameters as keyword arguments and returns True when that
    combination can be built. The config layer checks every combination the search space can
    produce, and every enqueued parameter set, before a study starts; ``message`` says what
    the rule is (e.g. "hidden_dim must be divisible by num_heads").
    """

    names: tuple[str, ...]
    check: Callable[..., bool]
    message: str


@dataclass(frozen=True)
class Metric:
    """One quantity the task measures on a split; the study selects on ``val_<name>``."""

    name: str
    maximize: bool
    low: float | None = None  # the metric's own bounds (accuracy: 0 and 1), for intervals
    high: float | None = None


@dataclass(frozen=True)
class BuildRequest:
    """What a builder gets for one training run."""

    params: Mapping[str, Any]  # every parameter: the fixed ones and the sampled ones
    data: BaseModel  # the objective's validated ``data:`` section
    data_seed: int  # fixes the data and its split (the study seed)
    seed: int  # the training seed: initialisation, data order, dropout
    device: str  # where the model must live ("cpu", "cuda", "cuda:1", ...)


Builder = Callable[[BuildRequest], "TrainingJob"]

# Cost metrics every objective provides besides its task's metrics, all lower-is-better: the
# built model's trainable parameters and its median forward-pass time on one example (batch 1,
# measured before training, ``objectives/costs.py``), and the training time (after training).
COST_METRICS: Mapping[str, bool] = {
    "num_params": False,
    "latency_ms": False,
    "train_seconds": False,
}
# The cost metrics known before a single training step: the only ones a constraint may bound.
PRE_TRAINING_METRICS = ("num_params", "latency_ms")
# Raises objectives.errors.ParamError / DataError / ModelError for anything checkable up front.
Precheck = Callable[[ParamValues, BaseModel], None]


@dataclass(frozen=True)
class ObjectiveSpec:
    """Everything the search needs to know about one objective."""

    name: str
    params: Mapping[str, ParamRule]
    metrics: tuple[Metric, ...]
    data_model: type[BaseModel]
    # The builder: a function, or "module:function" imported only when a trial runs (so the
    # spec stays importable without torch).
    builder: Builder | str
    precheck: Precheck | str | None = None
    constraints: tuple[ParamConstraint, ...] = ()
    # Most torch threads one worker should use (None: all its share of the cores).
    max_threads: int | None = None
    description: str = ""
    # The version of a synthetic data generator, recorded in the study: a study made by another
    # version holds trials trained on other data and is not resumed (None: not versioned).
    data_version: int | None = None

    def build(self, request: BuildRequest) -> TrainingJob:
        """Build the model and data of one run (this imports torch)."""
        builder = _resolve(self.builder)
        return builder(request)

    def check(self, values: ParamValues, data: BaseModel) -> None:
        """Run the objective's pre-study checks, if it has any."""
        if self.precheck is not None:
            _resolve(self.precheck)(values, data)

    @property
    def study_metrics(self) -> dict[str, bool]:
        """The metrics a study may select on (``val_<name>``) and whether larger is better."""
        return {f"val_{metric.name}": metric.maximize for metric in self.metrics}

    @property
    def objective_metrics(self) -> dict[str, bool]:
        """Everything ``study.metric`` may list: the study metrics, then the cost metrics."""
        return {**self.study_metrics, **COST_METRICS}

    @property
    def test_metrics(self) -> dict[str, bool]:
        """The test counterparts (``test_<name>``), recorded once per trial on its best epoch."""
        return {f"test_{metric.name}": metric.maximize for metric in self.metrics}

    def metric_bounds(self, name: str) -> tuple[float | None, float | None]:
        """The bounds of ``val_<m>`` / ``test_<m>`` / ``<m>`` (None: unbounded on that side)."""
        base = name.split("_", 1)[1] if name.startswith(("val_", "test_")) else name
        for metric in self.metrics:
            if metric.name == base:
                return (metric.low, metric.high)
        return (None, None)

    def broken_combinations(
        self, constraint: ParamConstraint, values: ParamValues
    ) -> list[tuple[Any, ...]]:
        """Every combination of the constraint's parameter values that breaks it."""
        lists = [values.get(name) or () for name in constraint.names]
        return [
            combination
            for combination in itertools.product(*lists)
            if not constraint.check(**dict(zip(constraint.names, combination, strict=True)))
        ]


def _resolve(target: Callable[..., Any] | str) -> Callable[..., Any]:
    if callable(target):
        return target
    module_name, _, function_name = target.partition(":")
    return getattr(importlib.import_module(module_name), function_name)  # type: ignore[no-any-return]


# Parameters every objective understands (the training loop's own knobs).
COMMON_PARAMS: Mapping[str, ParamRule] = {
    "lr": ParamRule(float, 1e-3, low=0.0, low_exclusive=True, high=10.0),
    "batch_size": ParamRule(int, 32, low=1, high=65536),
    "epochs": ParamRule(int, 10, low=1, high=100000),
    "max_grad_norm": ParamRule(float, 1.0, low=0.0, low_exclusive=True, nullable=True),
    "weight_decay": ParamRule(float, 0.0, low=0.0, high=1.0),
    "warmup_ratio": ParamRule(float, 0.0, low=0.0, high=1.0),
    "dropout": ParamRule(float, 0.1, low=0.0, high=0.9),
    "early_stopping_patience": ParamRule(int, None, low=1, nullable=True),
    "compile": ParamRule(bool, False),
}


class _DataModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToyDataConfig(_DataModel):
    """Sizes of the synthetic toy task (see ``objectives/toy_transformer.py``)."""

    n_train: int = Field(1500, ge=10)
    n_val: int = Field(500, ge=10)
    n_test: int = Field(1000, ge=10)
    # At least the 8 planted class tokens (4 of the label, 2 x 2 distractors).
    seq_len: int = Field(20, ge=8, le=512)
    num_classes: int = Field(10, ge=2, le=50)
    num_filler: int = Field(10, ge=1, le=1000)
    # Share of labels, in every split, replaced by a uniformly random other class (real datasets
    # have noisy labels in validation and test too). 0: the clean task, bit-identical data.
    label_noise: float = Field(0.0, ge=0.0, le=0.5)


class BertDataFiles(_DataModel):
    """Local data files, one per split (CSV, TSV, JSON lines or Parquet, by file extension)."""

    train: str = Field(min_length=1)
    validation: str | None = None  # None: carved from train with the study seed
    test: str | None = None  # None: no test metrics


class BertDataConfig(_DataModel):
    """Where the BERT objective's texts come from and which columns it reads.

    Exactly one source: ``hub`` (a dataset on the Hugging Face hub, with ``subset``), ``files``
    (one file per split) or ``dir`` (a folder holding ``train.*``, ``validation.*``, ``test.*``).
    Relative paths are relative to the working directory.
    """

    hub: str | None = Field(None, min_length=1)
    subset: str | None = Field(None, min_length=1)
    files: BertDataFiles | None = None
    dir: str | None = Field(None, min_length=1)
    text_columns: tuple[str] | tuple[str, str] = ("sentence",)  # two columns: sentence pairs
    label_column: str = Field("label", min_length=1)
    max_train_samples: int | None = Field(None, ge=2)
    max_eval_samples: int | None = Field(None, ge=1)
    validation_fraction: float = Field(0.1, gt=0.0, lt=1.0)  # share of train carved off

    @field_validator("text_columns", mode="before")
    @classmethod
    def _one_column_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_source(self) -> BertDataConfig:
        given = [name for name in ("hub", "files", "dir") if getattr(self, name) is not None]
        if len(given) != 1:
            found = ", ".join(given) or "none"
            raise ValueError(
                f"give exactly one data source (found: {found}): hub (e.g. {{hub: glue, subset: "
                "cola}), files ({train: ..., validation: ..., test: ...}) or dir (a folder with "
                "train.csv, validation.csv, test.csv; e.g. --set data.dir=PATH)"
            )
        if self.subset is not None and self.hub is None:
            raise ValueError("subset is only used with hub")
        if len(set(self.text_columns)) != len(self.text_columns):
            raise ValueError(f"text_columns repeats a column: {list(self.text_columns)}")
        return self


CLASSIFICATION_METRICS = (
    Metric("loss", maximize=False, low=0.0),
    Metric("accuracy", maximize=True, low=0.0, high=1.0),
)


def _heads_divide_hidden(hidden_dim: Any, num_heads: Any) -> bool:
    # Attention splits the hidden vector into num_heads equal parts.
    if isinstance(hidden_dim, int) and isinstance(num_heads, int) and num_heads > 0:
        return hidden_dim % num_heads == 0
    return True  # other types are reported by the parameter rules


# The toy generator's version (objectives/toy_transformer.py). 1: one random stream for the three
# splits, so the test split's size changed the training data; 2: the test split has its own.
TOY_DATA_VERSION = 2

TOY_TRANSFORMER = ObjectiveSpec(
    name="toy_transformer",
    params={
        **COMMON_PARAMS,
        "epochs": ParamRule(int, 30, low=1, high=100000),
        "dropout": ParamRule(float, 0.0, low=0.0, high=0.9),
        "hidden_dim": ParamRule(int, 32, low=1, high=4096),
        "num_heads": ParamRule(int, 2, low=1, high=128),
        "num_layers": ParamRule(int, 1, low=1, high=48),
    },
    metrics=CLASSIFICATION_METRICS,
    data_model=ToyDataConfig,
    builder="objectives.toy_transformer:build",
    constraints=(
        ParamConstraint(
            ("hidden_dim", "num_heads"),
            _heads_divide_hidden,
            "hidden_dim must be divisible by num_heads",
        ),
    ),
    # Matrices of at most 64 x 64: a second thread only adds synchronisation.
    max_threads=1,
    data_version=TOY_DATA_VERSION,
    description="a small Transformer encoder trained from scratch on a synthetic counting task",
)

BERT = ObjectiveSpec(
    name="bert",
    params={
        **COMMON_PARAMS,
        "lr": ParamRule(float, 2e-5, low=0.0, low_exclusive=True, high=1.0),
        "epochs": ParamRule(int, 3, low=1, high=1000),
        "weight_decay": ParamRule(float, 0.01, low=0.0, high=1.0),
        "warmup_ratio": ParamRule(float, 0.1, low=0.0, high=1.0),
        # null: keep the pretrained model's own dropout; a number replaces its hidden and
        # attention dropout probabilities.
        "dropout": ParamRule(float, None, low=0.0, high=0.9, nullable=True),
        # the offline alias "minilm-l6", a local directory or a hub id
        "model": ParamRule(str, "minilm-l6"),
        "max_length": ParamRule(int, 128, low=8, high=8192),
    },
    metrics=(
        *CLASSIFICATION_METRICS,
        Metric("f1", maximize=True, low=0.0, high=1.0),
        Metric("mcc", maximize=True, low=-1.0, high=1.0),
    ),
    data_model=BertDataConfig,
    builder="objectives.bert:build",
    precheck="objectives.text_data:precheck",
    description="fine-tune a pretrained BERT-family encoder for text classification",
)

BUILTIN_OBJECTIVES: Mapping[str, ObjectiveSpec] = {
    TOY_TRANSFORMER.name: TOY_TRANSFORMER,
    BERT.name: BERT,
}
