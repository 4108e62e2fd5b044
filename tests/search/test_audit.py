"""``hpsearch audit``: pruned and early-stopped trials trained again to full length."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search.readout import audit_result, stopped_trials
from search.trial import AUDITED_TRIAL, EPOCHS, REASON
from tests.conftest import PRUNED_STUDY

AUDITED_STUDY = {
    **PRUNED_STUDY,
    "study": {"n_trials": 7},
    "fixed": {**PRUNED_STUDY["fixed"], "epochs": 4, "early_stopping_patience": 1},
}


@pytest.mark.slow
def test_audit_trains_stopped_trials_to_full_length_with_the_same_seed(
    run_cli: Callable[..., Any], write_config: Callable[..., Path], tmp_path: Path
) -> None:
    done = run_cli("run", str(write_config(AUDITED_STUDY)))
    assert done.returncode == 0, done.stderr
    storage = f"sqlite:///{tmp_path / 'hp.db'}"
    source = optuna.load_study(study_name="micro", storage=storage)
    stopped = stopped_trials(source.get_trials())
    assert len(stopped) >= 2, "the micro study must prune or stop some trials"
    # A pruned trial records its best epoch too (the best of the epochs it ran).
    for record in stopped:
        assert record.best_epoch is not None
        assert record.best_epoch == 1 + [e["val_loss"] for e in record.epochs].index(
            min(e["val_loss"] for e in record.epochs)
        )

    audit = run_cli("audit", "micro", "--storage", storage, "--trials", "2")
    assert audit.returncode == 0, audit.stderr
    assert "wrong prunes:" in audit.stdout and "regret:" in audit.stdout
    assert "compute: pruning and early stopping saved" in audit.stdout
    companion = optuna.load_study(study_name="micro/audit", storage=storage)
    trials = companion.get_trials()
    assert len(trials) == 2 and all(t.state == TrialState.COMPLETE for t in trials)
    by_number = {t.number: t for t in source.get_trials()}
    for trial in trials:
        original = by_number[trial.user_attrs[AUDITED_TRIAL]]
        assert trial.params == original.params
        assert len(trial.user_attrs[EPOCHS]) == 4, "full length: no pruner, no early stopping"
        # Same parameters, same seed: the epochs the original ran are repeated exactly.
        ran = original.user_attrs[EPOCHS]
        assert [e["val_loss"] for e in trial.user_attrs[EPOCHS][: len(ran)]] == [
            e["val_loss"] for e in ran
        ]

    # Resumable: a second call trains nothing more.
    again = run_cli("audit", "micro", "--storage", storage, "--trials", "2")
    assert "nothing to train" in again.stdout
    with sqlite3.connect(tmp_path / "hp.db") as db:
        assert db.execute(
            "SELECT COUNT(*) FROM trials JOIN studies USING (study_id) WHERE study_name = ?",
            ("micro/audit",),
        ).fetchone() == (2,)

    # The report gains an Audit section.
    report = run_cli("report", "micro", "--storage", storage, "-o", str(tmp_path / "rep"))
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## Audit" in text and "wrong prunes:" in text


def _trial(value: float | None, state: TrialState, epochs: int, **attrs: Any) -> Any:
    records = [{"epoch": e, "val_loss": 1.0 / e} for e in range(1, epochs + 1)]
    return create_trial(
        state=state,
        value=value,
        params={"lr": 0.01},
        distributions={"lr": FloatDistribution(1e-4, 1e-1, log=True)},
        user_attrs={EPOCHS: records, **attrs},
        intermediate_values={e: 1.0 / e for e in range(1, epochs + 1)},
    )


def test_a_pruned_trial_that_would_have_won_is_a_wrong_prune() -> None:
    source = optuna.create_study(direction="minimize")
    source.set_user_attr("config", {"study": {"metric": "val_loss"}, "fixed": {"epochs": 10}})
    for value in (0.5, 0.4, 0.3):
        source.add_trial(_trial(value, TrialState.COMPLETE, 10))
    source.add_trial(_trial(None, TrialState.PRUNED, 2, **{REASON: "pruned at epoch 2"}))
    source.add_trial(_trial(None, TrialState.PRUNED, 3, **{REASON: "pruned at epoch 3"}))
    companion = optuna.create_study(direction="minimize")
    companion.add_trial(_trial(0.2, TrialState.COMPLETE, 10, **{AUDITED_TRIAL: 3}))  # wins
    companion.add_trial(_trial(0.55, TrialState.COMPLETE, 10, **{AUDITED_TRIAL: 4}))  # 4th
    candidates = stopped_trials(source.get_trials())
    result = audit_result(source, companion, candidates, candidates)
    assert [(r.trial, r.beats_best, r.enters_top) for r in result.rows] == [
        (3, True, True),
        (4, False, False),
    ]
    assert result.wrong_rate == 0.5
    assert result.regret is not None and abs(result.regret - 0.1) < 1e-12
    assert result.epochs_saved == (10 - 2) + (10 - 3) and result.epochs_spent == 20


def test_an_early_stopped_trial_that_running_on_does_not_improve_is_no_wrong_prune() -> None:
    """It completed with its best epoch's value and is ranked with it: stopping lost nothing."""
    source = optuna.create_study(direction="minimize")
    source.set_user_attr("config", {"study": {"metric": "val_loss"}, "fixed": {"epochs": 10}})
    for value in (0.5, 0.4, 0.35):
        source.add_trial(_trial(value, TrialState.COMPLETE, 10))
    stopped = {REASON: "early_stopped after epoch 6: no better val_loss for 3 epochs"}
    source.add_trial(_trial(0.3, TrialState.COMPLETE, 6, **stopped))  # already the best
    source.add_trial(_trial(0.45, TrialState.COMPLETE, 6, **stopped))  # 4th; would be 1st
    companion = optuna.create_study(direction="minimize")
    companion.add_trial(_trial(0.3, TrialState.COMPLETE, 10, **{AUDITED_TRIAL: 3}))  # the same
    companion.add_trial(_trial(0.2, TrialState.COMPLETE, 10, **{AUDITED_TRIAL: 4}))  # better
    candidates = stopped_trials(source.get_trials())
    result = audit_result(source, companion, candidates, candidates)
    assert [(r.trial, r.ended, r.beats_best, r.enters_top) for r in result.rows] == [
        (3, "early-stopped", False, False),
        (4, "early-stopped", True, True),
    ]
    assert result.wrong_rate == 0.5


def test_the_audit_sample_is_random_fixed_by_the_seed_and_ordered() -> None:
    from search.retrain import sample
    from search.trial import TrialRecord

    study = optuna.create_study()
    for number in range(30):
        study.add_trial(
            create_trial(
                state=TrialState.PRUNED,
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0.0, 1.0)},
                intermediate_values={1: float(number)},
            )
        )
    records = [TrialRecord.from_trial(t) for t in study.get_trials()]
    first = [r.number for r in sample(records, 10, seed=3)]
    assert first == [r.number for r in sample(list(reversed(records)), 10, seed=3)]
    assert first == sorted(first) and len(set(first)) == 10
    assert first != [r.number for r in sample(records, 10, seed=4)]
    # Not the even spacing by number (0, 3, 6, ...): TPE's later trials are drawn too.
    assert first != list(range(0, 30, 3))
    draws = {n for seed in range(20) for n in (r.number for r in sample(records, 5, seed))}
    assert max(draws) >= 25
    assert [r.number for r in sample(records, 40, seed=3)] == list(range(30))
