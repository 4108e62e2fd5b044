"""Figure 7: what preemption-safe trials cost and what they save.

1. Save cost: the resume state (model, optimizer, best weights, RNGs) written after each epoch,
   as a share of the epoch's time, for the toy model of the default study and for MiniLM
   (synthetic batches of length 64, batch 16). Each save is timed where it happens (the loop's
   ``save_state``, written atomically like a trial's), next to the epochs it follows.
2. A kill at epoch k of N: one toy trial run through the CLI, frozen and SIGKILLed once the
   storage shows k finished epochs, then rerun; epochs trained again and wall time lost against
   the same trial run without a kill (the heartbeat grace the rerun waits out is excluded), with
   resume on (the default) and off (``artifacts.resume=false``: the retry starts from epoch 1).
3. SIGTERM to stop: seconds from the signal to the process's exit (toy, CLI) and from the stop
   request to the saved state (MiniLM, in the loop), with the step finished and the state saved.
4. Disk: peak size and count of resume states while a 4-worker toy study runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks.harness import Figure, Settings, median

REPO = Path(__file__).resolve().parent.parent
SAVE_SHARE_GOAL = 0.02  # MiniLM
TOY_MODEL = {"hidden_dim": 32, "num_heads": 2, "num_layers": 2, "batch_size": 32}


def sizes(settings: Settings) -> dict[str, int]:
    if settings.mode == "smoke":
        return {"toy_epochs": 3, "bert_steps": 2, "bert_epochs": 2, "kill_epochs": 4, "trials": 4}
    if settings.quick:
        return {"toy_epochs": 10, "bert_steps": 8, "bert_epochs": 2, "kill_epochs": 6, "trials": 4}
    return {"toy_epochs": 20, "bert_steps": 32, "bert_epochs": 3, "kill_epochs": 10, "trials": 8}


# --------------------------------------------------------------------------- 1. save cost


class TimedSaver:
    """A trial's own ``save_state`` (copy, then write in the background), timed as the loop sees
    it; the whole write of the last state is timed once more, in the foreground."""

    def __init__(self, folder: Path) -> None:
        from search.trial import Chain, TrialResume
        from storage import resume_files

        path = resume_files.resume_path(folder, "bench", 0)
        self.resume = TrialResume(path, "bench", Chain(0, None), 0)
        self.seconds: list[float] = []
        self.last: Any = None

    def __call__(self, state: Any) -> None:
        started = time.perf_counter()
        self.resume.save(state)
        self.seconds.append(time.perf_counter() - started)
        self.last = state

    def write_seconds(self) -> tuple[float, int]:
        """(seconds, bytes) of writing the last state in the foreground: copy, save, fsync."""
        from search.trial import snapshot
        from storage import resume_files

        self.resume.flush()
        started = time.perf_counter()
        content = {"hpsearch": {}, "loop": snapshot(self.last.to_dict())}
        size = resume_files.write(self.resume.path, lambda s: torch.save(content, s))
        return time.perf_counter() - started, size


def toy_save_cost(epochs: int, folder: Path) -> dict[str, Any]:
    from objectives.loop import LoopSettings, RunControl, train
    from objectives.specs import ToyDataConfig
    from objectives.toy_transformer import ToyTransformer, loop_data, make_task

    data = ToyDataConfig(n_train=300, n_val=500, n_test=1000, seq_len=48, label_noise=0.2)
    splits = make_task(data, seed=0)
    torch.manual_seed(0)
    model = ToyTransformer(
        splits.vocab_size,
        splits.seq_len,
        splits.num_classes,
        TOY_MODEL["hidden_dim"],
        TOY_MODEL["num_heads"],
        TOY_MODEL["num_layers"],
        0.0,
    )
    saver = TimedSaver(folder)
    result = train(
        model,
        loop_data(splits, TOY_MODEL["batch_size"], 0),
        LoopSettings(epochs=epochs, lr=1e-3),
        "cpu",
        control=RunControl(save_state=saver),
    )
    return _share("toy (default study's data, hidden 32, 2 layers)", result, saver)


def bert_save_cost(steps: int, epochs: int, folder: Path) -> dict[str, Any]:
    from benchmarks.bert_throughput import synthetic_batches
    from objectives.bert import load_model
    from objectives.loop import LoopData, LoopSettings, RunControl, train
    from objectives.pretrained import resolve_model

    model = load_model(resolve_model("minilm-l6"), [0, 1], dropout=None, max_length=64)
    vocab = int(model.config.vocab_size)
    batches = synthetic_batches(steps, 16, 64, vocab, seed=2)
    evaluation = synthetic_batches(max(1, steps // 8), 16, 64, vocab, seed=3)

    def train_batches(_: int) -> Iterator[dict[str, torch.Tensor]]:
        return iter(batches)

    data = LoopData(train=train_batches, train_steps=steps, validation=lambda: iter(evaluation))
    saver = TimedSaver(folder)
    result = train(
        model,
        data,
        LoopSettings(epochs=epochs, lr=3e-5, warmup_ratio=0.1),
        "cpu",
        control=RunControl(save_state=saver),
    )
    return _share(f"MiniLM ({steps * 16} samples/epoch, length 64)", result, saver)


def _share(model: str, result: Any, saver: TimedSaver) -> dict[str, Any]:
    epoch_s = median([r.seconds for r in result.epochs])
    save_s = median(saver.seconds)
    write_s, size = saver.write_seconds()
    return {
        "model": model,
        "epoch_s": epoch_s,
        "save_s": save_s,  # what the loop waits for
        "share": save_s / epoch_s,
        "write_s": write_s,  # the whole write, done in the background
        "write_share": write_s / epoch_s,
        "state_mb": size / 1e6,
        "saves": len(saver.seconds),
    }


# --------------------------------------------------------------------------- 2-4. CLI runs


def _config(folder: Path, epochs: int, changes: dict[str, Any] | None = None) -> Path:
    data: dict[str, Any] = {
        "study": {
            "name": "resume",
            "storage": f"sqlite:///{folder / 'hp.db'}",
            "metric": "val_loss",
            "n_trials": 1,
            "seed": 0,
            "heartbeat_interval": 1,
            "heartbeat_grace": 2,
        },
        "sampler": {"name": "random", "args": {}},
        "pruner": {"name": "none", "args": {}},
        "objective": "toy_transformer",
        "fixed": {"epochs": epochs, "lr": 1e-3, **TOY_MODEL},
        "search": {"max_grad_norm": {"type": "float", "low": 0.5, "high": 5.0}},
        "data": {"n_train": 1200, "n_val": 500, "n_test": 500, "seq_len": 48},
        "artifacts": {"keep_checkpoints": "none"},
    }
    for section, values in (changes or {}).items():
        data[section] = {**data[section], **values}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _start(config: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "search", "run", str(config), *extra],
        cwd=config.parent,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _trials(folder: Path) -> list[Any]:
    import optuna

    try:
        study = optuna.load_study(study_name="resume", storage=f"sqlite:///{folder / 'hp.db'}")
        return study.get_trials()
    except Exception:  # no database or study yet
        return []


def _wait_until(folder: Path, process: subprocess.Popen[str], ready: Callable[[list[Any]], bool]):
    while process.poll() is None:
        if ready(_trials(folder)):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the run ended before the state it waited for: {process.stderr}")


def _running_with(epochs: int) -> Callable[[list[Any]], bool]:
    from search.trial import trial_epochs

    def ready(trials: list[Any]) -> bool:
        return any(
            t.state.name == "RUNNING" and len(trial_epochs(t.user_attrs)) >= epochs for t in trials
        )

    return ready


def _finish(process: subprocess.Popen[str]) -> None:
    _, err = process.communicate(timeout=900)
    if process.returncode != 0:
        raise RuntimeError(f"run failed ({process.returncode}): {err.strip()[-500:]}")


def kill_loss(folder: Path, epochs: int, resume: bool) -> dict[str, Any]:
    """Kill one trial at epoch epochs // 2 and rerun; what was lost against no kill."""
    from search.trial import trial_epochs

    kill_at = epochs // 2
    changes = {} if resume else {"artifacts": {"resume": False}}
    clean = _config(folder / f"clean-{resume}", epochs, changes)
    started = time.perf_counter()
    _finish(_start(clean))
    clean_s = time.perf_counter() - started
    started = time.perf_counter()
    _finish(_start(clean))  # the study is complete: only starting and stopping a process
    start_s = time.perf_counter() - started

    killed = _config(folder / f"killed-{resume}", epochs, changes)
    started = time.perf_counter()
    process = _start(killed)
    _wait_until(killed.parent, process, _running_with(kill_at))
    process.send_signal(signal.SIGSTOP)
    before_kill = next(t for t in _trials(killed.parent) if t.state.name == "RUNNING")
    process.send_signal(signal.SIGKILL)
    process.wait()
    first_s = time.perf_counter() - started
    time.sleep(2.5)  # the heartbeat grace: not counted
    started = time.perf_counter()
    _finish(_start(killed))
    second_s = time.perf_counter() - started
    retry = next(t for t in _trials(killed.parent) if t.state.name == "COMPLETE")
    resumed = retry.user_attrs.get("resumed_from")
    carried = resumed["epoch"] - 1 if resumed else 0
    trained_before = len(trial_epochs(before_kill.user_attrs))
    retrained = trained_before - carried  # finished epochs the retry trained again
    epoch_s = median([e["seconds"] for e in trial_epochs(retry.user_attrs)])
    lost_s = first_s + second_s - clean_s
    return {
        "resume": resume,
        "kill_at": trained_before,
        "epochs": epochs,
        "epochs_retrained": retrained,
        "lost_s": lost_s,
        "start_s": start_s,
        "epoch_s": epoch_s,
        "clean_s": clean_s,
    }


