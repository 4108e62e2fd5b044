"""Trial and study artifacts in Optuna's artifact store: files per trial, model checkpoints.

The search layer renders each finished trial's per-epoch table and learning curves and attaches
them here (:func:`upload_files`) while the trial still runs, so they appear under the trial in
optuna-dashboard. This module stores, lists and withdraws files; it knows nothing of what a
trial records. The artifact files live in a folder
(:class:`~optuna.artifacts.FileSystemArtifactStore`) beside the SQLite file by default; the
storage holds only their metadata (system attrs ``artifacts:<id>``).

Checkpoints follow ``artifacts.keep_checkpoints``:

- ``best`` (default): only the current best trial's model, as a *study* artifact
  ``best-model-trial-<N>.tar.gz``. Optuna freezes a finished trial's attributes, so a checkpoint
  that must disappear later cannot hang on its trial; a study artifact can be withdrawn.
- ``all``: every complete trial keeps ``model-trial-<N>.tar.gz`` as a trial artifact.
- ``none``: no checkpoints.

A withdrawn artifact's metadata is overwritten with JSON ``null`` before its file is removed (the
same tombstone optuna-dashboard writes when one deletes an artifact there), so the dashboard never
lists a download whose file is gone. Listings here skip tombstones.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial, TrialState

from storage.errors import StorageError
from storage.urls import default_artifact_dir, parse_storage_url

ARTIFACTS_ATTR_PREFIX = "artifacts:"  # Optuna's key prefix for artifact metadata
# optuna-dashboard's older per-trial keys in the study's system attrs; deleted with the study.
DASHBOARD_ARTIFACTS_ATTR_PREFIX = "dashboard:artifacts:"
BEST_CHECKPOINT_PREFIX = "best-model-trial-"
TRIAL_CHECKPOINT_PREFIX = "model-trial-"
CHECKPOINT_SUFFIX = ".tar.gz"
KEEP_CHECKPOINTS = ("best", "none", "all")
# The value a trial holds now (its stored value, or a running trial's best so far), or None.
ValueOf = Callable[[FrozenTrial], float | None]


@dataclass(frozen=True)
class Artifact:
    """One artifact's metadata, as Optuna stores it."""

    artifact_id: str
    filename: str
    mimetype: str
    encoding: str | None
    trial_number: int | None  # None for a study artifact


def artifact_dir(configured: str | None, storage_url: str) -> Path:
    """The artifact folder: ``artifacts.dir`` when set, else beside the SQLite file."""
    if configured:
        return Path(configured)
    return default_artifact_dir(parse_storage_url(storage_url))


def open_store(directory: Path, *, create: bool) -> FileSystemArtifactStore:
    """A filesystem artifact store on ``directory`` (made when ``create``)."""
    if create:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"cannot create the artifact folder {directory}: {e.strerror}; set a writable "
                "folder with artifacts.dir in the config (or --set artifacts.dir=PATH)"
            ) from e
    elif directory.exists() and not directory.is_dir():
        raise StorageError(f"artifact path {directory} is not a folder; set artifacts.dir")
    return FileSystemArtifactStore(directory)


# --------------------------------------------------------------------------- listing


