"""The toy objective with real faults on chosen parameter sets, for the reliability tests.

``objective: faulty_toy`` trains the toy Transformer like ``toy_transformer``, except:

- ``lr == BAD_DATA_LR``: the model's vocabulary leaves out the filler tokens, so the embedding
  meets token ids it does not have and torch raises ``IndexError`` (a data/model mismatch);
- ``lr == NAN_LR``: the classifier starts with infinite bias, so the loss is NaN from the first
  step (a diverged run);
- ``lr == OOM_LR``: the forward pass asks the allocator for far more memory than any machine
  has (proportional to the batch size, as activations are), and torch's CPU allocator refuses:
  a real out-of-memory error.

Run as a script it is the ``hpsearch`` CLI with this objective registered (through the public
``register_objective``). Worker processes (started with ``spawn``) import the main script again
as ``__mp_main__``, so they register it too. Imported as a module (by a test, or to load the
builder) it registers nothing. No product code knows about this objective.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

from objectives.loop import TrainingJob
from objectives.registry import register_objective
from objectives.specs import TOY_TRANSFORMER, BuildRequest, ToyDataConfig

BAD_DATA_LR = 0.002
NAN_LR = 0.003
OOM_LR = 0.004

FAULTY_TOY = dataclasses.replace(
    TOY_TRANSFORMER, name="faulty_toy", builder="tests.faulty_objective:build"
)
if __name__ in ("__main__", "__mp_main__"):  # the script, and its spawned workers
    register_objective(FAULTY_TOY)


def build(request: BuildRequest) -> TrainingJob:
    import torch

    from objectives.toy_transformer import ToyTransformer, loop_data, make_task

    params = request.params
    assert isinstance(request.data, ToyDataConfig)
    splits = make_task(request.data, request.data_seed)
    torch.manual_seed(request.seed)
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
    if params["lr"] == OOM_LR:
        model = memory_hungry(model)
    return TrainingJob(model=model, data=loop_data(splits, params["batch_size"], request.seed))


def memory_hungry(model: Any) -> Any:
    """The model behind a forward pass that runs out of memory (torch imported on demand)."""
    import torch

    class MemoryHungry(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            # 2**50 bytes (a petabyte) per sequence of the batch.
            torch.empty(input_ids.shape[0] * 2**50, dtype=torch.uint8)
            return self.inner(input_ids)

    return MemoryHungry(model)


if __name__ == "__main__":
    from search.cli import main

    sys.exit(main())
