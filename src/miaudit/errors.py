"""The project's own exceptions.

Every error a user can cause (a bad file, a wrong column, sizes the data cannot
supply, a model that does not fit the data) is raised as a :class:`MiauditError`
whose message names the input and says how to fix it. The CLI prints the message
on one line and exits with status 2; the Python API lets it propagate.
"""

from __future__ import annotations


class MiauditError(Exception):
    """Base class for errors caused by the user's input or environment."""


class ConfigError(MiauditError, ValueError):
    """An option or configuration value is invalid."""


class DataError(MiauditError, ValueError):
    """A data set is missing, unreadable, or unsuitable for the requested audit."""


class ModelError(MiauditError, ValueError):
    """A model file or recipe is invalid or does not fit the data."""


class TargetError(MiauditError, RuntimeError):
    """A target cannot be queried: unreachable, refused, or answering malformed data."""


class QueryBudgetError(TargetError):
    """The audit would send more queries to the target than ``--query-budget`` allows."""
