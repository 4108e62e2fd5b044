"""mkdocs-gen-files script: append the generated reference to the hand-written pages."""

from __future__ import annotations

import sys
from pathlib import Path

import mkdocs_gen_files

# mkdocs runs this file by path; the repository root holds the `tools` package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.docs_reference import cli_reference, config_reference

with mkdocs_gen_files.open("reference/cli.md", "a") as page:
    page.write("\n" + cli_reference())

with mkdocs_gen_files.open("reference/config.md", "a") as page:
    page.write("\n" + config_reference())
