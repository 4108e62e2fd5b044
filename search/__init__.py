"""hpsearch: Optuna hyperparameter search for Transformer training.

The Python API (see docs/reference/api.md)::

    from search import load_config, run_study, export_best, export_front, run_retrain, write_report

Names are loaded on first use, so ``import search`` stays cheap (no Optuna, no torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.version import __version__

if TYPE_CHECKING:
    from search.api import export_best, export_front, run_retrain, run_study, write_report
    from search.config import load_config

__all__ = [
    "__version__",
    "export_best",
    "export_front",
    "load_config",
    "run_retrain",
    "run_study",
    "write_report",
]

_API = {
    "load_config": "search.config",
    "run_study": "search.api",
    "export_best": "search.api",
    "export_front": "search.api",
    "run_retrain": "search.api",
    "write_report": "search.api",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")
