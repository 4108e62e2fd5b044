"""The per-trial progress line's finished counter, on a real in-memory study."""

from __future__ import annotations

import datetime as dt
import io

import optuna
from optuna.distributions import FloatDistribution

from search.readout import TrialPrinter, finished_rank


def finished_trial(study: optuna.Study, value: float, at: dt.datetime) -> optuna.trial.FrozenTrial:
    trial = optuna.trial.create_trial(
        params={"lr": 1e-3},
        distributions={"lr": FloatDistribution(1e-4, 1e-2, log=True)},
        value=value,
    )
    trial.datetime_start, trial.datetime_complete = at - dt.timedelta(seconds=5), at
    study.add_trial(trial)
    return study.get_trials(deepcopy=False)[-1]


def test_two_workers_finishing_together_print_their_own_counts() -> None:
    study = optuna.create_study()
    now = dt.datetime(2026, 12, 1, 12, 0, 0)
    first = finished_trial(study, 1.0, now)
    # The second worker's trial finishes before the first one's line is printed.
    second = finished_trial(study, 0.5, now + dt.timedelta(seconds=1))
    out = io.StringIO()
    printer = TrialPrinter(metric="val_loss", target=16, stream=out)
    printer(study, first)
    printer(study, second)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[ 1/16] trial 0 ") and lines[1].startswith("[ 2/16] trial 1 ")
    assert (finished_rank(study, first), finished_rank(study, second)) == (1, 2)
