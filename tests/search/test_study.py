"""Study lifecycle on a real SQLite file: targets, resume, enqueue, pruning, what is stored."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.config import load_config
from search.errors import ConfigError
from search.study import open_existing_study
from search.study import optimize_study as run_study


def run(path: Path, *overrides: str, **kwargs) -> optuna.Study:
    config = load_config(path, list(overrides))
    run_study(config, device="cpu", **kwargs)
    return open_existing_study(config.study.storage, config.study.name)


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))


def test_a_trial_records_what_design_md_says(write_config: Callable[..., Path]) -> None:
    study = run(write_config({"study": {"n_trials": 2}}))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    trial = study.best_trial
    epochs = trial.user_attrs["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert set(epochs[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy", "seconds"}
    # Intermediate values are the study metric per epoch, steps starting at 1.
    assert trial.intermediate_values == {
        e["epoch"]: pytest.approx(e["val_loss"], abs=1e-6) for e in epochs
    }
    best = trial.user_attrs["best_epoch"]
    assert trial.value == pytest.approx(min(e["val_loss"] for e in epochs), abs=1e-6)
    assert trial.value == pytest.approx(epochs[best - 1]["val_loss"], abs=1e-6)
    assert 0.0 <= trial.user_attrs["test_accuracy"] <= 1.0 and trial.user_attrs["test_loss"] > 0
    assert "reason" not in trial.user_attrs
    # The study keeps its resolved config and its environment.
    assert study.user_attrs["config"]["study"]["name"] == "micro"
    assert study.user_attrs["config"]["fixed"]["epochs"] == 3
    env = study.user_attrs["environment"]
    assert env["device"] == "cpu" and env["threads"] >= 1 and env["packages"]["torch"]


def test_rerun_resumes_to_exactly_n_trials(write_config: Callable[..., Path]) -> None:
    path = write_config({"study": {"n_trials": 3}})
    first = run(path, "study.n_trials=2")
    assert len(finished(first)) == 2
    # Same study, now asking for 3: runs one more, then a rerun runs nothing.
    second = run(path)
    assert len(finished(second)) == 3
    third = run(path)
    assert len(finished(third)) == 3 and len(third.get_trials()) == 3
    # A resumed seeded sampler must not replay the first command's samples.
    lrs = [t.params["lr"] for t in third.get_trials()]
    assert len(set(lrs)) == 3


def test_enqueued_trials_run_first_in_order(write_config: Callable[..., Path]) -> None:
    enqueue = [
        {"lr": 0.005, "hidden_dim": 32, "num_heads": 2},
        {"lr": 0.001, "hidden_dim": 16, "num_heads": 1},
    ]
    study = run(write_config({"study": {"n_trials": 3}, "enqueue": enqueue}))
    trials = study.get_trials()
    assert [t.params for t in trials[:2]] == enqueue
    assert len(trials) == 3
    # Resuming does not enqueue them again.
    study = run(write_config({"study": {"n_trials": 4}, "enqueue": enqueue}), "study.n_trials=4")
    assert len(study.get_trials()) == 4
    assert [t.params for t in study.get_trials()].count(enqueue[0]) == 1
    assert [t.user_attrs["enqueue_index"] for t in trials[:2]] == [0, 1]


def test_a_pruner_that_must_prune_prunes(write_config: Callable[..., Path]) -> None:
    # No trial gets its validation loss under 1e-4 after epoch 1: every trial is cut there.
    path = write_config(
        {"pruner": {"name": "threshold", "args": {"upper": 1e-4}}, "study": {"n_trials": 2}}
    )
    study = run(path)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    for trial in trials:
        assert len(trial.user_attrs["epochs"]) == 1
        assert trial.user_attrs["reason"].startswith("pruned at epoch 1")
        assert "test_accuracy" not in trial.user_attrs


def test_a_trial_that_ran_all_its_epochs_is_not_pruned(write_config: Callable[..., Path]) -> None:
    # The same must-prune threshold, but one epoch: pruning after it would save nothing.
    path = write_config(
        {
            "pruner": {"name": "threshold", "args": {"upper": 1e-4}},
            "study": {"n_trials": 1},
            "fixed": {"epochs": 1},
        }
    )
    trial = run(path).get_trials()[0]
    assert trial.state == TrialState.COMPLETE
    assert "test_accuracy" in trial.user_attrs and "reason" not in trial.user_attrs


def test_median_pruner_prunes_bad_trials_in_a_real_search(
    write_config: Callable[..., Path],
) -> None:
    # Half the learning rates are far too small to learn in a few epochs: the median pruner
    # must stop some of them once the good ones set the median.
    path = write_config(
        {
            "study": {"n_trials": 8},
            "pruner": {"name": "median", "args": {"n_startup_trials": 2, "n_warmup_steps": 0}},
            "search": {"lr": {"type": "categorical", "choices": [1e-2, 1e-6]}},
            "fixed": {"epochs": 4, "hidden_dim": 32, "num_heads": 2},
            "enqueue": [{"lr": 1e-2}, {"lr": 1e-2}, {"lr": 1e-6}, {"lr": 1e-6}],
        }
    )
    study = run(path)
    pruned = [t for t in study.get_trials() if t.state == TrialState.PRUNED]
    assert pruned, "some trial was pruned"
    assert all(t.params["lr"] == 1e-6 for t in pruned)
    assert sum(len(t.user_attrs["epochs"]) for t in study.get_trials()) < 8 * 4


def test_early_stopping_completes_with_a_reason(write_config: Callable[..., Path]) -> None:
    path = write_config(
        {
            "study": {"n_trials": 1, "metric": "val_accuracy"},
            "fixed": {"epochs": 12, "early_stopping_patience": 1},
            "search": {},
            "sampler": {"name": "random"},
        }
    )
    study = run(path, "fixed.lr=0.01", "fixed.hidden_dim=32", "fixed.num_heads=2")
    trial = study.get_trials()[0]
    assert trial.state == TrialState.COMPLETE
    assert len(trial.user_attrs["epochs"]) < 12
    assert trial.user_attrs["reason"].startswith("early_stopped after epoch")


def test_diverged_trial_is_pruned_with_its_reason(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    # A real toy model whose weights already overflow: the bridge must prune it as diverged.
    import dataclasses
    import math

    from objectives.loop import TrainingJob
    from objectives.registry import register_objective
    from objectives.specs import TOY_TRANSFORMER, BuildRequest
    from objectives.toy_transformer import ToyTransformer, loop_data, make_task
    from search.study import run_trial

    def build(request: BuildRequest) -> TrainingJob:
        splits = make_task(request.data, 0)  # type: ignore[arg-type]
        model = ToyTransformer(splits.vocab_size, splits.seq_len, splits.num_classes, 16, 1, 1, 0.0)
        model.head.bias.data.fill_(math.inf)
        return TrainingJob(model=model, data=loop_data(splits, 32, request.seed))

    register_objective(dataclasses.replace(TOY_TRANSFORMER, name="overflowing_toy", builder=build))
    config = load_config(write_config({"study": {"n_trials": 1}, "objective": "overflowing_toy"}))
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'div.db'}")
    study.optimize(lambda trial: run_trial(trial, config, "cpu"), n_trials=1)
    trial = study.get_trials()[0]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["reason"] == "diverged: non-finite loss in epoch 1"


def test_config_drift_is_refused_unless_allowed(write_config: Callable[..., Path]) -> None:
    path = write_config({"study": {"n_trials": 1}})
    run(path)
    changed = load_config(path, ["search.lr.high=0.005"])
    with pytest.raises(
        ConfigError, match=r"search\.lr\.high: 0\.01 -> 0\.005.*--allow-config-change"
    ):
        run_study(changed, device="cpu")
    # More trials is not drift.
    run(path, "study.n_trials=2")
    summary = run_study(
        load_config(path, ["search.lr.high=0.005", "study.n_trials=3"]),
        device="cpu",
        allow_config_change=True,
    )
    assert summary.finished_after == 3


def test_storage_is_sqlite_in_wal_mode(write_config: Callable[..., Path], tmp_path: Path) -> None:
    run(write_config({"study": {"n_trials": 1}}))
    with sqlite3.connect(tmp_path / "hp.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_grid_sampler_runs_the_whole_grid_once(write_config: Callable[..., Path]) -> None:
    path = write_config(
        {
            "sampler": {"name": "grid", "args": {}},
            "study": {"n_trials": 10},
            "fixed": {"epochs": 1, "lr": 0.003},
            "search": {
                "hidden_dim": {"type": "categorical", "choices": [16, 32]},
                "num_heads": {"type": "categorical", "choices": [1, 2]},
            },
        }
    )
    study = run(path)
    combos = sorted((t.params["hidden_dim"], t.params["num_heads"]) for t in study.get_trials())
    assert combos == [(16, 1), (16, 2), (32, 1), (32, 2)]


@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc", "cmaes", "gp"])
def test_every_sampler_runs(write_config: Callable[..., Path], sampler: str) -> None:
    path = write_config(
        {"sampler": {"name": sampler, "args": {}}, "study": {"n_trials": 2}, "fixed": {"epochs": 1}}
    )
    study = run(path)
    assert len(finished(study)) == 2


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("median", {}),
        ("percentile", {"percentile": 25.0}),
        ("successive_halving", {}),
        ("hyperband", {"max_resource": 3}),
        ("patient", {"patience": 1, "wrapped": {"name": "median", "args": {}}}),
        ("threshold", {"upper": 100.0}),
        ("none", {}),
    ],
)
def test_every_pruner_runs(write_config: Callable[..., Path], name: str, args: dict) -> None:
    study = run(
        write_config(
            {
                "pruner": {"name": name, "args": args},
                "study": {"n_trials": 2},
                "fixed": {"epochs": 2},
            }
        )
    )
    assert len(finished(study)) == 2


def test_two_workers_share_one_budget(write_config: Callable[..., Path]) -> None:
    path = write_config({"study": {"n_trials": 4}, "fixed": {"epochs": 1}})
    study = run(path, workers=2)
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert len({t.params["lr"] for t in trials}) == 4, "workers sample different parameters"
