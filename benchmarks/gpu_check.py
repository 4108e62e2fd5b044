"""``make gpu-check``: the prepared check of hpsearch on one NVIDIA GPU, in at most 8 minutes.

It measures, on the GPU it finds, and writes ``benchmarks/RESULTS-gpu.md``:

1. placement: a toy study on ``cuda:0`` with 4 trials per GPU against 1 (trials/s, same trials),
   each trial recording ``device``;
2. the training loop vs Hugging Face ``Trainer`` in bf16 on a BERT-base-sized classifier (random
   weights made here: 12 layers, hidden 768, 110 M parameters), samples/s, alternating runs;
3. peak GPU memory over 10 consecutive trials of a BERT study (goal: flat within 5 %);
4. the out-of-memory path: a trial whose batch cannot fit fails with reason ``out of memory``,
   the memory is given back and the next trial completes;
5. ``fixed.compile: true`` against eager on the toy model (compile time, speed after it).

It runs from the source tree on the machine's own torch and transformers (``python -m
benchmarks.gpu_check``); the packages that machine lacks (optuna, sqlalchemy, alembic, colorlog,
pydantic and theirs) are installed with ``--no-deps`` from wheels in the git-ignored ``.gpu-wheels``
(``make gpu-wheels`` fetches them; ``make gpu-check`` installs them to a temporary folder and
runs this). Each section is written to the results file as soon as it finishes, so a section that
fails or a run that is stopped keeps what was measured. ``--smoke`` runs every section at toy
sizes on whatever device is there (the CPU included) to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "RESULTS-gpu.md"
COMMAND = "make gpu-check   # = python -m benchmarks.gpu_check, after installing .gpu-wheels"


@dataclass
class Sizes:
    """Everything that differs between the real check and the smoke run."""

    toy_trials: int = 24
    toy_epochs: int = 4
    toy_n_train: int = 4000
    per_device: int = 4
    bert: dict[str, int] = field(
        default_factory=lambda: {
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
        }
    )
    bert_batch: int = 32
    bert_length: int = 128
    bert_steps: int = 80
    bert_repeats: int = 3
    memory_trials: int = 10
    memory_train_rows: int = 4000
    oom: bool = True

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(
            toy_trials=4,
            toy_epochs=1,
            toy_n_train=200,
            per_device=2,
            bert={
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 64,
            },
            bert_batch=8,
            bert_length=32,
            bert_steps=4,
            bert_repeats=1,
            memory_trials=3,
            memory_train_rows=64,
            oom=False,
        )


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    verdict: str = ""


# --------------------------------------------------------------------------- report


class Report:
    def __init__(self, path: Path, device: str, smoke: bool) -> None:
        self.path, self.device, self.smoke = path, device, smoke
        self.sections: list[Section] = []
        self.header = self._header()
        self.write()

    def _header(self) -> list[str]:
        import torch
        import transformers

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        return [
            "# GPU check" + (" (smoke run at toy sizes: not a measurement)" if self.smoke else ""),
            "",
            f"Command: `{COMMAND}`" + (" with `--smoke`" if self.smoke else ""),
            "",
            f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"- device: {self.device}; GPU: {gpu}",
            f"- torch {torch.__version__} (CUDA {torch.version.cuda}), "
            f"transformers {transformers.__version__}, Python {platform.python_version()}",
            f"- bf16 supported: {torch.cuda.is_available() and torch.cuda.is_bf16_supported()}",
            "",
        ]

    def add(self, section: Section) -> None:
        self.sections.append(section)
        self.write()
        print("\n".join([f"## {section.title}", *section.lines, section.verdict, ""]), flush=True)

    def write(self) -> None:
        text = list(self.header)
        for section in self.sections:
            text += [f"## {section.title}", "", *section.lines, ""]
            if section.verdict:
                text += [section.verdict, ""]
        self.path.write_text("\n".join(text))


def guarded(title: str, body: Callable[[Section], None]) -> Section:
    """Run one section; a failure is recorded in it instead of ending the check."""
    section = Section(title)
    started = time.perf_counter()
    try:
        body(section)
    except Exception as error:  # the report says what failed; the other sections still run
        section.lines += ["```", traceback.format_exc(limit=6).rstrip(), "```"]
        section.verdict = f"**failed**: {type(error).__name__}: {error}"
    section.lines.append(f"\n(section took {time.perf_counter() - started:.0f} s)")
    return section


# --------------------------------------------------------------------------- 1. placement


def toy_config(name: str, storage: str, sizes: Sizes, extra: dict[str, Any] | None = None) -> Any:
    from search.config import config_from_dict

    data: dict[str, Any] = {
        "study": {"name": name, "storage": storage, "n_trials": sizes.toy_trials, "seed": 0},
        "sampler": {"name": "random", "args": {}},
        "pruner": {"name": "none", "args": {}},
        "objective": "toy_transformer",
        "fixed": {
            "epochs": sizes.toy_epochs,
            "batch_size": 32,
            "hidden_dim": 64,
            "num_heads": 4,
            "num_layers": 2,
        },
        "search": {"lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}},
        "data": {"n_train": sizes.toy_n_train, "n_val": 500, "n_test": 500},
        "artifacts": {"keep_checkpoints": "none", "resume": False},
    }
    for key, value in (extra or {}).items():
        data[key] = {**data[key], **value} if isinstance(data.get(key), dict) else value
    return config_from_dict(data)


def placement(section: Section, device: str, sizes: Sizes, folder: Path) -> None:
    import optuna

    from search.api import run_study

    storage = f"sqlite:///{folder / 'placement.db'}"
    rates = {}
    section.lines += [
        f"A toy study ({sizes.toy_trials} trials x {sizes.toy_epochs} epochs on "
        f"{sizes.toy_n_train} sequences, hidden 64, 2 layers, batch 32), run once with one trial "
        f"on {device} at a time and once with {sizes.per_device} at a time "
        f"(`--devices {device} --trials-per-device N`). Wall time includes starting the workers.",
        "",
        "| trials per device | wall s | trials/s | devices recorded |",
        "|---|---|---|---|",
    ]
    for per_device in (1, sizes.per_device):
        name = f"toy-x{per_device}"
        config = toy_config(name, storage, sizes)
        started = time.perf_counter()
        run_study(config, devices=device, trials_per_device=per_device)
        wall = time.perf_counter() - started
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        devices = sorted({str(t.user_attrs.get("device")) for t in trials})
        rates[per_device] = len(trials) / wall
        section.lines.append(
            f"| {per_device} | {wall:.1f} | {rates[per_device]:.2f} | {', '.join(devices)} |"
        )
    ratio = rates[sizes.per_device] / rates[1]
    section.verdict = (
        f"{sizes.per_device} trials per GPU: **{ratio:.2f}x** the trials/s of one trial per GPU."
    )


# --------------------------------------------------------------------------- 2. loop vs Trainer


def loop_rate(model: Any, batches: list[Any], device: str) -> float:
    from objectives.loop import LoopData, LoopSettings, train

    data = LoopData(
        train=lambda epoch: iter(batches),
        train_steps=len(batches),
        validation=lambda: iter(batches[:1]),
    )
    result = train(model, data, LoopSettings(epochs=1, lr=2e-5, max_grad_norm=1.0), device)
    return result.train_samples / result.train_seconds


def trainer_rate(model: Any, batches: list[Any], device: str) -> float:
    import torch
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    rows = [{k: v[i] for k, v in b.items()} for b in batches for i in range(b["labels"].shape[0])]

    class Rows(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(rows)

        def __getitem__(self, index: int) -> dict[str, Any]:
            return rows[index]

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    class Clock(TrainerCallback):
        seconds = 0.0

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            sync()
            self.started = time.perf_counter()

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            sync()
            self.seconds += time.perf_counter() - self.started

    clock = Clock()
    cuda = device.startswith("cuda")
    with tempfile.TemporaryDirectory() as output:
        arguments = TrainingArguments(
            output_dir=output,
            per_device_train_batch_size=batches[0]["labels"].shape[0],
            num_train_epochs=1,
            learning_rate=2e-5,
            weight_decay=0.0,
            max_grad_norm=1.0,
            lr_scheduler_type="constant",
            logging_strategy="no",
            save_strategy="no",
            eval_strategy="no",
            report_to=[],
            bf16=cuda and torch.cuda.is_bf16_supported(),
            use_cpu=not cuda,
            dataloader_num_workers=0,
            dataloader_pin_memory=cuda,
            disable_tqdm=True,
            seed=0,
        )
        trainer = Trainer(model=model, args=arguments, train_dataset=Rows(), callbacks=[clock])
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return len(rows) / clock.seconds


def loop_vs_trainer(section: Section, device: str, sizes: Sizes) -> None:
    import importlib.util

    import torch

    if importlib.util.find_spec("accelerate") is None:
        section.verdict = "skipped: Hugging Face Trainer needs the package accelerate"
        return
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=30522, max_position_embeddings=512, num_labels=2, **sizes.bert)
    torch.manual_seed(0)
    initial = BertForSequenceClassification(config).state_dict()
    parameters = sum(v.numel() for v in initial.values())

    def fresh() -> Any:
        model = BertForSequenceClassification(config)
        model.load_state_dict(initial)
        return model.to(device)

    from benchmarks.bert_throughput import synthetic_batches

    batches = synthetic_batches(sizes.bert_steps, sizes.bert_batch, sizes.bert_length, 30522, 1)
    warm = batches[: max(2, sizes.bert_steps // 8)]
    loop_rate(fresh(), warm, device)  # kernels chosen, allocator warmed, for both sides
    trainer_rate(fresh(), warm, device)
    loops, trainers = [], []
    for repeat in range(sizes.bert_repeats):  # alternating: A B, B A, ...
        order = ("loop", "trainer") if repeat % 2 == 0 else ("trainer", "loop")
        for side in order:
            model = fresh()
            if side == "loop":
                loops.append(loop_rate(model, batches, device))
            else:
                trainers.append(trainer_rate(model, batches, device))
            del model
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    ratio = statistics.median(loops) / statistics.median(trainers)
    section.lines += [
        f"BERT-base-sized classifier ({parameters / 1e6:.0f} M parameters, random weights), "
        f"{sizes.bert_steps} steps of batch {sizes.bert_batch} x {sizes.bert_length} tokens per "
        "run, AdamW lr 2e-5, clipping 1.0, bf16 autocast on both sides (the loop: always on a "
        "GPU that supports it; Trainer: `bf16=True`); training time only, GPU synchronised at "
        "both ends.",
        "",
        "| side | samples/s per run | median |",
        "|---|---|---|",
        f"| loop | {', '.join(f'{r:.0f}' for r in loops)} | {statistics.median(loops):.0f} |",
        f"| Trainer | {', '.join(f'{r:.0f}' for r in trainers)} | "
        f"{statistics.median(trainers):.0f} |",
    ]
    met = "met" if ratio >= 1.0 else "missed"
    section.verdict = f"loop / Trainer: **{ratio:.2f}x** (goal >= 1.0x: {met})."


# --------------------------------------------------------------------------- 3. memory


WORDS = [f"w{i}" for i in range(400)]
CUES = (["good", "great", "fine"], ["bad", "poor", "awful"])


def write_bert(folder: Path, sizes: Sizes) -> Path:
    """A random BERT of the check's size and a WordPiece tokenizer trained here."""
    from benchmarks.synthetic_bert import write_random_bert

    corpus = [" ".join(WORDS[i : i + 20]) for i in range(0, len(WORDS), 20)]
    corpus += [" ".join(cue) for cue in CUES]
    return write_random_bert(folder, corpus, 1000, max_position_embeddings=512, **sizes.bert)


