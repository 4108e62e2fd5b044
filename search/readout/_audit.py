"""The audit read back: what pruning and early stopping threw away, measured.

The runs themselves are trained by ``search/retrain/_audit.py`` (``hpsearch audit``).

A sample of a study's pruned and early-stopped trials is trained again to full length, with the
same parameters and the same training seed, no pruner and no early stopping, in a companion
study ``<name>/audit`` (resumable like every study: rerunning trains only what is missing). For
each audited trial the result says whether, had it run to the end, it would have beaten the
study's best or entered its top 3 (a wrong prune), and the audit sums up the wrong-prune rate,
the regret (the best audited value against the study's best) and the compute: epochs pruning
and early stopping saved across the whole study, against the epochs the audit spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import StudyError
from search.formatting import format_table, number, signed
from search.study import open_existing_study
from search.trial import AUDITED_TRIAL, FINISHED, StudyRecord, TrialRecord

AUDIT_SUFFIX = "/audit"
TOP = 3


@dataclass(frozen=True)
class AuditRow:
    """One audited trial: how it ended in the study, and what the full-length run reached."""

    trial: int
    ended: str  # "pruned" or "early-stopped"
    epochs_run: int
    value_when_stopped: float | None  # its best value over the epochs it ran
    audit_trial: int | None
    full_value: float | None  # the full-length run's value (its best epoch)
    full_epochs: int | None
    beats_best: bool = False
    enters_top: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "ended": self.ended,
            "epochs_run": self.epochs_run,
            "value_when_stopped": self.value_when_stopped,
            "audit_trial": self.audit_trial,
            "full_value": self.full_value,
            "full_epochs": self.full_epochs,
            "beats_best": self.beats_best,
            "enters_top3": self.enters_top,
        }


@dataclass
class AuditResult:
    """Everything ``hpsearch audit`` reports (and ``report`` shows in its Audit section)."""

    study: str
    metric: str
    maximize: bool
    candidates: int  # pruned + early-stopped trials in the study
    rows: list[AuditRow] = field(default_factory=list)
    study_best: float | None = None
    epochs_saved: int = 0  # across every pruned / early-stopped trial of the study
    epochs_spent: int = 0  # by the audit's full-length runs

    @property
    def finished(self) -> list[AuditRow]:
        return [row for row in self.rows if row.full_value is not None]

    @property
    def wrong(self) -> list[AuditRow]:
        return [row for row in self.finished if row.beats_best or row.enters_top]

    @property
    def wrong_rate(self) -> float | None:
        return len(self.wrong) / len(self.finished) if self.finished else None

    @property
    def regret(self) -> float | None:
        """Best audited value minus the study's best, signed so that > 0 means it was better."""
        values = [row.full_value for row in self.finished if row.full_value is not None]
        if not values or self.study_best is None:
            return None
        best = max(values) if self.maximize else min(values)
        return best - self.study_best if self.maximize else self.study_best - best

    @property
    def complete(self) -> bool:
        return len(self.finished) == len(self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "metric": self.metric,
            "candidates": self.candidates,
            "audited": len(self.rows),
            "finished": len(self.finished),
            "wrong_prunes": len(self.wrong),
            "wrong_prune_rate": self.wrong_rate,
            "study_best": self.study_best,
            "regret": self.regret,
            "epochs_saved": self.epochs_saved,
            "epochs_spent": self.epochs_spent,
            "rows": [row.to_dict() for row in self.rows],
        }


# --------------------------------------------------------------------------- choosing


def stopped_trials(trials: Sequence[FrozenTrial]) -> list[TrialRecord]:
    """The trials pruning or early stopping ended (not those that diverged or failed, nor the
    infeasible proposals `constraints:` stopped before training)."""
    found = []
    for trial in trials:
        record = TrialRecord.from_trial(trial)
        diverged = (record.reason or "").startswith("diverged")
        pruned = trial.state == TrialState.PRUNED and not diverged and not record.infeasible
        if pruned or record.early_stopped:
            found.append(record)
    return found


# --------------------------------------------------------------------------- running


def by_audited_trial(trials: Sequence[FrozenTrial]) -> dict[int, FrozenTrial]:
    found: dict[int, FrozenTrial] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        number = trial.user_attrs.get(AUDITED_TRIAL)
        if trial.state in FINISHED and isinstance(number, int) and number not in found:
            found[number] = trial
    return found


