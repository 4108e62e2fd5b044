"""Figure: what a command trial costs over the same training as a built-in trial.

The same fixed toy study (every parameter fixed, no pruner, no early stopping, so every trial
is the same work) runs three ways, alternating, each on a new SQLite file, one worker:

- A, built in: ``objective: toy_transformer``;
- B, as a command: ``objective: command`` running ``benchmarks/toy_command.py``, which trains the
  same task and model with the same loop and prints one ``HPSEARCH`` line per epoch;
- C, the command alone: the same ``toy_command.py`` runs, one per trial, back to back, no
  hpsearch around them.

B - A is what a user pays for a command trial (mostly the script's own start: a new Python and
torch per trial). B - C is the service's side of a command trial: the watchdog, reading the
lines, answering, and the asks, records and tells a built-in trial pays too; A minus A's time
inside its epochs is that built-in service side. Their difference is what only a command trial
costs, but a built-in trial also builds its model and data outside its epochs (the script does
that inside C), so that difference is not clean. The target is on B - C per trial, which
overstates the new part, against the default toy study's wall time per trial (its 30 trials of
up to 40 epochs on one worker, ``DEFAULT_STUDY_S_PER_TRIAL``): under 2 %.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import Figure, Settings, alternate, median, ratio

CONFIG = "study_configs/toy_transformer.yaml"
REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "toy_command.py"
# The default toy study (study_configs/toy_transformer.yaml, `make study WORKERS=1` on a fresh
# clone of this 2-core machine): 4 min 3 s for 30 trials (docs/getting-started/index.md).
DEFAULT_STUDY_S_PER_TRIAL = 243 / 30
FIXED = {
    "lr": 2e-3,
    "batch_size": 32,
    "hidden_dim": 32,
    "num_heads": 2,
    "num_layers": 1,
    "max_grad_norm": 1.0,
}


def sizes(settings: Settings) -> dict[str, int]:
    if settings.mode == "smoke":
        return {"n_trials": 2, "epochs": 1, "pairs": 1}
    if settings.quick:
        return {"n_trials": 4, "epochs": 5, "pairs": 2}
    return {"n_trials": 8, "epochs": 10, "pairs": 3}


def overrides(settings: Settings, command: bool) -> list[str]:
    size = sizes(settings)
    fixed = {**FIXED, "epochs": size["epochs"], "early_stopping_patience": None}
    common = [
        "pruner.name=none",
        "pruner.args={}",
        "search={}",
        "enqueue=[]",
        "artifacts.keep_checkpoints=none",
        f"study.n_trials={size['n_trials']}",
        "fixed=" + _flow(fixed),
    ]
    if not command:
        return common
    argv = [sys.executable, str(SCRIPT), "{args}", "--seed", "{seed}"]
    section = {
        "argv": argv,
        "cwd": str(REPO),
        "env": _script_env(),
        "metrics": {"val_loss": "minimize", "val_accuracy": "maximize"},
    }
    return [*common, "objective=command", "data={}", "command=" + _flow(section)]


def _script_env() -> dict[str, str]:
    """The script's environment: the project on its path, the config's toy data section."""
    import json

    import yaml

    data = yaml.safe_load((REPO / CONFIG).read_text(encoding="utf-8")).get("data") or {}
    return {"PYTHONPATH": str(REPO), "TOY_DATA": json.dumps(data)}


def _flow(value: object) -> str:
    import json

    return json.dumps(value)  # JSON is YAML flow style


def run(settings: Settings, log: Callable[[str], None] = print) -> Figure:
    import optuna

    from search.config import load_config
    from search.study import optimize_study as run_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    size = sizes(settings)
    folder = Path(settings.workdir) / f"command-{settings.mode}"
    folder.mkdir(parents=True, exist_ok=True)
    counter = itertools.count()
    training: list[float] = []

    def study(command: bool) -> float:
        index = next(counter)
        name = f"{'command' if command else 'builtin'}{index}"
        storage = f"sqlite:///{(folder / f'{name}.db').resolve()}"
        config = load_config(
            CONFIG,
            [*overrides(settings, command), f"study.storage={storage}", f"study.name={name}"],
        )
        started = time.perf_counter()
        summary = run_study(config, device="cpu", workers=1)
        seconds = time.perf_counter() - started
        if summary.finished_after != size["n_trials"]:
            raise RuntimeError(f"{name} finished {summary.finished_after} trials")
        if not command:
            # The time inside the loop's epochs (each record's `seconds`): what is left of the
            # wall time is the built-in trials' own service cost (asks, records, tells).
            stored = optuna.load_study(study_name=name, storage=storage)
            epochs = [e for t in stored.trials for e in t.user_attrs["epochs"]]
            training.append(sum(e["seconds"] for e in epochs))
        log(f"  {'command ' if command else 'built in'}: {seconds:.1f} s")
        return seconds

    def alone() -> float:
        args = [f"--{k}={v}" for k, v in {**FIXED, "epochs": size["epochs"]}.items()]
        started = time.perf_counter()
        for _ in range(size["n_trials"]):
            subprocess.run(
                [sys.executable, str(SCRIPT), *args, "--seed", "0"],
                cwd=REPO,
                env={**_script_env(), "PATH": "/usr/bin:/bin"},
                check=True,
                capture_output=True,
            )
        seconds = time.perf_counter() - started
        log(f"  command alone: {seconds:.1f} s")
        return seconds

    built_vs_command = alternate(lambda: study(False), lambda: study(True), pairs=size["pairs"])
    alone_runs = [alone() for _ in range(size["pairs"])]
    built, command, bare = (
        built_vs_command.median_a,
        built_vs_command.median_b,
        median(alone_runs),
    )
    steps = size["n_trials"] * size["epochs"]
    service = command - bare
    builtin_service = built - median(training)
    share = ratio(service / size["n_trials"], DEFAULT_STUDY_S_PER_TRIAL)
    figure = Figure(
        key="command",
        title="Command trials: overhead over the same training as a built-in trial",
        command="python -m benchmarks --only command",
        settings={**size, "config": CONFIG, "fixed": FIXED, "script": str(SCRIPT.name)},
        target="a command trial's service side per trial (B - C, asks, records and tells "
        "included), < 2 % of the default toy study's wall time per trial "
        f"({DEFAULT_STUDY_S_PER_TRIAL:.1f} s, one worker)",
        table=[
            {"way": "A built in", "median wall s": built, "runs": built_vs_command.a},
            {"way": "B command trials", "median wall s": command, "runs": built_vs_command.b},
            {"way": "C the commands alone", "median wall s": bare, "runs": alone_runs},
        ],
        numbers={
            "builtin_s": built_vs_command.a,
            "command_s": built_vs_command.b,
            "alone_s": alone_runs,
            "user_overhead_per_trial_s": (command - built) / size["n_trials"],
            "service_overhead_per_trial_s": service / size["n_trials"],
            "service_overhead_per_step_ms": 1000 * service / steps,
            "builtin_service_per_trial_s": builtin_service / size["n_trials"],
            "service_share_of_default_study_trial": share,
            "service_share_of_this_builtin_study": ratio(service, built),
        },
        ratio=share,
        ratio_label="(B - C) per trial / the default study's wall time per trial",
        met=share < 0.02,
    )
    figure.notes.append(
        f"service side per trial: command {service / size['n_trials']:.3f} s (B - C, "
        f"{1000 * service / steps:.1f} ms per reported step); built in "
        f"{builtin_service / size['n_trials']:.3f} s (A minus its time in epochs, which also "
        "holds building the model and data, done by the script in C: the two do not subtract "
        "cleanly)"
    )
    figure.notes.append(
        f"B - A = {(command - built) / size['n_trials']:.2f} s per trial: mostly the script's "
        "own start (a new Python, torch and the toy task per trial), which a built-in trial "
        "pays once per worker"
    )
    return figure
