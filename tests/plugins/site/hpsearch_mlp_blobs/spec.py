"""The ``mlp_blobs`` objective's spec: what it accepts and measures (torch-free).

hpsearch loads this module through the entry point to validate a config, so it must import
without torch; the builder is named as ``"module:function"`` and imported only to train.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from objectives.specs import CLASSIFICATION_METRICS, COMMON_PARAMS, ObjectiveSpec, ParamRule


class BlobsData(BaseModel):
    """Sizes and difficulty of the Gaussian-blob task (one blob per class)."""

    # Frozen and strict about keys, like the built-in data sections: a typo is an error.
    model_config = ConfigDict(extra="forbid", frozen=True)

    n_train: int = Field(400, ge=10)
    n_val: int = Field(200, ge=10)
    n_test: int = Field(200, ge=10)
    n_features: int = Field(8, ge=1, le=1024)
    n_classes: int = Field(4, ge=2, le=100)
    noise: float = Field(1.0, gt=0.0, le=100.0)  # standard deviation of a blob around its centre


SPEC = ObjectiveSpec(
    name="mlp_blobs",
    params={
        **COMMON_PARAMS,
        "epochs": ParamRule(int, 5, low=1, high=10000),
        "hidden_dim": ParamRule(int, 32, low=1, high=4096),
    },
    metrics=CLASSIFICATION_METRICS,
    data_model=BlobsData,
    builder="hpsearch_mlp_blobs.model:build",
    # Matrices of a few dozen columns: more threads only add synchronisation.
    max_threads=1,
    description="a one-hidden-layer MLP classifying points drawn from Gaussian blobs",
)