def audit_result(
    source: optuna.Study,
    companion: optuna.Study,
    chosen: Sequence[TrialRecord],
    candidates: Sequence[TrialRecord],
) -> AuditResult:
    """Compare each audited trial's full-length value with the study's complete trials."""
    stored = StudyRecord.from_study(source)
    maximize = stored.maximize
    complete = [
        TrialRecord.from_trial(t)
        for t in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values  # several metrics: ranked on the first, the training metric
    ]
    result = AuditResult(source.study_name, stored.metric, maximize, len(candidates))
    values = [r.value for r in complete if r.value is not None]
    result.study_best = (max(values) if maximize else min(values)) if values else None
    full = stored.fixed_epochs
    for record in candidates:
        length = record.params.get("epochs", full)
        if isinstance(length, int):
            result.epochs_saved += max(0, length - record.epochs_run)
    done = by_audited_trial(companion.get_trials(deepcopy=False))
    for record in chosen:
        audited = done.get(record.number)
        audit_record = TrialRecord.from_trial(audited) if audited is not None else None
        if audit_record is not None:
            result.epochs_spent += audit_record.epochs_run
        full_value = audit_record.value if audit_record is not None else None
        others = sorted(
            (r.value for r in complete if r.number != record.number and r.value is not None),
            reverse=maximize,
        )
        beats = enters = False
        if full_value is not None:
            beats, enters = _ranks(full_value, others, maximize)
            if record.early_stopped and record.value is not None:
                # An early-stopped trial completed with its best epoch's value and is ranked with
                # it: stopping cost it a place only where running on did better than that.
                kept_beats, kept_enters = _ranks(record.value, others, maximize)
                improved = _better(full_value, record.value, maximize)
                beats = improved and beats and not kept_beats
                enters = improved and enters and not kept_enters
        result.rows.append(
            AuditRow(
                trial=record.number,
                ended="early-stopped" if record.early_stopped else "pruned",
                epochs_run=record.epochs_run,
                value_when_stopped=record.best_value_so_far(stored.metric, maximize),
                audit_trial=audited.number if audited is not None else None,
                full_value=full_value,
                full_epochs=audit_record.epochs_run if audit_record is not None else None,
                beats_best=beats,
                enters_top=enters,
            )
        )
    return result


def _better(a: float, b: float, maximize: bool) -> bool:
    return a > b if maximize else a < b


def _ranks(value: float, others: list[float], maximize: bool) -> tuple[bool, bool]:
    """(beats the best of ``others``, is in their top ``TOP``); ``others`` sorted best first."""
    beats = not others or _better(value, others[0], maximize)
    enters = len(others) < TOP or _better(value, others[TOP - 1], maximize)
    return beats, enters


def read_audit(source: optuna.Study, storage: str) -> AuditResult | None:
    """The audit of a study as it stands in its companion study (None when there is none)."""
    try:
        companion = open_existing_study(storage, source.study_name + AUDIT_SUFFIX)
    except StudyError:
        return None
    audited = set(by_audited_trial(companion.get_trials(deepcopy=False)))
    queued = {t.user_attrs.get(AUDITED_TRIAL) for t in companion.get_trials(deepcopy=False)}
    candidates = stopped_trials(source.get_trials(deepcopy=False))
    chosen = [r for r in candidates if r.number in audited or r.number in queued]
    return audit_result(source, companion, chosen, candidates)


# --------------------------------------------------------------------------- printing


def format_audit(result: AuditResult) -> str:
    """The per-trial table and the summary lines."""
    rows = [
        [
            row.trial,
            row.ended,
            row.epochs_run,
            row.value_when_stopped,
            row.full_value if row.full_value is not None else "not run yet",
            row.full_epochs,
            "yes" if row.beats_best else "no",
            "yes" if row.enters_top else "no",
        ]
        for row in result.rows
    ]
    table = format_table(
        [
            "Trial",
            "Ended",
            "Epochs",
            f"{result.metric} then",
            f"{result.metric} at full length",
            "Full epochs",
            "Beats best",
            f"Top {TOP}",
        ],
        rows,
    )
    return table + "\n\n" + "\n".join(summary_lines(result)) + "\n"


def summary_lines(result: AuditResult) -> list[str]:
    rate = result.wrong_rate
    regret = result.regret
    if regret is None:
        regret_text = "n/a (no audited trial finished)"
    else:
        verb = "an audited trial at full length beats" if regret > 0 else "no audited trial beats"
        regret_text = f"{signed(regret)} ({verb} the study's best {result.metric})"
    lines = [
        f"wrong prunes: {len(result.wrong)} of {len(result.finished)} audited trials would have "
        f"beaten the study's best ({number(result.study_best)}) or entered its top {TOP}"
        + (f" ({100 * rate:.0f}%)" if rate is not None else ""),
        f"regret: {regret_text}",
        f"compute: pruning and early stopping saved {result.epochs_saved} epochs across "
        f"{result.candidates} trials; this audit spent {result.epochs_spent}",
    ]
    if not result.complete:
        lines.append("some audited trials have not finished; rerun the same command to train them")
    return lines
