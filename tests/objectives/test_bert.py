"""The BERT objective, end to end: a tiny random BERT (saved like a pretrained one) fine-tuned on
generated text through the real objective, a real SQLite study and the CLI."""

from __future__ import annotations

import csv
import json
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from benchmarks.synthetic_bert import write_random_bert

FILLER = [
    "the",
    "a",
    "film",
    "movie",
    "story",
    "actor",
    "plot",
    "scene",
    "was",
    "is",
    "very",
    "quite",
    "and",
    "but",
    "it",
    "this",
    "that",
    "with",
    "of",
    "to",
    "music",
    "ending",
    "cast",
    "script",
]
POSITIVE = ["great", "wonderful", "superb", "brilliant", "lovely"]
NEGATIVE = ["awful", "boring", "terrible", "dull", "poor"]


def sentence(rng: random.Random, positive: bool) -> str:
    words = rng.choices(FILLER, k=rng.randint(2, 6))
    words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if positive else NEGATIVE))
    return " ".join(words)


def sentiment_rows(count: int, seed: int) -> list[dict[str, Any]]:
    """Label 1 when the sentence holds a positive cue word, 0 for a negative one."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        label = rng.randint(0, 1)
        rows.append({"sentence": sentence(rng, bool(label)), "label": label})
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]], delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def build_tiny_bert(folder: Path) -> Path:
    """A random 2-layer BERT (hidden 32) and a WordPiece tokenizer trained on generated text."""
    rng = random.Random(0)
    corpus = [sentence(rng, rng.random() < 0.5) for _ in range(500)]
    return write_random_bert(
        folder,
        corpus,
        200,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


def sentiment_dir(folder: Path, train: int = 240, evaluation: int = 60) -> Path:
    """A data folder in the layout of ``data: {dir: ...}`` plus files that must be ignored."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "train.csv", sentiment_rows(train, 1))
    write_csv(folder / "validation.csv", sentiment_rows(evaluation, 2))
    write_csv(folder / "test.csv", sentiment_rows(evaluation, 3))
    # Not read: only train.*, validation.* and test.* are.
    (folder / "train_small.csv").write_text("other,columns\n1,2\n")
    (folder / "notes.txt").write_text("not data\n")
    (folder / "LICENSE.htm").write_text("<html></html>\n")
    return folder


