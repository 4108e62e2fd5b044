"""What each objective accepts: its parameters, metrics and ``data:`` schema.

This module is deliberately free of torch and transformers so that ``hpsearch validate`` and the
config layer can check a study without loading a deep-learning stack.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import optuna

    from search.config import StudyConfig

ObjectiveFn = Callable[["optuna.Trial", "StudyConfig", str], float]


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
}


class _DataModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToyDataConfig(_DataModel):
    """Sizes of the synthetic toy task (see ``objectives/toy_task.py``)."""

    n_train: int = Field(1500, ge=10)
    n_val: int = Field(500, ge=10)
    n_test: int = Field(1000, ge=10)
    seq_len: int = Field(20, ge=6, le=512)
    num_classes: int = Field(10, ge=2, le=50)
    num_filler: int = Field(10, ge=1, le=1000)


@dataclass(frozen=True)
class ObjectiveSpec:
    """Everything the config layer needs to know about one objective."""

    name: str
    params: Mapping[str, ParamRule]
    metrics: tuple[str, ...]
    data_model: type[BaseModel]
    entry: str  # "module:function", imported only when a study runs
    # "module:function" taking (config, source) and raising ConfigError for anything that can
    # be checked before a study starts (missing files, columns, hub ids while offline, ...).
    precheck: str | None = None

    def load(self) -> ObjectiveFn:
        """Import and return the objective function (this imports torch)."""
        return _import(self.entry)

    def check(self, config: StudyConfig, source: str) -> None:
        """Run the objective's pre-study checks, if it has any."""
        if self.precheck is not None:
            _import(self.precheck)(config, source)


def _import(entry: str) -> Any:
    module_name, function_name = entry.split(":")
    return getattr(importlib.import_module(module_name), function_name)


# Metrics and whether a larger value is better.
METRIC_MAXIMIZE: Mapping[str, bool] = {
    "val_loss": False,
    "val_accuracy": True,
    "val_f1": True,
    "val_mcc": True,
}

TOY_TRANSFORMER = ObjectiveSpec(
    name="toy_transformer",
    params={
        **COMMON_PARAMS,
        "lr": ParamRule(float, 1e-3, low=0.0, low_exclusive=True, high=10.0),
        "batch_size": ParamRule(int, 32, low=1, high=65536),
        "epochs": ParamRule(int, 30, low=1, high=100000),
        "dropout": ParamRule(float, 0.0, low=0.0, high=0.9),
        "hidden_dim": ParamRule(int, 32, low=1, high=4096),
        "num_heads": ParamRule(int, 2, low=1, high=128),
        "num_layers": ParamRule(int, 1, low=1, high=48),
    },
    metrics=("val_loss", "val_accuracy"),
    data_model=ToyDataConfig,
    entry="objectives.toy_transformer:objective",
)

OBJECTIVES: Mapping[str, ObjectiveSpec] = {TOY_TRANSFORMER.name: TOY_TRANSFORMER}
