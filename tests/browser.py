"""The headless Chromium the browser tests drive: found, or skipped (failed under CI)."""

from __future__ import annotations

import os

import pytest

from tools.chromium import CHROMIUM_FLAGS, which_chromium

__all__ = ["CHROMIUM_FLAGS", "chromium"]


def chromium() -> str:
    found = which_chromium()
    if found:
        return found
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("CI must have chromium (`.ci/run` installs it with apt-get)")
    pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
