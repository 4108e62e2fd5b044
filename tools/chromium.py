"""Headless Chromium as the docs figures and the browser tests start it (no network, no GPU)."""

from __future__ import annotations

import shutil

# Without the background-networking flags Chromium tries the closed network at every start.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--virtual-time-budget=15000",
)


def which_chromium() -> str | None:
    """The Chromium executable on PATH (Debian's ``chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")
