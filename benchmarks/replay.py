"""Replay early stopping and pruners on the recorded full-length curves of a random search.

A random sampler's proposals do not depend on what was pruned, so a study that ran every trial
to its end with a random sampler holds every curve any pruned variant of it would have seen:
trial k proposes the same parameters and, trained with the same seed on the same data, reports
the same values epoch by epoch up to wherever the variant stops it. Replaying a variant is then
exact: the same trials in the same order, each stopped where the variant's rules would have
stopped it, judged by the real pruner objects (``search.pruning.build_pruner``) on an in-memory
study, with hpsearch's own order of checks (the pruner after each epoch but the last, then early
stopping; ``spare`` as the trial runner applies it).

What a replay cannot know: the test accuracy of a trial stopped before its full-length best
epoch (the test split is read once, on the best epoch of the run that happened); such a winner's
test accuracy is reported as unknown, never guessed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState

from search.config import PrunerSection
from search.pruning import CurvePercentilePruner, build_pruner


@dataclass(frozen=True)
class Curve:
    """One trial of the full-length study: its number, its values per epoch, its test result."""

    number: int
    values: list[float]  # the metric, epoch 1 ... N
    best_epoch: int
    test_accuracy: float | None


@dataclass(frozen=True)
class Replayed:
    number: int
    state: str  # COMPLETE or PRUNED
    epochs: int  # epochs trained
    value: float | None  # a complete trial's value: its best so far when it stopped
    best_epoch: int | None
    test_accuracy: float | None  # known when its best epoch is the full run's
    spared_at: int | None = None


@dataclass(frozen=True)
class Rules:
    pruner: dict[str, Any]  # a pruner section: {"name": ..., "args": {...}}
    patience: int | None  # early stopping; None: off
    epochs: int


def replay(
    curves: Sequence[Curve],
    rules: Rules,
    maximize: bool = False,
    pruner: BasePruner | None = None,
) -> list[Replayed]:
    """Each trial of ``curves``, in order, as the variant ``rules`` would have run it.

    ``pruner`` replaces the one ``rules`` names (to replay a rule that is not in the code).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if pruner is None:
        pruner = build_pruner(PrunerSection.model_validate(rules.pruner), "replay")
    study = optuna.create_study(direction="maximize" if maximize else "minimize", pruner=pruner)
    spare = pruner.spare if isinstance(pruner, CurvePercentilePruner) else 0
    spared_count = 0
    result = []
    better = (lambda a, b: a > b) if maximize else (lambda a, b: a < b)
    for curve in sorted(curves, key=lambda c: c.number):
        trial = study.ask()
        best, best_epoch, waited = math.nan, None, 0
        state, spared_at = TrialState.COMPLETE, None
        ran = 0
        for epoch, value in enumerate(curve.values[: rules.epochs], start=1):
            ran = epoch
            if best_epoch is None or better(value, best):
                best, best_epoch, waited = value, epoch, 0
            else:
                waited += 1
            trial.report(value, epoch)
            if epoch < rules.epochs and spared_at is None and trial.should_prune():
                sofar = dict(enumerate(curve.values[:epoch], start=1))
                if (
                    spare
                    and spared_count < spare
                    and isinstance(pruner, CurvePercentilePruner)
                    and pruner.still_improving(sofar, maximize)
                ):
                    spared_at, spared_count = epoch, spared_count + 1
                else:
                    state = TrialState.PRUNED
                    break
            if rules.patience is not None and waited >= rules.patience and epoch < rules.epochs:
                break
        if state == TrialState.PRUNED:
            study.tell(trial, state=TrialState.PRUNED)
            result.append(Replayed(curve.number, "PRUNED", ran, None, None, None, spared_at))
            continue
        study.tell(trial, best)
        known = curve.test_accuracy if best_epoch == curve.best_epoch else None
        result.append(Replayed(curve.number, "COMPLETE", ran, best, best_epoch, known, spared_at))
    return result


def winner(trials: Sequence[Replayed], maximize: bool = False) -> Replayed | None:
    complete = [t for t in trials if t.state == "COMPLETE" and t.value is not None]
    if not complete:
        return None
    pick = max if maximize else min
    return pick(complete, key=lambda t: t.value)  # type: ignore[arg-type, return-value]
