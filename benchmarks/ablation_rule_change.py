"""What the one peer rule changed: the default's pruning replayed with the old and the new rule.

Until 2026-12-07 the median bar of ``CurvePercentilePruner`` counted only the peers that reached
the step, while its ``leaders`` and ``lookahead`` bars counted a peer that ended earlier (early
stopping) with its final best. One rule now serves all three: with ``judge: best`` a peer that
ended before the step counts with its final best. This replays the default's pruner and early
stopping on the full-length curves of the held-out A studies, once with the rule as it is and
once with the old median bar, and counts what differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optuna.pruners import BasePruner

from benchmarks.replay import Curve, Rules, replay, winner
from search.config import PrunerSection
from search.pruning import CurvePercentilePruner, build_pruner

Row = dict[str, Any]


class OldMedianBar(CurvePercentilePruner):
    """The rule before 2026-12-07: the median bar ignores peers that ended before the step."""

    def _bar(
        self,
        peers: Sequence[Mapping[int, float]],
        step: int,
        maximize: bool,
        judge: Any = None,
    ) -> float | None:
        if judge is None:  # the median bar (lookahead passes judge="best")
            peers = [peer for peer in peers if step in peer]
        return super()._bar(peers, step, maximize, judge)


def _pruners(section: dict[str, Any]) -> tuple[BasePruner, BasePruner]:
    new = build_pruner(PrunerSection.model_validate(section), "replay")
    assert isinstance(new, CurvePercentilePruner)
    old = OldMedianBar(**{**section["args"], "percentile": 50.0})
    return new, old


def curves_of_row(row: Row) -> list[Curve]:
    tests = {number: test for number, _, _, _, test, _ in row["trials"]}
    return [
        Curve(int(number), values, best_epoch, tests.get(int(number)))
        for number, (values, best_epoch) in sorted(
            row.get("curves", {}).items(), key=lambda x: int(x[0])
        )
        if best_epoch is not None and all(v is not None for v in values)
    ]


def compare(
    rows: Sequence[Row], section: dict[str, Any], patience: int | None, epochs: int
) -> list[str]:
    """Lines for RESULTS-ablation.md: trials stopped differently, epochs, winners."""
    runs = differ = trials = changed_winner = 0
    epochs_new = epochs_old = 0
    for row in rows:
        curves = curves_of_row(row)
        if not curves:
            continue
        new_pruner, old_pruner = _pruners(section)
        rules = Rules(section, patience, epochs)
        new = replay(curves, rules, pruner=new_pruner)
        old = replay(curves, rules, pruner=old_pruner)
        runs += 1
        trials += len(new)
        differ += sum(
            (a.state, a.epochs) != (b.state, b.epochs) for a, b in zip(new, old, strict=True)
        )
        epochs_new += sum(t.epochs for t in new)
        epochs_old += sum(t.epochs for t in old)
        a, b = winner(new), winner(old)
        changed_winner += (a.number if a else None) != (b.number if b else None)
    if not runs:
        return []
    return [
        "### The one peer rule: what it changed",
        "",
        f"The 2026-12-07 default's pruner and early stopping (H) replayed on the trials of "
        f"{runs} held-out A studies ({trials} trials, their TPE proposals and full-length "
        f"curves), with the rule "
        f"as it is and with the old median bar (`benchmarks/ablation_rule_change.py`): "
        f"{differ} trials stopped at another epoch or in another state; {epochs_new} epochs "
        f"against {epochs_old}; the winner changed in {changed_winner} of {runs} studies.",
        "",
    ]
