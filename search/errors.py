"""The search layer's exception family, and which errors are the user's to fix.

Every error a user can cause is an :class:`HpsearchError` here, a ``StorageError`` from the
storage layer or an ``ObjectiveError`` from the objectives layer; the CLI prints its message as
one line and exits with code 2. Messages say what is wrong *and* how to fix it.
"""

from objectives.errors import ObjectiveError
from storage.errors import StorageError


class HpsearchError(Exception):
    """Base class of every error the search layer raises on purpose."""


class ConfigError(HpsearchError):
    """The study config (YAML file, ``--set`` override or CLI flag) is invalid."""


class StudyError(HpsearchError):
    """A study cannot be found, resumed or read back as asked."""


class WorkerError(HpsearchError):
    """A worker process died (killed, out of memory); the study is intact and resumable."""


# Bad input, whichever layer found it: one line and exit code 2.
USER_ERRORS: tuple[type[Exception], ...] = (HpsearchError, StorageError, ObjectiveError)

__all__ = [
    "USER_ERRORS",
    "ConfigError",
    "HpsearchError",
    "ObjectiveError",
    "StorageError",
    "StudyError",
    "WorkerError",
]
