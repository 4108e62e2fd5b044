"""The package layers, read from the source with ``ast`` (nothing of the product is imported).

``search`` (top) may use ``objectives`` and ``storage``; ``objectives`` (middle) and ``storage``
(bottom) never reach up or sideways, and ``objectives`` stays free of Optuna so a training run
knows nothing of studies. Modules do not import each other in a circle: an import cycle works
only by the order in which modules happen to be loaded, and breaks when that order changes.

Inside ``search`` the concept packages are stacked too (``SEARCH_ORDER``, top first): a package
imports only those below it. A module whose name starts with one underscore is private to its
package: nothing outside that package imports it, tests and benchmarks included (they use the
names the package's ``__init__`` re-exports). No module is over ``MAX_LINES`` lines.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("search", "objectives", "storage")

# Top-level names each package must not import (directly, in a function, or for type checking).
FORBIDDEN: dict[str, frozenset[str]] = {
    "storage": frozenset({"search", "objectives"}),
    "objectives": frozenset({"search", "storage", "optuna"}),
}

# Inside ``search``, top first: each may import only those after it. ``cli`` takes
# ``search.__main__`` (``python -m search``); ``api`` the loose ``search`` and ``search.api``; ``base`` the loose modules every
# layer uses (``errors``, ``version``, ``formatting``).
SEARCH_ORDER = (
    "cli",
    "api",
    "retrain",
    "readout",
    "study",
    "pruning",
    "trial",
    "config",
    "base",
)
SEARCH_LOOSE = {
    "search": "api",
    "search.__main__": "cli",
    "search.api": "api",
    "search.errors": "base",
    "search.version": "base",
    "search.formatting": "base",
}
MAX_LINES = 400
# Folders whose Python files may import the product; checked for private imports too.
CONSUMERS = ("tests", "benchmarks")

# Design notes outside the repository; spelled in two parts so this file does not cite them.
OUTSIDE_DOC = "DESIGN" + ".md"
TEXT_SUFFIXES = {".py", ".md", ".txt", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".json"}


@dataclass(frozen=True)
class Import:
    """One imported module as written in a file (absolute, relative imports resolved)."""

    target: str  # dotted module name, e.g. "search.config" or "optuna.trial"
    names: tuple[str, ...]  # the names of ``from target import a, b`` (empty for ``import``)
    file: Path
    line: int
    type_checking: bool  # inside ``if TYPE_CHECKING:`` (never executed)

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(REPO)}:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    files: list[Path] = []
    for package in PACKAGES:
        files.extend(
            p for p in sorted((REPO / package).rglob("*.py")) if "__pycache__" not in p.parts
        )
    return files


def _is_type_checking(test: ast.expr) -> bool:
    # `if TYPE_CHECKING:` and `if typing.TYPE_CHECKING:`
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve_relative(path: Path, module: str | None, level: int) -> str:
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, module] if module else base)


def imports_of(path: Path) -> Iterator[Import]:
    """Every import in a file: top level, in functions and classes, and type-checking only."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def visit(node: ast.AST, type_checking: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, (), path, node.lineno, type_checking)
        elif isinstance(node, ast.ImportFrom):
            target = (
                _resolve_relative(path, node.module, node.level)
                if node.level
                else (node.module or "")
            )
            names = tuple(alias.name for alias in node.names)
            yield Import(target, names, path, node.lineno, type_checking)
        elif isinstance(node, ast.Call) and (dynamic := _literal_dynamic_import(node)):
            # importlib.import_module("x.y") / __import__("x.y") with a literal name
            yield Import(dynamic, (), path, node.lineno, type_checking)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, True)
            for child in node.orelse:
                yield from visit(child, type_checking)
            return
        for child in ast.iter_child_nodes(node):
            yield from visit(child, type_checking)

    yield from visit(tree, False)


