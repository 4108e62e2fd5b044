"""The one exception family of hpsearch.

Every error a user can cause is an :class:`HpsearchError`; the CLI prints its message as one
line and exits with code 2. Messages say what is wrong *and* how to fix it.
"""


class HpsearchError(Exception):
    """Base class of every error hpsearch raises on purpose."""


class ConfigError(HpsearchError):
    """The study config (YAML file, ``--set`` override or CLI flag) is invalid."""


class StorageError(HpsearchError):
    """The storage URL is malformed, unreachable or holds something unexpected."""


class DataError(HpsearchError):
    """A data file or dataset is missing, empty or malformed."""


class StudyError(HpsearchError):
    """A study cannot be found, resumed or read back as asked."""


class WorkerError(HpsearchError):
    """A worker process died (killed, out of memory); the study is intact and resumable."""
