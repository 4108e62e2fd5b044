"""Several objectives and constraints: cost metrics, pruning by the training metric's curve with
the Pareto-front exception, constraints checked before training, and reading the front."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState, create_trial
from torch import nn

from objectives.costs import count_parameters, measure_latency
from search.config import config_from_dict
from search.errors import ConfigError
from search.pruning import MultiObjectivePruning
from search.trial import (
    EPOCHS,
    LATENCY,
    LATENCY_MS,
    NUM_PARAMS,
    REASON,
    SPARED_BY_COST,
    dominates,
    front_of,
    running_value,
)
from tests.conftest import MICRO_TOY, cli_env, deep_update, run_search
from tests.servers import free_port

# Two fast learners complete first (the pruner's startup); then two slow learners (lr 1e-4,
# near chance after 2 epochs) that the median rule cuts: one as large as the fast ones (nothing
# spares it) and one smaller than every complete trial (at the median accuracy it would be on
# the front, so it must survive).
FAST, SLOW = 1e-2, 1e-4
MO_STUDY: dict[str, Any] = {
    "study": {"name": "mo", "metric": ["val_accuracy", "num_params"], "n_trials": 4},
    "sampler": {"name": "random", "args": {}},
    "pruner": {"name": "median", "args": {"n_startup_trials": 2, "n_warmup_steps": 2}},
    "fixed": {"epochs": 4, "batch_size": 32, "num_layers": 1, "num_heads": 1},
    "search": {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "hidden_dim": {"type": "categorical", "choices": [16, 32]},
    },
    "enqueue": [
        {"lr": FAST, "hidden_dim": 32},
        {"lr": 5e-3, "hidden_dim": 32},
        {"lr": SLOW, "hidden_dim": 32},
        {"lr": SLOW, "hidden_dim": 16},
    ],
}


def _config(changes: dict[str, Any]) -> dict[str, Any]:
    return deep_update(MICRO_TOY, changes)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"study": {"metric": ["val_accuracy", "flops"]}},
            "study.metric[1]: 'flops' is not a metric of objective 'toy_transformer'",
        ),
        (
            {"study": {"metric": ["val_loss", "num_params", "val_loss"]}},
            "study.metric[2]: 'val_loss' is listed twice",
        ),
        (
            {"study": {"metric": ["num_params", "val_accuracy"]}},
            "study.metric[0]: 'num_params' is a cost metric; the first metric is the one",
        ),
        ({"study": {"metric": []}}, "study.metric: empty list"),
        (
            {"study": {"metric": ["val_loss", "num_params"]}, "sampler": {"name": "cmaes"}},
            "sampler.name: cmaes optimises a single metric",
        ),
        (
            {"study": {"metric": ["val_loss", "latency_ms"]}, "pruner": {"name": "hyperband"}},
            "pruner.name: hyperband cannot prune a study with several metrics",
        ),
        (
            {"constraints": {"train_seconds": {"max": 10}}},
            "constraints.train_seconds: 'train_seconds' is measured after training",
        ),
        ({"constraints": {"val_loss": {"max": 1}}}, "'val_loss' is not a cost metric"),
        ({"constraints": {"num_params": {}}}, "constraints.num_params: needs `min` and/or `max`"),
        (
            {"constraints": {"num_params": {"min": 10, "max": 5}}},
            "constraints.num_params: min (10) is above max (5)",
        ),
        (
            {"constraints": {"latency_ms": {"max": float("nan")}}},
            "latency_ms.max: must be a finite",
        ),
    ],
)
def test_bad_metrics_and_constraints_are_config_errors(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(_config(changes), "study.yaml")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_one_metric_keeps_its_shape_and_several_have_directions() -> None:
    single = config_from_dict(_config({}), "study.yaml")
    assert single.metrics == ("val_loss",) and not single.multi_objective
    assert single.direction == "minimize" and single.directions == ["minimize"]
    assert "constraints" not in single.to_dict()  # stored configs of old studies do not drift
    several = config_from_dict(
        _config({"study": {"metric": ["val_accuracy", "num_params", "latency_ms"]}}), "s.yaml"
    )
    assert several.metric == "val_accuracy" and several.multi_objective
    assert several.directions == ["maximize", "minimize", "minimize"]


# --------------------------------------------------------------------------- costs


def test_parameter_count_and_latency_leave_the_model_and_rng_untouched() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    model.train()
    assert count_parameters(model) == 8 * 4 + 4 + 4 * 2 + 2
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    latency = measure_latency(Wrapped(), {"x": torch.ones(1, 8)}, "cpu", warmup=2, repeats=9)
    assert latency.repeats == 9
    assert 0 < latency.p10_ms <= latency.median_ms <= latency.p90_ms
    assert model.training, "the model is back in training mode"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())


def test_pareto_front_of_known_points() -> None:
    maximize = [True, False]  # accuracy up, size down
    assert dominates([0.9, 10], [0.8, 10], maximize)
    assert not dominates([0.9, 10], [0.9, 10], maximize)
    assert not dominates([0.9, 20], [0.8, 10], maximize)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for values in ([0.9, 20.0], [0.8, 10.0], [0.7, 15.0], [0.9, 25.0], [0.95, 30.0]):
        study.add_trial(create_trial(values=values, params={}, distributions={}))
    trials = study.get_trials()
    assert [t.number for t in front_of(trials, maximize)] == [0, 1, 4]


# --------------------------------------------------------------------------- a whole study


@pytest.fixture(scope="module")
def mo_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The micro multi-objective study of MO_STUDY, run once through the CLI."""
    folder = tmp_path_factory.mktemp("mo")
    storage = f"sqlite:///{folder / 'hp.db'}"
    data = _config(deep_update(MO_STUDY, {"study": {"storage": storage}}))
    (folder / "study.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    done = run_search("run", str(folder / "study.yaml"), cwd=folder)
    assert done.returncode == 0, done.stderr
    assert "Pareto front:" in done.stdout
    return folder, storage


def test_a_small_slow_learner_is_spared_and_a_large_one_pruned(mo_study: tuple[Path, str]) -> None:
    _, storage = mo_study
    study = optuna.load_study(study_name="mo", storage=storage)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_accuracy", "num_params"]  # what the dashboard shows
    trials = {(t.params["lr"], t.params["hidden_dim"]): t for t in study.get_trials()}
    fast = [trials[(FAST, 32)], trials[(5e-3, 32)]]
    assert all(t.state == TrialState.COMPLETE for t in fast)
    big_slow, small_slow = trials[(SLOW, 32)], trials[(SLOW, 16)]
    # The rule would cut both (their accuracy lags the fast ones at the same epoch) ...
    assert big_slow.state == TrialState.PRUNED, big_slow.user_attrs.get(REASON)
    assert big_slow.user_attrs[REASON].startswith("pruned at epoch 2: val_accuracy=")
    # ... but the small one's size would put it on the front at the median accuracy.
    assert small_slow.state == TrialState.COMPLETE
    assert small_slow.user_attrs[SPARED_BY_COST] >= 2
    assert len(small_slow.user_attrs[EPOCHS]) == 4
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        # Curves live in the epochs record; Optuna's intermediate values stay empty (TPE and
        # the dashboard break on them in a multi-objective study).
        assert trial.intermediate_values == {}
        accuracy = max(e["val_accuracy"] for e in trial.user_attrs[EPOCHS])
        assert trial.values == [accuracy, trial.user_attrs[NUM_PARAMS]]
    assert small_slow.user_attrs[NUM_PARAMS] < fast[0].user_attrs[NUM_PARAMS]


@pytest.mark.slow
def test_show_export_and_report_read_the_front(
    mo_study: tuple[Path, str], run_cli: Callable[..., Any], tmp_path: Path
) -> None:
    _, storage = mo_study
    study = optuna.load_study(study_name="mo", storage=storage)
    maximize = [True, False]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    front = [t.number for t in front_of(complete, maximize)]
    assert front, "a study with complete trials has a front"

    shown = run_cli("show", "mo", "--storage", storage, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["metrics"] == ["val_accuracy", "num_params"]
    assert data["directions"] == ["maximize", "minimize"]
    assert data["pareto_front"] == front and data["best_trial"] is None
    text = run_cli("show", "mo", "--storage", storage)
    assert f"Pareto front: {len(front)} trials" in text.stdout

    refused = run_cli("export", "mo", "--storage", storage)
    assert refused.returncode == 2
    assert "--trial N" in refused.stderr and "--pareto -o DIR" in refused.stderr
    assert ", ".join(map(str, front)) in refused.stderr

    member = run_cli("export", "mo", "--storage", storage, "--trial", str(front[0]), "-o", "m.yaml")
    assert member.returncode == 0, member.stderr
    exported = yaml.safe_load((tmp_path / "m.yaml").read_text())
    assert exported["study"]["metric"] == ["val_accuracy", "num_params"]
    assert exported["best"]["trial"] == front[0]
    assert set(exported["best"]["values"]) == {"val_accuracy", "num_params"}
    assert run_cli("validate", "m.yaml").returncode == 0
    # Each member retrains in a study of its own (two members can share a storage).
    retrained = run_cli("retrain", "m.yaml", "--seeds", "2", "--storage", storage, timeout=600)
    assert retrained.returncode == 0, retrained.stderr
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert f"mo-trial-{front[0]}/retrain" in names

    whole = run_cli("export", "mo", "--storage", storage, "--pareto", "-o", "front")
    assert whole.returncode == 0, whole.stderr
    assert sorted(p.name for p in (tmp_path / "front").iterdir()) == sorted(
        f"trial-{n}.yaml" for n in front
    )
    again = run_cli("export", "mo", "--storage", storage, "--pareto", "-o", "front")
    assert again.returncode == 2 and "not empty" in again.stderr
    unknown = run_cli("export", "mo", "--storage", storage, "--trial", "99")
    assert unknown.returncode == 2 and "has no trial 99" in unknown.stderr

    report = run_cli("report", "mo", "--storage", storage, "-o", "report")
    assert report.returncode == 0, report.stderr
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Pareto front" in markdown and "## Best trial" not in markdown
    assert "| # | val_accuracy ↑ | num_params ↓ |" in markdown
    assert (tmp_path / "report" / "pareto_front.png").stat().st_size > 0

    listed = run_cli("list", "--storage", storage, "--json")
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "mo")
    assert row["metric"] == "val_accuracy, num_params" and row["best_value"] is None


# --------------------------------------------------------------------------- constraints


def test_constraints_stop_proposals_before_training_and_never_count_as_failures(
    run_cli: Callable[..., Any], write_config: Callable[..., Path], tmp_path: Path
) -> None:
    # hidden 16 has ~4k parameters, hidden 32 ~14k (1 layer): the bound lies between them.
    path = write_config(
        {
            "study": {"n_trials": 5, "max_consecutive_failures": 1},
            "constraints": {"num_params": {"max": 8000}, "latency_ms": {"max": 1.0e4}},
            "search": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
            "fixed": {"epochs": 2, "hidden_dim": 32},
            "enqueue": [{"lr": 1e-3}, {"lr": 2e-3}, {"lr": 3e-3}],
        }
    )
    done = run_cli("run", str(path))
    assert done.returncode == 0, done.stderr
    assert "0 complete (0 early-stopped), 5 pruned (5 infeasible), 0 failed" in done.stdout
    study = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path / 'hp.db'}")
    for trial in study.get_trials():
        assert trial.state == TrialState.PRUNED
        reason = trial.user_attrs[REASON]
        size = trial.user_attrs[NUM_PARAMS]
        assert reason == (
            f"infeasible: num_params={size} > 8000 (constraints.num_params.max); not trained"
        )
        assert trial.user_attrs.get(EPOCHS) in (None, []), "not a single epoch trained"
        assert trial.intermediate_values == {}
        assert trial.constraints["num_params"] == pytest.approx(size - 8000)
        assert trial.constraints["latency_ms"] < 0  # feasible on that one
        assert 0 < trial.user_attrs[LATENCY]["median_ms"] == trial.user_attrs[LATENCY_MS]


