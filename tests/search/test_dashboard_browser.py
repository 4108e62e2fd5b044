"""The dashboard in a real browser: ``hpsearch dashboard`` on a study made by the CLI, read
through optuna-dashboard's REST API (as its frontend does) and rendered by headless Chromium.

Without Chromium the test is skipped locally; under CI (``CI=true``) it never skips.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from tests.browser import CHROMIUM_FLAGS, chromium
from tests.conftest import cli_env

Run = Callable[..., subprocess.CompletedProcess[str]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def dashboard(
    write_config: Callable[..., Path], run_cli: Run, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A micro study run by the CLI and ``hpsearch dashboard`` serving it: (base URL, process)."""
    config = write_config(
        {
            "study": {"n_trials": 4},
            "pruner": {"name": "median", "args": {"n_startup_trials": 1, "n_warmup_steps": 0}},
            "fixed": {"epochs": 2},
        }
    )
    done = run_cli("run", str(config))
    assert done.returncode == 0, done.stderr
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "search",
            "dashboard",
            "--storage",
            f"sqlite:///{tmp_path / 'hp.db'}",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # printed only once the server answers
        assert first.startswith(f"optuna-dashboard on http://127.0.0.1:{port}/dashboard"), first + (
            process.stderr.read() if process.poll() is not None and process.stderr else ""
        )
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# The dashboard is local: never through an HTTP(S)_PROXY from the environment.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get_json(url: str) -> Any:
    with DIRECT.open(url, timeout=30) as response:
        return json.load(response)


@pytest.mark.slow
def test_dashboard_serves_trials_curves_and_artifacts_to_a_browser(
    dashboard: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    browser = chromium()
    base, process = dashboard

    # The REST API the frontend reads: the study, its trials, their learning curves, artifacts.
    studies = get_json(f"{base}/api/studies")["study_summaries"]
    study_id = next(s["study_id"] for s in studies if s["study_name"] == "micro")
    detail = get_json(f"{base}/api/studies/{study_id}")
    trials = detail["trials"]
    assert len(trials) == 4
    states = {t["state"] for t in trials}
    assert "Complete" in states and "Pruned" in states, states
    best = detail["best_trials"][0]
    for trial in trials:
        steps = [v["step"] for v in trial["intermediate_values"]]
        expected = [1, 2] if trial["state"] == "Complete" else [1]
        assert steps == expected, (trial["number"], trial["state"], steps)
        names = sorted(a["filename"] for a in trial["artifacts"])
        n = trial["number"]
        assert names == [f"trial-{n}-curves.png", f"trial-{n}-epochs.csv"]
    assert [a["filename"] for a in detail["artifacts"]] == [
        f"best-model-trial-{best['number']}.tar.gz"
    ]
    curves = next(a for a in best["artifacts"] if a["filename"].endswith(".png"))
    with DIRECT.open(
        f"{base}/artifacts/{study_id}/{best['trial_id']}/{curves['artifact_id']}", timeout=30
    ) as response:
        assert response.headers["Content-Type"] == "image/png"
        assert response.read(8) == b"\x89PNG\r\n\x1a\n"

    # Workers may write while the dashboard reads (SQLite WAL): resume the study to 6 trials
    # and keep reading the API meanwhile; every answer is whole and the new trials appear.
    resumed = subprocess.Popen(
        [sys.executable, "-m", "search", "run", "study.yaml", "--n-trials", "6"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    reads = 0
    while resumed.poll() is None:
        assert len(get_json(f"{base}/api/studies/{study_id}")["trials"]) >= 4
        reads += 1
        time.sleep(0.2)
    assert resumed.returncode == 0, resumed.stderr.read() if resumed.stderr else ""
    assert reads > 0
    # optuna-dashboard caches a study's trials for a few seconds (2-10 s by study size): the
    # last trial shows once that cache expires.
    deadline = time.monotonic() + 60
    while len(get_json(f"{base}/api/studies/{study_id}")["trials"]) < 6:
        assert time.monotonic() < deadline, "the dashboard never showed the 6th trial"
        time.sleep(0.5)
    assert len(get_json(f"{base}/api/studies/{study_id}")["trials"]) == 6

    # After the resumed trials, the checkpoint belongs to whichever trial is best now.
    detail = get_json(f"{base}/api/studies/{study_id}")
    best = detail["best_trials"][0]
    current_best = f"best-model-trial-{best['number']}.tar.gz"
    assert [a["filename"] for a in detail["artifacts"]] == [current_best]
    page_of_study = f"{base}/dashboard/studies/{study_id}"

    # The browser renders the trial page with its artifacts listed, and the study page.
    with tempfile.TemporaryDirectory(prefix="hpsearch-chromium-") as profile:
        page = f"{base}/dashboard/studies/{study_id}/trials?numbers={best['number']}"
        dom = subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert f"Trial {best['number']} (trial_id={best['trial_id']})" in dom.stdout
        assert f"trial-{best['number']}-curves.png" in dom.stdout
        # The study page offers the current best model, and only it.
        study_dom = subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page_of_study],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Study Artifacts" in study_dom.stdout
        offered = set(re.findall(r"best-model-trial-\d+\.tar\.gz", study_dom.stdout))
        assert offered == {current_best}, offered

    shot = tmp_path / "dashboard.png"
    with tempfile.TemporaryDirectory(prefix="hpsearch-chromium-") as profile:
        taken = subprocess.run(
            [
                browser,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                "--window-size=1280,900",
                f"{base}/dashboard/studies/{study_id}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 900)
    assert ImageStat.Stat(image.convert("L")).stddev[0] > 20, "the screenshot is blank"
    # The dashboard's blue app bar is drawn: the page rendered, not an error text.
    red, green, blue = image.getpixel((640, 20))
    assert blue > 180 and red < 100, (red, green, blue)

    # Ctrl-C stops it cleanly.
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "dashboard stopped" in out
    assert "Traceback" not in err


def test_dashboard_on_a_busy_port_says_so_in_one_line(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "hp.db").touch()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        done = run_cli(
            "dashboard", "--storage", f"sqlite:///{tmp_path / 'hp.db'}", "--port", str(port)
        )
    assert done.returncode == 2 and time.monotonic() - started < 60
    assert done.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