def sigterm_latency_toy(folder: Path, epochs: int) -> float:
    config = _config(folder / "sigterm", epochs)
    process = _start(config)
    _wait_until(config.parent, process, _running_with(1))
    started = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    if process.returncode != 130:
        raise RuntimeError(f"SIGTERM: exit code {process.returncode}, expected 130")
    return time.perf_counter() - started


def sigterm_latency_bert(steps: int, folder: Path) -> float:
    """Seconds from a stop request (mid-epoch) to the saved state, in MiniLM's loop."""
    from benchmarks.bert_throughput import synthetic_batches
    from objectives.bert import load_model
    from objectives.loop import LoopData, LoopSettings, RunControl, TrainingInterrupted, train
    from objectives.pretrained import resolve_model

    model = load_model(resolve_model("minilm-l6"), [0, 1], dropout=None, max_length=64)
    batches = synthetic_batches(steps, 16, 64, int(model.config.vocab_size), seed=2)
    data = LoopData(train=lambda _: iter(batches), train_steps=steps, validation=lambda: iter([]))
    requested: list[float] = []
    timer = threading.Timer(2.0, lambda: requested.append(time.perf_counter()))
    saver = TimedSaver(folder)
    timer.start()
    try:
        train(
            model,
            data,
            LoopSettings(epochs=1, lr=3e-5),
            "cpu",
            control=RunControl(should_stop=lambda: bool(requested), save_state=saver),
        )
    except TrainingInterrupted:
        saver.resume.flush()  # as the trial does before it reports the interruption
        return time.perf_counter() - requested[0]
    finally:
        timer.cancel()
    raise RuntimeError("the run ended before the stop request")


