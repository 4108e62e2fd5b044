"""The BERT objective: fine-tune a pretrained encoder for sentence or sentence-pair classification.

One build: resolve ``model`` (the offline alias ``minilm-l6``, a local directory or a hub id),
load its tokenizer, take the tokenised data from the process's tokenisation cache (or read and
tokenise it once), load the pretrained weights with a fresh classification head, and hand model
and batches to the shared loop (``objectives.loop``). Batches are padded per batch; evaluation
batches are sorted by length so they carry little padding. Per epoch the loop records accuracy,
macro-F1 and the Matthews correlation (``val_f1``, ``val_mcc``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from objectives.loop import Batch, LoopData, TrainingJob
from objectives.pretrained import ModelSource, resolve_model
from objectives.specs import BertDataConfig, BuildRequest
from objectives.tasks import Classification
from objectives.text_data import (
    TokenizedSplit,
    data_identity,
    pad_batch,
    read_task,
    tokenize_split,
)

EVAL_BATCH_SIZE = 128  # evaluation results do not depend on it; larger is faster
# Config attributes that hold a model's dropout probabilities (BERT/RoBERTa/ELECTRA names first,
# then DistilBERT's); ``dropout`` sets every one of them the model has.
_DROPOUT_ATTRS = (
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "dropout",
    "attention_dropout",
)


# --------------------------------------------------------------------------- tokenisation cache


@dataclass(frozen=True)
class TokenizedTask:
    """A task tokenised for one tokenizer and ``max_length``: what the cache holds."""

    train: TokenizedSplit
    validation: TokenizedSplit
    test: TokenizedSplit | None
    label_names: list[Any]
    test_note: str | None
    majority_class_accuracy: float
    sizes: dict[str, int]
    validation_carved: bool

    @property
    def nbytes(self) -> int:
        splits = (self.train, self.validation, self.test)
        return sum(split.nbytes for split in splits if split is not None)


class TokenizationCache:
    """A bounded least-recently-used cache of tokenised tasks with hit and miss counters.

    Keyed by (tokenizer fingerprint, ``max_length``, data identity): trials that share a
    tokenizer (even across model names) and data reuse one tokenisation.
    """

    def __init__(self, max_entries: int = 4) -> None:
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, TokenizedTask] = OrderedDict()

    def get_or_build(
        self, key: Hashable, build: Callable[[], TokenizedTask]
    ) -> tuple[TokenizedTask, bool]:
        """The entry for ``key`` (building and storing it on a miss) and whether it was a hit."""
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key], True
        value = build()
        self.misses += 1
        self._entries[key] = value
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value, False

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()


# Module-level on purpose, and the only state this module keeps: the study loop calls the
# objective as a plain function once per trial, so tokenised data can outlive a trial only here.
# It is bounded (``max_entries`` tasks, each about the size of its token ids: a few MB for GLUE
# tasks), lives per process (each worker tokenises once), and holds no model or tensor.
TOKENIZED = TokenizationCache(max_entries=4)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of what makes a tokenizer produce its ids (vocabulary, normaliser, templates)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        # Truncation and padding are per-call settings a tokenizer call leaves behind.
        spec.pop("truncation", None)
        spec.pop("padding", None)
        text = json.dumps(spec, sort_keys=True)
    else:  # a pure-Python tokenizer: its vocabulary and special tokens identify it
        text = json.dumps([sorted(tokenizer.get_vocab().items()), tokenizer.all_special_tokens])
    return f"{type(tokenizer).__name__}:{hashlib.sha256(text.encode()).hexdigest()}"


def tokenized_task(
    data: BertDataConfig, seed: int, tokenizer: Any, max_length: int, cache: TokenizationCache
) -> tuple[TokenizedTask, bool]:
    """The tokenised task for ``tokenizer`` from ``cache``, read and tokenised on a miss."""
    key = (tokenizer_fingerprint(tokenizer), max_length, data_identity(data, seed))

    def build() -> TokenizedTask:
        task = read_task(data, seed)
        return TokenizedTask(
            train=tokenize_split(task.train, tokenizer, max_length),
            validation=tokenize_split(task.validation, tokenizer, max_length),
            test=tokenize_split(task.test, tokenizer, max_length) if task.test else None,
            label_names=task.label_names,
            test_note=task.test_note,
            majority_class_accuracy=task.majority_class_accuracy,
            sizes=task.sizes(),
            validation_carved=task.validation_carved,
        )

    return cache.get_or_build(key, build)


# --------------------------------------------------------------------------- batches


def loop_data(task: TokenizedTask, batch_size: int, seed: int, pad_id: int) -> LoopData:
    """Shuffled training batches (new order each epoch) and length-sorted evaluation batches."""

    def tensors(split: TokenizedSplit, index: np.ndarray) -> Batch:
        return {k: torch.from_numpy(v) for k, v in pad_batch(split, index, pad_id).items()}

    def train(epoch: int) -> Iterator[Batch]:
        order = np.random.default_rng([seed, epoch]).permutation(len(task.train))
        for start in range(0, len(order), batch_size):
            yield tensors(task.train, order[start : start + batch_size])

    # No gradients or optimizer state in evaluation: batches twice the training size fit too.
    eval_batch = max(EVAL_BATCH_SIZE, 2 * batch_size)

    def evaluation(split: TokenizedSplit) -> Callable[[], Iterator[Batch]]:
        # Similar lengths together: each batch pads to little more than its own length.
        order = np.argsort(split.lengths, kind="stable")

        def batches() -> Iterator[Batch]:
            for start in range(0, len(order), eval_batch):
                yield tensors(split, order[start : start + eval_batch])

        return batches

    return LoopData(
        train=train,
        train_steps=math.ceil(len(task.train) / batch_size),
        validation=evaluation(task.validation),
        test=evaluation(task.test) if task.test is not None else None,
        task=Classification(f1_and_mcc=True),
    )


# --------------------------------------------------------------------------- model


def load_tokenizer(source: ModelSource) -> Any:
    from transformers import AutoTokenizer

    with _quiet_transformers():
        return AutoTokenizer.from_pretrained(
            source.location, local_files_only=source.local_files_only
        )


def load_model(
    source: ModelSource, label_names: list[Any], dropout: float | None, max_length: int
) -> nn.Module:
    """The pretrained encoder with a new, randomly initialised classification head (float32)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    names = [str(name) for name in label_names]
    with _quiet_transformers():
        model_config = AutoConfig.from_pretrained(
            source.location,
            local_files_only=source.local_files_only,
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={name: i for i, name in enumerate(names)},
        )
        limit = getattr(model_config, "max_position_embeddings", None)
        if isinstance(limit, int) and max_length > limit:
            raise ValueError(
                f"max_length {max_length} exceeds the {limit} positions model "
                f"{source.name!r} has; lower max_length"
            )
        if dropout is not None:
            present = [a for a in _DROPOUT_ATTRS if hasattr(model_config, a)]
            if not present:
                raise ValueError(
                    f"model {source.name!r} has no known dropout setting "
                    f"({', '.join(_DROPOUT_ATTRS)}); leave dropout unset (null) for this model"
                )
            for attribute in present:
                setattr(model_config, attribute, dropout)
        # float32 weights whatever the checkpoint stores: the loop trains in float32 (bf16 only
        # through autocast on GPUs).
        return AutoModelForSequenceClassification.from_pretrained(
            source.location,
            config=model_config,
            local_files_only=source.local_files_only,
            dtype=torch.float32,
        )


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    # "Some weights ... are newly initialized" is expected here: the head is new on purpose.
    from transformers.utils import logging

    level = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()  # "Loading weights" bars would interleave with trial lines
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


