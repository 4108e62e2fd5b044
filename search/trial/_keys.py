"""The trial record's keys: every user attr a trial and a study carry, and how a long one is stored.

What a trial records (other tools read these keys; they do not change):

- intermediate values: the study metric after each epoch (step = epoch, from 1);
- ``epochs``: one dict per finished epoch ``{epoch, train_loss, val_<metric>..., seconds}``.
  A long record is stored in parts of at most 60,000 bytes of JSON, because MySQL and MariaDB
  keep a user attr in a TEXT column (65,535 bytes): ``epochs`` holds the first epochs,
  ``epochs.1``, ``epochs.2``, ... the ones after. A record that fits (every trial of up to a few
  hundred epochs) is ``epochs`` alone, as it always was. ``trial_epochs`` joins the parts;
- ``best_epoch``; the best epoch's test metrics ``test_<metric>`` (recorded, never selected on);
- ``reason`` when a trial did not simply run all its epochs (pruned, early-stopped, diverged,
  failed, interrupted); ``note`` for a remark about its data (e.g. hidden test labels);
- ``training_seed`` when a retrain enqueued it with a seed of its own; ``enqueue_index`` for an
  enqueued parameter set; ``audited_trial`` in an audit's companion study;
  ``train_samples_per_s``; facts the objective reports (``label_names``);
- ``num_params`` (trainable parameters of the built model); ``latency_ms`` and ``latency``
  (``{median_ms, p10_ms, p90_ms, repeats}``) when the study optimises or constrains latency;
  ``train_seconds`` after training; ``spared_by_cost``: the last epoch at which a
  multi-objective trial's costs saved it from the pruner (``search/pruning/_multi_objective.py``);
- ``spared_while_improving``: the epoch at which the pruner would have cut the trial while it
  was still improving and ``pruner.args.spare`` let it run on (``search/pruning/_rules.py``);
- ``device`` (``cpu``, ``cuda:1``) and ``worker`` (the run's worker slot, from 0): where it
  trained;
- ``resumed_from: {trial, epoch, step}`` on a retry that continued where the trial it retries
  stopped (its ``epochs`` begin with that trial's own records, unchanged).

A study records ``config`` (the resolved config, password masked) and ``environment``, and facts
about its data (``majority_class_accuracy``, ``data_sizes``).

Values are stored at full precision (JSON cannot hold NaN or infinity: those become null);
rounding happens only for display, in ``search/formatting.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from optuna.trial import TrialState

# Trial user attrs.
EPOCHS = "epochs"
BEST_EPOCH = "best_epoch"
REASON = "reason"
NOTE = "note"
TRAINING_SEED = "training_seed"
AUDITED_TRIAL = "audited_trial"  # in an audit's companion study: the trial it trains again
ENQUEUE_INDEX = "enqueue_index"
TRAIN_SAMPLES_PER_S = "train_samples_per_s"
RESUMED_FROM = "resumed_from"  # a retry that continued a dead trial: {trial, epoch, step}
NUM_PARAMS = "num_params"
LATENCY_MS = "latency_ms"
LATENCY = "latency"  # {median_ms, p10_ms, p90_ms, repeats}
TRAIN_SECONDS = "train_seconds"
SPARED_BY_COST = "spared_by_cost"
SPARED_WHILE_IMPROVING = "spared_while_improving"  # epoch; see pruner.args.spare
COST_KEYS = (NUM_PARAMS, LATENCY_MS, LATENCY, TRAIN_SECONDS, SPARED_BY_COST)
DEVICE = "device"  # the device the trial trained on, as the run named it ("cpu", "cuda:1")
WORKER = "worker"  # the worker slot of the run that trained it (0-based)
# MySQL and MariaDB store a user attr's JSON in a TEXT column, at most 65,535 bytes; a bigger
# value fails to commit. 100 epochs of the toy objective take about 14,000 bytes, of BERT with F1
# and MCC about 21,000, so the epochs of a long trial go into parts below that limit, with room
# to spare. Each epoch rewrites only the last part, so a write never grows past this either.
EPOCHS_PART_BYTES = 60_000
# Study user attrs.
CONFIG = "config"
ENVIRONMENT = "environment"
MAJORITY_CLASS_ACCURACY = "majority_class_accuracy"
DATA_SIZES = "data_sizes"
DATA_VERSION = "data_version"  # the objective's data generator version (ObjectiveSpec)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
INFEASIBLE = "infeasible:"  # how the reason of a proposal stopped by `constraints:` begins
TEST_PREFIX = "test_"
VAL_PREFIX = "val_"


def json_number(value: Any) -> Any:
    """A value as a storage can hold it: non-finite floats become None, nothing is rounded."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_record(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: json_number(value) for key, value in record.items()}


def epochs_key(part: int) -> str:
    """The user attr holding part ``part`` of the epochs: ``epochs``, ``epochs.1``, ..."""
    return EPOCHS if part == 0 else f"{EPOCHS}.{part}"


def is_epochs_key(key: str) -> bool:
    return key == EPOCHS or (key.startswith(EPOCHS + ".") and key[len(EPOCHS) + 1 :].isdigit())


def trial_epochs(user_attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A trial's epoch records from its user attrs, the parts joined in order.

    Reads every trial ever stored: one written before parts existed has ``epochs`` only.
    """
    epochs: list[dict[str, Any]] = []
    part = 0
    while records_of_part := user_attrs.get(epochs_key(part)):
        epochs.extend(records_of_part)
        part += 1
    return epochs


# --------------------------------------------------------------------------- writing
