"""The toy objective's training as a user's own script, for the command-trial overhead figure.

It builds the same task and model as ``objective: toy_transformer`` (the project's builder and
training loop) from ``--name=value`` arguments and reports each epoch as an ``HPSEARCH`` line,
so a command trial and a built-in trial do exactly the same training.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def typed(value: str, kind: type) -> Any:
    if value == "None":
        return None
    if kind is bool:
        return value == "true"
    return kind(value)


def main(argv: list[str]) -> None:
    import torch

    from objectives.loop import EpochRecord, LoopSettings, train
    from objectives.registry import get_objective
    from objectives.specs import BuildRequest

    torch.set_num_threads(1)  # as the built-in toy trial (its spec caps it at one thread)
    spec = get_objective("toy_transformer")
    given = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    seed = int(given.pop("seed", "0"))
    params = {name: rule.default for name, rule in spec.params.items()}
    for name, value in given.items():
        params[name] = typed(value, spec.params[name].kind)
    # The toy task's data section, as the study config has it (JSON in TOY_DATA).
    data = spec.data_model.model_validate(json.loads(os.environ.get("TOY_DATA", "{}")))
    job = spec.build(BuildRequest(params=params, data=data, data_seed=0, seed=seed, device="cpu"))
    settings = LoopSettings(
        epochs=params["epochs"],
        lr=params["lr"],
        weight_decay=params["weight_decay"],
        warmup_ratio=params["warmup_ratio"],
        max_grad_norm=params["max_grad_norm"],
        early_stopping_patience=params["early_stopping_patience"],
    )

    def on_epoch(record: EpochRecord, improved: bool) -> None:
        row = record.to_dict()
        row["step"] = row.pop("epoch")
        print("HPSEARCH " + json.dumps(row), flush=True)

    train(job.model, job.data, settings, "cpu", on_epoch)


if __name__ == "__main__":
    main(sys.argv[1:])
