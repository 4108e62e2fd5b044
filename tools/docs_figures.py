"""`make docs-figures`: regenerate the figures the documentation site shows, from commands.

- the sample report (``docs/report-sample/``): the default study, run as it stands in a scratch
  folder, then ``hpsearch report``;
- the dashboard screenshots (``docs/dashboard.png``, ``docs/dashboard-trial.png``): headless
  Chromium on ``hpsearch dashboard`` serving that study, as the browser test takes them;
- the benchmark plots (``docs/benchmarks/*.png``) from ``benchmarks/results.json``.

Minutes, not seconds (the default study is 30 trials of up to 40 epochs), so it stays out of
`make docs` and CI. ``--only plots`` redraws the plots alone (seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.chromium import CHROMIUM_FLAGS, which_chromium

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
DEFAULT_CONFIG = "study_configs/toy_transformer.yaml"
STUDY = "toy-transformer"
# The commands the report sample and the screenshots come from (shown on the site's pages).
STUDY_COMMAND = f"hpsearch run {DEFAULT_CONFIG} --workers {{workers}}"
PRUNER_LABELS = {
    "none": "no pruning, no early stopping",
    "default": "median judging bests, spare, leaders (the default until 2026-12-07)",
    "median_current": "median judging current values",
    "successive_halving": "successive halving",
    "hyperband": "hyperband",
}


# -- benchmark plots ----------------------------------------------------------------------------


def _figures(results: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(results.read_text(encoding="utf-8"))
    return {figure["key"]: figure for figure in data["figures"] if figure.get("status") == "ran"}


def plot_pruning(figure: dict[str, Any], target: Path) -> Path:
    """Epochs trained against the winner's quality, one point per pruning variant."""
    import matplotlib.pyplot as plt

    rows = figure["table"]
    fig, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    markers = "osD^v<>"
    for position, row in enumerate(rows):
        label = PRUNER_LABELS.get(row["pruner"], row["pruner"])
        style = {"marker": markers[position % len(markers)], "s": 60, "alpha": 0.8}
        loss_axis.scatter(row["total epochs"], row["best val_loss"], **style)
        accuracy_axis.scatter(row["total epochs"], row["test acc of winner"], label=label, **style)
    accuracy_axis.legend(fontsize=8, loc="lower right")
    settings = figure["settings"]
    loss_axis.set(
        xlabel="epochs trained (median of seeds)", ylabel="best val_loss (lower is better)"
    )
    accuracy_axis.set(xlabel="epochs trained (median of seeds)", ylabel="winner's test accuracy")
    fig.suptitle(
        f"Pruning: {settings['n_trials']} trials x {settings['epochs']} epochs, "
        f"{settings['seeds']} seeds (benchmarks/results.json, figure 'pruning')",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def plot_storage(figure: dict[str, Any], target: Path) -> Path:
    """Trials per second against client processes, one line per storage."""
    import matplotlib.pyplot as plt

    by_backend: dict[str, list[tuple[int, float]]] = {}
    for row in figure["table"]:
        by_backend.setdefault(row["backend"], []).append((row["clients"], row["trials/s"]))
    fig, axis = plt.subplots(figsize=(7, 4))
    for backend, points in by_backend.items():
        points.sort()
        axis.plot([c for c, _ in points], [t for _, t in points], marker="o", label=backend)
    axis.set_xscale("log", base=2)
    axis.set(xlabel="client processes", ylabel="trials/s (trivial trials)")
    axis.set_title("Storage under many clients (figure 'storage_scale')", fontsize=10)
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def plot_resume(figure: dict[str, Any], target: Path) -> Path:
    """What a kill at mid-trial costs, with the resume state on and off."""
    import matplotlib.pyplot as plt

    numbers = figure["numbers"]
    sides = ("resume on", "resume off")
    seconds = [numbers["lost_s_resume_on"], numbers["lost_s_resume_off"]]
    epochs = [numbers["epochs_retrained_resume_on"], numbers["epochs_retrained_resume_off"]]
    fig, (seconds_axis, epochs_axis) = plt.subplots(1, 2, figsize=(8, 3.5))
    seconds_axis.bar(sides, seconds, color=["tab:green", "tab:gray"])
    seconds_axis.set(ylabel="seconds lost per kill")
    epochs_axis.bar(sides, epochs, color=["tab:green", "tab:gray"])
    epochs_axis.set(ylabel="epochs trained again")
    fig.suptitle("A kill in the middle of a 10-epoch toy trial (figure 'resume')", fontsize=10)
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def benchmark_plots(results: Path, folder: Path) -> list[Path]:
    """Draw the pruning, storage and resume plots from a results file into ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    figures = _figures(results)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        plot_pruning(figures["pruning"], folder / "pruning.png"),
        plot_storage(figures["storage_scale"], folder / "storage.png"),
        plot_resume(figures["resume"], folder / "resume.png"),
    ]


# -- the report sample and the dashboard screenshots --------------------------------------------


def _hpsearch(*args: str, cwd: Path) -> None:
    print("+ hpsearch", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "search", *args], cwd=cwd, check=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _best_trial(folder: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "search", "show", STUDY, "--json"],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(json.loads(done.stdout)["best_trial"])


def _screenshot(browser: str, url: str, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="hpsearch-chromium-") as profile:
        subprocess.run(
            [
                browser,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--screenshot={target}",
                "--window-size=1280,900",
                url,
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
    print(f"wrote {target.relative_to(REPO)}", flush=True)


def dashboard_screenshots(folder: Path) -> None:
    browser = which_chromium()
    if browser is None:
        raise SystemExit("docs-figures: the screenshots need chromium (apt-get install chromium)")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "search", "dashboard", "--port", str(port)],
        cwd=folder,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/studies", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        best = _best_trial(folder)
        _screenshot(browser, f"{base}/dashboard/studies/1", DOCS / "dashboard.png")
        _screenshot(
            browser,
            f"{base}/dashboard/studies/1/trials?numbers={best}",
            DOCS / "dashboard-trial.png",
        )
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)


def report_sample(folder: Path, workers: int) -> None:
    """Run the default study in ``folder`` and write its report to docs/report-sample/."""
    shutil.copytree(REPO / "study_configs", folder / "study_configs", dirs_exist_ok=True)
    # Rerunning the command on a finished study trains nothing: it already holds n_trials.
    _hpsearch("run", DEFAULT_CONFIG, "--workers", str(workers), "--progress", "off", cwd=folder)
    sample = DOCS / "report-sample"
    shutil.rmtree(sample, ignore_errors=True)
    _hpsearch("report", STUDY, "-o", str(folder / "report-sample"), cwd=folder)
    shutil.copytree(folder / "report-sample", sample)
    print(f"wrote {sample.relative_to(REPO)}/", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docs_figures", description=__doc__)
    parser.add_argument(
        "--only",
        default="plots,report,dashboard",
        help="comma list of plots, report, dashboard (default: all)",
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="workers of the default study"
    )
    parser.add_argument(
        "--study-folder",
        type=Path,
        help="run the default study in this folder and keep it (default: a temporary folder); "
        "a folder that already holds the finished study is reused without training again",
    )
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    if "plots" in parts:
        for path in benchmark_plots(REPO / "benchmarks" / "results.json", DOCS / "benchmarks"):
            print(f"wrote {path.relative_to(REPO)}", flush=True)
    if parts & {"report", "dashboard"}:
        with tempfile.TemporaryDirectory(prefix="hpsearch-docs-figures-") as scratch:
            folder = args.study_folder or Path(scratch)
            folder.mkdir(parents=True, exist_ok=True)
            report_sample(folder, args.workers)
            if "dashboard" in parts:
                dashboard_screenshots(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
