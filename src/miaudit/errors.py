"""The project's own exceptions.

Every error a user can cause (a bad file, a wrong column, sizes the data cannot
supply, a model that does not fit the data) is raised as a :class:`MiauditError`
whose message names the input and says how to fix it. The CLI prints the message
on one line and exits with status 2; the Python API lets it propagate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

#: A configuration key named in a message (see :func:`key`).
_KEY = re.compile(r"⟦([A-Za-z_][\w.]*)(?:=([^⟧]*))?⟧")


def key(name: str, value: object = None) -> str:
    """A configuration key (and value) in a message, e.g. ``key("game", "recipe")``.

    Python callers read it as the key (``game=recipe``); the CLI shows the flag that
    sets it (``--game recipe``), so inner code names settings one way for both.
    """
    return f"⟦{name}⟧" if value is None else f"⟦{name}={value}⟧"


def render(text: str, flag: Callable[[str], str | None] | None = None) -> str:
    """``text`` with its keys written for Python (``flag=None``) or with ``flag(key)``'s
    option (a key without one is named as the configuration file's)."""

    def one(m: re.Match) -> str:
        name, value = m.group(1), m.group(2)
        option = flag(name) if flag is not None else None
        if option is None:
            if flag is None:
                return _python(name, value)
            where = f"{name}={value}" if value is not None else name
            return f"{where} (in --config)"
        return option if value is None else f"{option} {value}"

    return _KEY.sub(one, text)


def _literal(value: str) -> str:
    """A setting's value as Python writes it: numbers and booleans bare, text quoted."""
    try:
        float(value)
        return value
    except ValueError:
        return value if value in ("True", "False", "None") else repr(value)


def _python(name: str, value: str | None) -> str:
    """A key as a Python caller passes it: ``attacks.run`` is ``attacks=[...]``, a nested
    key ``target.l2`` is ``target={"l2": ...}`` (``audit()``'s settings keywords)."""
    if name == "attacks.run":
        if value is None:
            return "attacks="
        return "attacks=[" + ", ".join(repr(v.strip()) for v in value.split(",")) + "]"
    if value is None or "." not in name:
        return name if value is None else f"{name}={value}"
    *tables, last = name.split(".")
    inner = f"{{{last!r}: {_literal(value)}}}"
    for table in reversed(tables[1:]):
        inner = f"{{{table!r}: {inner}}}"
    return f"{tables[0]}={inner}"


class MiauditError(Exception):
    """Base class for errors caused by the user's input or environment.

    Messages may name configuration keys with :func:`key`; ``str(error)`` writes them
    as keys, :meth:`for_cli` as the command line's options.
    """

    def __str__(self) -> str:
        return render(super().__str__())

    def for_cli(self, flag: Callable[[str], str | None]) -> str:
        return render(super().__str__(), flag)


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


def flatten_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line naming the first invalid setting of a pydantic ``ValidationError`` and
    what is wrong with it (``prefix`` goes before the setting's name: ``"target."``)."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    where = prefix + loc if loc else prefix.rstrip(".") or "config"
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
    if first["type"] == "extra_forbidden":
        return f"unknown configuration key '{where}': check its spelling{more}"
    return f"invalid configuration value for '{where}': {msg}{more}"


class GateFailed(Exception):
    """An audit asked to fail on a level of leakage (``fail_on=``, ``--fail-on``) whose
    verdict reaches it (:attr:`status` 3) or whose evaluation cannot tell whether it does
    (:attr:`status` 4).

    Not an input error: the audit ran, its files are written (``out=``), and
    :attr:`result` holds it; :attr:`outcome` is the
    :class:`~miaudit.verdict.GateOutcome` (its message, the verdict, and the non-members
    an evaluation would need to decide an undecided level).
    """

    def __init__(self, outcome, result=None) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome
        self.result = result
        self.status: int = outcome.status
