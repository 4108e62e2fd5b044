"""The pruning ablation's tables, paired intervals, verdicts and plot, from its stored rows.

``python -m benchmarks.ablation report`` rewrites everything below the pre-registration of
``benchmarks/RESULTS-ablation.md`` (which it never touches) and draws
``docs/benchmarks/ablation.png``. Nothing here runs a study.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ablation import (
    ACC_FLOOR,
    ALL_VARIANTS,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    COMPARISONS,
    CONFIG,
    DEFAULT_20261207,
    DEVELOPMENT,
    HELDOUT,
    MIN_SAVING,
    REPO,
    REQUIRED_PAIRS,
    VARIANTS,
    WRONG_DROP,
    load_rows,
    shipped_is,
)
from benchmarks.ablation_minilm import EPOCHS as MINILM_EPOCHS
from benchmarks.ablation_minilm import QUICK_ROWS as MINILM_QUICK_ROWS
from benchmarks.ablation_minilm import ROWS as MINILM_ROWS
from benchmarks.ablation_minilm_report import section as minilm_section

RESULTS = REPO / "benchmarks" / "RESULTS-ablation.md"
PLOT = REPO / "docs" / "benchmarks" / "ablation.png"  # shown on the site's ablation page
RESULTS_HEADING = "## Results"
SPEEDUP_TARGET = 3.0  # the project's target: >= 3x fewer epochs than no pruning at all
Row = dict[str, Any]


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def bootstrap_mean(values: Sequence[float], seed: int = BOOTSTRAP_SEED) -> Interval:
    """The mean of ``values`` and its bootstrap 95 % interval (resampling the values)."""
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), (BOOTSTRAP_RESAMPLES, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Interval(float(data.mean()), float(low), float(high))


def bootstrap_saving(
    with_s: Sequence[float], without: Sequence[float], seed: int = BOOTSTRAP_SEED
) -> Interval:
    """``1 - sum(with) / sum(without)`` over paired values, with its bootstrap 95 % interval."""
    a, b = np.asarray(with_s, dtype=float), np.asarray(without, dtype=float)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(a), (BOOTSTRAP_RESAMPLES, len(a)))
    savings = 1.0 - a[index].sum(axis=1) / b[index].sum(axis=1)
    low, high = np.percentile(savings, [2.5, 97.5])
    return Interval(float(1.0 - a.sum() / b.sum()), float(low), float(high))


def pair_of(row: Row) -> tuple[int, int]:
    return (row["sampler_seed"], row["data_seed"])


def group_rows(
    rows: dict[str, Row], regime: str, pairs: Sequence[tuple[int, int]]
) -> dict[str, dict[tuple[int, int], Row]]:
    """variant -> seed pair -> row, for one regime and one set of pairs."""
    wanted = set(pairs)
    found: dict[str, dict[tuple[int, int], Row]] = {}
    for row in rows.values():
        if row["regime"] == regime and pair_of(row) in wanted:
            found.setdefault(row["variant"], {})[pair_of(row)] = row
    return found


def wrong_stops(rows: Sequence[Row], ended: str) -> tuple[int, int]:
    """(wrong, audited) over the audits of ``rows`` for trials that ``ended`` that way."""
    wrong = audited = 0
    for row in rows:
        for item in (row.get("audit") or {}).get("rows", []):
            if item["ended"] != ended or item["full_value"] is None:
                continue
            audited += 1
            wrong += bool(item["beats_best"] or item["enters_top3"])
    return wrong, audited


def _rate(pair: tuple[int, int]) -> float | None:
    wrong, audited = pair
    return wrong / audited if audited else None


def within_a(row: Row, a_row: Row) -> bool:
    """The winner is A's winner, or its test accuracy is inside A's winner's interval."""
    if row["winner_params"] == a_row["winner_params"]:
        return True
    acc, base = row["winner_test_accuracy"], a_row["winner_test_accuracy"]
    if acc is None or base is None:
        return False
    se = math.sqrt(base * (1 - base) / a_row["n_test"])
    return acc >= base - 1.96 * se


