"""``hpsearch export``: the best trial as a study config that trains the winner again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from search.config import config_from_dict, dump_yaml
from search.errors import StudyError
from search.record import StudyRecord, TrialRecord, best_trial
from search.trial_files import study_artifact_dir
from storage.artifacts import checkpoint_of, extract_checkpoint, open_store
from storage.urls import mask_password


def exported_config(study: optuna.Study, storage_url: str | None = None) -> dict[str, Any]:
    """The exported config as plain data (a valid study config plus a ``best:`` section).

    The best parameters move into ``fixed``, ``search`` and ``enqueue`` empty, ``study.name``
    becomes ``<name>-best`` and ``n_trials`` 1. The pruner is switched off: the point of the
    file is to train the winner to its full length, not to race it against nothing.
    """
    stored_record = StudyRecord.from_study(study)
    stored = stored_record.config
    if not stored:
        raise StudyError(
            f"study {study.study_name!r} holds no hpsearch config (was it made by hpsearch?); "
            "cannot export it"
        )
    best = best_trial(study)
    if best is None:
        raise StudyError(
            f"study {study.study_name!r} has no complete trial yet; run it first "
            "(`hpsearch run CONFIG`), then export"
        )
    config = _copy(stored)
    fixed = dict(config.get("fixed") or {})
    fixed.update(best.params)
    config["fixed"] = fixed
    config["search"] = {}
    config["enqueue"] = []
    config["study"]["name"] = f"{study.study_name}-best"
    config["study"]["n_trials"] = 1
    config["study"]["timeout"] = None
    if storage_url is not None:
        config["study"]["storage"] = mask_password(storage_url)
    config["study"]["storage"] = _strip_password(config["study"]["storage"])
    config["pruner"] = {"name": "none", "args": {}}
    config.pop("retrain", None)
    record = TrialRecord.from_trial(best)
    summary = record.summary()
    config["best"] = {
        "study": study.study_name,
        "trial": best.number,
        "value": best.value,
        "metric": stored_record.metric,
        "params": dict(best.params),
        "best_epoch": record.best_epoch,
        "epochs_run": record.epochs_run,
        # val_loss, val_accuracy, ..., test_loss, test_accuracy, ...: the task's own metrics
        **{k: v for k, v in summary.items() if k.startswith(("val_", "test_"))},
    }
    # The result must itself be a valid config: check it the way `run` will.
    config_from_dict(config, "exported config")
    return config


def export_text(config: dict[str, Any]) -> str:
    """The exported config as YAML, with a header saying where it came from."""
    return (
        f"# Exported by hpsearch from study {config['best']['study']!r}, trial "
        f"{config['best']['trial']}.\n# `hpsearch run <this file>` trains this configuration "
        f"again in study {config['study']['name']!r}.\n" + dump_yaml(config)
    )


def write_export(config: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(export_text(config), encoding="utf-8")


def _strip_password(url: str) -> str:
    """Drop the (masked) password entirely: ``user:***@`` -> ``user@``."""
    return url.replace(":***@", "@")


def _copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def export_model(study: optuna.Study, storage_url: str, model_dir: Path) -> int:
    """Unpack the best trial's saved model into ``model_dir``; return the trial number.

    The model is in its library's own form (``save_pretrained`` for BERT, ``model.pt`` plus
    ``config.json`` for the toy model). It exists when the study ran with
    ``artifacts.keep_checkpoints: best`` (the default) or ``all``.
    """
    best = best_trial(study)
    if best is None:
        raise StudyError(
            f"study {study.study_name!r} has no complete trial yet; run it first, then export"
        )
    artifact = checkpoint_of(study, best)
    if artifact is None:
        raise StudyError(
            f"study {study.study_name!r} holds no saved model of its best trial {best.number} "
            "(artifacts.keep_checkpoints was none, or the study predates checkpoints); export "
            "without --model-dir and train the winner again with `hpsearch run` on that file"
        )
    if model_dir.exists() and not model_dir.is_dir():
        raise StudyError(f"--model-dir {model_dir} is a file; name a folder")
    if model_dir.is_dir() and any(model_dir.iterdir()):
        raise StudyError(f"--model-dir {model_dir} is not empty; name a new or empty folder")
    store = open_store(study_artifact_dir(study, storage_url), create=False)
    extract_checkpoint(store, artifact, model_dir)
    return best.number
