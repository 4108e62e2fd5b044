"""Resume-state files: one per unfinished trial chain, written atomically, under the artifacts.

A state lives at ``<artifact dir>/resume/<study>/trial-<N>.pt``, where ``N`` is the number of
the first trial of a chain of retries (a retry continues the file of the trial it retries). It
is written to a temporary name in the same folder, flushed to disk and moved into place with
``os.replace``, so a reader sees the previous complete file or the new complete file, never a
torn one; a writer killed half-way leaves only its temporary file, which the next write of the
same chain (or :func:`remove`) cleans up. What goes in the file is the caller's business
(``write`` hands it a binary stream).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from storage.errors import StorageError

RESUME_FOLDER = "resume"
SUFFIX = ".pt"
PARTIAL = ".partial"


def resume_path(artifact_dir: Path, study_name: str, chain: int) -> Path:
    """Where the state of the chain that started with trial ``chain`` lives."""
    return artifact_dir / RESUME_FOLDER / _folder_name(study_name) / f"trial-{chain}{SUFFIX}"


def _folder_name(study_name: str) -> str:
    # Study names may hold any character ("toy/audit"); keep them readable and unique.
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", study_name)[:80]
    if safe == study_name:
        return safe
    return f"{safe}-{hashlib.sha256(study_name.encode()).hexdigest()[:8]}"


def write(path: Path, fill: Callable[[BinaryIO], None]) -> int:
    """Write ``path`` atomically with what ``fill`` writes to the stream; return its size."""
    partial = path.with_name(path.name + PARTIAL)
    try:
        for attempt in range(3):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                stream = open(partial, "wb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                # Another worker removed the (then empty) folder between mkdir and open.
                if attempt == 2:
                    raise
                continue
            with stream:
                fill(stream)
                stream.flush()
                os.fsync(stream.fileno())
            break
        os.replace(partial, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise StorageError(
            f"cannot write the resume state {path}: {e.strerror or e}; free disk space or set "
            "artifacts.dir to a writable folder (or artifacts.resume: false)"
        ) from e
    return path.stat().st_size


def remove(path: Path) -> None:
    """Delete a state and any temporary file beside it (missing files are fine), and the
    study's and the resume folder when that left them empty."""
    for candidate in (path, path.with_name(path.name + PARTIAL)):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
    _remove_if_empty(path.parent)


def remove_study(artifact_dir: Path, study_name: str) -> int:
    """Delete every state of one study (``hpsearch delete``); return how many files went."""
    folder = resume_path(artifact_dir, study_name, 0).parent
    files = sorted(p for p in folder.glob("trial-*") if p.is_file()) if folder.is_dir() else []
    for file in files:
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
    _remove_if_empty(folder)
    return len(files)


def _remove_if_empty(study_folder: Path) -> None:
    """The study's folder, then the resume folder, each only when empty (other states stay)."""
    for folder in (study_folder, study_folder.parent):
        try:
            folder.rmdir()
        except OSError:
            break
