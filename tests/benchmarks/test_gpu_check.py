"""The prepared GPU check runs end to end at toy sizes on the CPU (``--smoke``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env


@pytest.mark.slow
def test_gpu_check_smoke_run_writes_every_section(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS-gpu.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--smoke", "--output", str(output)],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = output.read_text()
    for title in (
        "Several trials per GPU",
        "Loop vs Hugging Face Trainer, bf16",
        "Peak memory over consecutive trials",
        "Out of memory on the GPU",
        "torch.compile on the toy model",
    ):
        assert f"## {title}" in text
    assert "**failed**" not in text
    # The placement section ran both studies and each trial recorded its device.
    assert "| 1 |" in text and "| 2 |" in text and "| cpu |" in text
    assert "trial states: COMPLETE, COMPLETE, COMPLETE" in text
