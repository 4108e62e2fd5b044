"""``hpsearch export``: the best trial (or any complete trial, or a multi-objective study's
whole Pareto front) as a study config that trains it again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.config import config_from_dict, dump_yaml
from search.errors import StudyError
from search.trial import StudyRecord, TrialRecord, best_trial, pareto_front, study_artifact_dir
from storage.artifacts import checkpoint_of, extract_checkpoint, open_store
from storage.urls import mask_password


def exported_config(
    study: optuna.Study, storage_url: str | None = None, trial: int | None = None
) -> dict[str, Any]:
    """The exported config as plain data (a valid study config plus a ``best:`` section).

    The best parameters (or trial ``trial``'s) move into ``fixed``, ``search`` and ``enqueue``
    empty, ``study.name`` becomes ``<name>-best`` (``<name>-trial-N``) and ``n_trials`` 1. The
    pruner is switched off: the point of the file is to train the winner to its full length,
    not to race it against nothing. A study with several metrics has no single best trial:
    name one of its Pareto front (``trial``) or use :func:`exported_front`.
    """
    stored_record = StudyRecord.from_study(study)
    stored = stored_record.config
    if not stored:
        raise StudyError(
            f"study {study.study_name!r} holds no hpsearch config (was it made by hpsearch?); "
            "cannot export it"
        )
    best = chosen_trial(study, stored_record, trial)
    config = _copy(stored)
    fixed = dict(config.get("fixed") or {})
    fixed.update(best.params)
    config["fixed"] = fixed
    config["search"] = {}
    config["enqueue"] = []
    suffix = "best" if trial is None else f"trial-{best.number}"
    config["study"]["name"] = f"{study.study_name}-{suffix}"
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
        "value": best.values[0],
        "metric": stored_record.metric,
        **(
            {"values": dict(zip(stored_record.metrics, best.values, strict=True))}
            if stored_record.multi_objective
            else {}
        ),
        "params": dict(best.params),
        "best_epoch": record.best_epoch,
        "epochs_run": record.epochs_run,
        # val_loss, val_accuracy, ..., test_loss, test_accuracy, ...: the task's own metrics
        **{k: v for k, v in summary.items() if k.startswith(("val_", "test_"))},
    }
    # The result must itself be a valid config: check it the way `run` will.
    config_from_dict(config, "exported config")
    return config


def chosen_trial(study: optuna.Study, stored: StudyRecord, number: int | None) -> FrozenTrial:
    """Trial ``number`` (it must be complete), or the best trial of a single-metric study."""
    if number is not None:
        found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
        if not found:
            raise StudyError(f"study {study.study_name!r} has no trial {number}")
        if found[0].state != TrialState.COMPLETE:
            raise StudyError(
                f"trial {number} of study {study.study_name!r} is {found[0].state.name}, not "
                "COMPLETE; export a complete trial (`hpsearch show` lists them)"
            )
        return found[0]
    if stored.multi_objective:
        front = pareto_front(study)
        if not front:
            raise StudyError(
                f"study {study.study_name!r} has no complete trial yet; run it first, then export"
            )
        raise StudyError(
            f"study {study.study_name!r} has several metrics ({', '.join(stored.metrics)}) and "
            f"no single best trial: its Pareto front is trials "
            f"{', '.join(str(t.number) for t in front)}; export one with --trial N, or all "
            "with --pareto -o DIR"
        )
    best = best_trial(study)
    if best is None:
        raise StudyError(
            f"study {study.study_name!r} has no complete trial yet; run it first "
            "(`hpsearch run CONFIG`), then export"
        )
    return best


def exported_front(study: optuna.Study, storage_url: str | None = None) -> list[dict[str, Any]]:
    """One exported config per member of the Pareto front (a single-metric study: the best)."""
    stored = StudyRecord.from_study(study)
    members = pareto_front(study) if stored.multi_objective else []
    if not stored.multi_objective:
        best = best_trial(study)
        members = [best] if best is not None else []
    if not members:
        raise StudyError(
            f"study {study.study_name!r} has no complete trial yet; run it first, then export"
        )
    return [exported_config(study, storage_url, trial=t.number) for t in members]


def write_front(configs: list[dict[str, Any]], folder: Path) -> list[Path]:
    """``trial-N.yaml`` per exported config in ``folder`` (new or empty)."""
    if folder.exists() and not folder.is_dir():
        raise StudyError(f"--pareto -o {folder}: is a file; name a folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise StudyError(f"--pareto -o {folder}: is not empty; name a new or empty folder")
    paths = []
    for config in configs:
        path = folder / f"trial-{config['best']['trial']}.yaml"
        write_export(config, path)
        paths.append(path)
    return paths


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


def export_model(
    study: optuna.Study, storage_url: str, model_dir: Path, trial: int | None = None
) -> int:
    """Unpack the best trial's (or trial ``trial``'s) saved model into ``model_dir``; return the
    trial number.

    The model is in its library's own form (``save_pretrained`` for BERT, ``model.pt`` plus
    ``config.json`` for the toy model). It exists when the study ran with
    ``artifacts.keep_checkpoints: best`` (the default) or ``all``.
    """
    best = chosen_trial(study, StudyRecord.from_study(study), trial)
    artifact = checkpoint_of(study, best)
    if artifact is None:
        raise StudyError(
            f"study {study.study_name!r} holds no saved model of "
            f"{'its best trial' if trial is None else 'trial'} {best.number} "
            + (
                "(keep_checkpoints: best keeps only the best first-metric trial's model; run "
                "with keep_checkpoints: all to keep every front member's); "
                if StudyRecord.from_study(study).multi_objective
                else "(artifacts.keep_checkpoints was none, or the study predates checkpoints); "
            )
            + "export without --model-dir and train it again with `hpsearch run` on that file"
        )
    if model_dir.exists() and not model_dir.is_dir():
        raise StudyError(f"--model-dir {model_dir} is a file; name a folder")
    if model_dir.is_dir() and any(model_dir.iterdir()):
        raise StudyError(f"--model-dir {model_dir} is not empty; name a new or empty folder")
    store = open_store(study_artifact_dir(study, storage_url), create=False)
    extract_checkpoint(store, artifact, model_dir)
    return best.number
