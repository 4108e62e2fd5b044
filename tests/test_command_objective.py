"""``objective: command``: the user's own script as the trial, with real child processes.

One study runs a script whose behaviour each enqueued trial picks (``mode``): a good run, no
metrics, a crash, an out-of-memory message, a stubborn child that ignores SIGTERM and leaves a
grandchild, an early stop through ``hpsearch_client``, a divergence, a 2 MB line. The CLI runs
as a subprocess on a real SQLite file; every assertion reads the storage or the child's files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

from objectives.command import expand_argv, parse_report, report_of_line
from tests.conftest import REPO, cli_env
from tests.servers import free_port
from tests.test_reliability import finish, start

SCRIPT = textwrap.dedent(
    r"""
    import json, os, signal, subprocess, sys, time
    from pathlib import Path

    sys.path.insert(0, sys.argv[1])  # where hpsearch_client.py is
    import hpsearch_client as hp

    args = dict(a[2:].split("=", 1) for a in sys.argv[2:] if a.startswith("--") and "=" in a)
    mode, out = args["mode"], Path(args["out"])
    trial = os.environ["HPSEARCH_TRIAL_NUMBER"]
    (out / f"argv-{trial}.json").write_text(json.dumps(sys.argv[2:]))
    (out / f"env-{trial}.json").write_text(json.dumps(dict(os.environ)))

    def line(step, **metrics):
        print("HPSEARCH " + json.dumps({"step": step, **metrics}), flush=True)

    if mode == "good":
        # A child of its own (a data loader, say) that would outlive it: killed with the group.
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        (out / f"grandchild-{trial}").write_text(str(child.pid))
        for step, loss in enumerate([0.9, 0.5, 0.3], start=1):
            line(step, val_loss=loss, train_loss=loss + 0.1, test_accuracy=1 - loss)
    elif mode == "nometrics":
        print("training... done, forgot to report")
    elif mode == "crash":
        print("boom: the data loader broke", file=sys.stderr)
        sys.exit(3)
    elif mode == "oom":
        print("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr)
        sys.exit(1)
    elif mode == "stubborn":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        (out / f"grandchild-{trial}").write_text(str(child.pid))
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        line(1, val_loss=50.0)  # over the threshold pruner's bound: pruned
        time.sleep(120)
    elif mode == "early":
        for step, loss in enumerate([0.4, 0.6, 0.7, 0.8, 0.9], start=1):
            if hp.report(step, val_loss=loss):
                (out / f"saved-{trial}").write_text(str(step))
                break
    elif mode == "diverge":
        line(1, val_loss=0.5)
        line(2, val_loss=float("nan"))
        time.sleep(120)
    elif mode == "bigline":
        sys.stdout.write("x" * 2_000_000)
        sys.stdout.write("\r progress 50%\r progress 100%\n")
        sys.stdout.buffer.write(b"\xff\xfe binary junk\n")
        sys.stdout.flush()
        line(1, val_loss=0.2)
        line(1, val_loss=0.1)  # a step already recorded: ignored
        line(2, val_loss=0.25)
    """
)

MODES = ["good", "nometrics", "crash", "oom", "stubborn", "early", "diverge", "bigline"]
TEXT = "a b 'c' \"d\" $HOME * ; e"


def write_study(folder: Path, argv: list[str], **extra: Any) -> Path:
    config: dict[str, Any] = {
        "study": {
            "name": "cmd",
            "storage": f"sqlite:///{folder / 'hp.db'}",
            "metric": "val_loss",
            "n_trials": extra.pop("n_trials", 1),
            "max_consecutive_failures": 20,
        },
        "sampler": {"name": "random", "args": {}},
        "pruner": {"name": "threshold", "args": {"upper": 10.0}},
        "objective": "command",
        "command": {
            "argv": argv,
            "metrics": {"val_loss": "minimize"},
            "kill_grace_s": 0.5,
            **extra.pop("command", {}),
        },
        **extra,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def trials_of(folder: Path) -> list[FrozenTrial]:
    study = optuna.load_study(study_name="cmd", storage=f"sqlite:///{folder / 'hp.db'}")
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


@pytest.mark.slow
def test_every_outcome_of_a_command_trial_is_recorded_like_a_built_in_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "train.py").write_text(SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    config = write_study(
        tmp_path,
        [sys.executable, "train.py", str(REPO), "{args}", "--raw", "{text}"],
        n_trials=len(MODES) - 3,  # the failing modes (no metrics, crash, oom) do not count
        fixed={
            "out": str(out),
            "text": TEXT,
            "tiny": 1.2345678901234567e-05,
            "flag": True,
            "early_stopping_patience": 2,
        },
        search={"mode": {"type": "categorical", "choices": MODES}},
        enqueue=[{"mode": mode} for mode in MODES],
    )
    env = cli_env()
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    env.update(PGPASSWORD="hunter2", HPSEARCH_STORAGE=storage, JOB_DB=storage)
    done = subprocess.run(
        [sys.executable, "-m", "search", "run", str(config), "--workers", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    # Each step as a progress line (no fixed.epochs: no "/N").
    assert "  trial 0 epoch 2: val_loss=0.5000 train_loss=0.6000 (" in done.stdout
    trials = trials_of(tmp_path)
    assert [t.params["mode"] for t in trials] == MODES  # the enqueued ones, no more
    by_mode = {t.params["mode"]: t for t in trials}

    good = by_mode["good"]
    assert good.state == TrialState.COMPLETE and good.value == 0.3
    assert [e["epoch"] for e in good.user_attrs["epochs"]] == [1, 2, 3]
    assert good.user_attrs["epochs"][0]["train_loss"] == 1.0
    assert good.user_attrs["best_epoch"] == 3
    assert good.user_attrs["test_accuracy"] == pytest.approx(0.7)
    assert good.intermediate_values == {1: 0.9, 2: 0.5, 3: 0.3}
    assert not alive(int((out / f"grandchild-{good.number}").read_text()))  # after a clean exit
    # argv: one element per value, no shell, floats in full precision, booleans as true/false;
    # {args} passes the command's parameters in config order, never the service's settings.
    argv = json.loads((out / f"argv-{good.number}.json").read_text())
    assert argv == [
        f"--out={out}",
        f"--text={TEXT}",
        f"--tiny={1.2345678901234567e-05!r}",  # repr: every digit of the double
        "--flag=true",
        "--mode=good",
        "--raw",
        TEXT,
    ]
    child_env = json.loads((out / f"env-{good.number}.json").read_text())
    assert "PGPASSWORD" not in child_env and "HPSEARCH_STORAGE" not in child_env
    assert not [key for key, value in child_env.items() if storage in value]
    assert json.loads(child_env["HPSEARCH_PARAMS"]) == {
        "out": str(out),
        "text": TEXT,
        "tiny": 1.2345678901234567e-05,
        "flag": True,
        "mode": "good",
    }
    assert child_env["HPSEARCH_SEED"] == "0" and child_env["PYTHONUNBUFFERED"] == "1"
    assert Path(child_env["HPSEARCH_CHECKPOINT_DIR"]) == (
        tmp_path / "hp-artifacts" / "command" / "cmd" / f"trial-{good.number}" / "checkpoints"
    )

    assert by_mode["nometrics"].state == TrialState.FAIL
    assert by_mode["nometrics"].user_attrs["reason"] == "failed: no metrics reported (exit code 0)"
    crash = by_mode["crash"].user_attrs["reason"]
    assert by_mode["crash"].state == TrialState.FAIL
    assert crash.startswith("failed: the command ended with exit code 3") and "boom" in crash
    assert by_mode["oom"].state == TrialState.FAIL
    assert by_mode["oom"].user_attrs["reason"].startswith("out of memory")

    stubborn = by_mode["stubborn"]
    assert stubborn.state == TrialState.PRUNED
    assert stubborn.user_attrs["reason"].startswith("pruned at epoch 1: val_loss=50")
    # It ignored SIGTERM: SIGKILL ended it, and its grandchild died with its group.
    assert not alive(int((out / f"grandchild-{stubborn.number}").read_text()))

    early = by_mode["early"]
    assert early.state == TrialState.COMPLETE and early.value == 0.4
    assert early.user_attrs["reason"].startswith("early_stopped after epoch 3")
    assert (out / f"saved-{early.number}").read_text() == "3"  # the client said stop at step 3

    diverge = by_mode["diverge"]
    assert diverge.state == TrialState.PRUNED
    assert diverge.user_attrs["reason"] == "diverged: non-finite val_loss at epoch 2"

    big = by_mode["bigline"]
    assert big.state == TrialState.COMPLETE and big.value == 0.2
    assert [e["val_loss"] for e in big.user_attrs["epochs"]] == [0.2, 0.25]
    # Every line of the script's own output is in its log.
    folders = tmp_path / "hp-artifacts" / "command" / "cmd"
    log = next(folders.glob(f"*/output-{big.number}.log"))
    assert "progress 100%" in log.read_text()
    # keep_checkpoints: best (the default): only the best complete trial's folder is left.
    assert [p.parent.name for p in folders.glob("*/checkpoints")] == [f"trial-{big.number}"]


@pytest.mark.slow
def test_a_shell_script_reports_through_the_metrics_file_exactly(tmp_path: Path) -> None:
    (tmp_path / "train.sh").write_text(
        "#!/bin/sh\n"
        'echo \'{"step": 1, "val_loss": 1.2e-05, "val_count": 888, "val_delta": -3}\' '
        '>> "$HPSEARCH_METRICS_FILE"\n'
        "echo 'not a report' >> \"$HPSEARCH_METRICS_FILE\"\n"
        'printf \'{"step": 2, "val_loss": 3e-05}\' >> "$HPSEARCH_METRICS_FILE"\n'  # no newline
    )
    (tmp_path / "train.sh").chmod(0o755)
    config = write_study(tmp_path, ["./train.sh"])
    code, _, err = finish(start("run", str(config), cwd=tmp_path))
    assert code == 0, err
    (trial,) = trials_of(tmp_path)
    first, second = trial.user_attrs["epochs"]
    assert (first["val_loss"], first["val_count"], first["val_delta"]) == (1.2e-05, 888, -3)
    assert isinstance(first["val_count"], int) and second["val_loss"] == 3e-05
    assert trial.state == TrialState.COMPLETE and trial.value == 1.2e-05
    # The readouts work on a command study as on any other; the audit refuses: it would run a
    # command read from the storage.
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    code, out, err = finish(start("show", "cmd", "--storage", storage, cwd=tmp_path))
    assert code == 0 and "best trial 0 (COMPLETE): best epoch 1" in out, err
    code, out, err = finish(start("report", "cmd", "--storage", storage, cwd=tmp_path))
    assert code == 0 and (tmp_path / "report" / "cmd" / "report.md").is_file(), err
    code, out, err = finish(start("audit", "cmd", "--storage", storage, cwd=tmp_path))
    assert code == 2 and "pass its config file with --config FILE" in err
    assert err.count("\n") == 1


@pytest.mark.slow
def test_the_audit_runs_the_command_of_the_config_file_never_the_storages(tmp_path: Path) -> None:
    (tmp_path / "train.sh").write_text(
        "#!/bin/sh\n"
        "for step in 1 2 3; do\n"
        '  echo "HPSEARCH {\\"step\\": $step, \\"val_loss\\": $1}"\n'
        "done\n"
    )
    (tmp_path / "train.sh").chmod(0o755)
    config = write_study(
        tmp_path,
        ["./train.sh", "{loss}"],
        n_trials=2,
        pruner={"name": "threshold", "args": {"upper": 0.5}},
        search={"loss": {"type": "categorical", "choices": [0.2, 0.9]}},
        enqueue=[{"loss": 0.2}, {"loss": 0.9}],
    )
    code, _, err = finish(start("run", str(config), cwd=tmp_path))
    assert code == 0, err
    assert [t.state for t in trials_of(tmp_path)] == [TrialState.COMPLETE, TrialState.PRUNED]
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    # A config file whose command is not the study's is refused, naming what differs.
    other = tmp_path / "other"
    other.mkdir()
    (other / "train.sh").write_text((tmp_path / "train.sh").read_text())
    (other / "train.sh").chmod(0o755)
    changed = yaml.safe_load(config.read_text())
    changed["command"]["cwd"] = str(other)
    (other / "study.yaml").write_text(yaml.safe_dump(changed))
    audit = ["audit", "cmd", "--storage", storage, "--config"]
    code, _, err = finish(start(*audit, str(other / "study.yaml"), cwd=tmp_path))
    assert code == 2 and "command.cwd differs from study 'cmd'" in err, err
    code, _, err = finish(start(*audit, str(config), cwd=tmp_path))
    assert code == 0, err
    audited = optuna.load_study(study_name="cmd/audit", storage=storage).trials
    assert [t.state for t in audited] == [TrialState.COMPLETE]
    assert [e["epoch"] for e in audited[0].user_attrs["epochs"]] == [1, 2, 3]


@pytest.mark.slow
def test_sigterm_to_the_run_reaches_the_child_which_saves_and_the_rerun_finishes(
    tmp_path: Path,
) -> None:
    (tmp_path / "train.py").write_text(
        textwrap.dedent(
            """
            import json, os, signal, sys, time
            from pathlib import Path
            trial = os.environ["HPSEARCH_TRIAL_NUMBER"]
            def saved(*_):
                Path(f"saved-{trial}").write_text("1")
                sys.exit(0)
            signal.signal(signal.SIGTERM, saved)
            print("HPSEARCH " + json.dumps({"step": 1, "val_loss": 0.5}), flush=True)
            if Path("second-run").exists():
                sys.exit(0)
            Path("reported").write_text(trial)
            time.sleep(120)
            """
        )
    )
    config = write_study(tmp_path, [sys.executable, "train.py"], command={"kill_grace_s": 30})
    process = start("run", str(config), cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not (tmp_path / "reported").exists():  # the child is inside its trial
        assert process.poll() is None and time.monotonic() < deadline, "never reported"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    code, _, err = finish(process, timeout=120)
    assert code == 130, err
    assert (tmp_path / "saved-0").exists()  # SIGTERM reached it at once, not after the grace
    (first,) = trials_of(tmp_path)[:1]
    assert first.state == TrialState.FAIL
    assert first.user_attrs["reason"].startswith("interrupted after epoch 1")
    (tmp_path / "second-run").write_text("")
    code, _, err = finish(start("run", str(config), cwd=tmp_path))
    assert code == 0, err
    assert [t.state for t in trials_of(tmp_path)] == [TrialState.FAIL, TrialState.COMPLETE]


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "search", "validate", str(config)],
        cwd=config.parent,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"argv": []}, "command.argv: empty; give the command as a list"),
        ({"argv": ["{python}", "train.py"]}, "command.argv: unknown placeholder '{python}'"),
        ({"argv": ["python3", "--lr={lr}"]}, "command.argv: '--lr={lr}': a placeholder must"),
        ({"argv": ["no-such-program-xyz"]}, "command.argv: executable 'no-such-program-xyz'"),
        ({"cwd": "missing-folder"}, "command.cwd:"),
        ({"metrics": {"val_acc": "maximize"}}, "study.metric: 'val_loss' is not among"),
        ({"metrics": {"loss": "minimize"}}, "command.metrics.loss: the metrics a command"),
    ],
)
def test_validate_refuses_a_command_that_cannot_run(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    config = write_study(
        tmp_path,
        ["python3", "train.py", "{args}"],
        command=change,
        search={"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
    )
    done = validate(config)
    assert done.returncode == 2, done.stdout
    assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    assert not (tmp_path / "hp.db").exists()


def test_validate_prints_the_command_a_trial_runs(tmp_path: Path) -> None:
    config = write_study(
        tmp_path,
        ["python3", "train.py", "{args}"],
        fixed={"epochs": 5, "early_stopping_patience": 2, "name": "a b"},
        search={"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
    )
    done = validate(config)
    assert done.returncode == 0, done.stderr
    assert (
        f"# a trial runs, in {tmp_path}: python3 train.py --epochs=5 '--name=a b' '--lr=<lr>'"
        in done.stdout
    )


def test_reports_are_parsed_exactly_and_junk_is_output() -> None:
    assert parse_report('{"step": 3, "val_loss": 1e-05}').metrics == {"val_loss": 1e-05}
    report = report_of_line('HPSEARCH {"step": 2, "a": -3, "b": 888, "c": NaN, "d": "x"}')
    assert report is not None and report.step == 2
    assert report.metrics["a"] == -3 and report.metrics["b"] == 888
    assert isinstance(report.metrics["b"], int) and report.metrics["c"] != report.metrics["c"]
    assert "d" not in report.metrics
    for junk in ('{"step": 0}', '{"step": true}', "[1, 2]", "{oops", '{"val_loss": 1}'):
        assert parse_report(junk) is None
    assert report_of_line('hpsearch {"step": 1}') is None  # the prefix is exact
    assert expand_argv(["x", "{seed}", "{lr}"], {"lr": 0.1 + 0.2}, 7) == [
        "x",
        "7",
        "0.30000000000000004",
    ]


RESUMING = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    from pathlib import Path
    start = int(os.environ["HPSEARCH_RESUME_STEP"])
    Path(f"resume-step-{os.environ['HPSEARCH_TRIAL_NUMBER']}").write_text(str(start))
    for step in range(start + 1, 5):
        print("HPSEARCH " + json.dumps({"step": step, "val_loss": 1.0 / step}), flush=True)
        if step == 2 and not Path("at-2").exists():
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
            Path("at-2.tmp").write_text(json.dumps([os.getpid(), child.pid]))
            os.replace("at-2.tmp", "at-2")
            time.sleep(120)
    """
)