def test_a_feasible_single_metric_study_trains_and_records_its_costs(
    run_cli: Callable[..., Any], write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config(
        {
            "study": {"n_trials": 2},
            "constraints": {"num_params": {"min": 100, "max": 8000}},
            "fixed": {"epochs": 1, "hidden_dim": 16},
            "search": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
        }
    )
    done = run_cli("run", str(path))
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="micro", storage=f"sqlite:///{tmp_path / 'hp.db'}")
    assert len(study.directions) == 1
    for trial in study.get_trials():
        assert trial.state == TrialState.COMPLETE
        assert len(trial.intermediate_values) == 1  # one metric: Optuna's curve as before
        assert 100 <= trial.user_attrs[NUM_PARAMS] <= 8000
        assert trial.constraints["num_params"] <= 0
        assert LATENCY_MS not in trial.user_attrs  # not asked for: not measured
        assert trial.user_attrs["train_seconds"] > 0
        assert math.isfinite(trial.value)


def test_bad_constraints_on_the_command_line_exit_2_and_write_nothing(
    run_cli: Callable[..., Any], write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config({"constraints": {"latency_ms": {"min": 5, "max": 1}}})
    done = run_cli("run", str(path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "constraints.latency_ms: min (5) is above max" in (
        done.stderr
    )
    assert not (tmp_path / "hp.db").exists()


def test_the_dashboard_serves_the_front_with_the_metric_names(mo_study: tuple[Path, str]) -> None:
    folder, storage = mo_study
    study = optuna.load_study(study_name="mo", storage=storage)
    front = [
        t.number for t in front_of(study.get_trials(states=(TrialState.COMPLETE,)), [True, False])
    ]
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "search", "dashboard", "--storage", storage, "--port", str(port)],
        cwd=folder,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # printed once the server answers
        assert first.startswith("optuna-dashboard on"), first
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/api/studies", timeout=30) as response:
            summary = next(
                s for s in json.load(response)["study_summaries"] if s["study_name"] == "mo"
            )
        assert summary["directions"] == ["maximize", "minimize"]
        url = f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}"
        with opener.open(url, timeout=30) as response:
            detail = json.load(response)
        assert detail["objective_names"] == ["val_accuracy", "num_params"]
        assert sorted(t["number"] for t in detail["best_trials"]) == front
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def test_the_front_exception_needs_a_place_on_the_front_not_a_tie() -> None:
    config = config_from_dict(
        _config({"study": {"metric": ["val_accuracy", "num_params"]}}), "study.yaml"
    )
    rule = MultiObjectivePruning(config)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(create_trial(values=[0.8, 100.0], params={}, distributions={}))
    only = study.get_trials(states=(TrialState.COMPLETE,))
    # The same size as the only complete trial, at its (median) accuracy: a tie, not spared.
    assert not rule.on_front_at_median(only, {"num_params": 100.0})
    assert rule.on_front_at_median(only, {"num_params": 99.0})
    study.add_trial(create_trial(values=[0.6, 50.0], params={}, distributions={}))
    both = study.get_trials(states=(TrialState.COMPLETE,))
    # Median accuracy 0.7: at size 50 it would beat the (0.6, 50) trial, at 100 it loses to 0.8.
    assert rule.on_front_at_median(both, {"num_params": 50.0})
    assert not rule.on_front_at_median(both, {"num_params": 100.0})
    assert not rule.on_front_at_median(both, {})  # no cost known before training: no exception


def test_a_running_trial_of_several_metrics_is_valued_from_its_epochs() -> None:
    trial = create_trial(
        state=TrialState.RUNNING,
        params={},
        distributions={},
        user_attrs={
            "best_epoch": 2,
            EPOCHS: [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.7}],
        },
    )
    assert running_value(trial, "val_accuracy") == 0.7


def test_several_metrics_cannot_be_reordered_even_with_allow_config_change(
    mo_study: tuple[Path, str], run_cli: Callable[..., Any]
) -> None:
    folder, storage = mo_study

    def state() -> list[Any]:
        study = optuna.load_study(study_name="mo", storage=storage)
        return [(t.number, t.state, t.values, t.user_attrs) for t in study.get_trials()] + [
            study.user_attrs,
            sorted(s.study_name for s in optuna.get_all_study_summaries(storage)),
        ]

    before = state()
    refused = run_cli(
        "run",
        str(folder / "study.yaml"),
        "--set",
        "study.metric=[val_accuracy, latency_ms]",
        "--allow-config-change",
        "--n-trials",
        "6",
    )
    assert refused.returncode == 2
    assert "stores the values of metrics val_accuracy, num_params in that order" in (refused.stderr)
    assert state() == before  # nothing written (the file's bytes may move with SQLite's WAL)
