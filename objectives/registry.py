"""Which objectives exist: the built-in ones and those other packages register.

A package makes an objective available by declaring an entry point in the group
``hpsearch.objectives`` whose name is the objective's name and whose object is an
:class:`~objectives.specs.ObjectiveSpec` (or a function without arguments returning one)::

    [project.entry-points."hpsearch.objectives"]
    mlp_blobs = "my_package.objective:SPEC"

``objective: mlp_blobs`` in a study config then works in every command. A config names an
objective, never an import path: only installed packages can add code. Entry points are listed
without importing them; one is loaded when a config names it, so a broken plugin only affects
the studies that use it. Built-in names cannot be taken over by a plugin.

:func:`register_objective` adds a spec in the running process (a notebook, a test script);
spawned worker processes do not inherit it, so a study run with ``workers > 1`` needs an
entry point or a script that registers the spec again when it is imported as ``__mp_main__``.
"""

from __future__ import annotations

from importlib import metadata

from objectives.command import NAME as COMMAND_OBJECTIVE
from objectives.errors import ObjectiveError
from objectives.specs import BUILTIN_OBJECTIVES, ObjectiveSpec

ENTRY_POINT_GROUP = "hpsearch.objectives"

# Specs registered in this process with register_objective (not inherited by spawned workers).
_REGISTERED: dict[str, ObjectiveSpec] = {}


def register_objective(spec: ObjectiveSpec) -> None:
    """Make ``spec`` available in this process under ``spec.name``."""
    if not isinstance(spec, ObjectiveSpec):
        raise ObjectiveError(f"register_objective needs an ObjectiveSpec, got {spec!r}")
    if spec.name in BUILTIN_OBJECTIVES:
        raise ObjectiveError(f"objective name {spec.name!r} is built in; choose another name")
    _REGISTERED[spec.name] = spec


def objective_names() -> list[str]:
    """Every objective a config may name, sorted: built-in, registered and installed plugins."""
    return sorted({*BUILTIN_OBJECTIVES, COMMAND_OBJECTIVE, *_REGISTERED, *_entry_points()})


def get_objective(name: str) -> ObjectiveSpec:
    """The spec of objective ``name``; ObjectiveError when there is none or its plugin is broken."""
    if name in BUILTIN_OBJECTIVES:
        return BUILTIN_OBJECTIVES[name]
    if name in _REGISTERED:
        return _REGISTERED[name]
    entry = _entry_points().get(name)
    if entry is None:
        raise ObjectiveError(
            f"unknown objective {name!r}; choose one of {', '.join(objective_names())}"
        )
    return _load(entry)


def _entry_points() -> dict[str, metadata.EntryPoint]:
    found: dict[str, metadata.EntryPoint] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in BUILTIN_OBJECTIVES:
            found.setdefault(entry.name, entry)
    return found


def _load(entry: metadata.EntryPoint) -> ObjectiveSpec:
    where = f"entry point {entry.name} = {entry.value} (group {ENTRY_POINT_GROUP})"
    try:
        loaded = entry.load()
    except Exception as e:  # the plugin's own import error: report it, whatever it is
        raise ObjectiveError(
            f"objective {entry.name!r}: cannot load {where}: {type(e).__name__}: {e}; "
            "fix or reinstall the package that provides it"
        ) from e
    spec = loaded() if callable(loaded) and not isinstance(loaded, ObjectiveSpec) else loaded
    if not isinstance(spec, ObjectiveSpec):
        raise ObjectiveError(
            f"objective {entry.name!r}: {where} gives {type(spec).__name__}, not an ObjectiveSpec"
        )
    if spec.name != entry.name:
        raise ObjectiveError(
            f"objective {entry.name!r}: {where} gives a spec named {spec.name!r}; the entry "
            "point's name and the spec's name must be the same"
        )
    return spec