@pytest.mark.slow
def test_kill_9_of_the_worker_takes_the_script_down_and_the_retry_continues(
    tmp_path: Path,
) -> None:
    (tmp_path / "train.py").write_text(RESUMING)
    config = write_study(tmp_path, [sys.executable, "train.py"])
    data = yaml.safe_load(config.read_text())
    data["study"].update(heartbeat_interval=1, heartbeat_grace=2)
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    process = start("run", str(config), cwd=tmp_path)
    deadline = time.monotonic() + 120

    def at_step_2() -> bool:
        if not (tmp_path / "at-2").exists() or not (tmp_path / "hp.db").exists():
            return False
        running = [t for t in trials_of(tmp_path) if t.state == TrialState.RUNNING]
        return bool(running) and len(running[0].user_attrs.get("epochs") or []) == 2

    while not at_step_2():  # step 2 is in the storage and the script sleeps after it
        assert process.poll() is None and time.monotonic() < deadline, "never reached step 2"
        time.sleep(0.05)
    script, grandchild = json.loads((tmp_path / "at-2").read_text())
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    while alive(script) or alive(grandchild):  # the watchdog takes the group down
        assert time.monotonic() < deadline, "the script outlived its worker"
        time.sleep(0.05)
    # Not a race: the last heartbeat was written before the kill; after the grace (2 s) the
    # rerun finds the trial stale for certain, fails it and retries its parameters.
    time.sleep(2.5)
    code, _, err = finish(start("run", str(config), cwd=tmp_path))
    assert code == 0 and err == "", err
    dead, retry = trials_of(tmp_path)
    assert dead.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert (tmp_path / f"resume-step-{retry.number}").read_text() == "2"
    assert [e["epoch"] for e in retry.user_attrs["epochs"]] == [1, 2, 3, 4]
    assert retry.user_attrs["resumed_from"] == {"trial": 0, "epoch": 2, "step": 0}
    assert retry.intermediate_values == {1: 1.0, 2: 0.5, 3: 1 / 3, 4: 0.25}
    assert retry.value == 0.25 and retry.user_attrs["best_epoch"] == 4


