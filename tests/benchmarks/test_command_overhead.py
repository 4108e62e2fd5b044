"""The command-trial overhead figure at smoke size: real studies both ways, the same training."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from benchmarks import command_overhead
from benchmarks.harness import Settings


@pytest.mark.slow
def test_command_trials_train_what_built_in_trials_train(tmp_path: Path) -> None:
    settings = Settings(mode="smoke", threads=1, jobs=1, data_dir=None, workdir=str(tmp_path))
    figure = command_overhead.run(settings, log=lambda _: None)
    assert [row["way"] for row in figure.table] == [
        "A built in",
        "B command trials",
        "C the commands alone",
    ]
    assert figure.ratio is not None and figure.numbers["service_overhead_per_step_ms"] is not None
    # The same training: a command trial's epoch equals the built-in trial's to the last digit.
    folder = tmp_path / "command-smoke"
    built = optuna.load_study(study_name="builtin0", storage=f"sqlite:///{folder / 'builtin0.db'}")
    command = optuna.load_study(
        study_name="command1", storage=f"sqlite:///{folder / 'command1.db'}"
    )
    for a, b in zip(built.trials, command.trials, strict=True):
        (epoch_a,) = a.user_attrs["epochs"]
        (epoch_b,) = b.user_attrs["epochs"]
        assert (epoch_a["train_loss"], epoch_a["val_loss"]) == (
            epoch_b["train_loss"],
            epoch_b["val_loss"],
        )
