"""The multi-objective figure: the hypervolume on known points, and the figure at smoke size."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import pareto
from benchmarks.harness import Settings
from benchmarks.studies import run_studies


def test_hypervolume_of_known_fronts() -> None:
    budget = 100.0
    assert pareto.hypervolume([], budget) == 0.0
    # One model: accuracy 0.8 at a quarter of the budget covers 0.8 x 0.75.
    assert pareto.hypervolume([(0.8, 25.0)], budget) == pytest.approx(0.6)
    # A dominated point adds nothing; one over the budget neither.
    assert pareto.hypervolume([(0.8, 25.0), (0.7, 50.0), (0.99, 150.0)], budget) == (
        pytest.approx(0.6)
    )
    # A second front member adds its accuracy gain over the size range it leaves.
    assert pareto.hypervolume([(0.8, 25.0), (0.9, 50.0)], budget) == pytest.approx(0.6 + 0.1 * 0.5)


@pytest.mark.slow
def test_pareto_figure_at_smoke_size(tmp_path: Path) -> None:
    settings = Settings(mode="smoke", threads=1, jobs=1, data_dir=None, workdir=str(tmp_path))
    specs = pareto.specs(settings)
    assert len(specs) == 2  # no pruning, the config's own, one seed each
    figure = pareto.report(settings, run_studies(specs, str(tmp_path), 1, log=lambda _: None))
    assert {row["pruner"] for row in figure.table} == {"none", "default"}
    unpruned = figure.numbers["epochs"]["none"][0]
    # 4 trials of 3 epochs, minus those the size budget stopped before training.
    infeasible = figure.table[0]["infeasible proposals"]
    assert unpruned == 3 * (4 - infeasible)
    assert figure.numbers["infeasible_epochs"] == 0
    assert all(0.0 <= v <= 1.0 for v in figure.numbers["hypervolume"]["none"])
    assert figure.ratio is not None