def summary_table(by_variant: dict[str, dict[tuple[int, int], Row]]) -> list[str]:
    lines = [
        "| variant | pairs | total epochs (sum) | A's epochs / these | best val_loss (median) | "
        "winner test acc (mean) | A's winner or inside its interval | pruned / early-stopped "
        "trials | wrong stops: pruned | wrong stops: early-stopped | spared trials: ended top 3 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    a_rows = by_variant.get("A", {})
    for letter, variant in ALL_VARIANTS.items():
        runs = by_variant.get(letter)
        if not runs:
            continue
        rows = list(runs.values())
        epochs = sum(r["total_epochs"] for r in rows)
        common = [p for p in runs if p in a_rows]
        a_epochs = sum(a_rows[p]["total_epochs"] for p in common)
        mine = sum(runs[p]["total_epochs"] for p in common)
        versus_a = f"{a_epochs / mine:.2f}x" if common and mine else "-"
        losses = [r["best_val_loss"] for r in rows if r["best_val_loss"] is not None]
        accs = [r["winner_test_accuracy"] for r in rows if r["winner_test_accuracy"] is not None]
        found = sum(within_a(runs[p], a_rows[p]) for p in common)
        spared = [s for r in rows for s in r.get("spared", [])]
        top = sum(1 for s in spared if s.get("rank") is not None and s["rank"] <= 3)
        pw, pa = wrong_stops(rows, "pruned")
        ew, ea = wrong_stops(rows, "early-stopped")
        lines.append(
            f"| {letter} {variant.name} | {len(rows)} | {epochs} | {versus_a} | "
            f"{float(np.median(losses)):.4f} | {float(np.mean(accs)):.4f} | "
            f"{found}/{len(common)} | {sum(r['pruned'] for r in rows)} / "
            f"{sum(r['early_stopped'] for r in rows)} | {pw}/{pa} | {ew}/{ea} | "
            f"{top}/{len(spared)} |"
        )
    return lines


def paired_table(by_variant: dict[str, dict[tuple[int, int], Row]], base: str) -> list[str]:
    lines = [
        f"| variant | pairs | winner test acc minus {base}'s: mean [95 % CI] | win/tie/loss | "
        f"epoch saving vs {base} [95 % CI] |",
        "|---|---|---|---|---|",
    ]
    base_rows = by_variant.get(base, {})
    for letter in ALL_VARIANTS:
        if letter == base or letter not in by_variant:
            continue
        common = [p for p in by_variant[letter] if p in base_rows]
        if len(common) < 2:
            continue
        mine = [by_variant[letter][p] for p in common]
        theirs = [base_rows[p] for p in common]
        deltas = [
            m["winner_test_accuracy"] - t["winner_test_accuracy"]
            for m, t in zip(mine, theirs, strict=True)
        ]
        wins = sum(d > 0 for d in deltas)
        ties = sum(d == 0 for d in deltas)
        saving = bootstrap_saving(
            [m["total_epochs"] for m in mine], [t["total_epochs"] for t in theirs]
        )
        lines.append(
            f"| {letter} | {len(common)} | {bootstrap_mean(deltas)} | {wins}/{ties}/"
            f"{len(deltas) - wins - ties} | {saving.mean:.1%} "
            f"[{saving.low:.1%}, {saving.high:.1%}] |"
        )
    return lines


@dataclass(frozen=True)
class Verdict:
    """The pre-registered rule on one comparison; ``stays`` is None while pairs are missing."""

    setting: str
    with_s: str
    without: str
    pairs: int
    need: int
    delta: Interval | None = None
    saving: float | None = None
    rate_with: float | None = None
    rate_without: float | None = None
    stays: bool | None = None

    def line(self) -> str:
        if self.stays is None:
            return (
                f"- **{self.setting}** ({self.with_s} vs {self.without}): pending, "
                f"{self.pairs}/{self.need} pairs run"
            )
        return (
            f"- **{self.setting}** ({self.with_s} vs {self.without}, {self.pairs} pairs): d_acc "
            f"{self.delta}; saving {self.saving:.1%}; wrong-stop rate {_pct(self.rate_with)} vs "
            f"{_pct(self.rate_without)} -> "
            + ("**stays**" if self.stays else f"**goes** (the simpler {self.without} wins)")
        )


def decide(by_variant: dict[str, dict[tuple[int, int], Row]]) -> list[Verdict]:
    """The pre-registered rule applied to each comparison whose variants have their pairs."""
    decided = []
    for setting, with_s, without in COMPARISONS:
        need = min(REQUIRED_PAIRS[with_s], REQUIRED_PAIRS[without])
        pairs = [
            p
            for p in HELDOUT[:need]
            if p in by_variant.get(with_s, {}) and p in by_variant.get(without, {})
        ]
        if len(pairs) < need:
            decided.append(Verdict(setting, with_s, without, len(pairs), need))
            continue
        mine = [by_variant[with_s][p] for p in pairs]
        theirs = [by_variant[without][p] for p in pairs]
        delta = bootstrap_mean(
            [
                m["winner_test_accuracy"] - t["winner_test_accuracy"]
                for m, t in zip(mine, theirs, strict=True)
            ]
        )
        saving = 1 - sum(m["total_epochs"] for m in mine) / sum(t["total_epochs"] for t in theirs)
        rate_with = _combined_rate(mine)
        rate_without = _combined_rate(theirs)
        fewer_wrong = (
            rate_with is not None
            and rate_without is not None
            and rate_without - rate_with >= Fraction(str(WRONG_DROP))
        )
        stays = delta.low > ACC_FLOOR and (saving >= MIN_SAVING or fewer_wrong)
        decided.append(
            Verdict(
                setting,
                with_s,
                without,
                len(pairs),
                need,
                delta,
                saving,
                None if rate_with is None else float(rate_with),
                None if rate_without is None else float(rate_without),
                stays,
            )
        )
    return decided


def verdicts(by_variant: dict[str, dict[tuple[int, int], Row]]) -> list[str]:
    return [verdict.line() for verdict in decide(by_variant)]


def _chosen(decided: Sequence[Verdict]) -> tuple[str | None, str] | None:
    """The default the rule's verdicts compose to, as (the letter of the variant that is that
    default, None if none measured is, and its description); None while a verdict it depends
    on is pending.

    Early stopping stays if B beats A; the pruner if D beats B; then each of this project's
    settings that stays over stock Optuna (`spare` and `leaders` only on top of `judge: best`,
    which they were measured on), and none of them unless the bundle as a whole (H vs D) stays.
    """
    stays = {v.with_s: v.stays for v in decided}
    if stays["B"] is None or stays["D"] is None:
        return None
    early = "early stopping (patience 5)" if stays["B"] else "no early stopping"
    if not stays["D"]:
        # Without the pruner, none of the settings on top of it can be in the default.
        return ("B" if stays["B"] else "A"), f"no pruner (`pruner: {{name: none}}`), {early}"
    if any(value is None for value in stays.values()):
        return None
    settings = []
    if stays["E"] and stays["H"]:
        settings = ["judge: best"]
        settings += ["spare: 3"] if stays["F"] else []
        settings += ["leaders: 3"] if stays["G"] else []
    letter: str | None = {
        (): "D",
        ("judge: best",): "E",
        ("judge: best", "spare: 3"): "F",
        ("judge: best", "leaders: 3"): "G",
        ("judge: best", "spare: 3", "leaders: 3"): "H",
    }[tuple(settings)]
    if not stays["B"]:
        # Only the stock pruner was measured without early stopping (C).
        letter = None if settings else "C"
    if not settings:
        return letter, (
            f"`optuna.pruners.MedianPruner` (n_startup_trials 5, n_warmup_steps 5), {early}"
        )
    return letter, (
        f"the median rule (n_startup_trials 5, n_warmup_steps 5) with {', '.join(settings)}, "
        f"{early}"
    )


def chosen_default(decided: Sequence[Verdict]) -> str | None:
    """What the default the verdicts give is, in words (None while one is pending)."""
    chosen = _chosen(decided)
    return None if chosen is None else chosen[1]


def chosen_variant(decided: Sequence[Verdict]) -> str | None:
    """The measured variant that is the default the verdicts give (its letter), or None."""
    chosen = _chosen(decided)
    return None if chosen is None else chosen[0]


def headline(by_variant: dict[str, dict[tuple[int, int], Row]], letter: str) -> list[str]:
    """Epochs the chosen default saves against A and B, at its winners' test accuracy, and
    the project's >= 3x target: met, or missed with what the variants that reach it cost."""
    pairs = [p for p in HELDOUT if all(p in by_variant.get(x, {}) for x in ("A", "B", letter))]
    if not pairs:
        return []

    def epochs(x: str) -> int:
        return sum(by_variant[x][p]["total_epochs"] for p in pairs)

    def d_acc(x: str) -> Interval:
        return bootstrap_mean(
            [
                by_variant[x][p]["winner_test_accuracy"]
                - by_variant["A"][p]["winner_test_accuracy"]
                for p in pairs
            ]
        )

    ratio_a = epochs("A") / epochs(letter)
    lines = [
        f"**Headline** ({len(pairs)} held-out pairs): the default the rule chose is variant "
        f"{letter}. It trains {ratio_a:.2f}x fewer epochs than A ({1 - 1 / ratio_a:.1%} saved) and "
        f"{epochs('B') / epochs(letter):.2f}x fewer than B, at a winner test accuracy of "
        f"{d_acc(letter)} against A's. The project's >= {SPEEDUP_TARGET:g}x target is "
        + ("met." if ratio_a >= SPEEDUP_TARGET else "**missed**.")
    ]
    if ratio_a < SPEEDUP_TARGET:
        faster = [
            x
            for x in sorted(by_variant)
            if x not in ("A", letter)
            and all(p in by_variant[x] for p in pairs)
            and epochs("A") / epochs(x) >= SPEEDUP_TARGET
        ]
        lines.append(
            "Variants on these pairs that reach it, and their winners' test accuracy against "
            "A's: "
            + (
                "; ".join(f"{x} {epochs('A') / epochs(x):.2f}x, {d_acc(x)}" for x in faster)
                if faster
                else "none"
            )
            + "."
        )
    return [*lines, ""]


def _combined_rate(rows: Sequence[Row]) -> Fraction | None:
    """The pooled wrong-stop rate, exact: the rule's "2 points lower" is compared without
    floating-point error (0.06 - 0.04 is 0.0199... in floats)."""
    pw, pa = wrong_stops(rows, "pruned")
    ew, ea = wrong_stops(rows, "early-stopped")
    return Fraction(pw + ew, pa + ea) if pa + ea else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def plot(by_variant: dict[str, dict[tuple[int, int], Row]], path: Path, title: str) -> None:
    """Epochs relative to A (x) against the winner's test accuracy minus A's (y), per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a_rows = by_variant.get("A", {})
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for letter in VARIANTS:
        runs = by_variant.get(letter, {})
        common = [p for p in runs if p in a_rows]
        if len(common) < 2:
            continue
        share = sum(runs[p]["total_epochs"] for p in common) / sum(
            a_rows[p]["total_epochs"] for p in common
        )
        delta = bootstrap_mean(
            [runs[p]["winner_test_accuracy"] - a_rows[p]["winner_test_accuracy"] for p in common]
        )
        axes.errorbar(
            share,
            delta.mean,
            yerr=[[delta.mean - delta.low], [delta.high - delta.mean]],
            fmt="o",
            capsize=3,
        )
        axes.annotate(letter, (share, delta.mean), textcoords="offset points", xytext=(6, 4))
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.axhline(ACC_FLOOR, color="grey", linewidth=0.8, linestyle="--")
    axes.set_xlabel("epochs trained, share of A's (no pruner, no early stopping)")
    axes.set_ylabel("winner's test accuracy minus A's (mean, 95 % CI)")
    axes.set_title(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def section(
    title: str, by_variant: dict[str, dict[tuple[int, int], Row]], verdict: bool
) -> list[str]:
    lines = [f"### {title}", "", *summary_table(by_variant), ""]
    if "A" in by_variant:
        lines += [
            "Paired against A (no pruner, no early stopping):",
            "",
            *paired_table(by_variant, "A"),
            "",
        ]
    if "B" in by_variant:
        lines += ["Paired against B (early stopping only):", "", *paired_table(by_variant, "B"), ""]
    if verdict:
        decided = decide(by_variant)
        chosen = chosen_default(decided)
        lines += ["Verdicts of the pre-registered rule:", "", *(v.line() for v in decided), ""]
        lines += [
            f"The default these verdicts give: {chosen}."
            if chosen
            else "The default these verdicts give: not yet decided (verdicts pending).",
            "",
        ]
        letter = chosen_variant(decided)
        if letter is not None:
            lines += headline(by_variant, letter)
    return lines


def _rule_change(a_rows: list[Row]) -> list[str]:
    from benchmarks.ablation_rule_change import compare
    from search.config import load_config

    # The default as shipped on 2026-12-07 (variant H), whatever the default is now.
    default = load_config(REPO / CONFIG, list(DEFAULT_20261207))
    patience = default.fixed["early_stopping_patience"]
    return compare(a_rows, default.pruner.model_dump(), patience, default.fixed["epochs"])


def write_report(rows_path: Path, quick: bool = False, out: Callable[[str], None] = print) -> None:
    rows = load_rows(rows_path)
    if quick:
        groups = {
            "Quick size (plumbing only; numbers mean nothing)": group_rows(
                rows, "hard", HELDOUT[:2]
            ),
        }
        lines = [line for title, g in groups.items() for line in section(title, g, False)]
        lines += minilm_section(MINILM_QUICK_ROWS, 2)
        out("\n".join(lines))
        return
    heldout = group_rows(rows, "hard", HELDOUT)
    parts = [
        RESULTS_HEADING,
        "",
        f"Rows: {len(rows)} studies in `benchmarks/ablation/rows.jsonl`; wall time of the studies "
        f"{sum(r['wall_seconds'] for r in rows.values()) / 3600:.1f} h and of their audits "
        f"{sum(r['audit_seconds'] for r in rows.values()) / 3600:.1f} h (2 at a time on 2 cores).",
        "",
        *section("Held-out pairs, hard regime (the verdict)", heldout, True),
        "The plot (epochs against the winner's test accuracy, each variant against A) is "
        "`docs/benchmarks/ablation.png`, shown on the site's ablation page.",
        "",
    ]
    development = group_rows(rows, "hard", DEVELOPMENT)
    if development:
        parts += section("Development seeds 0-4 (no verdict)", development, False)
    second = group_rows(rows, "second", HELDOUT)
    if second:
        parts += section("Second regime (no verdict)", second, False)
    parts += _rule_change(list(heldout.get("A", {}).values()))
    parts += minilm_section(MINILM_ROWS, MINILM_EPOCHS)
    if len(heldout.get("A", {})) >= 2:
        plot(heldout, PLOT, "Held-out pairs, hard regime")
    text = RESULTS.read_text()
    head = text.split(RESULTS_HEADING)[0].rstrip() + "\n\n"
    RESULTS.write_text(head + "\n".join(parts).rstrip() + "\n")
    out(f"wrote {RESULTS} ({len(rows)} rows)")


def check_lines(by_variant: dict[str, dict[tuple[int, int], Row]]) -> tuple[list[str], bool]:
    """The issue's acceptance check: the shipped default (S) costs no more epochs than early
    stopping alone (B), and its winners' test accuracy stays within 0.01 of A's (mean)."""
    shipped, early, neither = (by_variant.get(x, {}) for x in ("S", "B", "A"))
    pairs = [p for p in shipped if p in early and p in neither]
    if not pairs:
        return [
            "acceptance: needs S, A and B run on the same seed pairs (--variants A,B,D,S)"
        ], False
    epochs = sum(shipped[p]["total_epochs"] for p in pairs)
    b_epochs = sum(early[p]["total_epochs"] for p in pairs)
    deltas = [
        shipped[p]["winner_test_accuracy"] - neither[p]["winner_test_accuracy"] for p in pairs
    ]
    mean = float(np.mean(deltas))
    epochs_met, acc_met = epochs <= b_epochs, mean >= ACC_FLOOR
    interval = bootstrap_mean(deltas) if len(deltas) > 1 else None
    lines = [
        f"acceptance on {len(pairs)} seed pairs:",
        f"  epochs: the default {epochs}, early stopping alone {b_epochs}, A "
        f"{sum(neither[p]['total_epochs'] for p in pairs)} -> "
        + ("met" if epochs_met else "MISSED")
        + " (no more than early stopping alone)",
        f"  winner test accuracy minus A's: mean {mean:+.4f}"
        + (f" [95 % CI {interval.low:+.4f}, {interval.high:+.4f}]" if interval else "")
        + f", worst pair {min(deltas):+.4f} -> "
        + ("met" if acc_met else "MISSED")
        + f" (mean within {abs(ACC_FLOOR)} of A's)",
    ]
    return lines, epochs_met and acc_met


def print_check(rows_path: Path, seeds: Sequence[tuple[int, int]]) -> int:
    """Tables and the acceptance check for the rows of ``seeds`` (0: met, 1: missed)."""
    by_variant = group_rows(load_rows(rows_path), "hard", seeds)
    same = "S" not in by_variant and "B" in by_variant and shipped_is("B")
    if same:
        by_variant["S"] = by_variant["B"]
    lines = section(f"Seed pairs {', '.join(f'{s}:{d}' for s, d in seeds)}", by_variant, False)
    check, met = check_lines(by_variant)
    note = (
        ["the default as shipped (S) is variant B exactly: B's rows stand for it"] if same else []
    )
    print("\n".join([*lines, *note, *check]))
    return 0 if met else 1
