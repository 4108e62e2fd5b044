"""The BERT objective's data side without training: reading, splitting, metrics, the cache."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from objectives.bert import TokenizationCache, TokenizedTask
from objectives.classification_metrics import classification_metrics
from objectives.errors import DataError
from objectives.specs import BertDataConfig
from objectives.text_data import check_data, read_task, split_files


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def numbered_rows(count: int, label: Any = None, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"sentence": f"sentence {i}", "label": label if label is not None else i % 2}
        for i in range(start, start + count)
    ]


# --------------------------------------------------------------------------- reading


def test_dir_reads_exactly_train_validation_test(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", numbered_rows(30))
    write_csv(tmp_path / "validation.csv", numbered_rows(10, start=100))
    write_csv(tmp_path / "test.csv", numbered_rows(12, start=200))
    write_csv(tmp_path / "train_small.csv", [{"other": 1}])
    (tmp_path / "validation.csv.bak").write_text("broken")
    (tmp_path / "README.txt").write_text("not data")
    data = BertDataConfig(dir=str(tmp_path))
    files = split_files(data)
    assert files is not None
    assert [(split, path.name) for split, path in files.items()] == [
        ("train", "train.csv"),
        ("validation", "validation.csv"),
        ("test", "test.csv"),
    ]
    check_data(data)
    task = read_task(data, seed=0)
    assert task.sizes() == {"train": 30, "validation": 10, "test": 12}
    assert task.validation.texts[0][0] == "sentence 100"
    assert not task.validation_carved and task.test_note is None


def test_dir_with_two_train_files_is_ambiguous(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", numbered_rows(4))
    (tmp_path / "train.jsonl").write_text('{"sentence": "a", "label": 0}\n')
    with pytest.raises(DataError, match="several train files"):
        check_data(BertDataConfig(dir=str(tmp_path)))


def test_missing_validation_is_carved_from_train_with_the_seed(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", numbered_rows(200))
    data = BertDataConfig(files={"train": str(tmp_path / "train.csv")})
    task = read_task(data, seed=0)
    assert task.validation_carved
    assert task.sizes() == {"train": 180, "validation": 20, "test": 0}
    assert task.test is None and "no test split" in (task.test_note or "")
    train, validation = set(task.train.texts[0]), set(task.validation.texts[0])
    assert not train & validation and len(train | validation) == 200
    # The same seed carves the same split (every trial of a study); another seed another one.
    assert read_task(data, seed=0).validation.texts == task.validation.texts
    assert read_task(data, seed=1).validation.texts != task.validation.texts


def test_sample_limits_subsample_each_split(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", numbered_rows(100))
    write_csv(tmp_path / "validation.csv", numbered_rows(50, start=100))
    data = BertDataConfig(dir=str(tmp_path), max_train_samples=40, max_eval_samples=8)
    task = read_task(data, seed=3)
    assert task.sizes() == {"train": 40, "validation": 8, "test": 0}
    assert len(set(task.train.texts[0])) == 40


def test_string_labels_are_mapped_in_sorted_order(tmp_path: Path) -> None:
    rows = [{"sentence": f"s{i}", "label": ("pos", "neg", "neutral")[i % 3]} for i in range(30)]
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "validation.csv", rows[:9])
    task = read_task(BertDataConfig(dir=str(tmp_path)), seed=0)
    assert task.label_names == ["neg", "neutral", "pos"]
    assert task.train.labels is not None
    assert task.train.labels[:3].tolist() == [2, 0, 1]


def test_test_labels_of_minus_one_are_hidden(tmp_path: Path) -> None:
    write_csv(tmp_path / "train.csv", numbered_rows(20))
    write_csv(tmp_path / "validation.csv", numbered_rows(6))
    write_csv(tmp_path / "test.csv", numbered_rows(6, label=-1))
    task = read_task(BertDataConfig(dir=str(tmp_path)), seed=0)
    assert task.test is None
    assert "hidden" in (task.test_note or "")


def test_text_that_looks_missing_stays_text(tmp_path: Path) -> None:
    rows = [{"sentence": text, "label": i % 2} for i, text in enumerate(["NA", "null", "", "n/a"])]
    write_csv(tmp_path / "train.csv", rows * 3)
    write_csv(tmp_path / "validation.csv", rows)
    task = read_task(BertDataConfig(dir=str(tmp_path)), seed=0)
    assert task.validation.texts[0] == ["NA", "null", "", "n/a"]


def test_missing_training_label_is_a_data_error(tmp_path: Path) -> None:
    rows = numbered_rows(6)
    rows[2]["label"] = ""
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "validation.csv", numbered_rows(4))
    with pytest.raises(DataError, match="no label in 1 rows"):
        read_task(BertDataConfig(dir=str(tmp_path)), seed=0)


def test_data_config_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one data source"):
        BertDataConfig()
    with pytest.raises(ValueError, match="exactly one data source"):
        BertDataConfig(hub="glue", dir="x")
    assert BertDataConfig(dir="x", text_columns="text").text_columns == ("text",)


# --------------------------------------------------------------------------- metrics


def test_binary_f1_and_mcc_match_the_formulas() -> None:
    # tp 3, fn 1, fp 2, tn 4
    labels = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    predicted = torch.tensor([1, 1, 1, 0, 1, 1, 0, 0, 0, 0])
    metrics = classification_metrics(predicted, labels)
    f1_positive, f1_negative = 2 * 3 / (2 * 3 + 2 + 1), 2 * 4 / (2 * 4 + 1 + 2)
    assert metrics["f1"] == pytest.approx((f1_positive + f1_negative) / 2)
    assert metrics["mcc"] == pytest.approx((3 * 4 - 2 * 1) / math.sqrt(5 * 4 * 6 * 5))


def test_multiclass_mcc_and_degenerate_cases() -> None:
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    assert classification_metrics(labels, labels) == {"f1": 1.0, "mcc": 1.0}
    # Always one class: MCC undefined -> 0; F1 averages over the classes that occur.
    constant = classification_metrics(torch.zeros(6, dtype=torch.long), labels)
    assert constant["mcc"] == 0.0
    assert constant["f1"] == pytest.approx((2 * 2 / (2 * 2 + 4 + 0)) / 3)
    # Multi-class MCC from its definition (Gorodkin): cov(X, Y) / sqrt(cov(X, X) cov(Y, Y)).
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 200)
    guess = np.where(rng.random(200) < 0.6, truth, rng.integers(0, 3, 200))
    x, y = np.eye(3)[guess], np.eye(3)[truth]
    x, y = x - x.mean(0), y - y.mean(0)
    expected = (x * y).sum() / math.sqrt((x * x).sum() * (y * y).sum())
    mcc = classification_metrics(torch.from_numpy(guess), torch.from_numpy(truth))["mcc"]
    assert mcc == pytest.approx(expected)


# --------------------------------------------------------------------------- the cache


def test_tokenization_cache_is_bounded_and_counts() -> None:
    cache = TokenizationCache(max_entries=2)
    built: list[str] = []

    def builder(key: str) -> Any:
        def build() -> TokenizedTask:
            built.append(key)
            return key  # type: ignore[return-value]

        return build

    for key in ("a", "b", "a", "c", "b"):
        cache.get_or_build(key, builder(key))
    # "a" was used again before "c" came in, so "b" was the least recently used and evicted.
    assert built == ["a", "b", "c", "b"]
    assert (cache.hits, cache.misses, len(cache)) == (1, 4, 2)


def test_datasets_library_source_keeps_class_names_and_hides_minus_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The `hub:` reader goes through datasets.load_dataset, which also takes a local folder of
    # Parquet files written by the datasets library (with their ClassLabel names): no hub needed.
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["bad", "ok"])}
    )
    folder = tmp_path / "glue-like"
    folder.mkdir()
    for split, label in (("train", None), ("validation", None), ("test", -1)):
        rows = numbered_rows(10, label=label)
        table = {"sentence": [r["sentence"] for r in rows], "label": [r["label"] for r in rows]}
        datasets.Dataset.from_dict(table, features=features).to_parquet(folder / f"{split}.parquet")
    task = read_task(BertDataConfig(hub=str(folder)), seed=0)
    assert task.label_names == ["bad", "ok"]
    assert task.sizes() == {"train": 10, "validation": 10, "test": 0}
    assert task.test is None and "all -1 as in GLUE" in (task.test_note or "")
