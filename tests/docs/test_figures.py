"""`make docs-figures` draws the benchmark plots from the committed results file."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageStat

from tests.conftest import REPO
from tools.docs_figures import benchmark_plots


def test_the_benchmark_plots_are_drawn_from_the_results_file(tmp_path: Path) -> None:
    drawn = benchmark_plots(REPO / "benchmarks" / "results.json", tmp_path)
    assert [path.name for path in drawn] == ["pruning.png", "storage.png", "resume.png"]
    for path in drawn:
        image = Image.open(path).convert("L")
        assert image.size[0] >= 600 and ImageStat.Stat(image).stddev[0] > 10, path
    # The site shows the committed plots of the same names.
    for path in drawn:
        assert (REPO / "docs" / "benchmarks" / path.name).exists(), path.name
        assert f"]({path.name})" in (REPO / "docs" / "benchmarks" / "index.md").read_text()