# --------------------------------------------------------------------------- the objective


def build(request: BuildRequest) -> TrainingJob:
    """Resolve and load ``model``, tokenise the data (cached per process), and batch it."""
    params, data = request.params, request.data
    assert isinstance(data, BertDataConfig)
    source = resolve_model(params["model"])
    tokenizer = load_tokenizer(source)
    if tokenizer.pad_token_id is None:
        raise ValueError(f"the tokenizer of model {source.name!r} has no padding token")
    # The data (and its carved validation split) depends on the data seed only.
    task, hit = tokenized_task(data, request.data_seed, tokenizer, params["max_length"], TOKENIZED)
    torch.manual_seed(request.seed)  # the classification head's initialisation
    model = load_model(source, task.label_names, params["dropout"], params["max_length"])
    model.to(request.device)

    def save_model(folder: Path) -> None:
        with _quiet_transformers():
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)

    trial_attrs: dict[str, Any] = {
        "label_names": task.label_names,
        "tokenization_cache": "hit" if hit else "miss",
    }
    if task.test_note is not None:
        trial_attrs["note"] = task.test_note
    return TrainingJob(
        model=model,
        data=loop_data(task, params["batch_size"], request.seed, int(tokenizer.pad_token_id)),
        save_model=save_model,
        trial_attrs=trial_attrs,
        study_attrs={
            "majority_class_accuracy": task.majority_class_accuracy,
            "data_sizes": {**task.sizes, "validation_carved": task.validation_carved},
        },
    )
