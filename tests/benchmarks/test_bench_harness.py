"""The benchmark harness's statistics and output rules (fast; no benchmark runs here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.__main__ import _earlier_figures, _merge, output_paths, parse_args
from benchmarks.harness import Figure, Paired, alternate, median, ratio


def test_alternate_runs_sides_in_turn_and_pairs_them() -> None:
    calls: list[str] = []
    values = {"a": iter([10.0, 1.0, 2.0, 3.0]), "b": iter([20.0, 4.0, 4.0, 12.0])}

    def side(name: str) -> float:
        calls.append(name)
        return next(values[name])

    paired = alternate(lambda: side("a"), lambda: side("b"), pairs=3)
    # One untimed warm-up each, then A B, B A, A B: neither side always goes first.
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert paired.a == [1.0, 2.0, 3.0]
    assert paired.b == [4.0, 4.0, 12.0]
    assert paired.median_a == 2.0 and paired.median_b == 4.0
    assert paired.ratio_of_medians == 0.5
    assert paired.median_of_pair_ratios == 0.25  # pair ratios 0.25, 0.5, 0.25


def test_median_of_pair_ratios_ignores_one_disturbed_pair() -> None:
    # The third pair ran while something else hogged the machine: B took 10x longer.
    paired = Paired(a=[100.0, 102.0, 101.0], b=[50.0, 51.0, 5.0])
    assert paired.median_of_pair_ratios == pytest.approx(2.0)


def test_ratio_and_median_edge_cases() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) == math.inf
    assert math.isnan(ratio(0.0, 0.0))
    assert median([3.0, 1.0, 2.0, 10.0]) == 2.5
    with pytest.raises(ValueError):
        median([])
    with pytest.raises(ValueError):
        alternate(lambda: 1.0, lambda: 1.0, pairs=0)


def test_quick_and_partial_runs_never_default_to_the_full_results() -> None:
    full = output_paths(parse_args([]), "full")
    assert [p.name for p in full] == ["RESULTS.md", "results.json"]
    quick = output_paths(parse_args(["--quick"]), "quick")
    assert [p.name for p in quick] == ["RESULTS-quick.md", "results-quick.json"]
    partial = output_paths(parse_args(["--only", "storage"]), "full")
    assert [p.name for p in partial] == ["RESULTS-partial.md", "results-partial.json"]
    asked = output_paths(parse_args(["--only", "storage", "--output", "x/RESULTS.md"]), "full")
    assert asked == (Path("x/RESULTS.md"), Path("x/results.json"))


def test_only_rejects_unknown_figures(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--only", "storage,nope"])
    assert exit_info.value.code == 2
    assert "nope" in capsys.readouterr().err


def test_update_replaces_rerun_figures_and_keeps_the_others(tmp_path: Path) -> None:
    old = [
        Figure(key="storage", title="s", command="c", ratio=1.0),
        Figure(key="workers", title="w", command="c", ratio=1.5),
    ]
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "command": "python -m benchmarks",
                "machine": {"date_utc": "D", "load_at_start": [1, 1, 1]},
                "figures": [vars(f) for f in old],
            }
        )
    )
    kept = _earlier_figures(results)
    merged = _merge(kept, [Figure(key="storage", title="s", command="c", ratio=0.5)])
    assert [(f.key, f.ratio) for f in merged] == [("storage", 0.5), ("workers", 1.5)]
    assert merged[1].notes[0].startswith("from the earlier run of D")
