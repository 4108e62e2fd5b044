"""The objectives layer's errors: a model, data set or parameter value that cannot be used.

Objectives raise these for what a user can fix (a missing file, an unknown model, a column that
is not there). The search layer adds where the value came from (file and key path) and prints one
line with exit code 2. A fault found only while training (a NaN, a shape mismatch) is not one of
these: it fails that trial and is recorded with its reason.
"""


class ObjectiveError(Exception):
    """Base class of every user-fixable problem an objective finds."""


class DataError(ObjectiveError):
    """A data file or data set is missing, empty or malformed."""


class ModelError(ObjectiveError):
    """A model cannot be found or loaded as named."""


class ParamError(ObjectiveError):
    """A parameter value the objective cannot use; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
