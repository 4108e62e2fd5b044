"""MiniLM (alias ``minilm-l6``) training and evaluation throughput, in samples per second.

Trains and evaluates the real objective's model (pretrained weights, new 2-class head) through
the shared loop on fixed-length batches of random token ids, for each batch size and sequence
length asked for, and prints a table (``--output FILE`` also writes it as JSON). Run it on a quiet
machine: throughput on CPU falls sharply when other processes share the cores.

    HF_HUB_OFFLINE=1 python -m benchmarks.bert_throughput --batch-sizes 16 32 --lengths 64 128
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from objectives.bert import load_model
from objectives.loop import Batch, LoopData, LoopSettings, evaluate, train
from objectives.pretrained import resolve_model


def synthetic_batches(
    count: int, batch_size: int, length: int, vocab_size: int, seed: int
) -> list[Batch]:
    """``count`` batches of ``length`` random token ids (no padding) and random 0/1 labels."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        ids = torch.randint(1000, vocab_size, (batch_size, length), generator=generator)
        batches.append(
            {
                "input_ids": ids,
                "attention_mask": torch.ones_like(ids),
                "token_type_ids": torch.zeros_like(ids),
                "labels": torch.randint(0, 2, (batch_size,), generator=generator),
            }
        )
    return batches


def measure(
    model_name: str, batch_size: int, length: int, steps: int, device: str
) -> dict[str, float]:
    """Training and evaluation samples/s for one (batch size, sequence length)."""
    source = resolve_model(model_name)
    model = load_model(source, [0, 1], dropout=None, max_length=length).to(device)
    vocab_size = int(model.config.vocab_size)
    warmup = synthetic_batches(1, batch_size, length, vocab_size, seed=1)
    batches = synthetic_batches(steps, batch_size, length, vocab_size, seed=2)

    def data(train_batches: list[Batch]) -> LoopData:
        def epoch(_: int) -> Iterator[Batch]:
            return iter(train_batches)

        # Validation is one small batch: the loop needs one; its time is not counted here.
        return LoopData(train=epoch, train_steps=len(train_batches), validation=lambda: warmup)

    settings = LoopSettings(epochs=1, lr=2e-5, warmup_ratio=0.1, max_grad_norm=1.0)
    train(model, data(warmup), settings, device)  # first-step allocations, kernel selection
    result = train(model, data(batches), settings, device)
    train_rate = result.train_samples / result.train_seconds
    evaluate(model, warmup, device)
    started = time.perf_counter()
    evaluate(model, batches, device)
    if device == "cuda":
        torch.cuda.synchronize()
    eval_rate = steps * batch_size / (time.perf_counter() - started)
    del model
    return {"train_samples_per_s": round(train_rate, 1), "eval_samples_per_s": round(eval_rate, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6", help="alias, local directory or hub id")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--steps", type=int, default=4, help="timed batches per measurement")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    print(f"{args.model} on {device} ({args.threads} threads), {args.steps} timed batches each")
    print("batch  length  train samples/s  eval samples/s")
    for batch_size in args.batch_sizes:
        for length in args.lengths:
            rates = measure(args.model, batch_size, length, args.steps, device)
            rows.append({"batch_size": batch_size, "length": length, **rates})
            print(
                f"{batch_size:>5}  {length:>6}  {rates['train_samples_per_s']:>15}  "
                f"{rates['eval_samples_per_s']:>14}",
                flush=True,
            )
    if args.output is not None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        report = {
            "model": args.model,
            "device": device,
            "threads": args.threads,
            "load_average_1min": load,
            "results": rows,
        }
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
