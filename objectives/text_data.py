"""The BERT objective's texts: finding, checking, reading and tokenising them (torch-free).

A study's ``data:`` (``BertDataConfig``) names a hub dataset, one file per split, or a folder
holding ``train.*``, ``validation.*`` and ``test.*``. ``precheck`` checks everything that can be
checked before a study starts; ``read_task`` reads the splits into a :class:`TextTask` (labels
mapped to class ids, a validation split carved from train when there is none, optional
subsampling); ``tokenize_split`` turns that into compact token arrays that ``pad_batch`` pads per
batch. Tokenising needs a tokenizer object, passed in; nothing here imports torch.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from objectives.errors import DataError, ModelError, ParamError
from objectives.pretrained import HUB_TIMEOUT_S, offline_message, resolve_model
from objectives.specs import BertDataConfig

if TYPE_CHECKING:
    import pandas as pd

SPLITS = ("train", "validation", "test")
# File extension -> format. ".json" files are read as JSON lines, one object per line.
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
HIDDEN_LABEL = -1  # GLUE's label for its hidden test labels
_TOKENIZE_CHUNK = 4096  # texts per tokenizer call: bounds the peak of Python token lists


# --------------------------------------------------------------------------- where the data is


@dataclass(frozen=True)
class SplitFiles:
    """The absolute path of each split's file (validation and test may be absent)."""

    train: Path
    validation: Path | None
    test: Path | None

    def items(self) -> Iterator[tuple[str, Path]]:
        for split in SPLITS:
            path = getattr(self, split)
            if path is not None:
                yield split, path


def split_files(data: BertDataConfig) -> SplitFiles | None:
    """The files of a ``files:`` or ``dir:`` source (None for a hub dataset)."""
    if data.files is not None:
        given = {split: getattr(data.files, split) for split in SPLITS}
        paths = {k: Path(v).expanduser().absolute() if v else None for k, v in given.items()}
        return SplitFiles(paths["train"], paths["validation"], paths["test"])  # type: ignore[arg-type]
    if data.dir is not None:
        return _dir_files(Path(data.dir).expanduser().absolute())
    return None


def _dir_files(folder: Path) -> SplitFiles:
    if not folder.is_dir():
        raise DataError(
            f"data.dir: {folder} is not a directory (relative paths are relative to the working "
            "directory)"
        )
    found: dict[str, Path | None] = {}
    for split in SPLITS:
        # Exactly "<split>.<ext>": other files (licences, train_small.csv, ...) are ignored.
        matches = [
            folder / f"{split}{ext}" for ext in FORMATS if (folder / f"{split}{ext}").is_file()
        ]
        if len(matches) > 1:
            names = ", ".join(m.name for m in matches)
            raise DataError(f"data.dir: {folder} holds several {split} files ({names}); keep one")
        found[split] = matches[0] if matches else None
    if found["train"] is None:
        raise DataError(
            f"data.dir: {folder} has no train file; expected train.csv, train.tsv, train.jsonl "
            "or train.parquet (and optionally validation.* and test.*)"
        )
    return SplitFiles(found["train"], found["validation"], found["test"])  # type: ignore[arg-type]


def _format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; use .csv, .tsv, .jsonl (JSON lines) "
            "or .parquet"
        )
    return fmt


# --------------------------------------------------------------------------- the pre-study check


def precheck(values: Mapping[str, Sequence[Any] | None], data: BaseModel) -> None:
    """Check the models and data of a BERT study before it starts.

    ``values`` holds every value each parameter can take (each choice when searched). Checks
    each ``model`` value, then the data: files present, non-empty and holding the text and label
    columns, or the hub dataset reachable or cached. Raises ParamError or DataError.
    """
    assert isinstance(data, BertDataConfig)
    for name in values.get("model") or ():
        try:
            resolve_model(name)
        except ModelError as e:
            raise ParamError("model", str(e)) from e
    check_data(data)


def check_data(data: BertDataConfig) -> None:
    """Check the data source of ``data`` (see :func:`precheck`)."""
    files = split_files(data)
    if files is None:
        _check_hub_dataset(data)
        return
    key = "data.dir" if data.dir is not None else "data.files"
    for split, path in files.items():
        where = f"{key}.{split}" if data.files is not None else f"{key} ({split})"
        if not path.is_file():
            raise DataError(
                f"{where}: no such file {path} (relative paths are relative to the working "
                "directory)"
            )
        try:
            columns, rows = _peek(path)
        except DataError as e:
            raise DataError(f"{where}: {e}") from e
        if rows == 0:
            raise DataError(f"{where}: {path} has no rows; give a file with data")
        needed = list(data.text_columns)
        if split != "test":  # a test split without labels is allowed: no test metrics then
            needed.append(data.label_column)
        missing = [c for c in needed if c not in columns]
        if missing:
            raise DataError(
                f"{where}: {path} has no column {', '.join(map(repr, missing))} (columns: "
                f"{', '.join(columns)}); set data.text_columns / data.label_column"
            )


