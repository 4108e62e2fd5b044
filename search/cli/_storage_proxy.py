"""``hpsearch storage-proxy``: serve a study database to many workers through one gRPC proxy."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from search.cli._common import EXIT_OK, add_storage, port_or_zero, storage_of
from storage.proxy import DEFAULT_PORT, start_proxy
from storage.urls import parse_storage_url


def register(commands: Any) -> None:
    sub = commands(
        "storage-proxy",
        "serve a storage to many workers through Optuna's gRPC proxy, with heartbeats",
        storage_proxy,
    )
    add_storage(sub)
    sub.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; use the machine's address, or 0.0.0.0, "
        "for workers on other machines)",
    )
    sub.add_argument(
        "--port",
        type=port_or_zero,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)",
    )


def storage_proxy(args: argparse.Namespace) -> int:
    backend = parse_storage_url(storage_of(args))
    server, url = start_proxy(backend, args.host, args.port)
    print(
        f"storage proxy on {url} for {backend.masked}\n"
        f"  workers: hpsearch run CONFIG --storage {url}\n"
        "  Ctrl-C to stop",
        flush=True,
    )
    # Ctrl-C or SIGTERM stops it, even when started from a shell that ignores SIGINT. The
    # handlers only set a flag: a KeyboardInterrupt raised inside gRPC's wait could land while
    # threading re-acquires its lock and end the command in "release unlocked lock".
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    # Half-second waits (True: timed out), so a stop is acted on at once.
    while not stop.is_set() and server.wait_for_termination(timeout=0.5):
        pass
    # Calls in flight get two seconds to finish; workers retry what the stop cut off.
    server.stop(grace=2).wait()
    print("storage proxy stopped", file=sys.stdout, flush=True)
    return EXIT_OK
