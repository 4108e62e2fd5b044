"""What one trial is and leaves behind: its record, its parameters, its files, its costs.

Modules: ``_keys`` (the user-attr keys and how a long epoch record is stored), ``_record`` (stored
trials and studies read back as typed data), ``_space`` (the search space as Optuna
distributions), ``_pareto`` (dominance and fronts), ``_files`` (a trial's files in the artifact
store), ``_costs`` (a model's size and latency, measured before training) and ``_resume`` (the
state that continues a killed trial exactly). Nothing here imports ``search.study``: the writer
that fills the record as a trial trains is ``search.study``'s.

``_costs`` and ``_resume`` load torch; their names load on first use, so reading a study
(``hpsearch list``, ``show``, ``export``) never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.trial._files import config_artifact_dir, study_artifact_dir, upload_trial_files
from search.trial._keys import (
    AUDITED_TRIAL,
    BEST_EPOCH,
    CONFIG,
    COST_KEYS,
    DATA_VERSION,
    DEVICE,
    ENQUEUE_INDEX,
    ENVIRONMENT,
    EPOCHS,
    EPOCHS_PART_BYTES,
    FINISHED,
    LATENCY,
    LATENCY_MS,
    NUM_PARAMS,
    REASON,
    RESUMED_FROM,
    SPARED_BY_COST,
    SPARED_WHILE_IMPROVING,
    TEST_PREFIX,
    TRAIN_SAMPLES_PER_S,
    TRAIN_SECONDS,
    TRAINING_SEED,
    WORKER,
    epochs_key,
    is_epochs_key,
    json_number,
    json_record,
    trial_epochs,
)
from search.trial._pareto import at_least_as_good, dominates, front_of, pareto_front
from search.trial._record import (
    Outcomes,
    StudyRecord,
    TrialRecord,
    best_trial,
    records,
    running_value,
    spared_while_improving,
    training_seed_of,
)
from search.trial._space import distributions, grid, sample_params

if TYPE_CHECKING:
    from search.trial._costs import Infeasible, measure_costs, objective_values
    from search.trial._resume import Chain, TrialResume, chain_of, enqueue_retry, snapshot

__all__ = [
    "AUDITED_TRIAL",
    "BEST_EPOCH",
    "CONFIG",
    "COST_KEYS",
    "DATA_VERSION",
    "DEVICE",
    "ENQUEUE_INDEX",
    "ENVIRONMENT",
    "EPOCHS",
    "EPOCHS_PART_BYTES",
    "FINISHED",
    "LATENCY",
    "LATENCY_MS",
    "NUM_PARAMS",
    "REASON",
    "RESUMED_FROM",
    "SPARED_BY_COST",
    "SPARED_WHILE_IMPROVING",
    "TEST_PREFIX",
    "TRAINING_SEED",
    "TRAIN_SAMPLES_PER_S",
    "TRAIN_SECONDS",
    "WORKER",
    "Chain",
    "Infeasible",
    "Outcomes",
    "StudyRecord",
    "TrialRecord",
    "TrialResume",
    "at_least_as_good",
    "best_trial",
    "chain_of",
    "config_artifact_dir",
    "distributions",
    "dominates",
    "enqueue_retry",
    "epochs_key",
    "front_of",
    "grid",
    "is_epochs_key",
    "json_number",
    "json_record",
    "measure_costs",
    "objective_values",
    "pareto_front",
    "records",
    "running_value",
    "sample_params",
    "snapshot",
    "spared_while_improving",
    "study_artifact_dir",
    "training_seed_of",
    "trial_epochs",
    "upload_trial_files",
]

# Names whose modules load torch: imported on first use (see the docstring).
_LAZY = {
    "Infeasible": "search.trial._costs",
    "measure_costs": "search.trial._costs",
    "objective_values": "search.trial._costs",
    "Chain": "search.trial._resume",
    "TrialResume": "search.trial._resume",
    "chain_of": "search.trial._resume",
    "enqueue_retry": "search.trial._resume",
    "snapshot": "search.trial._resume",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