def _peek(path: Path) -> tuple[list[str], int]:
    """Column names and a row count (0, or at least 1) without reading the whole file."""
    import pandas as pd

    fmt = _format(path)
    if path.stat().st_size == 0:
        return [], 0
    try:
        if fmt in ("csv", "tsv"):
            frame = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", nrows=1, dtype=str)
            return [str(c) for c in frame.columns], len(frame)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            return list(parquet.schema_arrow.names), parquet.metadata.num_rows
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict):
                        raise DataError(f"{path}: expected JSON lines, one object per line")
                    return list(row), 1
        return [], 0
    except pd.errors.EmptyDataError:
        return [], 0
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {type(e).__name__}: {_first_line(e)}") from e


def _check_hub_dataset(data: BertDataConfig) -> None:
    import datasets
    import huggingface_hub

    name = f"{data.hub}/{data.subset}" if data.subset else str(data.hub)
    if not datasets.config.HF_HUB_OFFLINE:
        try:
            huggingface_hub.dataset_info(str(data.hub), timeout=HUB_TIMEOUT_S)
        except huggingface_hub.errors.RepositoryNotFoundError as e:
            raise DataError(
                f"data.hub: no dataset {data.hub!r} on the Hugging Face hub; check the name"
            ) from e
        except Exception as e:  # no network: the datasets library would retry for ~30 s
            why = (
                f"the hub is unreachable: {type(e).__name__}; with a cached copy, set "
                "HF_HUB_OFFLINE=1"
            )
            raise DataError(f"data.hub: {offline_message('dataset', name, why)}") from e
    try:
        builder = datasets.load_dataset_builder(str(data.hub), data.subset)
    except ConnectionError as e:
        why = "HF_HUB_OFFLINE is set and it is not cached"
        raise DataError(f"data.hub: {offline_message('dataset', name, why)}") from e
    except Exception as e:  # unknown subset, bad name, ...
        raise DataError(f"data.hub: cannot load dataset {name!r}: {_first_line(e)}") from e
    features = builder.info.features
    if features is not None:
        missing = [c for c in (*data.text_columns, data.label_column) if c not in features]
        if missing:
            raise DataError(
                f"data: dataset {name!r} has no column {', '.join(map(repr, missing))} "
                f"(columns: {', '.join(features)}); set data.text_columns / data.label_column"
            )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class TextSplit:
    """One split: its text columns (one, or two for pairs) and class ids (None: unlabelled)."""

    texts: tuple[list[str], ...]
    labels: np.ndarray | None  # int64 class ids

    def __len__(self) -> int:
        return len(self.texts[0])

    def subset(self, index: np.ndarray) -> TextSplit:
        texts = tuple([column[i] for i in index] for column in self.texts)
        return TextSplit(texts, None if self.labels is None else self.labels[index])


@dataclass(frozen=True)
class TextTask:
    """A classification task read from ``data:``, ready to tokenise."""

    train: TextSplit
    validation: TextSplit
    test: TextSplit | None  # None: no test split, or its labels are hidden
    label_names: list[Any]  # class id -> original label (int or str)
    validation_carved: bool  # validation was carved from train with the study seed
    test_note: str | None  # why there are no test metrics, when there are none

    @property
    def majority_class_accuracy(self) -> float:
        """Accuracy of always predicting the validation split's most common class."""
        labels = self.validation.labels
        assert labels is not None
        return float(np.bincount(labels).max() / len(labels))

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test) if self.test is not None else 0,
        }


@dataclass(frozen=True)
class _RawSplit:
    texts: tuple[list[str], ...]
    labels: list[Any] | None  # None: no label column; elements None: missing label


def data_identity(data: BertDataConfig, seed: int) -> tuple[Any, ...]:
    """What identifies the texts ``read_task`` returns (for the tokenisation cache key)."""
    files = split_files(data)
    sources: tuple[Any, ...] = (data.hub, data.subset)
    if files is not None:
        # Path, size and modification time: a file rewritten in place is a different dataset.
        sources = tuple(
            (split, str(path), path.stat().st_size, path.stat().st_mtime_ns)
            for split, path in files.items()
        )
    return (data.model_dump_json(), seed, sources)


def read_task(data: BertDataConfig, seed: int) -> TextTask:
    """Read, label-map, split and subsample the data; ``seed`` is the study seed."""
    files = split_files(data)
    if files is None:
        raw, class_names = _read_hub(data)
    else:
        raw = {split: _read_file(path, data) for split, path in files.items()}
        class_names = None
    return _build_task(raw, class_names, data, seed)


