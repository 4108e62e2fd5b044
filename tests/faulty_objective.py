"""The toy objective with real faults on chosen parameter sets, for the reliability tests.

``objective: faulty_toy`` trains the toy Transformer like ``toy_transformer``, except:

- ``lr == BAD_DATA_LR``: the model's vocabulary leaves out the filler tokens, so the embedding
  meets token ids it does not have and torch raises ``IndexError`` (a data/model mismatch);
- ``lr == NAN_LR``: the classifier starts with infinite bias, so the loss is NaN from the first
  step (a diverged run).

Run as a script it is the ``hpsearch`` CLI with this objective registered. Worker processes
(started with ``spawn``) import the main script again as ``__mp_main__``, so they register it
too. Imported as a module (by a test, or to load the entry) it registers nothing. No product
code knows about this objective.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any, cast

import optuna

from objectives.specs import OBJECTIVES, TOY_TRANSFORMER
from search.config import StudyConfig

BAD_DATA_LR = 0.002
NAN_LR = 0.003

FAULTY_TOY = dataclasses.replace(
    TOY_TRANSFORMER, name="faulty_toy", entry="tests.faulty_objective:objective"
)
if __name__ in ("__main__", "__mp_main__"):  # the script, and its spawned workers
    cast(dict[str, Any], OBJECTIVES)[FAULTY_TOY.name] = FAULTY_TOY


def objective(trial: optuna.Trial, config: StudyConfig, device: str) -> float:
    import torch

    from objectives.toy_transformer import ToyTransformer, loop_data, make_task
    from objectives.trial_run import TrainingJob, run_trial
    from search.space import sample_params

    params = sample_params(trial, config)

    def build(seed: int) -> TrainingJob:
        splits = make_task(config.data_config(), config.study.seed)  # type: ignore[arg-type]
        torch.manual_seed(seed)
        vocab_size = splits.num_classes if params["lr"] == BAD_DATA_LR else splits.vocab_size
        model = ToyTransformer(
            vocab_size,
            splits.seq_len,
            splits.num_classes,
            params["hidden_dim"],
            params["num_heads"],
            params["num_layers"],
            params["dropout"],
        )
        if params["lr"] == NAN_LR:
            model.head.bias.data.fill_(math.inf)
        return TrainingJob(model=model, data=loop_data(splits, params["batch_size"], seed))

    return run_trial(trial, config, params, build, device)


if __name__ == "__main__":
    from search.cli import main

    sys.exit(main())