@pytest.mark.slow
def test_a_trainer_script_reports_through_the_callback_and_stops_when_pruned(
    tmp_path: Path,
) -> None:
    """examples/command_trainer/train.py, as shipped: a tiny BERT under Hugging Face Trainer."""
    script = REPO / "examples" / "command_trainer" / "train.py"
    config = write_study(
        tmp_path,
        [sys.executable, str(script), "{args}"],
        n_trials=2,
        command={
            "metrics": {"val_loss": "minimize", "val_accuracy": "maximize"},
            "kill_grace_s": 60,
        },
        pruner={"name": "threshold", "args": {"upper": 0.5, "n_warmup_steps": 3}},
        fixed={"epochs": 5, "batch_size": 16},
        search={"learning_rate": {"type": "categorical", "choices": [2e-3, 1e-5]}},
        enqueue=[{"learning_rate": 2e-3}, {"learning_rate": 1e-5}],
    )
    code, _, err = finish(start("run", str(config), cwd=tmp_path))
    assert code == 0, err
    learner, stalled = trials_of(tmp_path)
    assert learner.state == TrialState.COMPLETE
    assert learner.user_attrs["epochs"][-1]["val_accuracy"] > 0.9
    assert set(learner.user_attrs["epochs"][0]) == {"epoch", "val_loss", "val_accuracy", "seconds"}
    assert stalled.state == TrialState.PRUNED
    assert stalled.user_attrs["reason"].startswith("pruned at epoch 3: val_loss=")
    # Told to stop, Trainer ended its own training (its summary line) and the script exited 0
    # within the grace: no signal was needed.
    log = next((tmp_path / "hp-artifacts" / "command" / "cmd").glob("*/output-1.log")).read_text()
    assert "train_runtime" in log and "[hpsearch] the command ended: exit code 0" in log
    assert "SIGTERM" not in log