def _read_file(path: Path, data: BertDataConfig) -> _RawSplit:
    import pandas as pd

    fmt = _format(path)
    try:
        if fmt in ("csv", "tsv"):
            # Text stays text: "NA", "null" or "" are sentences, not missing values; only an
            # empty label is a missing label.
            frame = pd.read_csv(
                path,
                sep="\t" if fmt == "tsv" else ",",
                dtype={c: str for c in data.text_columns},
                keep_default_na=False,
                na_values={data.label_column: [""]},
            )
        elif fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_json(path, lines=True, dtype=False)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {type(e).__name__}: {_first_line(e)}") from e
    return _raw_split(frame, data, str(path))


def _raw_split(frame: pd.DataFrame, data: BertDataConfig, where: str) -> _RawSplit:
    import pandas as pd

    if len(frame) == 0:
        raise DataError(f"{where} has no rows")
    texts = []
    for column in data.text_columns:
        if column not in frame.columns:
            raise DataError(f"{where} has no column {column!r} (columns: {list(frame.columns)})")
        values = frame[column]
        missing = values.isna()
        if missing.any():
            row = int(np.flatnonzero(missing.to_numpy())[0])
            raise DataError(f"{where}: column {column!r} has no text in row {row}; fill or drop it")
        texts.append([str(v) for v in values.tolist()])
    labels = None
    if data.label_column in frame.columns:
        series = frame[data.label_column]
        labels = [None if pd.isna(v) else _label_value(v) for v in series.tolist()]
    return _RawSplit(tuple(texts), labels)


def _label_value(value: Any) -> Any:
    # Integral numbers are class ids (CSV may read them as floats when some are missing);
    # anything else is a class name.
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return str(value).strip()


def _read_hub(data: BertDataConfig) -> tuple[dict[str, _RawSplit], list[str] | None]:
    import datasets

    name = f"{data.hub}/{data.subset}" if data.subset else str(data.hub)
    try:
        dataset = datasets.load_dataset(str(data.hub), data.subset)
    except ConnectionError as e:
        why = _first_line(e)
        raise DataError(offline_message("dataset", name, why)) from e
    assert isinstance(dataset, datasets.DatasetDict)
    raw: dict[str, _RawSplit] = {}
    class_names = None
    for split in SPLITS:
        if split not in dataset:
            continue
        part = dataset[split]
        feature = part.features.get(data.label_column)
        if isinstance(feature, datasets.ClassLabel):
            class_names = list(feature.names)
        columns = [c for c in (*data.text_columns, data.label_column) if c in part.column_names]
        raw[split] = _raw_split(part.select_columns(columns).to_pandas(), data, f"{name} {split}")
    if "train" not in raw:
        raise DataError(f"dataset {name!r} has no train split (splits: {', '.join(dataset)})")
    return raw, class_names


def _build_task(
    raw: dict[str, _RawSplit], class_names: list[str] | None, data: BertDataConfig, seed: int
) -> TextTask:
    test, test_note = raw.get("test"), None
    if test is None:
        test_note = "no test split: no test metrics"
    elif _hidden(test, raw["train"]):
        test, test_note = (
            None,
            "test labels are hidden (no labels, or all -1 as in GLUE): no test metrics",
        )
    for split in ("train", "validation"):
        part = raw.get(split)
        if part is None:
            continue
        if part.labels is None:
            raise DataError(f"the {split} split has no label column {data.label_column!r}")
        missing = [i for i, v in enumerate(part.labels) if v is None]
        if missing:
            raise DataError(
                f"the {split} split has no label in {len(missing)} rows (first: row {missing[0]})"
            )
    labelled = [p for p in (raw["train"], raw.get("validation"), test) if p is not None]
    label_names, to_id = _label_mapping([p.labels for p in labelled], class_names)  # type: ignore[misc]

    def mapped(part: _RawSplit) -> TextSplit:
        assert part.labels is not None
        return TextSplit(part.texts, np.array([to_id(v) for v in part.labels], dtype=np.int64))

    train = mapped(raw["train"])
    carved = "validation" not in raw
    if carved:
        train, validation = _carve(train, data.validation_fraction, seed)
    else:
        validation = mapped(raw["validation"])
    test_split = mapped(test) if test is not None else None
    # Each split draws its subsample from its own stream of the study seed.
    train = _limit(train, data.max_train_samples, seed, 1)
    validation = _limit(validation, data.max_eval_samples, seed, 2)
    if test_split is not None:
        test_split = _limit(test_split, data.max_eval_samples, seed, 3)
    return TextTask(train, validation, test_split, label_names, carved, test_note)