def peak_disk(folder: Path, trials: int, epochs: int) -> dict[str, Any]:
    config = _config(folder / "disk", epochs, {"study": {"n_trials": trials}})
    resume_dir = config.parent / "hp-artifacts" / "resume"
    process = _start(config, "--workers", "4")
    peak_states, peak_partial, peak_bytes = 0, 0, 0
    while process.poll() is None:
        files = list(resume_dir.rglob("trial-*")) if resume_dir.exists() else []
        size = 0
        for p in files:
            with contextlib.suppress(FileNotFoundError):  # replaced or removed while we looked
                size += p.stat().st_size
        states = sum(1 for p in files if p.suffix == ".pt")
        peak_states = max(peak_states, states)
        peak_partial = max(peak_partial, len(files) - states)
        peak_bytes = max(peak_bytes, size)
        time.sleep(0.02)
    _finish(process)
    left = list(resume_dir.rglob("trial-*")) if resume_dir.exists() else []
    return {
        "peak_states": peak_states,
        "peak_partial": peak_partial,
        "peak_kb": peak_bytes / 1e3,
        "left": len(left),
    }


# --------------------------------------------------------------------------- figure


def run(settings: Settings, log: Callable[[str], None] = print) -> Figure:
    size = sizes(settings)
    workdir = Path(tempfile.mkdtemp(prefix="resume-", dir=settings.workdir))
    torch.set_num_threads(settings.threads)
    log("  resume: save cost (toy)")
    costs = [toy_save_cost(size["toy_epochs"], workdir / "toy-save")]
    log("  resume: save cost (MiniLM)")
    costs.append(bert_save_cost(size["bert_steps"], size["bert_epochs"], workdir / "bert-save"))
    log("  resume: kill at epoch k of N, resume on and off")
    kills = [kill_loss(workdir, size["kill_epochs"], resume) for resume in (True, False)]
    log("  resume: SIGTERM to exit")
    toy_stop = sigterm_latency_toy(workdir, size["kill_epochs"])
    bert_stop = sigterm_latency_bert(size["bert_steps"] * 4, workdir / "bert-stop")
    log("  resume: peak disk, 4 workers")
    disk = peak_disk(workdir, size["trials"], size["kill_epochs"])

    bert = costs[1]
    table = [
        {
            "measure": f"save cost, {c['model']}",
            "value": f"{100 * c['share']:.2f} % of an epoch",
            "detail": f"the loop waits {c['save_s'] * 1e3:.0f} ms per save (copy); the write "
            f"({c['state_mb']:.1f} MB, fsync) takes {c['write_s'] * 1e3:.0f} ms "
            f"({100 * c['write_share']:.1f} %) in the background; epoch {c['epoch_s']:.2f} s",
        }
        for c in costs
    ]
    for k in kills:
        table.append(
            {
                "measure": f"kill at epoch {k['kill_at']} of {k['epochs']}, resume "
                + ("on" if k["resume"] else "off"),
                "value": f"{k['epochs_retrained']} epochs trained again",
                "detail": f"{k['lost_s']:.1f} s lost, {k['lost_s'] - k['start_s']:.1f} s beyond "
                f"starting a process ({k['start_s']:.1f} s) = "
                f"{(k['lost_s'] - k['start_s']) / k['epoch_s']:.1f} epochs of "
                f"{k['epoch_s']:.2f} s; the trial alone {k['clean_s']:.1f} s",
            }
        )
    table += [
        {
            "measure": "SIGTERM to exit 130 (toy, CLI)",
            "value": f"{toy_stop:.2f} s",
            "detail": "finish the step, save, mark the trial, queue its retry",
        },
        {
            "measure": "stop request to saved state (MiniLM, loop)",
            "value": f"{bert_stop:.2f} s",
            "detail": "finish the step in progress and write the state",
        },
        {
            "measure": f"peak disk, 4 workers, {size['trials']} trials",
            "value": f"{disk['peak_states']} states, {disk['peak_kb']:.0f} kB",
            "detail": f"+ at most {disk['peak_partial']} being written; {disk['left']} left after "
            "the study",
        },
    ]
    resumed, restarted = kills
    return Figure(
        key="resume",
        title="Preemption-safe trials: save cost, time lost per kill, disk",
        command="python -m benchmarks --only resume",
        settings=size,
        numbers={
            "save_share_toy": costs[0]["share"],
            "save_share_minilm": bert["share"],
            "epochs_retrained_resume_on": resumed["epochs_retrained"],
            "epochs_retrained_resume_off": restarted["epochs_retrained"],
            "lost_s_resume_on": resumed["lost_s"],
            "lost_s_resume_off": restarted["lost_s"],
            "sigterm_exit_s_toy": toy_stop,
            "stop_to_saved_s_minilm": bert_stop,
            **{f"disk_{k}": v for k, v in disk.items()},
        },
        table=table,
        ratio=bert["share"],
        ratio_label="MiniLM save cost / epoch time",
        target="MiniLM save ≤ 2 % of an epoch; a kill retrains ≤ 1 epoch; ≤ 1 state per trial",
        met=bert["share"] <= SAVE_SHARE_GOAL
        and resumed["epochs_retrained"] <= 1
        and disk["peak_states"] <= 4
        and disk["left"] == 0,
        notes=[
            "A kill's lost time includes starting a second process (Python, torch, the "
            "storage): the fixed part of any retry, shown separately. What remains beyond it "
            "(reaping the dead trial, building the data and model, loading the state) is also "
            "fixed: a few toy epochs of half a second, a small share of a BERT epoch.",
        ],
    )
