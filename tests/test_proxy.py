"""The gRPC storage proxy: workers, read commands, a killed worker's trial retried, bad input.

Every proxy here is the real ``hpsearch storage-proxy`` command in its own process, serving a
SQLite file in the test's folder; the tests read that file directly to check what was stored.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from search.readout import stopped_trials
from search.trial import AUDITED_TRIAL
from tests.conftest import cli_env
from tests.search.test_audit import AUDITED_STUDY
from tests.servers import free_port
from tests.test_reliability import (
    finish,
    freeze_when,
    killed_in,
    load_trials,
    running_with_an_epoch,
    start,
    states,
    write,
)

Run = Callable[..., subprocess.CompletedProcess[str]]
ANNOUNCE = re.compile(r"^storage proxy on (grpc://\S+) for (\S+)$")


@contextlib.contextmanager
def proxy(
    backend: str, cwd: Path, host: str = "127.0.0.1", stop: int = signal.SIGINT
) -> Iterator[str]:
    """``hpsearch storage-proxy`` on a free port; yields its grpc:// URL once it has said it,
    and checks that ``stop`` (Ctrl-C by default) ends it cleanly."""
    process = start("storage-proxy", "--storage", backend, "--port", "0", "--host", host, cwd=cwd)
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        match = ANNOUNCE.match(first)
        assert match, (first, process.stderr.read() if process.poll() is not None else "")
        yield match.group(1)
    finally:
        process.send_signal(stop)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "storage proxy stopped" in out


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_stop_the_proxy_with_exit_0(tmp_path: Path, stop: int) -> None:
    # The stop once landed inside gRPC's lock wait and ended in "release unlocked lock", exit 1.
    with proxy(f"sqlite:///{tmp_path / 'hp.db'}", tmp_path, stop=stop) as url:
        host, port = url.removeprefix("grpc://").rsplit(":", 1)
        storage = optuna.storages.GrpcStorageProxy(host=host, port=int(port))
        assert optuna.get_all_study_names(storage=storage) == []


@pytest.mark.slow
def test_workers_and_every_read_command_through_the_proxy(run_cli: Run, tmp_path: Path) -> None:
    config = write(tmp_path, {"study": {"n_trials": 4}, "fixed": {"epochs": 2}})
    with proxy(f"sqlite:///{tmp_path / 'hp.db'}", tmp_path) as url:
        done = run_cli("run", str(config), "--storage", url, "--workers", "2")
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", "the hpsearch proxy relays heartbeats: no warning"
        assert f"study 'micro' on {url}: 0/4 finished" in done.stdout
        trials = load_trials(tmp_path)  # the backend file itself
        assert sorted(t.number for t in trials) == [0, 1, 2, 3]
        assert states(trials) == ["COMPLETE"] * 4
        assert all(len(t.user_attrs["epochs"]) == 2 for t in trials)
        assert not any(k.startswith("hpsearch:") for t in trials for k in t.system_attrs)

        listed = run_cli("list", "--storage", url, "--json")
        assert listed.returncode == 0, listed.stderr
        assert '"complete": 4' in listed.stdout
        shown = run_cli("show", "micro", "--storage", url)
        assert shown.returncode == 0 and "4 complete" in shown.stdout
        exported = run_cli("export", "micro", "--storage", url, "-o", "best.yaml")
        assert exported.returncode == 0, exported.stderr
        best = min(trials, key=lambda t: t.value)
        assert (
            yaml.safe_load((tmp_path / "best.yaml").read_text())["fixed"]["lr"] == best.params["lr"]
        )
        reported = run_cli("report", "micro", "--storage", url, "-o", "report")
        assert reported.returncode == 0, reported.stderr
        assert "4 complete" in (tmp_path / "report" / "report.md").read_text()
        retrained = run_cli("retrain", "best.yaml", "--seeds", "2", "--storage", url)
        assert retrained.returncode == 0, retrained.stderr
        assert "winner | test_accuracy |     2 |" in retrained.stdout
        studies = dashboard_studies(url, tmp_path)
        assert sorted(s["study_name"] for s in studies) == ["micro", "micro/retrain"]


@pytest.mark.slow
def test_audit_through_the_proxy(run_cli: Run, tmp_path: Path) -> None:
    # One worker and a fixed seed: the same trials stop early as in tests/search/test_audit.py.
    config = write(tmp_path, AUDITED_STUDY)
    with proxy(f"sqlite:///{tmp_path / 'hp.db'}", tmp_path) as url:
        done = run_cli("run", str(config), "--storage", url)
        assert done.returncode == 0, done.stderr
        stopped = stopped_trials(load_trials(tmp_path))
        assert stopped, "the micro study must prune or stop some trials"
        audit = run_cli("audit", "micro", "--storage", url, "--trials", "1")
        assert audit.returncode == 0, audit.stderr
        assert "wrong prunes:" in audit.stdout
    audited = load_trials(tmp_path, name="micro/audit")
    assert [t.state for t in audited] == [TrialState.COMPLETE]
    assert len(audited[0].user_attrs["epochs"]) == AUDITED_STUDY["fixed"]["epochs"]
    assert audited[0].user_attrs[AUDITED_TRIAL] in {r.number for r in stopped}


def dashboard_studies(url: str, cwd: Path) -> list[dict[str, Any]]:
    """What ``hpsearch dashboard`` on the proxy serves at /api/studies."""
    port = free_port()
    process = start("dashboard", "--storage", url, "--port", str(port), cwd=cwd)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # printed once the server answers
        assert first.startswith("optuna-dashboard on"), process.stderr
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/api/studies", timeout=30) as response:
            return list(json.load(response)["study_summaries"])
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


@pytest.mark.slow
def test_a_killed_worker_behind_the_proxy_is_failed_and_its_trial_retried(tmp_path: Path) -> None:
    # Optuna 5's proxy client has no heartbeat; the hpsearch proxy relays them (storage/proxy.py).
    n = 3
    config = write(tmp_path, {"study": {"n_trials": n}, "fixed": {"epochs": 8}})
    with proxy(f"sqlite:///{tmp_path / 'hp.db'}", tmp_path) as url:
        process = start("run", str(config), "--storage", url, cwd=tmp_path)
        dead = killed_in(freeze_when(tmp_path, running_with_an_epoch(), process))
        k = dead.number  # trials that completed before it
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert states(load_trials(tmp_path)) == ["COMPLETE"] * k + ["RUNNING"], (
            "no one told the storage"
        )
        # Not a race: the last heartbeat went through before the kill, so after the grace
        # period (2 s) the proxy finds the trial stale for certain when the rerun asks.
        time.sleep(2.5)

        code, _, err = finish(start("run", str(config), "--storage", url, cwd=tmp_path))
        assert code == 0, err
        assert err == ""
    trials = sorted(load_trials(tmp_path), key=lambda t: t.number)
    assert states(trials) == ["COMPLETE"] * k + ["FAIL"] + ["COMPLETE"] * (n - k)
    retry = trials[k + 1]
    assert retry.params == dead.params, "the dead trial's parameters ran again"
    assert retry.system_attrs["failed_trial"] == k
    assert len(retry.user_attrs["epochs"]) == 8


def test_a_plain_optuna_proxy_gets_a_warning_not_silence(run_cli: Run, tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import optuna, sys; optuna.storages.run_grpc_proxy_server("
            "optuna.storages.get_storage(sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]))",
            f"sqlite:///{tmp_path / 'hp.db'}",
            str(port),
        ],
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        # Optuna logs "Server started at ..." once it listens.
        while "Server started" not in (line := server.stderr.readline()):
            assert line, "the plain proxy exited"
        config = write(tmp_path, {"study": {"n_trials": 1}, "fixed": {"epochs": 1}})
        done = run_cli("run", str(config), "--storage", f"grpc://127.0.0.1:{port}")
    finally:
        server.kill()
        server.wait(timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\n") == 1
    assert "is not `hpsearch storage-proxy`" in done.stderr
    assert "never retried" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--storage", "grpc://127.0.0.1:{closed}"], "no storage proxy answers at"),
        (["list", "--storage", "grpc://no-port"], "is not grpc://HOST:PORT"),
        (["list", "--storage", "grpc://127.0.0.1:70000"], "is not between 1 and 65535"),
        (
            ["storage-proxy", "--storage", "postgresql://u:secret@127.0.0.1:{closed}/db"],
            "cannot open storage postgresql+psycopg://u:***@127.0.0.1",
        ),
        (["storage-proxy", "--storage", "grpc://127.0.0.1:1"], "is itself a proxy"),
        (["storage-proxy", "--port", "{busy}"], "cannot listen on 127.0.0.1:"),
        (["storage-proxy", "--host", "203.0.113.9", "--port", "0"], "cannot listen on"),
    ],
)
def test_bad_proxy_input_is_one_line_and_exit_2(
    run_cli: Run, tmp_path: Path, args: list[str], message: str
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        closed = free_port()
        filled = [a.format(closed=closed, busy=busy.getsockname()[1]) for a in args]
        done = run_cli(*filled, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("hpsearch: error: ") and done.stderr.count("\n") == 1
    assert message in done.stderr
    assert "secret" not in done.stderr
    assert not (tmp_path / "studies").exists(), "nothing written"


def test_the_proxy_client_relays_heartbeats_into_the_backend_table(tmp_path: Path) -> None:
    """What the kill test relies on, one level down: heartbeats reach Optuna's own table."""
    from storage.connect import open_storage
    from storage.urls import parse_storage_url

    backend = f"sqlite:///{tmp_path / 'hp.db'}"
    with proxy(backend, tmp_path) as url:
        client = open_storage(
            parse_storage_url(url), create=True, heartbeat_interval=1, heartbeat_grace=1
        )
        study = optuna.create_study(study_name="beat", storage=client)
        trial = study.ask()
        client.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
        direct = optuna.storages.RDBStorage(backend, heartbeat_interval=1, grace_period=1)
        assert direct._get_stale_trial_ids(study._study_id) == []
        # SQLite's clock counts whole seconds: 2.5 s is past a 1 s grace on any reading.
        time.sleep(2.5)
        assert direct._get_stale_trial_ids(study._study_id) == [trial._trial_id]
        assert client.relays_heartbeats(study._study_id)  # type: ignore[attr-defined]
        assert study.get_trials()[0].state == TrialState.FAIL
