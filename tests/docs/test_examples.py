"""Every example in docs/ is checked against the code, so the manual cannot drift from it.

- YAML blocks: each carries a marker comment right before it (``<!-- check: KIND ... -->``) and
  is loaded with the real config loader: ``config`` (a whole config, as it stands),
  ``fragment [BASE]`` (merged into ``BASE``, by default the default study, first),
  ``fragments [BASE]`` (each line is one fragment), ``error`` (a fragment merged into the default
  study must fail with the error printed in the next block). ``no REASON`` opts a block out, with
  the reason. A block pulled from a real file (``--8<--``) is that file, tested where it lives.
- Python blocks run with Sybil in a scratch folder; ``>>>`` blocks have their printed output
  compared (doctest).
- ``console`` blocks marked ``<!-- check: shell -->`` run each ``$ command`` in a scratch folder
  (a copy of ``study_configs/``) on the budget the command itself shows, and the output must have
  the shape shown: the same lines, numbers aside, ``...`` standing for any lines.

Nothing here runs at site-build time; `make test` runs it.
"""

from __future__ import annotations

import doctest
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from search.config import dump_yaml, load_config, parse_yaml
from search.errors import USER_ERRORS
from tests.conftest import REPO, cli_env

DOCS = REPO / "docs"
DEFAULT_BASE = "study_configs/toy_transformer.yaml"
PLUGIN_SITE = REPO / "tests" / "plugins" / "site"
MARKER = re.compile(r"^<!-- check: (\w+)(?:,? (.*?))? -->$")
FENCE = re.compile(r"^(\s*)```(\w*)")
YAML_KINDS = {"config", "fragment", "fragments", "error", "no"}


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: its language, text, and the marker before it."""

    page: Path
    line: int
    language: str
    text: str
    kind: str | None
    argument: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    @property
    def pulled_from_a_file(self) -> bool:
        return self.text.lstrip().startswith("--8<--")


def page_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, language = opening.group(1), opening.group(2)
        previous = next((line.strip() for line in reversed(lines[:index]) if line.strip()), "")
        marker = MARKER.match(previous)
        end = index + 1
        while not lines[end].startswith(f"{indent}```"):
            end += 1
        text = "\n".join(line.removeprefix(indent) for line in lines[index + 1 : end])
        blocks.append(
            Block(
                page=page,
                line=index + 1,
                language=language,
                text=text + "\n",
                kind=marker.group(1) if marker else None,
                argument=(marker.group(2) or "") if marker else "",
            )
        )
        index = end + 1
    return blocks


def all_blocks() -> Iterator[tuple[Block, Block | None]]:
    """Every block with the block after it on the same page (an error's expected message)."""
    for page in sorted(DOCS.rglob("*.md")):
        blocks = page_blocks(page)
        for position, block in enumerate(blocks):
            yield block, blocks[position + 1] if position + 1 < len(blocks) else None


YAML_BLOCKS = [
    pytest.param(block, following, id=block.where)
    for block, following in all_blocks()
    if block.language == "yaml" and not block.pulled_from_a_file and block.kind != "no"
]
SHELL_BLOCKS = [
    pytest.param(block, id=block.where) for block, _ in all_blocks() if block.kind == "shell"
]


def test_every_yaml_block_is_checked_or_says_why_not() -> None:
    unmarked = [
        block.where
        for block, _ in all_blocks()
        if block.language == "yaml" and not block.pulled_from_a_file and block.kind is None
    ]
    assert not unmarked, f"YAML blocks without <!-- check: ... -->: {unmarked}"
    for block, _ in all_blocks():
        if block.language == "yaml" and block.kind is not None:
            assert block.kind in YAML_KINDS, (block.where, block.kind)
            assert block.kind != "no" or len(block.argument) > 10, f"{block.where}: say why not"
    assert len(YAML_BLOCKS) >= 5 and len(SHELL_BLOCKS) >= 2


def merge(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    """``fragment`` over ``base``, mappings merged key by key, except ``data:``, which holds one
    data source and is replaced whole. As with ``--set``, a parameter the fragment fixes is no
    longer searched, and one it searches is no longer fixed."""
    result = dict(base)
    for key, value in fragment.items():
        if key != "data" and isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    for section, other in (("fixed", "search"), ("search", "fixed")):
        for name in (fragment.get(section) or {}) if isinstance(fragment, dict) else ():
            if isinstance(result.get(other), dict) and name in result[other]:
                result[other] = {k: v for k, v in result[other].items() if k != name}
    return result


def load_fragment(text: str, base: str, folder: Path) -> None:
    base_config = parse_yaml((REPO / base).read_text(), base)
    merged = merge(base_config, parse_yaml(text, "fragment"))
    (folder / "study.yaml").write_text(dump_yaml(merged))
    load_config("study.yaml")


@pytest.mark.parametrize(("block", "following"), YAML_BLOCKS)
def test_yaml_block_loads_with_the_real_loader(
    block: Block,
    following: Block | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(PLUGIN_SITE))  # the objective-plugin page's example
    base = block.argument or DEFAULT_BASE
    if block.kind == "config":
        (tmp_path / "study.yaml").write_text(block.text)
        load_config("study.yaml")
    elif block.kind == "fragment":
        load_fragment(block.text, base, tmp_path)
    elif block.kind == "fragments":
        for line in block.text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                load_fragment(line, base, tmp_path)
    elif block.kind == "error":
        assert following is not None, f"{block.where}: the error it prints must follow"
        expected = following.text.strip().removeprefix("hpsearch: error: ")
        with pytest.raises(USER_ERRORS) as error:
            load_fragment(block.text, DEFAULT_BASE, tmp_path)
        assert str(error.value) == expected
    else:
        pytest.fail(f"{block.where}: unknown check {block.kind!r}")


def scratch_folder(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "study_configs", tmp_path / "study_configs")
    return tmp_path


@pytest.mark.slow
def test_python_blocks_run_and_print_what_the_page_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sybil import Sybil
    from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

    monkeypatch.chdir(scratch_folder(tmp_path))
    sybil = Sybil(
        parsers=[
            PythonCodeBlockParser(doctest_optionflags=doctest.NORMALIZE_WHITESPACE),
            SkipParser(),
        ],
        path=str(DOCS),
    )
    ran = 0
    for page in sorted(DOCS.rglob("*.md")):
        document = sybil.parse(page)
        for example in document.examples():
            example.evaluate()
            ran += 1
    assert ran >= 4, "the pages lost their Python examples"


NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


def line_pattern(line: str) -> str:
    """A line's shape: numbers match any number, runs of spaces any run of spaces."""
    parts = re.split(rf"({NUMBER}| +)", line)
    pattern = ""
    for part in parts:
        if not part:
            continue
        if re.fullmatch(NUMBER, part):
            pattern += NUMBER
        elif part.strip() == "":
            pattern += " +"
        else:
            pattern += re.escape(part)
    return pattern


def output_pattern(lines: list[str]) -> re.Pattern[str]:
    pattern = ""
    for line in lines:
        pattern += "(?:.*\n)*?" if line.strip() == "..." else line_pattern(line) + "\n"
    return re.compile(pattern)


def commands(block: Block) -> list[tuple[str, list[str]]]:
    """The ``$ command`` lines of a console block, each with the output shown under it."""
    found: list[tuple[str, list[str]]] = []
    for line in block.text.rstrip("\n").splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        else:
            assert found, f"{block.where}: output before the first $ command"
            found[-1][1].append(line)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("block", SHELL_BLOCKS)
def test_shell_block_prints_the_shape_the_page_shows(block: Block, tmp_path: Path) -> None:
    folder = scratch_folder(tmp_path)
    env = cli_env()
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    for command, shown in commands(block):
        done = subprocess.run(
            ["bash", "-c", command + " 2>&1"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = done.stdout if done.stdout.endswith("\n") else done.stdout + "\n"
        assert output_pattern(shown).fullmatch(output), (
            f"{block.where}: `{command}` printed\n{output}\nwhich is not the shape shown:\n"
            + "\n".join(shown)
        )
