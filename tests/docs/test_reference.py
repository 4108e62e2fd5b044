"""The hand-written reference pages name everything the code defines, so they cannot fall behind."""

from __future__ import annotations

import re

import search.trial
from search.cli import build_parser
from tests.conftest import REPO

REFERENCE = REPO / "docs" / "reference"


def test_the_trial_record_page_names_every_user_attr() -> None:
    page = (REFERENCE / "trial-record.md").read_text(encoding="utf-8")
    keys = [
        value
        for name in search.trial.__all__
        if name.isupper() and isinstance(value := getattr(search.trial, name), str)
    ]
    assert "spared_while_improving" in keys and "epochs" in keys
    missing = [key for key in keys if key != "test_" and f"`{key}`" not in page]
    assert not missing, f"docs/reference/trial-record.md does not name {missing}"


def test_the_exit_codes_page_lists_the_codes_the_cli_returns() -> None:
    page = (REFERENCE / "exit-codes.md").read_text(encoding="utf-8")
    listed = {int(code) for code in re.findall(r"^\| (\d+) \|", page, flags=re.MULTILINE)}
    # The parser's epilog (what `hpsearch --help` ends with) names the codes `main` returns.
    epilog = build_parser().epilog or ""
    assert listed == {int(code) for code in re.findall(r"\b(\d+) [a-z]", epilog)} == {0, 1, 2, 130}
