"""``hpsearch dashboard``: optuna-dashboard on the study storage, with the artifact store attached.

The server is optuna-dashboard's own WSGI app on the standard library's single-threaded server
(what ``optuna-dashboard`` itself runs by default). It opens the storage read-write but never
creates it; SQLite in WAL mode lets workers write while the dashboard reads.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from search.errors import ConfigError
from search.trial import study_artifact_dir
from storage.artifacts import artifact_dir, open_store
from storage.connect import open_storage
from storage.urls import parse_storage_url

READY_TIMEOUT_S = 30.0


class _QuietHandler(WSGIRequestHandler):
    # One log line per request would drown the URL line; errors still reach stderr.
    def log_message(self, format: str, *args: Any) -> None:
        pass


def dashboard_artifact_dir(storage: optuna.storages.BaseStorage, url: str) -> tuple[Path, str]:
    """The artifact folder to attach, and a note when the storage's studies disagree on it.

    optuna-dashboard serves one artifact store; studies normally share the default folder.
    """
    folders: list[Path] = []
    for summary in optuna.study.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        folder = study_artifact_dir(study, url)
        if folder not in folders:
            folders.append(folder)
    if len(folders) == 1:
        return folders[0], ""
    default = artifact_dir(None, url)
    if not folders:
        return default, ""
    note = (
        f"studies in this storage use {len(folders)} artifact folders "
        f"({', '.join(str(f) for f in folders)}); showing {default}. "
        "Pick one with --artifact-dir"
    )
    return default, note


def serve(
    url: str,
    host: str,
    port: int,
    artifacts: str | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Serve optuna-dashboard until Ctrl-C (or SIGTERM); print the URL once it answers."""
    from optuna_dashboard import wsgi

    storage_url = parse_storage_url(url)
    storage = open_storage(storage_url, create=False)
    if artifacts:
        folder, note = Path(artifacts), ""
    else:
        folder, note = dashboard_artifact_dir(storage, url)
    store = open_store(folder, create=False)
    app = wsgi(storage, artifact_store=store)
    try:
        server = make_server(host, port, app, server_class=WSGIServer, handler_class=_QuietHandler)
    except OSError as e:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {e.strerror}; pass another --port "
            "(or stop what is using it)"
        ) from e
    bound_port = server.server_address[1]
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    address = f"http://{_bracket(shown_host)}:{bound_port}"
    if note:
        print(f"hpsearch: note: {note}", file=sys.stderr)

    def announce() -> None:
        if _wait_until_answers(f"{address}/api/meta", READY_TIMEOUT_S):
            print(
                f"optuna-dashboard on {address}/dashboard\n"
                f"  storage {storage_url.masked}, artifacts {folder}\n"
                "  Ctrl-C to stop",
                file=out,
                flush=True,
            )
        else:
            print(f"hpsearch: dashboard did not answer on {address} yet", file=sys.stderr)

    threading.Thread(target=announce, name="dashboard-ready", daemon=True).start()

    # Ctrl-C and SIGTERM stop the server after the request in hand. Not a KeyboardInterrupt:
    # raised inside a request, wsgiref's error handler would swallow it and serve on. The
    # handler is set even when started from a shell that ignores SIGINT (`cmd &`).
    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, name="dashboard-stop", daemon=True).start()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.25)
        print("dashboard stopped", file=out, flush=True)
    finally:
        server.server_close()
    return 0


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _wait_until_answers(url: str, timeout: float) -> bool:
    # Straight to the server: an HTTP(S)_PROXY in the environment must not catch 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with opener.open(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    return False
