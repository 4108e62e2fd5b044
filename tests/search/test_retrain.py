"""``hpsearch retrain``: micro models trained for real with several seeds, on real SQLite files."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from search.cli import main
from search.config import config_from_dict, load_config
from search.retrain import NO_DIFFERENCE, plan_retrain, retrain, run_seeds
from search.study import open_study
from search.trial import TRAINING_SEED as TRAINING_SEED_ATTR
from tests.conftest import REPO

# One fixed micro configuration (about half a second per seed on one core).
MICRO_FIXED: dict[str, Any] = {
    "study": {"name": "micro-fixed", "metric": "val_loss", "n_trials": 1, "seed": 0},
    "pruner": {"name": "none", "args": {}},
    "objective": "toy_transformer",
    "fixed": {
        "epochs": 2,
        "batch_size": 32,
        "num_layers": 1,
        "lr": 3e-3,
        "hidden_dim": 16,
        "num_heads": 2,
    },
    "search": {},
    "data": {"n_train": 300, "n_val": 100, "n_test": 100, "seq_len": 12},
}


def write_fixed(path: Path, storage: Path, **fixed: Any) -> Path:
    data = yaml.safe_load(yaml.safe_dump(MICRO_FIXED))
    data["study"]["storage"] = f"sqlite:///{storage}"
    data["fixed"].update(fixed)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def seeds_of(storage: Path, study_name: str) -> list[tuple[int, str]]:
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{storage}")
    return [(t.user_attrs.get(TRAINING_SEED_ATTR), t.state.name) for t in study.trials]


def test_same_seed_same_metrics_and_identical_configs_are_indistinguishable(
    tmp_path: Path,
) -> None:
    winner = write_fixed(tmp_path / "best.yaml", tmp_path / "hp.db")
    # A copy of the winner as its baseline, retrained into the same storage under another
    # study: every seed must give exactly the same numbers again.
    baseline = write_fixed(tmp_path / "copy.yaml", tmp_path / "hp.db")
    with (tmp_path / "log.txt").open("w") as log:
        result = retrain(winner, seeds=2, baseline_path=baseline, device="cpu", out=log)

    assert result.baseline is not None
    ours = [run.to_dict() for run in result.winner.runs]
    theirs = [run.to_dict() for run in result.baseline.runs]
    metrics = ("best_epoch", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
    assert [r["seed"] for r in ours] == [1, 2]
    assert all(r["state"] == "COMPLETE" for r in ours + theirs)
    for mine, other in zip(ours, theirs, strict=True):
        assert {m: mine[m] for m in metrics} == {m: other[m] for m in metrics}
    # Different seeds: different initialisation and order, so different numbers.
    assert ours[0]["val_loss"] != ours[1]["val_loss"]
    assert ours[0]["test_loss"] != ours[1]["test_loss"]
    # It learned something: better than chance (10 classes).
    assert all(r["test_accuracy"] > 0.2 for r in ours)

    accuracy = result.comparisons["test_accuracy"]
    assert accuracy is not None and accuracy.identical
    assert (accuracy.difference, accuracy.p_value, accuracy.verdict) == (0.0, 1.0, NO_DIFFERENCE)
    data = result.to_dict()
    assert data["verdict"] == NO_DIFFERENCE
    assert "indistinguishable" in data["conclusion"]
    assert data["comparison"]["test_loss"]["p_value"] == 1.0


def test_resume_retrains_failed_seeds_and_never_duplicates_queued_ones(tmp_path: Path) -> None:
    best = write_fixed(tmp_path / "best.yaml", tmp_path / "hp.db")
    plan, _, _ = plan_retrain(best, seeds=3)
    # What a crashed earlier command leaves behind: seed 1 failed, seed 2 queued, never run.
    study, _ = open_study(plan.config)
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.FAIL, user_attrs={TRAINING_SEED_ATTR: 1, "reason": "interrupted"}
        )
    )
    study.enqueue_trial({}, user_attrs={TRAINING_SEED_ATTR: 2})

    with (tmp_path / "log.txt").open("w") as log:
        runs = run_seeds(plan, "cpu", log)

    assert [(run.seed, run.state) for run in runs] == [(s, "COMPLETE") for s in (1, 2, 3)]
    assert sorted(seeds_of(tmp_path / "hp.db", "micro-fixed/retrain")) == [
        (1, "COMPLETE"),
        (1, "FAIL"),
        (2, "COMPLETE"),
        (3, "COMPLETE"),
    ]


def test_bad_input_is_one_line_and_touches_no_storage(
    tmp_path: Path, write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    best = write_fixed(tmp_path / "best.yaml", tmp_path / "hp.db")
    searching = write_config()  # MICRO_TOY: searches lr, hidden_dim, num_heads
    other_split = write_fixed(tmp_path / "other.yaml", tmp_path / "hp.db")
    raw = yaml.safe_load(other_split.read_text())
    raw["study"]["seed"] = 1
    other_split.write_text(yaml.safe_dump(raw))
    cases = {
        ("retrain", str(best), "--seeds", "1"): "at least 2 seeds",
        ("retrain", str(searching)): "search: retrain trains one fixed configuration",
        ("retrain", str(best), "--baseline", str(searching)): "this baseline config searches",
        ("retrain", str(tmp_path / "missing.yaml")): "config file not found",
        ("retrain", str(best), "--baseline", str(other_split)): "study.seed",
        ("retrain", str(best), "--seeds", "two"): "invalid int value",
    }
    for argv, expected in cases.items():
        assert main(list(argv)) == 2, argv
        err = capsys.readouterr().err
        assert expected in err, (argv, err)
        assert err.count("\n") == 1, err
    assert not (tmp_path / "hp.db").exists()


@pytest.mark.slow
def test_cli_workflow_run_export_retrain_baseline_resume(
    tmp_path: Path,
    write_config: Callable[..., Path],
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    config = write_config({"study": {"n_trials": 1}})
    assert run_cli("run", str(config), "--device", "cpu").returncode == 0
    exported = run_cli("export", "micro", "--storage", storage, "-o", "best.yaml")
    assert exported.returncode == 0, exported.stderr
    best = tmp_path / "best.yaml"
    before = yaml.safe_load(best.read_text())
    baseline = write_fixed(tmp_path / "baseline.yaml", tmp_path / "hp.db", lr=1e-5)
    # --set applies to both configs; 2 epochs instead of MICRO_TOY's 3.
    args = ["retrain", "best.yaml", "--seeds", "3", "--baseline", str(baseline)]
    args += ["--device", "cpu", "--set", "fixed.epochs=2"]

    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "0/3 seeds finished, training seeds 1, 2, 3" in first.stdout
    assert "winner - baseline, paired over seeds 1, 2, 3" in first.stdout
    result = yaml.safe_load((tmp_path / "best-retrain.yaml").read_text())
    assert result["source_study"] == "micro"
    assert result["seeds"] == [1, 2, 3]
    assert result["winner"]["study"] == "micro/retrain"
    assert result["baseline"]["study"] == "micro/retrain-baseline"
    for side in ("winner", "baseline"):
        runs = result[side]["runs"]
        assert [r["seed"] for r in runs] == [1, 2, 3]
        assert all(r["epochs_run"] == 2 and r["test_accuracy"] is not None for r in runs)
        for metric in ("test_accuracy", "test_loss"):
            summary = result[side][metric]
            values = [r[metric] for r in runs]
            assert summary["mean"] == pytest.approx(sum(values) / 3)
            assert set(summary) - {"ci95_clipped"} == {"n", "mean", "std", "ci95"}
            assert summary["ci95"][0] >= 0.0 and (
                metric == "test_loss" or summary["ci95"][1] <= 1.0
            )
            assert summary["ci95"][0] <= summary["mean"] <= summary["ci95"][1]
    for metric in ("test_accuracy", "test_loss"):
        comparison = result["comparison"][metric]
        assert {"difference", "ci95", "p_value", "verdict"} <= set(comparison)
        assert 0.0 <= comparison["p_value"] <= 1.0
    # lr 1e-5 for 2 epochs stays near chance; the searched winner learns: a clear "better".
    assert result["baseline"]["test_accuracy"]["mean"] < result["winner"]["test_accuracy"]["mean"]
    assert result["comparison"]["test_accuracy"]["verdict"] == "better"
    assert result["comparison"]["test_accuracy"]["difference"] > 0
    # The verdict is stated on the test counterpart of the study metric (val_loss -> test_loss).
    assert result["verdict_metric"] == "test_loss"
    assert result["verdict"] == result["comparison"]["test_loss"]["verdict"] == "better"
    assert result["comparison"]["test_loss"]["difference"] < 0
    assert "\nverdict: the winner is better than the baseline on test loss" in first.stdout

    # The exported file gains `retrain:` and stays a runnable config with everything else kept.
    after = yaml.safe_load(best.read_text())
    assert after["retrain"] == result
    assert {k: v for k, v in after.items() if k != "retrain"} == before
    assert best.read_text().startswith("# Exported by hpsearch")
    assert load_config(best).retrain == result
    config_from_dict(after, "best.yaml")

    # Rerun with one more seed: seeds 1-3 are not trained again, seed 4 is.
    trials_before = {
        name: seeds_of(tmp_path / "hp.db", name)
        for name in ("micro/retrain", "micro/retrain-baseline")
    }
    args[3] = "4"
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("3/4 seeds finished, training seeds 4") == 2
    for name, earlier in trials_before.items():
        assert seeds_of(tmp_path / "hp.db", name) == [*earlier, (4, "COMPLETE")]
    resumed = yaml.safe_load((tmp_path / "best-retrain.yaml").read_text())
    assert resumed["winner"]["runs"][:3] == result["winner"]["runs"]
    assert len(resumed["comparison"]["seeds"]) == 4

    capsys.readouterr()
    assert main(["list", "--storage", storage]) == 0
    listing = capsys.readouterr().out
    assert "micro/retrain " in listing and "micro/retrain-baseline" in listing


def test_the_verdict_is_on_the_test_counterpart_of_the_study_metric(tmp_path: Path) -> None:
    from search.retrain import compared_metrics

    bert = load_config(
        REPO / "study_configs" / "bert_minilm_local.yaml",
        [f"data.dir={tmp_path}", "study.metric=val_mcc"],
    )
    # test_mcc decides; accuracy and loss are still reported beside it.
    assert compared_metrics(bert) == {"test_mcc": True, "test_accuracy": True, "test_loss": False}
    toy = load_config(REPO / "study_configs" / "toy_transformer.yaml")
    assert list(compared_metrics(toy)) == ["test_loss", "test_accuracy"]
    accuracy = load_config(
        REPO / "study_configs" / "toy_transformer.yaml", ["study.metric=val_accuracy"]
    )
    assert list(compared_metrics(accuracy)) == ["test_accuracy", "test_loss"]