def bert_study(tmp_path: Path, model: str, data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A micro BERT study config (as YAML data) with its storage in ``tmp_path``."""
    config: dict[str, Any] = {
        "study": {
            "name": "bert-micro",
            "storage": f"sqlite:///{tmp_path / 'hp.db'}",
            "metric": "val_accuracy",
            "n_trials": 1,
            "seed": 0,
        },
        "sampler": {"name": "random", "args": {}},
        "pruner": {"name": "none", "args": {}},
        "objective": "bert",
        "fixed": {"model": model, "epochs": 3, "batch_size": 16, "lr": 3e-3, "max_length": 32},
        "search": {},
        "data": data,
        "artifacts": {"keep_checkpoints": "none"},
    }
    for section, values in changes.items():
        if isinstance(values, dict) and isinstance(config.get(section), dict):
            config[section] = {**config[section], **values}
        else:
            config[section] = values
    # A searched parameter is not also fixed.
    config["fixed"] = {k: v for k, v in config["fixed"].items() if k not in config["search"]}
    return config


def write_study(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def load(tmp_path: Path, name: str = "bert-micro") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'hp.db'}")


def run_in_process(config: dict[str, Any]) -> None:
    from search.config import config_from_dict
    from search.study import optimize_study as run_study

    run_study(config_from_dict(config), device="cpu")


# --------------------------------------------------------------------------- studies


@pytest.mark.slow  # about 20 s on 2 quiet cores: two trials of 5 epochs in a CLI subprocess
def test_cli_study_learns_and_records_metrics(
    tiny_bert: Path, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    data_dir = sentiment_dir(tmp_path / "data")
    config = bert_study(
        tmp_path,
        str(tiny_bert),
        # Relative to the working directory (the CLI runs in tmp_path).
        {"dir": "data"},
        study={"n_trials": 2},
        fixed={"model": str(tiny_bert), "epochs": 5, "batch_size": 16, "max_length": 32},
        search={"lr": {"type": "categorical", "choices": [3e-3, 5e-3]}},
        enqueue=[{"lr": 3e-3}, {"lr": 5e-3}],
    )
    result = run_cli("run", str(write_study(tmp_path, config)), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    study = load(tmp_path)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    # Learned: chance is about 0.5 on this balanced task.
    assert study.best_value > 0.8
    for trial in trials:
        epochs = trial.user_attrs["epochs"]
        assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5]
        for record in epochs:
            assert {"val_accuracy", "val_loss", "val_f1", "val_mcc", "train_loss"} <= set(record)
            assert -1.0 <= record["val_mcc"] <= 1.0 and 0.0 <= record["val_f1"] <= 1.0
        assert trial.user_attrs["label_names"] == [0, 1]
        assert {"test_accuracy", "test_f1", "test_mcc"} <= set(trial.user_attrs)
        assert "note" not in trial.user_attrs
    best = study.best_trial
    best_record = next(
        e for e in best.user_attrs["epochs"] if e["epoch"] == best.user_attrs["best_epoch"]
    )
    assert best_record["val_mcc"] > 0.6 and best_record["val_f1"] > 0.8
    # One tokenisation for both trials (same tokenizer, max_length and data).
    assert [t.user_attrs["tokenization_cache"] for t in trials] == ["miss", "hit"]
    # Exactly train/validation/test.csv were read; the other files in the folder were not.
    assert study.user_attrs["data_sizes"] == {
        "train": 240,
        "validation": 60,
        "test": 60,
        "validation_carved": False,
    }
    labels = [row["label"] for row in sentiment_rows(60, 2)]
    majority = max(labels.count(0), labels.count(1)) / 60
    assert study.user_attrs["majority_class_accuracy"] == pytest.approx(majority)
    assert data_dir.is_dir()


def test_pruner_stops_bert_trials(tiny_bert: Path, tmp_path: Path) -> None:
    # The threshold pruner prunes any trial whose val_accuracy after epoch 1 is below 1.01.
    data = {"dir": str(sentiment_dir(tmp_path / "data", train=64, evaluation=16))}
    config = bert_study(
        tmp_path,
        str(tiny_bert),
        data,
        study={"n_trials": 2},
        pruner={"name": "threshold", "args": {"lower": 1.01, "n_warmup_steps": 0}},
        search={"lr": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}},
    )
    run_in_process(config)
    trials = load(tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    for trial in trials:
        assert len(trial.user_attrs["epochs"]) == 1
        assert trial.user_attrs["reason"].startswith("pruned at epoch 1")
        assert "val_mcc" in trial.user_attrs["epochs"][0]


def test_model_failing_to_load_fails_only_its_trial(tiny_bert: Path, tmp_path: Path) -> None:
    # Complete enough for the pre-study check (config.json, tokenizer), broken weights.
    broken = tmp_path / "broken-bert"
    shutil.copytree(tiny_bert, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    data = {"dir": str(sentiment_dir(tmp_path / "data", train=64, evaluation=16))}
    config = bert_study(
        tmp_path,
        str(tiny_bert),
        data,
        fixed={"epochs": 1, "batch_size": 16, "lr": 1e-3, "max_length": 32},
        search={"model": {"type": "categorical", "choices": [str(broken), str(tiny_bert)]}},
        enqueue=[{"model": str(broken)}, {"model": str(tiny_bert)}],
    )
    run_in_process(config)
    first, second = load(tmp_path).get_trials()
    assert first.state == TrialState.FAIL
    assert first.user_attrs["reason"].startswith("failed: ")
    assert second.state == TrialState.COMPLETE


def pair_rows(count: int, seed: int) -> list[dict[str, Any]]:
    """Two sentences; "same" when both carry cues of the same polarity, else "different"."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        first, second = rng.random() < 0.5, rng.random() < 0.5
        rows.append(
            {
                "premise": sentence(rng, first),
                "hypothesis": sentence(rng, second),
                "relation": "same" if first == second else "different",
            }
        )
    return rows


def test_sentence_pairs_string_labels_and_unlabelled_test(tiny_bert: Path, tmp_path: Path) -> None:
    import pandas as pd

    folder = tmp_path / "pairs"
    folder.mkdir()
    with (folder / "train.jsonl").open("w") as file:
        for row in pair_rows(64, 1):
            file.write(json.dumps(row) + "\n")
    pd.DataFrame(pair_rows(16, 2)).to_parquet(folder / "dev.parquet")
    unlabelled = [{k: v for k, v in row.items() if k != "relation"} for row in pair_rows(16, 3)]
    write_csv(folder / "test.tsv", unlabelled, delimiter="\t")
    data = {
        "files": {
            "train": str(folder / "train.jsonl"),
            "validation": str(folder / "dev.parquet"),
            "test": str(folder / "test.tsv"),
        },
        "text_columns": ["premise", "hypothesis"],
        "label_column": "relation",
    }
    config = bert_study(
        tmp_path,
        str(tiny_bert),
        data,
        fixed={"epochs": 2, "lr": 1e-3, "max_length": 32},
        artifacts={"keep_checkpoints": "best"},
    )
    run_in_process(config)
    study = load(tmp_path)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["label_names"] == ["different", "same"]
    assert "test_accuracy" not in trial.user_attrs
    assert "no test metrics" in trial.user_attrs["note"]
    # The checkpoint is the model and tokenizer as save_pretrained writes them, labels named.
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from search.trial import study_artifact_dir
    from storage.artifacts import checkpoint_of, extract_checkpoint, open_store

    artifact = checkpoint_of(study, trial)
    assert artifact is not None
    store = open_store(study_artifact_dir(study, config["study"]["storage"]), create=False)
    extract_checkpoint(store, artifact, tmp_path / "best")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "best")
    assert model.config.id2label == {0: "different", 1: "same"}
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "best")
    assert tokenizer("a b", "c")["token_type_ids"][-1] == 1
    # ... holding the best epoch's weights (no test split: the objective restores them itself).
    from objectives.bert import TokenizationCache, loop_data, tokenized_task
    from objectives.loop import evaluate
    from objectives.specs import BertDataConfig

    task, _ = tokenized_task(BertDataConfig(**data), 0, tokenizer, 32, TokenizationCache())
    batches = loop_data(task, 16, 0, tokenizer.pad_token_id).validation()
    records = {e["epoch"]: e for e in trial.user_attrs["epochs"]}
    best = records[trial.user_attrs["best_epoch"]]
    assert evaluate(model, batches, "cpu")["loss"] == pytest.approx(best["val_loss"], abs=1e-5)