@pytest.mark.slow
def test_under_torchrun_only_rank_0_reports_and_every_rank_stops(tmp_path: Path) -> None:
    """The same Trainer script on two CPU processes (gloo): one report per epoch, and a prune
    stops both ranks (a rank left training would hang in DDP's all-reduce until SIGTERM)."""
    script = REPO / "examples" / "command_trainer" / "train.py"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    config = write_study(
        tmp_path,
        [*torchrun, "--master_port", str(free_port()), str(script), "{args}"],
        command={"kill_grace_s": 120},
        pruner={"name": "threshold", "args": {"upper": 0.01, "n_warmup_steps": 2}},
        fixed={"epochs": 6, "learning_rate": 2e-3},
    )
    code, _, err = finish(start("run", str(config), cwd=tmp_path))
    assert code == 0, err
    (trial,) = trials_of(tmp_path)
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["reason"].startswith("pruned at epoch 2: val_loss=")
    assert [e["epoch"] for e in trial.user_attrs["epochs"]] == [1, 2]
    log = next((tmp_path / "hp-artifacts" / "command" / "cmd").glob("*/output-0.log")).read_text()
    assert log.count("HPSEARCH ") == 2  # rank 0 only
    assert "[hpsearch] the command ended: exit code 0" in log and "SIGTERM" not in log


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "overrides"),
    [
        ("command_pytorch.yaml", ["study.n_trials=2", "fixed.epochs=3"]),
        ("command_shell.yaml", ["study.n_trials=3"]),
        ("command_shell.yaml", ["study.n_trials=3", "study.metric=[val_loss, train_seconds]"]),
    ],
)
def test_the_shipped_command_examples_run_as_the_readme_says(
    tmp_path: Path, config: str, overrides: list[str]
) -> None:
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    flags = [item for override in overrides for item in ("--set", override)]
    path = str(REPO / "study_configs" / config)
    code, _, err = finish(start("run", path, "--storage", storage, *flags, cwd=tmp_path))
    assert code == 0, err
    study = optuna.load_study(
        study_name=yaml.safe_load(Path(path).read_text())["study"]["name"], storage=storage
    )
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    if len(study.directions) == 1:
        assert study.best_trial.user_attrs["epochs"]
    else:  # several metrics: each complete trial's values are its best epoch's and its seconds
        for trial in study.best_trials:
            best = trial.user_attrs["best_epoch"]
            row = next(e for e in trial.user_attrs["epochs"] if e["epoch"] == best)
            assert trial.values[0] == row["val_loss"]
            assert trial.values[1] == trial.user_attrs["train_seconds"] > 0


