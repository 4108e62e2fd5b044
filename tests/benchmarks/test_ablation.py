"""The pruning ablation: each variant builds the pruner it names, the plan, the rule, the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from benchmarks import ablation, ablation_report
from search.config import load_config
from search.pruning import CurvePercentilePruner, build_pruner
from tests.conftest import REPO


def _config(letter: str) -> Any:
    job = ablation.Job("hard", letter, 7103, 9109, ablation.FULL, quick=False)
    return load_config(REPO / ablation.CONFIG, list(job.overrides()))


@pytest.mark.parametrize(
    ("letter", "pruner", "patience"),
    [
        ("A", optuna.pruners.NopPruner, None),
        ("B", optuna.pruners.NopPruner, 5),
        ("C", optuna.pruners.MedianPruner, None),
        ("D", optuna.pruners.MedianPruner, 5),
        ("E", CurvePercentilePruner, 5),
        ("F", CurvePercentilePruner, 5),
        ("G", CurvePercentilePruner, 5),
        ("H", CurvePercentilePruner, 5),
        ("I", optuna.pruners.PatientPruner, 5),
        ("J", optuna.pruners.SuccessiveHalvingPruner, 5),
        ("K", optuna.pruners.HyperbandPruner, 5),
    ],
)
def test_each_variant_builds_what_it_names(letter: str, pruner: type, patience: int | None) -> None:
    config = _config(letter)
    built = build_pruner(config.pruner)
    assert type(built) is pruner
    assert config.fixed.get("early_stopping_patience") == patience
    assert (config.study.seed, config.data_seed, config.data["n_test"]) == (7103, 9109, 10_000)
    assert (config.study.n_trials, config.fixed["epochs"]) == (30, 40)
    if pruner is optuna.pruners.MedianPruner:
        # First cut at epoch 5, as the default's.
        assert (built._n_startup_trials, built._n_warmup_steps) == (5, 5)
    if isinstance(built, CurvePercentilePruner):
        expected = {"E": (0, 0), "F": (3, 0), "G": (0, 3), "H": (3, 3)}[letter]
        assert (built.spare, built.leaders) == expected
        assert (built.judge, built.n_warmup_steps, built.n_startup_trials) == ("best", 5, 5)


def test_the_plan_runs_each_variant_on_its_pairs_and_keeps_the_seeds_apart() -> None:
    jobs = ablation.plan("heldout", list(ablation.VARIANTS), quick=False, pairs=None)
    per_letter = {letter: sum(j.letter == letter for j in jobs) for letter in ablation.VARIANTS}
    assert per_letter == ablation.REQUIRED_PAIRS
    assert len({j.label for j in jobs}) == len(jobs)
    held = {seed for pair in ablation.HELDOUT for seed in pair}
    development = {seed for pair in ablation.DEVELOPMENT for seed in pair} | set(range(10, 16))
    assert len(ablation.HELDOUT) == 20 and not held & development
    # The first 5 pairs already hold every sampler seed.
    assert {s for s, _ in ablation.HELDOUT[:5]} == set(ablation.HELDOUT_SAMPLER_SEEDS)


def _row(letter: str, pair: tuple[int, int], epochs: int, acc: float, **extra: Any) -> dict:
    return {
        "label": f"hard-{letter}-s{pair[0]}-d{pair[1]}",
        "regime": "hard",
        "variant": letter,
        "sampler_seed": pair[0],
        "data_seed": pair[1],
        "n_test": 10_000,
        "total_epochs": epochs,
        "best_val_loss": 1.0,
        "winner_params": {"lr": acc},
        "winner_test_accuracy": acc,
        "pruned": 0,
        "early_stopped": 0,
        "spared": [],
        "audit": None,
        **extra,
    }


def _audit(wrong: int, right: int) -> dict:
    rows = [{"ended": "pruned", "full_value": 1.0, "beats_best": True, "enters_top3": True}] * wrong
    rows += [
        {"ended": "pruned", "full_value": 1.0, "beats_best": False, "enters_top3": False}
    ] * right
    return {"rows": rows}


def test_the_rule_keeps_a_setting_that_saves_epochs_at_no_cost_and_drops_one_that_costs() -> None:
    rows = {}
    for index, pair in enumerate(ablation.HELDOUT):
        jitter = 0.002 * (index % 3 - 1)
        rows_here = [
            _row("A", pair, 1200, 0.72),
            _row("B", pair, 600, 0.72 + jitter),
            # The pruner saves a third of B's epochs at the same accuracy: stays.
            _row("D", pair, 400, 0.72 + jitter, audit=_audit(0, 5)),
            # The bundle saves little and loses 0.02: goes.
            _row("H", pair, 390, 0.70 + jitter, audit=_audit(1, 4)),
        ]
        if index < 10:
            # judge: best saves nothing but stops fewer trials wrongly... by less than 2 points.
            rows_here.append(_row("E", pair, 400, 0.72 + jitter, audit=_audit(0, 5)))
        rows.update({r["label"]: r for r in rows_here})
    by_variant = ablation_report.group_rows(rows, "hard", ablation.HELDOUT)
    lines = "\n".join(ablation_report.verdicts(by_variant))
    assert "- **early stopping** (B vs A, 20 pairs): d_acc" in lines
    verdict = {line.split("**")[1]: line for line in ablation_report.verdicts(by_variant)}
    assert verdict["early stopping"].endswith("**stays**")
    assert verdict["the pruner over early stopping"].endswith("**stays**")
    assert "goes" in verdict["judge: best"]
    assert "goes" in verdict["the custom bundle (judge, spare, leaders)"]
    assert "pending, 0/10 pairs run" in verdict["spare: 3"]
    assert ablation_report.chosen_default(ablation_report.decide(by_variant)) is None
    # Paired table and summary render every variant present.
    table = "\n".join(ablation_report.paired_table(by_variant, "A"))
    (h_line,) = [line for line in table.splitlines() if line.startswith("| H |")]
    assert h_line.startswith("| H | 20 | -0.020") and "| 0/0/20 |" in h_line


def test_the_verdicts_compose_into_one_default_and_wait_for_every_comparison() -> None:
    def decided(**stays: bool | None) -> list[ablation_report.Verdict]:
        return [
            ablation_report.Verdict(name, w, wo, 20, 20, stays=stays.get(w, True))
            for name, w, wo in ablation.COMPARISONS
        ]

    assert ablation_report.chosen_default(decided(F=None)) is None
    # Once the pruner goes, the settings on top of it cannot matter: no need to wait for them.
    assert ablation_report.chosen_default(decided(D=False, F=None)) == (
        "no pruner (`pruner: {name: none}`), early stopping (patience 5)"
    )
    mixed = ablation_report.chosen_default(decided(F=False))
    assert mixed is not None and "with judge: best, leaders: 3, early" in mixed
    assert ablation_report.chosen_variant(decided(F=False)) == "G"
    assert ablation_report.chosen_variant(decided()) == "H"
    # The bundle as a whole failing against stock Optuna drops every custom setting.
    stock = ablation_report.chosen_default(decided(H=False))
    assert stock is not None and stock.startswith("`optuna.pruners.MedianPruner`")
    assert ablation_report.chosen_variant(decided(H=False)) == "D"
    assert ablation_report.chosen_variant(decided(D=False)) == "B"
    assert ablation_report.chosen_variant(decided(B=False, D=False)) == "A"
    # Without early stopping only the stock pruner alone (C) was measured; the bundle was not.
    assert ablation_report.chosen_variant(decided(B=False, H=False)) == "C"
    assert ablation_report.chosen_variant(decided(B=False)) is None


def test_the_default_config_is_what_the_rule_chose_on_the_committed_held_out_rows() -> None:
    from search.config import load_config

    rows = ablation.load_rows(ablation.ROWS)
    by_variant = ablation_report.group_rows(rows, "hard", ablation.HELDOUT)
    chosen = ablation_report.chosen_default(ablation_report.decide(by_variant))
    assert chosen == "no pruner (`pruner: {name: none}`), early stopping (patience 5)"
    assert ablation_report.chosen_variant(ablation_report.decide(by_variant)) == "B"
    (first, faster, _) = ablation_report.headline(by_variant, "B")
    assert first.startswith("**Headline** (20 held-out pairs): the default the rule chose is")
    assert "2.22x fewer epochs than A (55.0% saved) and 1.00x fewer than B" in first
    assert first.endswith("target is **missed**.") and faster.startswith("Variants on these")
    assert "D 3.63x, -0.0084 [" in faster
    default = load_config(ablation.REPO / ablation.CONFIG)
    assert default.pruner.name == "none" and default.pruner.args == {}
    assert default.fixed["early_stopping_patience"] == 5


def test_exactly_two_points_fewer_wrong_stops_is_enough_for_the_rule() -> None:
    # 2 of 50 against 3 of 50: 0.06 - 0.04 is 0.0199... in floats, exactly 2 points here.
    rows = {}
    for index, pair in enumerate(ablation.HELDOUT[:10]):
        for letter, wrong in (("E", 3), ("G", 2)):
            wrong = wrong if index == 0 else 0
            row = _row(letter, pair, 400, 0.72, audit=_audit(wrong, 5 - wrong))
            rows[row["label"]] = row
    by_variant = ablation_report.group_rows(rows, "hard", ablation.HELDOUT)
    (leaders,) = [v for v in ablation_report.decide(by_variant) if v.with_s == "G"]
    assert leaders.saving == 0 and leaders.stays is True
    assert leaders.line().endswith("wrong-stop rate 4.0% vs 6.0% -> **stays**")


def test_bootstrap_intervals_hold_the_mean_and_narrow_with_more_pairs() -> None:
    few = ablation_report.bootstrap_mean([0.01, -0.02, 0.0, 0.03])
    many = ablation_report.bootstrap_mean([0.01, -0.02, 0.0, 0.03] * 10)
    assert few.low <= few.mean <= few.high
    assert many.high - many.low < few.high - few.low
    saving = ablation_report.bootstrap_saving([50, 60, 40], [100, 100, 100])
    assert saving.mean == pytest.approx(0.5) and saving.low <= 0.5 <= saving.high


def test_rows_are_appended_and_read_back_by_label(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"label": "x", "v": 1}\n\n{"label": "y", "v": 2}\n{"label": "x", "v": 3}\n')
    assert ablation.load_rows(path) == {"x": {"label": "x", "v": 3}, "y": {"label": "y", "v": 2}}


def _curve_row(curves: list[list[float]]) -> dict:
    return {
        "trials": [[n, "COMPLETE", len(c), min(c), 0.5, None] for n, c in enumerate(curves)],
        "curves": {str(n): [c, c.index(min(c)) + 1] for n, c in enumerate(curves)},
    }


def test_the_rule_change_replay_counts_what_the_old_median_bar_did_otherwise() -> None:
    from benchmarks.ablation_rule_change import compare

    ended = [0.5, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]  # early stopping ends it at step 4
    slow = [1.0, 0.95, 0.9, 0.85, 0.82, 0.8, 0.79, 0.78]
    trial = [1.0, 0.9, 0.8, 0.7, 0.65, 0.6, 0.55, 0.5]
    row = _curve_row([ended, ended, ended, slow, slow, trial])
    section = {"name": "median", "args": {"n_startup_trials": 3, "n_warmup_steps": 5}}
    section["args"]["judge"] = "best"
    (_, _, text, _) = compare([row], section, patience=2, epochs=8)
    # The ended peers (bests 0.3) count at step 5 now: the slower trials are cut there.
    assert "trials stopped at another epoch or in another state" in text
    assert " 0 trials stopped" not in text
    # Without early stopping no peer ends early, and the two rules agree.
    (_, _, same, _) = compare([row], section, patience=None, epochs=8)
    assert ": 0 trials stopped at another epoch" in same


def test_h_stays_the_2026_12_07_default_and_s_is_the_default_as_shipped_now() -> None:
    shipped = load_config(REPO / ablation.CONFIG)
    s_config = _config("S")
    assert ablation.SHIPPED.overrides == ()
    assert s_config.pruner == shipped.pruner
    assert s_config.fixed["early_stopping_patience"] == shipped.fixed["early_stopping_patience"]
    h_config = _config("H")
    assert h_config.pruner.name == "median" and h_config.fixed["early_stopping_patience"] == 5
    assert h_config.pruner.args == {
        "n_startup_trials": 5,
        "n_warmup_steps": 5,
        "judge": "best",
        "spare": 3,
        "leaders": 3,
    }


def test_the_acceptance_check_runs_the_checkers_seeds_and_says_met_or_missed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seeds = ablation.parse_seeds("31:41, 59:26")
    assert seeds == [(31, 41), (59, 26)]
    for bad in ("31-41", "31:", "a:1", "1:-2"):
        with pytest.raises(ValueError, match="SAMPLER:DATA"):
            ablation.parse_seeds(bad)
    assert ablation.main(["run", "--seeds", "31-41"]) == 2
    assert "is not SAMPLER:DATA" in capsys.readouterr().err
    jobs = ablation.plan("heldout", ["A", "B", "D", "S"], quick=False, pairs=None, seeds=seeds)
    assert [(j.letter, j.sampler_seed, j.data_seed) for j in jobs] == [
        (letter, s, d) for s, d in seeds for letter in "ABDS"
    ]
    assert {j.regime for j in jobs} == {"hard"}

    def rows(s_epochs: int, s_acc: float) -> dict:
        made = {}
        for pair in seeds:
            for row in (
                _row("A", pair, 1200, 0.72),
                _row("B", pair, 600, 0.72),
                _row("S", pair, s_epochs, s_acc),
            ):
                made[row["label"]] = row
        return ablation_report.group_rows(made, "hard", seeds)

    lines, met = ablation_report.check_lines(rows(500, 0.715))
    assert met and "-> met (no more" in lines[1] and "-> met (mean" in lines[2]
    lines, met = ablation_report.check_lines(rows(700, 0.70))
    assert not met and "MISSED" in lines[1] and "mean -0.0200" in lines[2] and "MISSED" in lines[2]
    lines, met = ablation_report.check_lines(ablation_report.group_rows({}, "hard", seeds))
    assert not met and "needs S, A and B" in lines[0]


def test_the_check_does_not_run_the_shipped_default_twice_when_it_is_a_variant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The shipped default is early stopping alone: B's study exactly, so S is not run again.
    assert ablation.shipped_is("B") and not ablation.shipped_is("H")
    seeds = [(31, 41)]
    path = tmp_path / "rows.jsonl"
    for row in (_row("A", seeds[0], 1200, 0.72), _row("B", seeds[0], 600, 0.72)):
        ablation.append_row(path, row)
    assert ablation_report.print_check(path, seeds) == 0
    out = capsys.readouterr().out
    assert "the default as shipped (S) is variant B exactly" in out
    assert "epochs: the default 600, early stopping alone 600" in out
