"""Trial artifacts: epoch tables and curves on every finished trial, checkpoints, export, delete."""

from __future__ import annotations

import csv
import io
import os
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from PIL import Image

from objectives.loop import evaluate
from objectives.specs import ToyDataConfig
from objectives.toy_transformer import load_toy_model, loop_data, make_task
from search.config import config_from_dict
from search.errors import StudyError
from search.readout import export_model
from search.study import delete_study
from search.study import optimize_study as run_study
from search.trial import running_value
from storage.artifacts import (
    BEST_CHECKPOINT_PREFIX,
    all_artifacts,
    best_checkpoints,
    checkpoint_of,
    open_store,
    save_checkpoint,
    study_artifacts,
    trial_artifacts,
)
from tests.conftest import MICRO_TOY, PRUNED_STUDY, cli_env, deep_update

Run = Callable[..., subprocess.CompletedProcess[str]]


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "search", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def pruned_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, optuna.Study]:
    """A micro study run once through the CLI: (folder, storage URL, study)."""
    folder = tmp_path_factory.mktemp("artifacts")
    url = f"sqlite:///{folder / 'hp.db'}"
    data = deep_update(MICRO_TOY, {"study": {"storage": url}})
    data = deep_update(data, PRUNED_STUDY)
    (folder / "study.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    done = run(folder, "run", "study.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return folder, url, optuna.load_study(study_name="micro", storage=url)


def test_every_finished_trial_carries_its_epoch_table_and_curves(
    pruned_study: tuple[Path, str, optuna.Study],
) -> None:
    folder, _, study = pruned_study
    trials = study.get_trials(deepcopy=False)
    states = {t.state for t in trials}
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states, "need both kinds"
    store = open_store(folder / "hp-artifacts", create=False)
    for trial in trials:
        files = {a.filename: a for a in trial_artifacts(study, trial)}
        assert set(files) == {
            f"trial-{trial.number}-epochs.csv",
            f"trial-{trial.number}-curves.png",
        }, trial.number
        with store.open_reader(files[f"trial-{trial.number}-epochs.csv"].artifact_id) as f:
            rows = list(csv.DictReader(io.TextIOWrapper(f, encoding="utf-8")))
        epochs = trial.user_attrs["epochs"]
        # A pruned trial's table holds the epochs it ran, no more.
        assert [int(r["epoch"]) for r in rows] == [e["epoch"] for e in epochs]
        assert [float(r["val_loss"]) for r in rows] == pytest.approx(
            [e["val_loss"] for e in epochs]
        )
        tested = [r for r in rows if r["test_accuracy"]]
        if trial.state == TrialState.COMPLETE:
            assert [int(r["epoch"]) for r in tested] == [trial.user_attrs["best_epoch"]]
            assert float(tested[0]["test_accuracy"]) == pytest.approx(
                trial.user_attrs["test_accuracy"]
            )
        else:
            assert len(epochs) < 3 and tested == []
        with store.open_reader(files[f"trial-{trial.number}-curves.png"].artifact_id) as f:
            image = Image.open(f)
            image.load()
        assert image.size == (640, 256)
        pixels = image.convert("L").getextrema()
        assert pixels[0] < 100 < pixels[1], "the curves image is not blank"


def test_only_the_best_trials_model_is_kept(pruned_study: tuple[Path, str, optuna.Study]) -> None:
    folder, _, study = pruned_study
    kept = best_checkpoints(study)
    assert [number for _, number in kept] == [study.best_trial.number]
    assert kept[0][0].filename == f"{BEST_CHECKPOINT_PREFIX}{study.best_trial.number}.tar.gz"
    # Superseded checkpoints were withdrawn with their files: every file in the folder is live.
    files = {p.name for p in (folder / "hp-artifacts").iterdir()}
    assert files == {a.artifact_id for a in all_artifacts(study)}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(complete) >= 2 and complete[0].number != study.best_trial.number, (
        "the first complete trial was best once, so a checkpoint was superseded"
    )


def test_export_model_dir_writes_the_best_epochs_weights(
    pruned_study: tuple[Path, str, optuna.Study],
) -> None:
    folder, url, study = pruned_study
    target = folder / "best-model"
    done = run(
        folder, "export", "micro", "--storage", url, "-o", "best.yaml", "--model-dir", str(target)
    )
    assert done.returncode == 0, done.stderr
    assert f"model of trial {study.best_trial.number}" in done.stderr
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.pt"]
    model = load_toy_model(target)
    # The saved weights reproduce the test accuracy the trial recorded on its best epoch.
    data = ToyDataConfig(**MICRO_TOY["data"])
    splits = make_task(data, seed=0)
    measured = evaluate(model, loop_data(splits, 32, 0).test(), "cpu")["accuracy"]
    assert measured == pytest.approx(study.best_trial.user_attrs["test_accuracy"], abs=1e-9)
    again = run(folder, "export", "micro", "--storage", url, "--model-dir", str(target))
    assert again.returncode == 2 and "not empty" in again.stderr


def test_delete_asks_refuses_without_a_terminal_and_removes_everything_with_yes(
    run_cli: Run, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'hp.db'}"
    for name, trials in (("micro", 2), ("other", 1)):
        data = deep_update(MICRO_TOY, {"study": {"storage": url, "name": name}})
        data = deep_update(data, {"study": {"n_trials": trials}, "fixed": {"epochs": 1}})
        run_study(config_from_dict(data), device="cpu")
    folder = tmp_path / "hp-artifacts"
    before = {p.name for p in folder.iterdir()}
    study = optuna.load_study(study_name="micro", storage=url)
    mine = {a.artifact_id for a in all_artifacts(study)}
    assert len(mine) == 2 * 2 + 1  # two trials x (csv, png) + the best model

    refused = subprocess.run(
        [sys.executable, "-m", "search", "delete", "micro", "--storage", url],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "--yes" in refused.stderr
    assert "micro" in optuna.study.get_all_study_names(url)

    # On a terminal it asks; anything but y/yes deletes nothing.
    controller, terminal = pty.openpty()
    os.write(controller, b"n\n")
    with os.fdopen(terminal, "r") as tty, io.StringIO() as out:
        assert delete_study(url, "micro", assume_yes=False, stdin=tty, out=out) == 1
        assert "delete study 'micro' (2 trials, 5 artifacts" in out.getvalue()
        assert out.getvalue().endswith("nothing deleted\n")
    os.close(controller)
    assert "micro" in optuna.study.get_all_study_names(url)

    deleted = run_cli("delete", "micro", "--storage", url, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert optuna.study.get_all_study_names(url) == ["other"]
    assert {p.name for p in folder.iterdir()} == before - mine, "only that study's files go"


def _checkpoint_study(tmp_path: Path) -> tuple[optuna.Study, Path]:
    url = f"sqlite:///{tmp_path / 'ck.db'}"
    return optuna.create_study(study_name="ck", storage=url), tmp_path / "ck-artifacts"


def _write_weights(text: str) -> Callable[[Path], None]:
    def save(folder: Path) -> None:
        (folder / "weights.txt").write_text(text)

    return save


def _finish(study: optuna.Study, trial: optuna.Trial, value: float) -> None:
    study.tell(trial, value)


def _report(trial: optuna.Trial, value: float) -> None:
    trial.report(value, 1)
    trial.set_user_attr("best_epoch", 1)


def test_concurrent_finishers_leave_only_the_best_checkpoint(tmp_path: Path) -> None:
    study, folder = _checkpoint_study(tmp_path)
    first = study.ask()
    _report(first, 0.5)
    assert save_checkpoint(first, folder, "best", 0.5, _write_weights("first"), running_value)
    _finish(study, first, 0.5)
    # Two workers finish at once; the worse one saves first and is withdrawn by the better one.
    worse, better = study.ask(), study.ask()
    _report(worse, 0.4)
    _report(better, 0.3)
    assert save_checkpoint(worse, folder, "best", 0.4, _write_weights("worse"), running_value)
    assert save_checkpoint(better, folder, "best", 0.3, _write_weights("better"), running_value)
    assert [n for _, n in best_checkpoints(study)] == [better.number]
    _finish(study, worse, 0.4)
    _finish(study, better, 0.3)
    # A later, worse trial saves nothing and leaves the best alone.
    late = study.ask()
    _report(late, 0.9)
    assert save_checkpoint(late, folder, "best", 0.9, _write_weights("late"), running_value) is None
    _finish(study, late, 0.9)
    assert study.best_trial.number == better.number
    assert [n for _, n in best_checkpoints(study)] == [better.number]
    assert len(list(folder.iterdir())) == 1
    artifact = checkpoint_of(study, study.best_trial)
    assert artifact is not None and artifact.filename.endswith(f"-{better.number}.tar.gz")


def test_the_reverse_order_and_a_failed_holder_are_cleaned_up_too(tmp_path: Path) -> None:
    study, folder = _checkpoint_study(tmp_path)
    better, worse = study.ask(), study.ask()
    _report(better, 0.3)
    _report(worse, 0.4)
    # `worse` checked before `better` uploaded, so it saves too; its cleanup withdraws itself.
    assert save_checkpoint(better, folder, "best", 0.3, _write_weights("better"), running_value)
    save_checkpoint(worse, folder, "best", 0.4, _write_weights("worse"), running_value)
    assert [n for _, n in best_checkpoints(study)] == [better.number]
    # The best holder then fails after saving: the next finisher withdraws the stale file.
    study.tell(better, state=TrialState.FAIL)
    _finish(study, worse, 0.4)
    late = study.ask()
    _report(late, 0.35)
    assert save_checkpoint(late, folder, "best", 0.35, _write_weights("late"), running_value)
    assert [n for _, n in best_checkpoints(study)] == [late.number]
    assert len(list(folder.iterdir())) == 1


@pytest.mark.parametrize("keep", ["all", "none"])
def test_keep_all_and_none(tmp_path: Path, keep: str) -> None:
    study, folder = _checkpoint_study(tmp_path)
    for value in (0.5, 0.3, 0.4):
        trial = study.ask()
        _report(trial, value)
        save_checkpoint(trial, folder, keep, value, _write_weights(str(value)), running_value)
        _finish(study, trial, value)
    assert study_artifacts(study) == []
    saved = [checkpoint_of(study, t) for t in study.trials]
    url = f"sqlite:///{tmp_path / 'ck.db'}"
    if keep == "all":
        assert [a.filename for a in saved if a] == [f"model-trial-{n}.tar.gz" for n in range(3)]
        assert export_model(study, url, tmp_path / "best") == 1
        assert (tmp_path / "best" / "weights.txt").read_text() == "0.3"
    else:
        assert saved == [None, None, None]
        with pytest.raises(StudyError, match="holds no saved model of its best trial 1"):
            export_model(study, url, tmp_path / "best")