def _metas(system_attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    metas = []
    for key, value in system_attrs.items():
        if not key.startswith(prefix):
            continue
        meta = json.loads(value) if isinstance(value, str) else value
        if isinstance(meta, dict) and "artifact_id" in meta:  # skip tombstones (null)
            metas.append(meta)
    return metas


def _artifact(meta: dict[str, Any], trial_number: int | None) -> Artifact:
    return Artifact(
        artifact_id=meta["artifact_id"],
        filename=meta["filename"],
        mimetype=meta.get("mimetype", "application/octet-stream"),
        encoding=meta.get("encoding"),
        trial_number=trial_number,
    )


def study_artifacts(study: optuna.Study) -> list[Artifact]:
    """The live artifacts attached to the study itself (not to its trials)."""
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return [_artifact(m, None) for m in _metas(attrs, ARTIFACTS_ATTR_PREFIX)]


def trial_artifacts(study: optuna.Study, trial: FrozenTrial) -> list[Artifact]:
    """The live artifacts attached to one trial."""
    attrs = study._storage.get_trial_system_attrs(trial._trial_id)
    return [_artifact(m, trial.number) for m in _metas(attrs, ARTIFACTS_ATTR_PREFIX)]


def all_artifacts(study: optuna.Study) -> list[Artifact]:
    """Every live artifact of a study: the study's own, then each trial's."""
    found = study_artifacts(study)
    study_attrs = study._storage.get_study_system_attrs(study._study_id)
    for trial in study.get_trials(deepcopy=False):
        found.extend(trial_artifacts(study, trial))
        legacy = f"{DASHBOARD_ARTIFACTS_ATTR_PREFIX}{trial._trial_id}:"
        found.extend(_artifact(m, trial.number) for m in _metas(study_attrs, legacy))
    return found


def artifact_bytes(artifacts: Sequence[Artifact], directory: Path) -> int:
    """Total size of the artifacts' files in ``directory`` (missing files count 0)."""
    total = 0
    for artifact in artifacts:
        path = directory / artifact.artifact_id
        if path.is_file():
            total += path.stat().st_size
    return total


# --------------------------------------------------------------------------- per-trial files


def upload_files(trial: optuna.Trial, directory: Path, files: Sequence[Path]) -> None:
    """Attach files (e.g. an epoch table and its plot) to a still running trial."""
    store = open_store(directory, create=True)
    for path in files:
        upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)


# --------------------------------------------------------------------------- checkpoints


def _checkpoint_trial(filename: str, prefix: str) -> int | None:
    match = re.fullmatch(re.escape(prefix) + r"(\d+)" + re.escape(CHECKPOINT_SUFFIX), filename)
    return int(match.group(1)) if match else None


def best_checkpoints(study: optuna.Study) -> list[tuple[Artifact, int]]:
    """The study's ``best-model-trial-<N>`` artifacts with their trial numbers."""
    found = []
    for artifact in study_artifacts(study):
        number = _checkpoint_trial(artifact.filename, BEST_CHECKPOINT_PREFIX)
        if number is not None:
            found.append((artifact, number))
    return found


def checkpoint_of(study: optuna.Study, trial: FrozenTrial) -> Artifact | None:
    """The saved model of ``trial``, whichever ``keep_checkpoints`` mode saved it."""
    for artifact, number in best_checkpoints(study):
        if number == trial.number:
            return artifact
    for artifact in trial_artifacts(study, trial):
        if _checkpoint_trial(artifact.filename, TRIAL_CHECKPOINT_PREFIX) == trial.number:
            return artifact
    return None


def _archive(save_model: Callable[[Path], None], scratch: Path, name: str) -> Path:
    model_dir = scratch / "model"
    model_dir.mkdir()
    save_model(model_dir)
    archive = scratch / name
    # Weights barely compress; level 1 keeps a BERT-sized archive to seconds, not a minute.
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for item in sorted(model_dir.iterdir()):
            tar.add(item, arcname=item.name)
    return archive


def _better(a: float, b: float, maximize: bool) -> bool:
    return a > b if maximize else a < b


def save_checkpoint(
    trial: optuna.Trial,
    directory: Path,
    keep: str,
    value: float,
    save_model: Callable[[Path], None],
    value_of: ValueOf,
) -> str | None:
    """Save a finishing trial's model per ``keep``; return the artifact id, or None if not kept.

    Called while the trial still runs, after training; ``value`` is what the trial will return.
    ``value_of`` reads another trial's value as it stands (the search layer knows where a
    running trial keeps its best epoch).
    With ``best`` the model is uploaded only when it beats every complete trial (and every
    other trial now holding the best checkpoint), and then superseded checkpoints are withdrawn.
    Workers finishing at once may both upload; the last withdrawal keeps only the best.
    """
    if keep not in KEEP_CHECKPOINTS:
        raise ValueError(f"keep_checkpoints must be one of {KEEP_CHECKPOINTS}, got {keep!r}")
    if keep == "none" or not math.isfinite(value):
        return None
    store = open_store(directory, create=True)
    study = trial.study
    # The training metric decides (the first of several in a multi-objective study).
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    artifact_id = None
    with tempfile.TemporaryDirectory(prefix="hpsearch-checkpoint-") as scratch:
        if keep == "all":
            name = f"{TRIAL_CHECKPOINT_PREFIX}{trial.number}{CHECKPOINT_SUFFIX}"
            archive = _archive(save_model, Path(scratch), name)
            return upload_artifact(
                artifact_store=store, file_path=str(archive), study_or_trial=trial
            )
        rivals = [
            v
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values and (v := t.values[0]) is not None
        ]
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        for _, number in best_checkpoints(study):
            holder = by_number.get(number)
            v = value_of(holder) if holder is not None else None
            if v is not None and number != trial.number:
                rivals.append(v)
        if all(_better(value, v, maximize) for v in rivals):
            name = f"{BEST_CHECKPOINT_PREFIX}{trial.number}{CHECKPOINT_SUFFIX}"
            archive = _archive(save_model, Path(scratch), name)
            artifact_id = upload_artifact(
                artifact_store=store, file_path=str(archive), study_or_trial=study
            )
    withdraw_superseded(study, store, value_of, own=(trial.number, value))
    return artifact_id


