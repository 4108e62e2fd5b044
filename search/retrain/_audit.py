"""``hpsearch audit``: train a sample of a study's pruned and early-stopped trials again.

A random sample (fixed by the study's seed) of a study's pruned and early-stopped trials is
trained again to full length, with the same parameters and the same training seed, no pruner
and no early stopping, in a companion
study ``<name>/audit`` (resumable like every study: rerunning trains only what is missing).
What they reached is read back and judged by ``search/readout/_audit.py``.
"""

from __future__ import annotations

import random
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from objectives.command import NAME as COMMAND_OBJECTIVE
from search.config import StudyConfig, config_differences, config_from_dict, describe, load_config
from search.errors import ConfigError, StudyError
from search.formatting import number
from search.readout import AUDIT_SUFFIX, AuditResult, audit_result, by_audited_trial, stopped_trials
from search.study import companion_config, open_existing_study, open_study, run_queued
from search.trial import AUDITED_TRIAL, TRAINING_SEED, StudyRecord, TrialRecord
from storage.urls import mask_password

DEFAULT_AUDIT_TRIALS = 10


def sample(candidates: Sequence[TrialRecord], count: int, seed: int) -> list[TrialRecord]:
    """A random sample of ``count`` trials fixed by ``seed`` (all when fewer), by number.

    Random rather than evenly spaced by number: an even spacing falls mostly on the sampler's
    random start-up trials and rarely on the model-guided ones. The same seed (the study's)
    draws the same sample, so a rerun of the audit trains only what is missing.
    """
    ordered = sorted(candidates, key=lambda r: r.number)
    if count >= len(ordered):
        return ordered
    chosen = random.Random(seed).sample(range(len(ordered)), count)
    return [ordered[index] for index in sorted(chosen)]


def _command_from_file(study_name: str, stored: Any, config_path: str | None) -> dict[str, Any]:
    """The command to audit with: the config file's, which must be the study's own."""
    if config_path is None:
        raise ConfigError(
            f"study {study_name!r} runs your own command, and a command is never run from what "
            "a storage says: pass its config file with --config FILE"
        )
    command = load_config(config_path).command
    if command is None:
        raise ConfigError(f"{config_path}: not a command config (objective: command)")
    mine = command.model_dump(mode="json")
    if mine != stored:
        before = stored if isinstance(stored, dict) else {}
        changed = sorted(key for key in mine if before.get(key) != mine[key])
        raise ConfigError(
            f"{config_path}: command.{', command.'.join(changed)} differs from study "
            f"{study_name!r}'s; audit with the config file the study ran"
        )
    return mine


def audit_config(source: StudyConfig, name: str, storage: str, count: int) -> StudyConfig:
    """The companion study's config: full length (no pruner, no early stopping), same seed."""
    return companion_config(
        source,
        name=name,
        storage=storage,
        n_trials=count,
        max_consecutive_failures=max(count, 1),
        fixed={"early_stopping_patience": None},
    )


def run_audit(
    study_name: str,
    storage: str,
    *,
    trials: int = DEFAULT_AUDIT_TRIALS,
    device: str = "cpu",
    workers: int = 1,
    out: TextIO | None = None,
    config_path: str | None = None,
) -> AuditResult:
    """Audit up to ``trials`` pruned / early-stopped trials of ``study_name``; resumable.

    A study of ``objective: command`` needs ``config_path``, its config file: the audit runs the
    command written there (it must equal the study's), never one read from the storage.
    """
    stream = out or sys.stdout
    if trials < 1:
        raise ConfigError(f"--trials: needs at least 1 trial to audit, got {trials}")
    source = open_existing_study(storage, study_name)
    stored = StudyRecord.from_study(source)
    if not stored.has_config:
        raise StudyError(f"study {study_name!r} holds no hpsearch config; cannot audit it")
    raw = {**stored.config, "study": {**stored.config["study"], "storage": storage}}
    if stored.config.get("objective") == COMMAND_OBJECTIVE:
        raw["command"] = _command_from_file(study_name, stored.config.get("command"), config_path)
    source_config = config_from_dict(raw, f"study {study_name!r}")
    all_trials = source.get_trials(deepcopy=False)
    candidates = stopped_trials(all_trials)
    chosen = sample(candidates, trials, source_config.study.seed)
    config = audit_config(source_config, study_name + AUDIT_SUFFIX, storage, len(chosen))
    companion = _open_companion(config)
    done = by_audited_trial(companion.get_trials(deepcopy=False))
    queued = {
        t.user_attrs.get(AUDITED_TRIAL)
        for t in companion.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    }
    todo = [r for r in chosen if r.number not in done]
    for record in todo:
        if record.number not in queued:
            attrs: dict[str, Any] = {AUDITED_TRIAL: record.number}
            if record.training_seed is not None:
                attrs[TRAINING_SEED] = record.training_seed
            companion.enqueue_trial(record.params, user_attrs=attrs)
    stream.write(
        f"audit of {study_name!r}: {len(candidates)} pruned or early-stopped trials, auditing "
        f"{len(chosen)} in study {config.study.name!r} on {mask_password(storage)}: "
        f"{len(chosen) - len(todo)} done"
        + (f", training {len(todo)} to full length" if todo else ", nothing to train")
        + "\n"
    )
    stream.flush()
    run_queued(companion, config, device=device, workers=workers, on_trial=_AuditPrinter(stream))
    return audit_result(source, companion, chosen, candidates)


def _open_companion(config: StudyConfig) -> optuna.Study:
    study, created = open_study(config, allow_config_change=True)
    if not created:
        stored = StudyRecord.from_study(study).config
        differences = config_differences(stored, config.to_dict()) if stored else []
        if differences:
            raise ConfigError(
                f"study {config.study.name!r} holds an audit of another configuration "
                f"({describe(differences, limit=4)}); delete it first "
                f"(`hpsearch delete '{config.study.name}'`)"
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A trial whose process was killed is failed here and re-queued with its parameters.
        optuna.storages.fail_stale_trials(study)
    return study


@dataclass
class _AuditPrinter:
    """Optuna callback: one line per audited trial."""

    stream: TextIO | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        out = self.stream or sys.stdout
        record = TrialRecord.from_trial(trial)
        source = trial.user_attrs.get(AUDITED_TRIAL)
        value = number(record.value, "no value")
        out.write(
            f"  trial {source} at full length: {trial.state.name} value {value}, best epoch "
            f"{record.best_epoch}/{record.epochs_run}\n"
        )
        out.flush()