def write_rows(path: Path, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    lines = ["sentence,label"]
    for _ in range(count):
        label = rng.randint(0, 1)
        words = rng.choices(WORDS, k=rng.randint(8, 60))
        words.insert(rng.randint(0, len(words)), rng.choice(CUES[1 - label]))
        lines.append(f"{' '.join(words)},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def memory(section: Section, device: str, sizes: Sizes, folder: Path) -> None:
    import optuna
    import torch

    from search.api import run_study
    from search.config import config_from_dict

    model = write_bert(folder / "bert", sizes)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    write_rows(data / "train.csv", sizes.memory_train_rows, 1)
    write_rows(data / "validation.csv", 500, 2)
    write_rows(data / "test.csv", 500, 3)
    storage = f"sqlite:///{folder / 'memory.db'}"
    config = config_from_dict(
        {
            "study": {"name": "memory", "storage": storage, "n_trials": sizes.memory_trials},
            "sampler": {"name": "random", "args": {}},
            "pruner": {"name": "none", "args": {}},
            "objective": "bert",
            "fixed": {"model": str(model), "epochs": 1, "max_length": 128, "batch_size": 32},
            "search": {"lr": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True}},
            "data": {"dir": str(data)},
            "artifacts": {"keep_checkpoints": "none", "resume": False},
        }
    )
    cuda = device.startswith("cuda")
    rows: list[tuple[int, float, float]] = []

    def measure(study: Any, trial: Any) -> None:
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0
        held = torch.cuda.memory_allocated() / 2**20 if cuda else 0.0
        rows.append((trial.number, peak, held))
        if cuda:
            torch.cuda.reset_peak_memory_stats()

    run_study(config, device=device, on_trial=measure)
    states = [t.state.name for t in optuna.load_study(study_name="memory", storage=storage).trials]
    section.lines += [
        f"{sizes.memory_trials} consecutive trials of a BERT study in one worker (the BERT "
        f"objective: a random {sizes.bert['num_hidden_layers']}-layer BERT of hidden "
        f"{sizes.bert['hidden_size']} saved on the machine, {sizes.memory_train_rows} generated "
        "training rows, batch 32, max length 128, 1 epoch each). Peak: "
        "`torch.cuda.max_memory_allocated` during the trial; held: allocated after it.",
        "",
        "| trial | peak MiB | held after MiB |",
        "|---|---|---|",
        *(f"| {n} | {p:.0f} | {h:.0f} |" for n, p, h in rows),
        "",
        f"trial states: {', '.join(states)}",
    ]
    if len(rows) >= 3 and rows[1][1] > 0:
        growth = rows[-1][1] / rows[1][1] - 1
        met = "met" if abs(growth) <= 0.05 else "missed"
        section.verdict = (
            f"peak of the last trial vs the second: **{growth:+.1%}** (goal within 5 %: {met})."
        )
    else:
        section.verdict = "no GPU memory to measure on this device."


# --------------------------------------------------------------------------- 4. OOM


def out_of_memory(section: Section, device: str, sizes: Sizes, folder: Path) -> None:
    import optuna
    import torch

    from search.api import run_study

    if not sizes.oom or not device.startswith("cuda"):
        section.lines.append("skipped: the out-of-memory path needs the GPU (not in a smoke run)")
        return
    storage = f"sqlite:///{folder / 'oom.db'}"
    config = toy_config(
        "oom",
        storage,
        sizes,
        {
            "study": {"n_trials": 1, "max_consecutive_failures": 3},
            "fixed": {"epochs": 1, "hidden_dim": 1024, "num_heads": 16, "num_layers": 2},
            "search": {"batch_size": {"type": "categorical", "choices": [32768, 64]}},
            "enqueue": [{"batch_size": 32768}, {"batch_size": 64}],
            "data": {"n_train": 32768, "n_val": 256, "n_test": 256, "seq_len": 512},
        },
    )
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated() / 2**20
    started = time.perf_counter()
    run_study(config, device=device)
    wall = time.perf_counter() - started
    after = torch.cuda.memory_allocated() / 2**20
    trials = optuna.load_study(study_name="oom", storage=storage).get_trials(deepcopy=False)
    section.lines += [
        "A toy study (hidden 1024, 16 heads, 2 layers, 512 tokens) whose first enqueued trial "
        "asks for batch 32768 (far beyond the GPU's memory) and whose second asks for batch 64.",
        "",
        "| trial | batch | state | reason |",
        "|---|---|---|---|",
        *(
            f"| {t.number} | {t.params.get('batch_size')} | {t.state.name} | "
            f"{str(t.user_attrs.get('reason') or '')[:160]} |"
            for t in trials
        ),
        "",
        f"GPU memory allocated before the study {before:.0f} MiB, after it {after:.0f} MiB; "
        f"{wall:.0f} s.",
    ]
    failed_oom = [
        t for t in trials if t.state.name == "FAIL" and "out of memory" in str(t.user_attrs)
    ]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    ok = bool(failed_oom) and bool(complete) and after <= before + 64
    section.verdict = (
        "the OOM trial failed with its reason, the memory was given back and the next trial "
        f"completed: **{'yes' if ok else 'no'}**."
    )


# --------------------------------------------------------------------------- 5. compile


def compiled(section: Section, device: str, sizes: Sizes) -> None:
    """``fixed.compile: true`` against eager, on the toy model: compile time and steady speed."""
    import torch

    from objectives.loop import LoopSettings, train
    from objectives.specs import ToyDataConfig
    from objectives.toy_transformer import ToyTransformer, loop_data, make_task

    if not device.startswith("cuda") and sizes.oom is False:
        section.lines.append("skipped in a smoke run (compiling on the CPU takes about a minute)")
        return
    splits = make_task(ToyDataConfig(n_train=sizes.toy_n_train, n_val=500, n_test=500), 0)
    rows = []
    for compile_model in (False, True):
        torch.manual_seed(0)
        model = ToyTransformer(splits.vocab_size, splits.seq_len, splits.num_classes, 64, 4, 2, 0.0)
        model = model.to(device)
        data = loop_data(splits, 32, 0)
        settings = LoopSettings(epochs=3, lr=1e-3, compile=compile_model)
        result = train(model, data, settings, device)
        first, rest = result.epochs[0].seconds, [r.seconds for r in result.epochs[1:]]
        rate = sizes.toy_n_train / statistics.median(rest)
        rows.append((compile_model, first, rate, result.epochs[-1].val_loss))
    section.lines += [
        "The toy model (hidden 64, 2 layers, batch 32), 3 epochs each: the first epoch holds "
        "the compilation; samples/s from the median of the others (evaluation included).",
        "",
        "| compile | first epoch s | samples/s after | val_loss after 3 epochs |",
        "|---|---|---|---|",
        *(f"| {c} | {f:.1f} | {r:.0f} | {v:.4f} |" for c, f, r, v in rows),
    ]
    speedup = rows[1][2] / rows[0][2]
    section.verdict = (
        f"compiled / eager after compilation: **{speedup:.2f}x**; compilation costs "
        f"{rows[1][1] - rows[0][1]:.0f} s per trial. (`compile` stays off by default unless "
        "this pays within a typical trial.)"
    )


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="toy sizes, any device")
    parser.add_argument("--device", default=None, help="default: cuda:0, or the CPU with --smoke")
    parser.add_argument("--output", type=Path, default=None, help=f"default {RESULTS}")
    args = parser.parse_args(argv)
    import torch

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.device is None and not torch.cuda.is_available() and not args.smoke:
        print("gpu-check: no CUDA device here; use --smoke to check the script on the CPU")
        return 2
    device = args.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    sizes = Sizes.smoke() if args.smoke else Sizes()
    output = args.output or (RESULTS.with_name("RESULTS-gpu-smoke.md") if args.smoke else RESULTS)
    from search.study import quiet_libraries

    quiet_libraries()
    report = Report(output, device, args.smoke)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hpsearch-gpu-") as tmp:
        folder = Path(tmp)
        steps: list[tuple[str, Callable[[Section], None]]] = [
            ("Several trials per GPU", lambda s: placement(s, device, sizes, folder)),
            ("Loop vs Hugging Face Trainer, bf16", lambda s: loop_vs_trainer(s, device, sizes)),
            ("Peak memory over consecutive trials", lambda s: memory(s, device, sizes, folder)),
            ("Out of memory on the GPU", lambda s: out_of_memory(s, device, sizes, folder)),
            ("torch.compile on the toy model", lambda s: compiled(s, device, sizes)),
        ]
        for title, body in steps:
            report.add(guarded(title, body))
    print(f"gpu-check: {time.perf_counter() - started:.0f} s; wrote {output}")
    summary = {s.title: s.verdict for s in report.sections}
    print(json.dumps(summary, indent=2))
    return 1 if any(s.verdict.startswith("**failed**") for s in report.sections) else 0


if __name__ == "__main__":
    sys.exit(main())