def test_pair_tokenization_marks_the_second_segment(tiny_bert: Path) -> None:
    import numpy as np
    from transformers import AutoTokenizer

    from objectives.text_data import TextSplit, pad_batch, tokenize_split

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    split = TextSplit((["great film", "the plot"], ["dull story here", "a"]), np.array([1, 0]))
    tokens = tokenize_split(split, tokenizer, max_length=32)
    batch = pad_batch(tokens, np.array([0, 1]), tokenizer.pad_token_id)
    # [CLS] first [SEP] in segment 0, second [SEP] in segment 1; the shorter pair is padded.
    first = len(tokenizer("great film")["input_ids"])
    both = len(tokenizer("great film", "dull story here")["input_ids"])
    assert batch["token_type_ids"][0].tolist() == [0] * first + [1] * (both - first)
    short = len(tokenizer("the plot", "a")["input_ids"])
    assert batch["attention_mask"][1].tolist() == [1] * short + [0] * (both - short)
    assert batch["input_ids"][1, short:].tolist() == [tokenizer.pad_token_id] * (both - short)
    assert batch["labels"].tolist() == [1, 0]


def test_minilm_alias_trains_offline(tmp_path: Path) -> None:
    data = {"dir": str(sentiment_dir(tmp_path / "data", train=16, evaluation=8))}
    config = bert_study(
        tmp_path,
        "minilm-l6",
        data,
        fixed={"model": "minilm-l6", "epochs": 1, "batch_size": 8, "lr": 5e-5, "max_length": 32},
    )
    run_in_process(config)
    (trial,) = load(tmp_path).get_trials()
    assert trial.state == TrialState.COMPLETE, trial.user_attrs.get("reason")
    (record,) = trial.user_attrs["epochs"]
    assert record["train_loss"] > 0 and 0.0 <= record["val_accuracy"] <= 1.0
    assert "test_accuracy" in trial.user_attrs


