"""The CLI as a user runs it: a subprocess, exit codes, what it prints and what it stores."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import REPO, cli_env, digest

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.slow
def test_run_show_list_export_and_rerun_the_winner(
    write_config: Callable[..., Path], run_cli: Run, tmp_path: Path
) -> None:
    config = write_config({"study": {"n_trials": 3}})
    db = f"sqlite:///{tmp_path / 'hp.db'}"

    done = run_cli("run", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "no warnings on stderr in normal runs"
    lines = done.stdout.splitlines()
    assert lines[0].startswith("study 'micro' on sqlite:///") and "0/3 finished" in lines[0]
    trial_lines = [line for line in lines if line.startswith("[")]
    assert len(trial_lines) == 3 and all("COMPLETE" in line for line in trial_lines)
    assert "[3/3] trial 2" in trial_lines[-1] and "epochs 3/3" in trial_lines[-1]
    assert any(line.startswith("best trial ") for line in lines)
    assert "hpsearch show micro" in done.stdout and "hpsearch export micro" in done.stdout

    # Rerunning the same command resumes: nothing left to do, still exactly 3 trials.
    again = run_cli("run", str(config))
    assert again.returncode == 0 and "3/3 finished, nothing to run" in again.stdout
    assert len(optuna.load_study(study_name="micro", storage=db).trials) == 3

    shown = run_cli("show", "micro", "--storage", db)
    assert shown.returncode == 0, shown.stderr
    assert (
        "Epoch | Training Loss | Validation Accuracy | Validation Loss | Test Accuracy"
        in shown.stdout
    )
    after = shown.stdout.split("Test Accuracy", 1)[1].strip().splitlines()[1:]
    # The table, then (on 100 validation examples) the warning that the lead is inside the noise.
    epoch_lines = [line for line in after if not line.startswith("warning:")]
    assert len(epoch_lines) == 3
    assert sum(line.rstrip().endswith("N/A") for line in epoch_lines) == 2, "test on one row only"

    as_json = json.loads(run_cli("show", "micro", "--storage", db, "--json", "--trial", "1").stdout)
    assert as_json["trial"]["number"] == 1 and len(as_json["trial"]["epochs"]) == 3
    assert [t["state"] for t in as_json["trials"]] == ["COMPLETE"] * 3
    listed = json.loads(run_cli("list", "--storage", db, "--json").stdout)
    assert [(s["name"], s["complete"]) for s in listed] == [("micro", 3)]

    best_file = tmp_path / "best.yaml"
    exported = run_cli("export", "micro", "--storage", db, "-o", str(best_file))
    assert exported.returncode == 0, exported.stderr
    best = yaml.safe_load(best_file.read_text())
    study = optuna.load_study(study_name="micro", storage=db)
    assert best["study"]["name"] == "micro-best" and best["study"]["n_trials"] == 1
    assert best["search"] == {} and best["enqueue"] == []
    for name, value in study.best_trial.params.items():
        assert best["fixed"][name] == value
    assert best["best"]["trial"] == study.best_trial.number
    assert best["best"]["value"] == pytest.approx(study.best_value)
    assert best["best"]["best_epoch"] == study.best_trial.user_attrs["best_epoch"]

    rerun = run_cli("run", str(best_file))
    assert rerun.returncode == 0, rerun.stderr
    winner = optuna.load_study(study_name="micro-best", storage=db)
    assert len(winner.trials) == 1
    # Same parameters, same seed, same data: the winner trains to the same result (CPU).
    assert winner.best_value == pytest.approx(study.best_value, rel=1e-5)


def test_module_and_console_script_are_the_same_cli(tmp_path: Path) -> None:
    module = subprocess.run(
        [sys.executable, "-m", "search", "--help"], capture_output=True, text=True, env=cli_env()
    )
    assert module.returncode == 0 and "run" in module.stdout and "export" in module.stdout
    script = shutil.which("hpsearch", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the hpsearch console script is not installed in this environment")
    console = subprocess.run([script, "--help"], capture_output=True, text=True, env=cli_env())
    assert console.stdout == module.stdout.replace("python -m search", "hpsearch")


def test_validate_prints_the_resolved_config_and_touches_nothing(
    write_config: Callable[..., Path], run_cli: Run, tmp_path: Path
) -> None:
    config = write_config()
    done = run_cli(
        "validate", str(config), "--set", "fixed.epochs=7", "--set", "search.lr.high=5e-3"
    )
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert resolved["fixed"]["epochs"] == 7 and resolved["search"]["lr"]["high"] == 0.005
    assert resolved["fixed"]["max_grad_norm"] == 1.0, "defaults are shown"
    assert not (tmp_path / "hp.db").exists()


def test_default_storage_is_created_under_the_working_directory(
    run_cli: Run, tmp_path: Path
) -> None:
    config = tmp_path / "toy.yaml"
    shutil.copy(REPO / "study_configs" / "toy_transformer.yaml", config)
    done = run_cli(
        "run",
        str(config),
        "--n-trials",
        "1",
        "--set",
        "fixed.epochs=1",
        "--set",
        "data={n_train: 100, n_val: 50, n_test: 50, seq_len: 12}",
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "studies" / "hpsearch.db").exists()
    shown = run_cli("show", "toy-transformer")
    assert shown.returncode == 0 and "best trial 0" in shown.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run"], "hpsearch run: the following arguments are required: CONFIG"),
        (["fly"], "invalid choice: 'fly'"),
        ([], "the following arguments are required: COMMAND"),
        (["run", "{config}", "--workers", "0"], "--workers: must be at least 1, got 0"),
        (["run", "{config}", "--n-trials", "many"], "expected a whole number, got 'many'"),
        (["run", "{config}", "--device", "tpu"], "--device 'tpu': unknown device 'tpu'"),
        (["run", "{config}", "--devices", "gpu0"], "--devices 'gpu0': unknown device 'gpu0'"),
        (["run", "{config}", "--devices", "cpu", "--workers", "2"], "drop --workers"),
        (["run", "{config}", "--devices", "cpu", "--device", "cpu"], "give one of them"),
        (["run", "{config}", "--trials-per-device", "0"], "must be at least 1, got 0"),
        (["run", "{config}", "--progress", "loud"], "invalid choice: 'loud'"),
        (["run", "{config}", "--bogus"], "unrecognized arguments: --bogus"),
        (["run", "{config}", "--set", "fixed.epochs"], "expected KEY=VALUE"),
        (
            ["run", "{config}", "--set", "study.n_trials=-1"],
            "study.n_trials: Input should be greater than or equal to 1",
        ),
        (["run", "{config}", "--storage", "mssql://x/y"], "storage URL scheme 'mssql'"),
        (["run", "{config}", "--storage", "sqlite://"], "names no database file"),
        (["run", "{config}", "--storage", "nonsense"], "is not a URL"),
        (["run", "{missing}"], "config file not found"),
        (
            ["run", "{config}", "--set", "sampler.args={n_startup_trials: 2, bogus: 1}"],
            "sampler.args: random sampler does not accept these args (n_startup_trials, bogus)",
        ),
        (["run", "{config}", "--set", "pruner.name=percentile"], "pruner.args.percentile: missing"),
        (["show", "nosuch"], "no study 'nosuch'"),
        (["show", "micro", "--trial", "99"], "has no trial 99"),
        (["export", "nosuch"], "no study 'nosuch'"),
        (["run", "{config}", "--device", "cuda"], "no CUDA device"),
        (["run", "{config}", "--devices", "cuda:0,cuda:1"], "no CUDA device"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_the_storage_untouched(
    finished_study: Path, run_cli: Run, tmp_path: Path, args: list[str], expected: str
) -> None:
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    db = tmp_path / "hp.db"
    shutil.copy(finished_study / "hp.db", db)
    config = tmp_path / "study.yaml"
    config.write_text(
        (finished_study / "study.yaml").read_text().replace(str(finished_study), str(tmp_path))
    )
    before = digest(db)
    filled = [
        a.replace("{config}", str(config)).replace("{missing}", str(tmp_path / "missing.yaml"))
        for a in args
    ]
    if filled and filled[0] in ("show", "export"):
        filled += ["--storage", f"sqlite:///{db}"]
    done = run_cli(*filled)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1, done.stderr
    assert expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert digest(db) == before


def test_read_commands_do_not_create_a_database(run_cli: Run, tmp_path: Path) -> None:
    for args in (["list"], ["show", "x"], ["export", "x"]):
        done = run_cli(*args)
        assert done.returncode == 2 and "no study database at studies/hpsearch.db" in done.stderr
    assert not (tmp_path / "studies").exists()


def test_debug_shows_the_traceback(write_config: Callable[..., Path], run_cli: Run) -> None:
    done = run_cli("--debug", "run", str(write_config({"study": {"n_trials": 0}})))
    assert done.returncode == 2 and "Traceback" in done.stderr