def withdraw_superseded(
    study: optuna.Study,
    store: FileSystemArtifactStore,
    value_of: ValueOf,
    own: tuple[int, float] | None = None,
) -> list[int]:
    """Withdraw every ``best-model`` checkpoint but the best one; return the withdrawn trials.

    ``own`` gives the value of a trial that is finishing now (not yet COMPLETE in the storage).
    Checkpoints of trials that failed or were pruned after saving are withdrawn too.
    """
    # The training metric decides (the first of several in a multi-objective study).
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    valued: list[tuple[Artifact, int, float]] = []
    stale: list[tuple[Artifact, int]] = []
    for artifact, number in best_checkpoints(study):
        holder = by_number.get(number)
        value = own[1] if own is not None and own[0] == number else None
        if value is None and holder is not None:
            value = value_of(holder)
        if value is None or not math.isfinite(value):
            # A RUNNING holder without a best epoch cannot exist; other states are stale.
            stale.append((artifact, number))
        else:
            valued.append((artifact, number, value))
    keep: tuple[Artifact, int, float] | None = None
    for candidate in sorted(valued, key=lambda c: c[1]):  # ties: the lower trial number wins
        if keep is None or _better(candidate[2], keep[2], maximize):
            keep = candidate
    withdrawn = []
    for artifact, number, *_ in [*stale, *(c for c in valued if c is not keep)]:
        withdraw_study_artifact(study, store, artifact.artifact_id)
        withdrawn.append(number)
    return withdrawn


def withdraw_study_artifact(
    study: optuna.Study, store: FileSystemArtifactStore, artifact_id: str
) -> None:
    """Tombstone a study artifact's metadata, then remove its file (another worker may have)."""
    study._storage.set_study_system_attr(
        study._study_id, ARTIFACTS_ATTR_PREFIX + artifact_id, json.dumps(None)
    )
    # Another worker may have withdrawn it at the same moment: the goal is reached either way.
    with contextlib.suppress(ArtifactNotFound):
        store.remove(artifact_id)


def extract_checkpoint(store: FileSystemArtifactStore, artifact: Artifact, target: Path) -> None:
    """Unpack a checkpoint archive into ``target`` (made if missing)."""
    try:
        reader = store.open_reader(artifact.artifact_id)
    except ArtifactNotFound as e:
        raise StorageError(
            f"the file of artifact {artifact.filename} ({artifact.artifact_id}) is missing from "
            "the artifact folder; pass the --storage the study was run with, or retrain with "
            "`hpsearch export` + `hpsearch run`"
        ) from e
    target.mkdir(parents=True, exist_ok=True)
    with reader, tarfile.open(fileobj=reader, mode="r:gz") as tar:
        tar.extractall(target, filter="data")


def remove_files(store: FileSystemArtifactStore, artifacts: Sequence[Artifact]) -> int:
    """Remove the artifacts' files (e.g. a deleted study's); return how many were removed."""
    removed = 0
    for artifact in artifacts:
        try:
            store.remove(artifact.artifact_id)
            removed += 1
        except ArtifactNotFound:
            continue  # already gone: nothing to remove
    return removed


def copy_file(store: FileSystemArtifactStore, artifact: Artifact, target: Path) -> None:
    """Copy one artifact's file to ``target``."""
    with store.open_reader(artifact.artifact_id) as reader, target.open("wb") as out:
        shutil.copyfileobj(reader, out)
