"""The config layer: YAML -> validated StudyConfig, overrides, and one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from search.config import StudyConfig, load_config, parse_yaml
from search.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, data: Any, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def base() -> dict[str, Any]:
    return {
        "study": {"name": "s", "metric": "val_loss", "n_trials": 2},
        "objective": "toy_transformer",
        "fixed": {"epochs": 2},
        "search": {
            "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "hidden_dim": {"type": "categorical", "choices": [16, 32]},
            "num_heads": {"type": "categorical", "choices": [1, 2]},
        },
    }


def error_of(tmp_path: Path, data: Any, overrides: tuple[str, ...] = ()) -> str:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    return message


@pytest.mark.parametrize(
    "config",
    sorted(p.name for p in (REPO / "study_configs").glob("toy_*.yaml")),
)
def test_shipped_toy_configs_are_valid(config: str) -> None:
    loaded = load_config(REPO / "study_configs" / config)
    assert isinstance(loaded, StudyConfig)
    assert loaded.objective == "toy_transformer"


def test_default_config_matches_design(tmp_path: Path) -> None:
    config = load_config(REPO / "study_configs" / "toy_transformer.yaml")
    assert config.study.storage == "sqlite:///studies/hpsearch.db"
    # No pruner, early stopping after 5 epochs: what the pruning ablation's rule chose
    # (tests/benchmarks/test_ablation.py checks it against the committed rows).
    assert config.sampler.name == "tpe" and config.pruner.name == "none"
    assert config.pruner.args == {} and config.fixed["early_stopping_patience"] == 5
    assert config.study.metric == "val_loss" and config.direction == "minimize"
    assert config.fixed["epochs"] == 40
    lr = config.search["lr"]
    assert lr.type == "float" and lr.low == 4e-4 and lr.high == 0.1 and lr.log


def test_scientific_notation_is_a_number_in_files_and_overrides(tmp_path: Path) -> None:
    assert parse_yaml("a: 1e-5\nb: -2E+3\nc: 1.5e-3\nd: 1_000\ne: '1e-5'", "x") == {
        "a": 1e-5,
        "b": -2000.0,
        "c": 1.5e-3,
        "d": 1000,
        "e": "1e-5",
    }
    text = "study: {name: s}\nobjective: toy_transformer\nfixed: {lr: 1e-3, epochs: 2}\n"
    config = load_config(
        write(tmp_path, text), ["search.dropout={type: float, low: 0, high: 5e-1}"]
    )
    assert config.fixed["lr"] == 1e-3 and isinstance(config.fixed["lr"], float)
    assert config.search["dropout"].high == 0.5


def test_defaults_fill_every_unsearched_parameter(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, base()))
    assert set(config.fixed) | set(config.search) == set(config.spec.params)
    assert config.fixed["batch_size"] == 32 and config.fixed["epochs"] == 2


def test_overrides_by_dotted_path(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, base()),
        [
            "fixed.epochs=5",
            "study.n_trials=3",
            "search.lr.high=1e-3",
            "pruner.name=none",
            "pruner.args={}",
            "study.timeout=12.5",
        ],
    )
    assert config.fixed["epochs"] == 5
    assert config.study.n_trials == 3
    assert config.search["lr"].high == 1e-3
    assert config.pruner.name == "none" and config.pruner.args == {}
    assert config.study.timeout == 12.5


def test_override_moves_a_parameter_between_fixed_and_search(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, base()), ["fixed.lr=0.003"])
    assert config.fixed["lr"] == 0.003 and "lr" not in config.search
    config = load_config(write(tmp_path, base()), ["search.epochs={type: int, low: 1, high: 3}"])
    assert "epochs" in config.search and "epochs" not in config.fixed


def test_export_sections_are_accepted_and_ignored(tmp_path: Path) -> None:
    data = base() | {"best": {"trial": 3, "value": 0.1}, "retrain": {"seeds": [0, 1]}}
    config = load_config(write(tmp_path, data))
    assert config.best == {"trial": 3, "value": 0.1}


def test_empty_search_means_train_this_configuration(tmp_path: Path) -> None:
    data = base()
    data["search"] = {}
    config = load_config(write(tmp_path, data))
    assert config.search == {}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"study": {"name": "s", "bogus": 1}},
            "study.bogus: unknown key 'bogus'; valid keys here:",
        ),
        ({"extra_section": 1}, "extra_section: unknown key"),
        (
            {"study": {"name": "s", "n_trials": "ten"}},
            "study.n_trials: Input should be a valid integer, got 'ten'",
        ),
        (
            {"study": {"name": "s", "n_trials": 0}},
            "study.n_trials: Input should be greater than or equal to 1",
        ),
        (
            {"study": {"name": "s", "metric": "val_f1"}},
            "study.metric: 'val_f1' is not a metric of objective 'toy_transformer'",
        ),
        (
            {"sampler": {"name": "bayes"}},
            "sampler.name: input should be 'tpe', 'random', 'grid', 'cmaes', 'gp', 'qmc' or 'nsgaii', got 'bayes'",
        ),
        ({"pruner": {"name": "early"}}, "pruner.name: input should be"),
        ({"objective": "resnet"}, "objective: unknown objective 'resnet'; choose one of"),
        (
            {"search": {"lr": {"type": "float", "low": 1e-2, "high": 1e-4}}},
            "search.lr.low: low (0.01) is greater than high (0.0001)",
        ),
        (
            {"search": {"lr": {"type": "float", "low": 0.0, "high": 1e-2, "log": True}}},
            "search.lr.low: log: true needs low > 0, got 0.0",
        ),
        (
            {"search": {"lr": {"type": "normal", "low": 0.1, "high": 1}}},
            "search.lr: `type` must be one of float, int, categorical (got 'normal')",
        ),
        (
            {"search": {"lr": {"low": 0.1, "high": 1}}},
            "search.lr: `type` must be one of float, int, categorical (got None)",
        ),
        ({"search": {"lr": {"type": "float", "low": 1e-4}}}, "search.lr.high: missing"),
        (
            {"search": {"hidden_dim": {"type": "float", "low": 8, "high": 64}}},
            "search.hidden_dim.type: this parameter is an integer",
        ),
        (
            {"search": {"momentum": {"type": "float", "low": 0.1, "high": 0.9}}},
            "search.momentum: unknown parameter for toy_transformer",
        ),
        ({"fixed": {"epochs": 2, "lr": 0.1}}, "search.lr: is both fixed and searched"),
        ({"fixed": {"epochs": 0}}, "fixed.epochs: must be >= 1, got 0"),
        ({"fixed": {"epochs": 2.5}}, "fixed.epochs: expected an integer, got 2.5"),
        (
            {"search": {"num_heads": {"type": "categorical", "choices": [3, 4]}}},
            "bad pairs (hidden_dim/num_heads): 32/3",
        ),
        (
            {"sampler": {"name": "grid"}},
            "sampler.name: the grid sampler needs categorical parameters only; make these categorical or use another sampler: lr",
        ),
        (
            {"enqueue": [{"lr": 5.0}]},
            "enqueue[0].lr: 5.0 lies outside the search space [0.0001, 0.01]",
        ),
        (
            {"enqueue": [{"hidden_dim": 64}]},
            "enqueue[0].hidden_dim: 64 lies outside the search space choices [16, 32]",
        ),
        (
            {"enqueue": [{"epochs": 3}]},
            "enqueue[0].epochs: not a searched parameter (it is fixed; remove it here)",
        ),
        ({"data": {"n_train": 5}}, "data.n_train: Input should be greater than or equal to 10"),
        ({"data": {"size": 5}}, "data.size: unknown key"),
        (
            {"artifacts": {"keep_checkpoints": "latest"}},
            "artifacts.keep_checkpoints: input should be 'best', 'none' or 'all', got 'latest'",
        ),
        (
            {"study": {"name": "s", "heartbeat_interval": 30, "heartbeat_grace": 10}},
            "study.heartbeat_grace: must be larger than study.heartbeat_interval",
        ),
    ],
)
def test_bad_values_name_file_path_and_value(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    data = base()
    data.update(change)
    message = error_of(tmp_path, data)
    assert message.startswith(str(tmp_path / "c.yaml") + ": "), message
    assert expected in message, message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("study: {name: s\n", "YAML syntax error at line 2"),
        (
            "study: {name: s}\nstudy: {name: t}\n",
            "duplicate key 'study' at line 2 (first at line 1)",
        ),
        ("study: {name: s}\n", "objective: missing; choose one of"),
        ("objective: toy_transformer\n", "study: missing; this key is required"),
        (
            "study: {name: s}\nobjective: toy_transformer\nfixed: !!python/object:os.system {}\n",
            "YAML",
        ),
    ],
)
def test_unreadable_files(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(tmp_path, text)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("fixed.epochs", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("bogus.x=1", "--set bogus.x: unknown key 'bogus'"),
        ("study.name.first=1", "--set study.name.first: study.name is 's', not a mapping"),
        ("study.n_trials=[1", "--set study.n_trials: YAML syntax error"),
        ("study..name=x", "empty part in the dotted key"),
        ("fixed.warp=3", "fixed.warp: unknown parameter for toy_transformer"),
        ("study.nope=3", "study.nope: unknown key 'nope'"),
    ],
)
def test_bad_overrides(tmp_path: Path, override: str, expected: str) -> None:
    assert expected in error_of(tmp_path, base(), (override,))


def test_password_is_masked_in_the_resolved_config(tmp_path: Path) -> None:
    data = base()
    data["study"]["storage"] = "postgresql+psycopg://alice:s3cret@db.example:5432/hp"
    config = load_config(write(tmp_path, data))
    assert config.study.storage.endswith("alice:s3cret@db.example:5432/hp")
    dumped = config.to_dict()
    assert "s3cret" not in yaml.safe_dump(dumped)
    assert dumped["study"]["storage"] == "postgresql+psycopg://alice:***@db.example:5432/hp"


def test_report_grid_holds_exactly_the_reports_ten_runs() -> None:
    config = load_config(REPO / "study_configs" / "toy_transformer_report_grid.yaml")
    order = ("hidden_dim", "batch_size", "num_heads", "epochs", "max_grad_norm", "lr", "num_layers")
    runs = [tuple(entry[name] for name in order) for entry in config.enqueue]
    baseline = (20, 20, 2, 30, 5.0, 1e-4, 1)

    def changed(**kw: float) -> tuple:
        values = dict(zip(order, baseline, strict=True))
        values.update(kw)
        return tuple(values[name] for name in order)

    assert runs == [
        baseline,
        changed(lr=1e-3),
        changed(lr=1e-5),
        changed(hidden_dim=64),
        changed(batch_size=64),
        changed(num_heads=4),
        changed(num_heads=4, epochs=50),
        changed(num_layers=2),
        changed(max_grad_norm=1.0),
        (64, 64, 4, 50, 1.0, 1e-4, 2),
    ]
    assert config.study.n_trials == 10 and config.pruner.name == "none"