# --------------------------------------------------------------------------- pre-study checks


def _data_cases(data_dir: Path) -> dict[str, tuple[dict[str, Any], str]]:
    empty = data_dir.parent / "empty"
    empty.mkdir()
    shutil.copy(data_dir / "train.csv", empty / "train.csv")
    (empty / "validation.csv").write_text("")
    header_only = data_dir.parent / "header_only"
    header_only.mkdir()
    shutil.copy(data_dir / "train.csv", header_only / "train.csv")
    (header_only / "validation.csv").write_text("sentence,label\n")
    return {
        "missing column": (
            {"data": {"dir": str(data_dir), "text_columns": ["review"]}},
            "data.dir (train): ",
        ),
        "missing label column": (
            {"data": {"dir": str(data_dir), "label_column": "sentiment"}},
            "has no column 'sentiment'",
        ),
        "empty file": ({"data": {"dir": str(empty)}}, "has no rows"),
        "header only": ({"data": {"dir": str(header_only)}}, "has no rows"),
        "missing file": (
            {"data": {"files": {"train": str(data_dir / "nope.csv")}}},
            "data.files.train: no such file",
        ),
        "missing dir": ({"data": {"dir": str(data_dir / "nope")}}, "is not a directory"),
        "missing model dir": ({"fixed": {"model": "./no-such-model"}}, "no such directory"),
        "model dir without weights config": (
            {"fixed": {"model": str(data_dir)}},
            "has no config.json",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing column",
        "missing label column",
        "empty file",
        "header only",
        "missing file",
        "missing dir",
        "missing model dir",
        "model dir without weights config",
    ],
)
def test_precheck_rejects_bad_data_and_model_paths(
    case: str, tiny_bert: Path, tmp_path: Path
) -> None:
    from search.config import config_from_dict
    from search.errors import ConfigError
    from search.study import check_buildable

    data_dir = sentiment_dir(tmp_path / "data", train=20, evaluation=10)
    changes, expected = _data_cases(data_dir)[case]
    config = bert_study(tmp_path, str(tiny_bert), {"dir": str(data_dir)})
    for section, values in changes.items():
        config[section] = {**config[section], **values} if section == "fixed" else values
    study_config = config_from_dict(config, "study.yaml")
    with pytest.raises(ConfigError) as error:
        check_buildable(study_config, "study.yaml")
    message = str(error.value)
    assert message.startswith("study.yaml: ") and expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # Not an alias, not a directory: a hub id, unavailable offline; the line names the alias.
        ({"fixed": {"model": "minilm-l12"}}, "use the offline alias minilm-l6"),
        (
            {"search": {"model": {"type": "categorical", "choices": ["TINY", "roberta-base"]}}},
            "search.model.choices: model 'roberta-base' is a hub id and is not available offline",
        ),
        (
            {"data": {"hub": "glue", "subset": "cola"}},
            "data.hub: dataset 'glue/cola' is a hub id and is not available offline",
        ),
    ],
    ids=["unknown alias", "searched hub model", "hub dataset"],
)
def test_hub_ids_offline_exit_2_with_one_line(
    changes: dict[str, Any],
    expected: str,
    tiny_bert: Path,
    tmp_path: Path,
    run_cli: Callable[..., Any],
) -> None:
    data_dir = sentiment_dir(tmp_path / "data", train=20, evaluation=10)
    config = bert_study(tmp_path, str(tiny_bert), {"dir": str(data_dir)})
    changes = json.loads(json.dumps(changes).replace("TINY", str(tiny_bert)))
    for section, values in changes.items():
        config[section] = {**config[section], **values} if section == "fixed" else values
    if "model" in config["search"]:
        config["fixed"].pop("model")
    started = time.monotonic()
    result = run_cli("run", str(write_study(tmp_path, config)), "--device", "cpu", timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert not (tmp_path / "hp.db").exists()
    assert time.monotonic() - started < 60  # offline fails fast, not after hub retries


# --------------------------------------------------------------------------- ready-made configs

REPO = Path(__file__).resolve().parents[2]
REPORT_RUNS = [  # REPORT.md Part 1: (lr, batch, epochs, model) of runs 1-8, in order
    (1e-5, 32, 10, "bert-base-uncased"),
    (2e-5, 16, 10, "bert-base-uncased"),
    (2e-5, 16, 5, "bert-base-uncased"),
    (3e-5, 16, 5, "bert-base-uncased"),
    (2e-5, 32, 5, "bert-base-uncased"),
    (3e-5, 16, 5, "bert-large-uncased"),
    (5e-5, 16, 5, "bert-base-uncased"),
    (3e-5, 16, 5, "roberta-base"),
]


def test_bert_study_configs(tmp_path: Path) -> None:
    from search.config import load_config

    grid = load_config(REPO / "study_configs" / "bert_report_grid.yaml")
    runs = [(e["lr"], e["batch_size"], e["epochs"], e["model"]) for e in grid.enqueue]
    assert runs == REPORT_RUNS
    assert grid.study.n_trials == 8 and grid.pruner.name == "none"
    assert (grid.data["hub"], grid.data["subset"]) == ("glue", "cola")
    assert grid.search["model"].choices == [
        "bert-base-uncased",
        "bert-large-uncased",
        "roberta-base",
    ]
    cola = load_config(REPO / "study_configs" / "bert_cola.yaml")
    assert (cola.study.metric, cola.sampler.name, cola.pruner.name) == ("val_mcc", "tpe", "median")
    data_dir = sentiment_dir(tmp_path / "sst2-like", train=20, evaluation=10)
    local = load_config(REPO / "study_configs" / "bert_minilm_local.yaml", [f"data.dir={data_dir}"])
    assert local.fixed["model"] == "minilm-l6" and local.search["lr"].log
    assert {"model", "epochs", "max_length"} <= set(local.fixed)
    from search.study import check_buildable

    check_buildable(local, "bert_minilm_local.yaml")  # the alias and the folder pass


def test_the_minilm_ablation_config_and_its_variants_load(tmp_path: Path) -> None:
    from benchmarks import ablation_minilm
    from search.config import load_config
    from search.pruning import CurvePercentilePruner, build_pruner
    from search.study import check_buildable

    data_dir = sentiment_dir(tmp_path / "rt-like", train=20, evaluation=10)
    path = REPO / ablation_minilm.CONFIG
    plain = load_config(path, [f"data.dir={data_dir}"])
    assert (plain.sampler.name, plain.pruner.name, plain.study.n_trials) == ("random", "none", 12)
    assert (plain.fixed["epochs"], plain.fixed["max_length"]) == (8, 64)
    assert (plain.data["max_train_samples"], plain.data["max_eval_samples"]) == (500, 1000)
    check_buildable(plain, path.name)
    for tpe in (False, True):
        for pruner, patience in ablation_minilm.REPLAYS.values():
            sets = ablation_minilm._overrides(8101, data_dir, False, pruner, patience, tpe)
            config = load_config(path, sets)
            built = build_pruner(config.pruner)
            assert isinstance(built, CurvePercentilePruner) == ("judge" in pruner["args"])
            assert config.fixed["early_stopping_patience"] == patience
            assert config.sampler.name == ("tpe" if tpe else "random")
