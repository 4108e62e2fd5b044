"""``hpsearch delete``: remove a study and its artifacts, after asking."""

from __future__ import annotations

import sys
from typing import TextIO

from search.errors import ConfigError
from search.study._lifecycle import open_existing_study
from search.trial import study_artifact_dir
from storage import resume_files
from storage.artifacts import (
    all_artifacts,
    artifact_bytes,
    open_store,
    remove_files,
)
from storage.urls import parse_storage_url

EXIT_DELETED, EXIT_DECLINED = 0, 1


def delete_study(
    url: str,
    name: str,
    *,
    assume_yes: bool,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
) -> int:
    """Delete study ``name`` and its artifact files; ask on the terminal unless ``assume_yes``.

    Without ``assume_yes`` and without a terminal to ask on, nothing is deleted (ConfigError).
    Returns 0 when deleted, 1 when the answer was no.
    """
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    masked = parse_storage_url(url).masked
    study = open_existing_study(url, name)
    folder = study_artifact_dir(study, url)
    artifacts = all_artifacts(study)
    trials = len(study.get_trials(deepcopy=False))
    what = (
        f"study {name!r} ({trials} trials, {len(artifacts)} artifacts, "
        f"{artifact_bytes(artifacts, folder) / 1e6:.1f} MB in {folder}) from {masked}"
    )
    if not assume_yes:
        if stdin is None or stdin.closed or not stdin.isatty():
            raise ConfigError(
                f"not deleting {what}: no terminal to confirm on; pass --yes to delete it"
            )
        out.write(f"delete {what}? [y/N] ")
        out.flush()
        answer = stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("nothing deleted", file=out)
            return EXIT_DECLINED
    # The study first: once its metadata is gone nothing offers the files, then the files.
    study._storage.delete_study(study._study_id)
    removed = remove_files(open_store(folder, create=False), artifacts)
    removed += resume_files.remove_study(folder, name)
    print(f"deleted {what}; removed {removed} artifact files", file=out)
    return EXIT_DELETED
