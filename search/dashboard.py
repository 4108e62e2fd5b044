"""``hpsearch dashboard``: optuna-dashboard on the study storage."""

from __future__ import annotations

import sys

from storage.rdb import open_storage
from storage.urls import parse_storage_url


def serve(url: str, host: str, port: int) -> int:
    """Serve optuna-dashboard until Ctrl-C. SQLite in WAL mode lets workers write meanwhile."""
    from optuna_dashboard import run_server

    storage_url = parse_storage_url(url)
    storage = open_storage(storage_url, create=False)
    print(f"optuna-dashboard for {storage_url.masked} on http://{host}:{port}/ (Ctrl-C to stop)")
    sys.stdout.flush()
    try:
        run_server(storage, host=host, port=port)
    except KeyboardInterrupt:
        print("dashboard stopped")
    return 0
