"""The storage layer's one error: a URL, database or artifact folder that cannot be used.

The search layer above maps it to one line on stderr and exit code 2, like every bad input.
"""


class StorageError(Exception):
    """The storage URL is malformed or unreachable, or the storage holds something unexpected."""
