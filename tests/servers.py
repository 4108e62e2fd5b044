"""What the tests that need a server or a privilege share: a free port, and skip-or-fail."""

from __future__ import annotations

import os
import socket

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unavailable(what: str, reason: str) -> None:
    """Skip the tests of ``what``, or fail them under CI, where they must run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} tests cannot run under CI: {reason}")
    pytest.skip(reason)
