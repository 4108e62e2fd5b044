"""The ``mlp_blobs`` builder: Gaussian blobs from ``data_seed`` and an MLP seeded by ``seed``."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from hpsearch_mlp_blobs.spec import BlobsData
from objectives.loop import Batch, LoopData, TrainingJob
from objectives.specs import BuildRequest
from objectives.tasks import Classification

Split = tuple[torch.Tensor, torch.Tensor]  # features (N x n_features, float), labels (N, int64)

# Distance scale of the blob centres: with noise 1 the classes overlap a little, so the
# hyperparameters matter, yet a few epochs reach accuracy far above chance.
CENTRE_SCALE = 1.5


def make_blobs(config: BlobsData, data_seed: int) -> tuple[Split, Split, Split]:
    """Train, validation and test splits, a pure function of ``data_seed``."""
    generator = torch.Generator().manual_seed(data_seed)
    centres = CENTRE_SCALE * torch.randn(config.n_classes, config.n_features, generator=generator)
    total = config.n_train + config.n_val + config.n_test
    labels = torch.randint(0, config.n_classes, (total,), generator=generator)
    points = centres[labels] + config.noise * torch.randn(
        total, config.n_features, generator=generator
    )
    first, second = config.n_train, config.n_train + config.n_val
    return (
        (points[:first], labels[:first]),
        (points[first:second], labels[first:second]),
        (points[second:], labels[second:]),
    )


class MLP(nn.Module):
    """One hidden layer with ReLU and dropout; returns class logits."""

    def __init__(self, n_features: int, hidden_dim: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, n_classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def _batches(split: Split, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
    features, labels = split
    index = order if order is not None else torch.arange(labels.shape[0])
    for start in range(0, index.shape[0], batch_size):
        chunk = index[start : start + batch_size]
        yield {"features": features[chunk], "labels": labels[chunk]}


def build(request: BuildRequest) -> TrainingJob:
    """The blob splits (fixed by ``data_seed``) and a fresh MLP initialised from ``seed``."""
    config = request.data
    assert isinstance(config, BlobsData)
    params = request.params
    train_split, val_split, test_split = make_blobs(config, request.data_seed)
    batch_size = int(params["batch_size"])
    torch.manual_seed(request.seed)
    model = MLP(config.n_features, int(params["hidden_dim"]), config.n_classes, params["dropout"])

    def train(epoch: int) -> Iterator[Batch]:
        # A new order each epoch, reproducible from the training seed alone.
        generator = torch.Generator().manual_seed(request.seed * 100_003 + epoch)
        order = torch.randperm(train_split[1].shape[0], generator=generator)
        return _batches(train_split, batch_size, order)

    return TrainingJob(
        model=model.to(request.device),
        data=LoopData(
            train=train,
            train_steps=-(-train_split[1].shape[0] // batch_size),
            validation=lambda: _batches(val_split, 512),
            test=lambda: _batches(test_split, 512),
            task=Classification(),
        ),
        save_model=None,
    )