@pytest.mark.slow
def test_a_command_winner_is_exported_and_retrained_from_any_folder(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    shipped = str(REPO / "study_configs" / "command_shell.yaml")
    flags = ["--storage", storage, "--set", "study.n_trials=3"]
    code, _, err = finish(start("run", shipped, *flags, cwd=tmp_path))
    assert code == 0, err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    best = elsewhere / "best.yaml"
    code, _, err = finish(
        start("export", "command-shell", "--storage", storage, "-o", str(best), cwd=tmp_path)
    )
    assert code == 0, err
    exported = yaml.safe_load(best.read_text())
    assert exported["command"]["cwd"] == str(REPO / "examples" / "command_shell")
    code, out, err = finish(
        start("retrain", str(best), "--storage", storage, "--seeds", "2", cwd=elsewhere)
    )
    assert code == 0, err
    assert "winner | test_loss" in out or "verdict:" in out
    retrained = optuna.load_study(study_name="command-shell/retrain", storage=storage)
    assert [t.state for t in retrained.trials] == [TrialState.COMPLETE] * 2
    assert all(t.user_attrs["epochs"] for t in retrained.trials)


@pytest.mark.slow
def test_command_trials_run_on_the_slots_devices_names(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    shipped = str(REPO / "study_configs" / "command_shell.yaml")
    flags = ["--storage", storage, "--set", "study.n_trials=4", "--devices", "cpu,cpu"]
    code, _, err = finish(start("run", shipped, *flags, cwd=tmp_path))
    assert code == 0, err
    study = optuna.load_study(study_name="command-shell", storage=storage)
    assert len(study.trials) == 4
    assert {t.user_attrs["device"] for t in study.trials} == {"cpu"}
    assert {t.user_attrs["worker"] for t in study.trials} <= {0, 1}


def test_the_client_outside_a_trial_prints_and_never_stops(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import hpsearch_client as hp

    for name in [k for k in os.environ if k.startswith("HPSEARCH_")]:
        monkeypatch.delenv(name)
    assert not hp.in_trial() and hp.params() == {} and hp.seed() is None
    assert hp.checkpoint_dir() is None and hp.resume_step() == 0 and hp.last_checkpoint() is None
    assert hp.report(1, val_loss=0.5) is False
    assert capsys.readouterr().out == "step 1: val_loss=0.5\n"
    with pytest.raises(ValueError, match="step must be an integer from 1"):
        hp.report(0, val_loss=0.5)
    # In a trial: the newest Trainer checkpoint folder is the one to resume from.
    for name in ("checkpoint-5", "checkpoint-12", "checkpoint-9", "runs"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("HPSEARCH_CHECKPOINT_DIR", str(tmp_path))
    assert hp.last_checkpoint() == str(tmp_path / "checkpoint-12")


def test_a_gpu_slot_shows_the_command_its_gpu_only() -> None:
    from objectives.command import visible_devices

    assert visible_devices("cpu", {}) is None
    assert visible_devices("cuda:1", {}) == "1"
    assert visible_devices("cuda", {}) == "0"
    # A worker pinned to physical GPU 3 trains on cuda:0 inside; the command gets GPU 3.
    assert visible_devices("cuda:0", {"CUDA_VISIBLE_DEVICES": "3"}) == "3"
    assert visible_devices("cuda:1", {"CUDA_VISIBLE_DEVICES": "2,5"}) == "5"


@pytest.mark.slow
def test_commands_that_always_fail_stop_the_study(tmp_path: Path) -> None:
    config = write_study(tmp_path, [sys.executable, "-c", "raise SystemExit(4)"], n_trials=5)
    data = yaml.safe_load(config.read_text())
    data["study"]["max_consecutive_failures"] = 2
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    code, _, err = finish(start("run", str(config), cwd=tmp_path))
    assert code == 1 and "2 trials failed in a row" in err
    trials = trials_of(tmp_path)
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    assert trials[0].user_attrs["reason"].startswith("failed: the command ended with exit code 4")