def _hidden(test: _RawSplit, train: _RawSplit) -> bool:
    """A test split whose labels are absent, or all -1 while -1 is no training label."""
    if test.labels is None or all(v is None for v in test.labels):
        return True
    return all(v == HIDDEN_LABEL for v in test.labels) and HIDDEN_LABEL not in (train.labels or [])


def _label_mapping(
    columns: Sequence[list[Any]], class_names: list[str] | None
) -> tuple[list[Any], Any]:
    """(class id -> label, label -> class id). Hub class labels keep their ids and names."""
    if class_names is not None:
        count = len(class_names)

        def class_id(value: Any) -> int:
            if not isinstance(value, int) or not 0 <= value < count:
                raise DataError(f"label {value!r} is not a class id of {class_names}")
            return value

        return list(class_names), class_id
    values = {v for column in columns for v in column}
    if all(isinstance(v, int) for v in values):
        names: list[Any] = sorted(values)
    else:
        names = sorted(str(v) for v in values)
    index = {name: i for i, name in enumerate(names)}
    as_text = not all(isinstance(v, int) for v in values)
    if len(names) < 2:
        raise DataError(f"the labels hold fewer than two classes ({names}); nothing to learn")
    return names, (lambda value: index[str(value) if as_text else value])


def _carve(train: TextSplit, fraction: float, seed: int) -> tuple[TextSplit, TextSplit]:
    """Split a validation share off ``train`` with the study seed (same split every trial)."""
    count = len(train)
    size = max(1, round(fraction * count))
    if size >= count:
        raise DataError(f"the train split has {count} rows: too few to carve a validation split")
    order = np.random.default_rng([seed, 0]).permutation(count)
    return train.subset(np.sort(order[size:])), train.subset(np.sort(order[:size]))


def _limit(split: TextSplit, limit: int | None, seed: int, stream: int) -> TextSplit:
    if limit is None or len(split) <= limit:
        return split
    chosen = np.random.default_rng([seed, stream]).choice(len(split), size=limit, replace=False)
    return split.subset(np.sort(chosen))


# --------------------------------------------------------------------------- tokenising


@dataclass(frozen=True)
class TokenizedSplit:
    """Token ids of every example, concatenated (``offsets[i]:offsets[i+1]`` is example i)."""

    input_ids: np.ndarray  # int32, flat
    token_type_ids: np.ndarray | None  # int8, flat; None when the tokenizer makes none
    offsets: np.ndarray  # int64, n + 1
    labels: np.ndarray  # int64, n

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def nbytes(self) -> int:
        extra = self.token_type_ids.nbytes if self.token_type_ids is not None else 0
        return self.input_ids.nbytes + extra + self.offsets.nbytes + self.labels.nbytes


def tokenize_split(split: TextSplit, tokenizer: Any, max_length: int) -> TokenizedSplit:
    """Tokenise (truncating to ``max_length``, no padding) in chunks into flat arrays."""
    assert split.labels is not None
    ids: list[np.ndarray] = []
    types: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    for start in range(0, len(split), _TOKENIZE_CHUNK):
        columns = [column[start : start + _TOKENIZE_CHUNK] for column in split.texts]
        encoded = tokenizer(
            *columns, truncation=True, max_length=max_length, return_attention_mask=False
        )
        rows = encoded["input_ids"]
        lengths.append(np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)))
        ids.append(np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32))
        if encoded.get("token_type_ids") is not None:
            flat = itertools.chain.from_iterable(encoded["token_type_ids"])
            types.append(np.fromiter(flat, dtype=np.int8))
    offsets = np.zeros(len(split) + 1, dtype=np.int64)
    np.cumsum(np.concatenate(lengths), out=offsets[1:])
    return TokenizedSplit(
        input_ids=np.concatenate(ids),
        token_type_ids=np.concatenate(types) if types else None,
        offsets=offsets,
        labels=split.labels,
    )


def pad_batch(split: TokenizedSplit, index: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
    """Examples ``index`` padded to the longest of them (dynamic padding), as int64 arrays."""
    starts = split.offsets[index]
    lengths = split.offsets[index + 1] - starts
    width = int(lengths.max())
    columns = np.arange(width)
    mask = columns[None, :] < lengths[:, None]
    # Padding positions read some valid position (clipped), then get overwritten.
    positions = np.minimum(starts[:, None] + columns[None, :], len(split.input_ids) - 1)
    batch = {
        "input_ids": np.where(mask, split.input_ids[positions], pad_id).astype(np.int64),
        "attention_mask": mask.astype(np.int64),
    }
    if split.token_type_ids is not None:
        types = np.where(mask, split.token_type_ids[positions], 0)
        batch["token_type_ids"] = types.astype(np.int64)
    batch["labels"] = split.labels[index]
    return batch
