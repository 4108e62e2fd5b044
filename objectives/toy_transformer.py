"""The toy objective: a small Transformer encoder trained from scratch on a synthetic task.

The task ("majority token"): each sequence holds ``seq_len`` tokens. One of ``num_classes``
class tokens appears four times, two other class tokens twice each, and the rest are filler
tokens, all at random positions. The label is the class token that appears most often. A model
must count tokens across the whole sequence, which attention (or mean pooling over attended
features) does well; chance is ``1 / num_classes``. The data is a pure function of the seed.
With ``label_noise`` > 0 a share of the labels, in every split, is replaced by another class:
the tokens stay the same, the best reachable accuracy drops to about ``1 - label_noise``, and
models that memorise the noisy training labels overfit, as in real fine-tuning.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from objectives.loop import Batch, LoopData, TrainingJob
from objectives.specs import BuildRequest, ToyDataConfig

LABEL_COUNT = 4  # occurrences of the label's token
DISTRACTOR_COUNT = 2  # occurrences of each of the two distractor class tokens
DISTRACTORS = 2
TEST_STREAM_OFFSET = 0x5EED_7E57  # the test stream's seed is this plus the data seed


@dataclass(frozen=True)
class ToySplits:
    """Token ids (N x seq_len, int64) and labels (N, int64) for each split."""

    train: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    vocab_size: int
    num_classes: int
    seq_len: int


def make_task(config: ToyDataConfig, seed: int) -> ToySplits:
    """Generate the three splits deterministically from ``seed``.

    Training and validation come from one random stream of the seed, the test split from a
    stream of its own: its size never changes the data a trial trains and is judged on.
    """
    if config.seq_len < LABEL_COUNT + DISTRACTORS * DISTRACTOR_COUNT:
        raise ValueError("seq_len too short for the toy task")
    generator = torch.Generator().manual_seed(seed)
    tokens, labels = _sample(config.n_train + config.n_val, config, generator)
    # Each split gets exactly its share of noisy labels (drawn after all tokens).
    labels = torch.cat(
        [
            _add_label_noise(part, config.label_noise, config.num_classes, generator)
            for part in labels.split([config.n_train, config.n_val])
        ]
    )
    test_stream = torch.Generator().manual_seed(TEST_STREAM_OFFSET + seed)
    test_tokens, test_labels = _sample(config.n_test, config, test_stream)
    test_labels = _add_label_noise(test_labels, config.label_noise, config.num_classes, test_stream)
    first = config.n_train
    return ToySplits(
        train=(tokens[:first], labels[:first]),
        validation=(tokens[first:], labels[first:]),
        test=(test_tokens, test_labels),
        vocab_size=config.num_classes + config.num_filler,
        num_classes=config.num_classes,
        seq_len=config.seq_len,
    )


def _sample(
    n: int, config: ToyDataConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    classes, length = config.num_classes, config.seq_len
    labels = torch.randint(0, classes, (n,), generator=generator)
    # Two distractor classes per row, distinct from the label and from each other: rank a
    # random score per class with the label's score forced to the end.
    scores = torch.rand(n, classes, generator=generator)
    scores[torch.arange(n), labels] = 2.0
    distractors = scores.argsort(dim=1)[:, :DISTRACTORS]
    fillers = classes + torch.randint(0, config.num_filler, (n, length), generator=generator)
    planted = torch.cat(
        [labels[:, None].expand(n, LABEL_COUNT)]
        + [distractors[:, i : i + 1].expand(n, DISTRACTOR_COUNT) for i in range(DISTRACTORS)],
        dim=1,
    )
    tokens = fillers.clone()
    tokens[:, : planted.shape[1]] = planted
    # Shuffle each row's positions so the planted tokens land anywhere.
    order = torch.rand(n, length, generator=generator).argsort(dim=1)
    tokens = tokens.gather(1, order)
    return tokens, labels


def _add_label_noise(
    labels: torch.Tensor, fraction: float, classes: int, generator: torch.Generator
) -> torch.Tensor:
    """Replace ``round(fraction * n)`` random labels by a uniformly random other class.

    Draws from ``generator`` only after the tokens are sampled and only when ``fraction > 0``,
    so the tokens never depend on it and ``fraction == 0`` leaves the data bit-identical.
    """
    count = round(fraction * labels.shape[0])
    if count == 0:
        return labels
    index = torch.randperm(labels.shape[0], generator=generator)[:count]
    # An offset in 1 .. classes-1 lands on every other class with equal probability.
    offset = torch.randint(1, classes, (count,), generator=generator)
    noisy = labels.clone()
    noisy[index] = (labels[index] + offset) % classes
    return noisy


class ToyTransformer(nn.Module):
    """Token + position embeddings, a pre-norm Transformer encoder, mean pooling, a linear head."""

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        num_classes: int,
        hidden_dim: int,
        num_heads: int,
        num_layers: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, hidden_dim)
        self.position_embedding = nn.Embedding(seq_len, hidden_dim)
        layer = nn.TransformerEncoderLayer(
            d_model=hidden_dim,
            nhead=num_heads,
            dim_feedforward=4 * hidden_dim,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        # Nested tensors only help with padding masks, which this task has none of.
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_dim)
        self.head = nn.Linear(hidden_dim, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        hidden = self.token_embedding(input_ids) + self.position_embedding(positions)
        hidden = self.encoder(hidden)
        return self.head(self.norm(hidden.mean(dim=1)))


MODEL_FILE, MODEL_CONFIG_FILE = "model.pt", "config.json"


def save_toy_model(model: ToyTransformer, model_args: dict[str, Any], folder: Path) -> None:
    """The toy model's own form: ``model.pt`` (state dict) and ``config.json`` (its arguments)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    torch.save(state, folder / MODEL_FILE)
    config = {"model": "ToyTransformer", **model_args}
    (folder / MODEL_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def load_toy_model(folder: Path | str) -> ToyTransformer:
    """Rebuild a model written by :func:`save_toy_model` (on the CPU, in eval mode)."""
    folder = Path(folder)
    config = json.loads((folder / MODEL_CONFIG_FILE).read_text(encoding="utf-8"))
    config.pop("model", None)
    model = ToyTransformer(**config)
    model.load_state_dict(torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True))
    return model.eval()