def _literal_dynamic_import(call: ast.Call) -> str | None:
    func = call.func
    named = (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id in ("import_module", "__import__")
    )
    if named and call.args and isinstance(call.args[0], ast.Constant):
        value = call.args[0].value
        if isinstance(value, str) and not value.startswith("."):
            return value
    return None


def test_lower_layers_import_nothing_above_or_beside_them() -> None:
    violations: list[str] = []
    for path in source_files():
        package = module_name(path).split(".")[0]
        forbidden = FORBIDDEN.get(package)
        if not forbidden:
            continue
        for found in imports_of(path):
            top = found.target.split(".")[0]
            if top in forbidden:
                kind = " (TYPE_CHECKING)" if found.type_checking else ""
                violations.append(f"{found.where}: {package} imports {found.target}{kind}")
    assert not violations, (
        "layer violations (storage may import neither search nor objectives; objectives may "
        "import neither search, storage nor optuna):\n" + "\n".join(violations)
    )


def import_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    """Edges between project modules from executed imports; plus where each edge is written.

    ``if TYPE_CHECKING:`` imports never run, so they cannot form a cycle and are left out.
    ``from package import name`` points at the submodule ``package.name`` when there is one.
    """
    paths = {module_name(path): path for path in source_files()}
    modules = set(paths)
    graph: dict[str, set[str]] = {module: set() for module in modules}
    where: dict[tuple[str, str], str] = {}

    def add(source: str, target: str, found: Import) -> None:
        if target != source and target in modules:
            graph[source].add(target)
            where.setdefault((source, target), found.where)

    for source, path in paths.items():
        for found in imports_of(path):
            if found.type_checking:
                continue
            if not found.names:  # import a.b.c: the deepest project module named
                parts = found.target.split(".")
                for end in range(len(parts), 0, -1):
                    if ".".join(parts[:end]) in modules:
                        add(source, ".".join(parts[:end]), found)
                        break
                continue
            for name in found.names:
                submodule = f"{found.target}.{name}"
                add(source, submodule if submodule in modules else found.target, found)
    return graph, where


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (first module repeated at the end) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_in(graph, group) for group in groups]


def _cycle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")


