"""``data.seed`` apart from the sampler seed, the toy test split's own stream, the data version."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch

from objectives.specs import TOY_DATA_VERSION, ToyDataConfig
from objectives.toy_transformer import make_task
from search.config import load_config
from search.trial import DATA_VERSION

HARD = ToyDataConfig(n_train=60, n_val=40, n_test=50, seq_len=16, label_noise=0.2)


def test_the_test_split_size_never_changes_the_training_and_validation_data() -> None:
    small = make_task(HARD, seed=3)
    large = make_task(HARD.model_copy(update={"n_test": 5000}), seed=3)
    for a, b in zip(
        (*small.train, *small.validation), (*large.train, *large.validation), strict=True
    ):
        assert torch.equal(a, b)
    assert large.test[0].shape == (5000, 16)
    assert torch.equal(make_task(HARD, seed=3).test[0], small.test[0])  # a pure function
    # Its own stream: not a copy of the training data, and another seed gives another split.
    assert not torch.equal(small.test[0][:40], small.validation[0])
    assert not torch.equal(make_task(HARD, seed=4).test[0], small.test[0])
    # 20 % noisy labels in the test split too: exactly round(0.2 * n) labels differ from the
    # token that appears most often.
    tokens, labels = large.test
    majority = torch.stack([torch.bincount(row, minlength=30)[:10].argmax() for row in tokens])
    assert int((majority != labels).sum()) == 1000


def test_data_seed_defaults_to_the_study_seed_and_can_be_set_apart(
    write_config: Callable[..., Path],
) -> None:
    path = write_config()
    assert load_config(path).data_seed == 0
    assert load_config(path, ["study.seed=5"]).data_seed == 5
    config = load_config(path, ["study.seed=5", "data.seed=11"])
    assert (config.study.seed, config.data_seed) == (5, 11)
    # The objective's own data model never sees it.
    assert "seed" not in config.data_config().model_dump()


@pytest.mark.parametrize("bad", ["-1", "1.5", "'seven'", "true"])
def test_a_bad_data_seed_is_one_line_and_exit_2(
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
    write_config: Callable[..., Path],
    bad: str,
) -> None:
    path = write_config()
    done = run_cli("validate", str(path), "--set", f"data.seed={bad}")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "data.seed" in lines[0] and "whole number" in lines[0], lines


def _first_trial_loss(storage: str, name: str) -> list[float]:
    study = optuna.load_study(study_name=name, storage=storage)
    return [e["val_loss"] for e in study.trials[0].user_attrs["epochs"]]


@pytest.mark.slow
def test_data_seed_moves_the_data_a_trial_trains_on(
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """The same enqueued trial on data seed 0 and 9 (sampler seed 0): other data, other curve."""
    path = write_config(
        {
            "study": {"n_trials": 1},
            "fixed": {"epochs": 2},
            "enqueue": [{"lr": 3e-3, "hidden_dim": 16, "num_heads": 2}],
        }
    )
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    losses = {}
    for name, sets in {
        "base": [],
        "data": ["data.seed=9"],
    }.items():
        done = run_cli("run", str(path), "--study-name", name, *[f"--set={s}" for s in sets])
        assert done.returncode == 0, done.stderr
        losses[name] = _first_trial_loss(storage, name)
    assert losses["data"] != losses["base"]
    # And a sampler seed of its own keeps the data of data.seed.
    apart = load_config(path, ["study.seed=9", "data.seed=0"])
    assert torch.equal(
        make_task(apart.data_config(), apart.data_seed).train[0],  # type: ignore[arg-type]
        make_task(load_config(path).data_config(), 0).train[0],  # type: ignore[arg-type]
    )
    base = load_config(path)
    moved = load_config(path, ["data.seed=9"])
    assert torch.equal(
        make_task(moved.data_config(), moved.data_seed).train[0],  # type: ignore[arg-type]
        make_task(base.data_config(), 9).train[0],  # type: ignore[arg-type]
    )
    study = optuna.load_study(study_name="data", storage=storage)
    assert study.user_attrs[DATA_VERSION] == TOY_DATA_VERSION


@pytest.mark.slow
def test_a_study_of_another_data_generator_is_not_resumed(
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
    write_config: Callable[..., Path],
    tmp_path: Path,
) -> None:
    path = write_config({"study": {"n_trials": 1}, "fixed": {"epochs": 1}})
    assert run_cli("run", str(path)).returncode == 0
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    study = optuna.load_study(study_name="micro", storage=storage)
    # A study made before versions were recorded holds none: generator 1.
    study._storage.set_study_user_attr(study._study_id, DATA_VERSION, None)
    for attr in (None, 1):
        if attr is not None:
            study.set_user_attr(DATA_VERSION, attr)
        done = run_cli("run", str(path), "--set", "study.n_trials=2")
        assert done.returncode == 2
        (line,) = done.stderr.strip().splitlines()
        assert "version 1 of the toy_transformer data generator" in line
        assert "new --study-name" in line
        assert len(optuna.load_study(study_name="micro", storage=storage).trials) == 1