def loop_data(splits: ToySplits, batch_size: int, seed: int) -> LoopData:
    """Batches over the splits; training order reshuffled each epoch from ``seed``."""
    train_tokens, train_labels = splits.train

    def train(epoch: int) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(train_tokens.shape[0], generator=generator)
        for start in range(0, order.shape[0], batch_size):
            index = order[start : start + batch_size]
            yield {"input_ids": train_tokens[index], "labels": train_labels[index]}

    def fixed(split: tuple[torch.Tensor, torch.Tensor]) -> Iterator[Batch]:
        tokens, labels = split
        # Evaluation batch size does not change results; larger is faster.
        for start in range(0, tokens.shape[0], 512):
            yield {"input_ids": tokens[start : start + 512], "labels": labels[start : start + 512]}

    steps = -(-train_tokens.shape[0] // batch_size)
    return LoopData(
        train=train,
        train_steps=steps,
        validation=lambda: fixed(splits.validation),
        test=lambda: fixed(splits.test),
    )


def build(request: BuildRequest) -> TrainingJob:
    """The toy task (split fixed by ``data_seed``) and a fresh model initialised from ``seed``."""
    params, data_config = request.params, request.data
    assert isinstance(data_config, ToyDataConfig)
    splits = make_task(data_config, request.data_seed)
    torch.manual_seed(request.seed)
    model_args = {
        "vocab_size": splits.vocab_size,
        "seq_len": splits.seq_len,
        "num_classes": splits.num_classes,
        "hidden_dim": params["hidden_dim"],
        "num_heads": params["num_heads"],
        "num_layers": params["num_layers"],
        "dropout": params["dropout"],
    }
    model = ToyTransformer(**model_args).to(request.device)

    def save_model(folder: Path) -> None:
        save_toy_model(model, model_args, folder)

    validation_labels = splits.validation[1]
    majority = torch.bincount(validation_labels, minlength=splits.num_classes).max().item()
    return TrainingJob(
        model=model,
        data=loop_data(splits, params["batch_size"], request.seed),
        save_model=save_model,
        study_attrs={
            "majority_class_accuracy": majority / validation_labels.shape[0],
            "data_sizes": {
                "train": splits.train[1].shape[0],
                "validation": validation_labels.shape[0],
                "test": splits.test[1].shape[0],
            },
        },
    )