def test_modules_do_not_import_each_other_in_a_circle() -> None:
    graph, where = import_graph()
    cycles = find_cycles(graph)
    lines = []
    for cycle in cycles:
        steps = [f"{a} -> {b} ({where[a, b]})" for a, b in itertools.pairwise(cycle)]
        lines.append("cycle: " + " -> ".join(cycle) + "\n    " + "\n    ".join(steps))
    assert not cycles, "import cycles between project modules:\n" + "\n".join(lines)


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle() -> None:
    """The checker itself: a planted cycle is found and reported in order; a chain is not."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_relative_imports_resolve_against_the_files_package() -> None:
    init = REPO / "search" / "config" / "__init__.py"
    module = REPO / "search" / "config" / "_load.py"
    assert _resolve_relative(init, "_schema", 1) == "search.config._schema"
    assert _resolve_relative(module, "_schema", 1) == "search.config._schema"
    assert _resolve_relative(module, "errors", 2) == "search.errors"
    assert _resolve_relative(module, None, 1) == "search.config"


def test_no_file_cites_design_notes_outside_the_repository() -> None:
    """Docs live in the repository (docs/architecture.md); a file elsewhere cannot be read."""
    this_file = Path(__file__).resolve()
    citing: list[str] = []
    for folder in (*PACKAGES, "tests"):
        for path in sorted((REPO / folder).rglob("*")):
            if (
                not path.is_file()
                or path.resolve() == this_file
                or path.suffix not in TEXT_SUFFIXES
                or "__pycache__" in path.parts
            ):
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), start=1):
                if OUTSIDE_DOC.lower() in line.lower():
                    citing.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not citing, (
        f"these lines cite {OUTSIDE_DOC}, which is not in the repository; cite "
        "docs/architecture.md (or say it in place):\n" + "\n".join(citing)
    )


def search_layer(module: str) -> str | None:
    """The layer of a ``search`` module (``SEARCH_ORDER``), None outside ``search``."""
    if module in SEARCH_LOOSE:
        return SEARCH_LOOSE[module]
    parts = module.split(".")
    if parts[0] != "search" or len(parts) < 2:
        return None
    if parts[1] not in SEARCH_ORDER:
        raise AssertionError(f"{module} is in no layer: add its package to SEARCH_ORDER")
    return parts[1]


def test_search_packages_import_only_the_layers_below_them() -> None:
    rank = {layer: index for index, layer in enumerate(SEARCH_ORDER)}
    violations: list[str] = []
    for path in source_files():
        source = module_name(path)
        layer = search_layer(source)
        if layer is None:
            continue
        for found in imports_of(path):
            target = search_layer(found.target) if found.target.startswith("search") else None
            if target is None or target == layer:
                continue
            if rank[target] < rank[layer]:
                kind = " (TYPE_CHECKING)" if found.type_checking else ""
                violations.append(f"{found.where}: {layer} imports {found.target} ({target}){kind}")
    assert not violations, (
        "search's packages import only downwards ("
        + " > ".join(SEARCH_ORDER)
        + "):\n"
        + "\n".join(violations)
    )


def private_owner(module: str) -> str | None:
    """The package that owns ``module`` when a part of its name is private (``_x``), else None."""
    parts = module.split(".")
    for index, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:index])
    return None


def test_private_modules_are_imported_only_inside_their_package() -> None:
    files = [*source_files()]
    for folder in CONSUMERS:
        files.extend(
            p for p in sorted((REPO / folder).rglob("*.py")) if "__pycache__" not in p.parts
        )
    modules = {module_name(path) for path in source_files()}
    violations: list[str] = []
    for path in files:
        source = module_name(path)
        for found in imports_of(path):
            if found.target.split(".")[0] not in PACKAGES:
                continue
            named = [f"{found.target}.{name}" for name in found.names]
            targets = [found.target, *(name for name in named if name in modules)]
            for target in targets:
                owner = private_owner(target)
                if owner and not (source == owner or source.startswith(owner + ".")):
                    violations.append(f"{found.where}: imports {target}, private to {owner}")
    assert not violations, (
        "private modules (a leading underscore) are for their own package; import the "
        "package's re-exported names instead:\n" + "\n".join(violations)
    )


def test_the_layer_helpers_read_names_right() -> None:
    assert private_owner("search.study._runner") == "search.study"
    assert private_owner("search.study") is None
    assert private_owner("search.__main__") is None
    assert search_layer("search.cli._run") == "cli"
    assert search_layer("search.formatting") == "base"
    assert search_layer("objectives.loop") is None


def test_every_search_package_says_what_it_offers() -> None:
    """Each package's ``__init__`` lists its public names in ``__all__``, each of them bound."""
    missing: list[str] = []
    for init in sorted((REPO / "search").glob("*/__init__.py")):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        exported: list[str] = []
        bound: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
            ):
                exported = list(ast.literal_eval(node.value))
            elif isinstance(node, ast.ImportFrom):
                bound.update(alias.asname or alias.name for alias in node.names)
            elif isinstance(node, ast.FunctionDef | ast.ClassDef):
                bound.add(node.name)
            elif isinstance(node, ast.Assign):
                bound.update(t.id for t in node.targets if isinstance(t, ast.Name))
        where = init.relative_to(REPO)
        if not exported:
            missing.append(f"{where}: no __all__")
        missing.extend(
            f"{where}: __all__ names {name}, never bound" for name in exported if name not in bound
        )
    assert not missing, "\n".join(missing)


def test_no_search_module_is_over_the_line_limit() -> None:
    long = [
        f"{path.relative_to(REPO)}: {count} lines"
        for path in source_files()
        if module_name(path).split(".")[0] == "search"
        and (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert not long, f"modules over {MAX_LINES} lines; split them along a seam:\n" + "\n".join(long)
