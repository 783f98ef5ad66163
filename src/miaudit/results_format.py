"""The results format: what a run's ``results.json`` and ``scores.csv`` are, and a run
as those two tables.

:data:`RESULTS_FORMAT` is the layout this miaudit writes (and the newest it reads);
:func:`label_values` gives back the user's label values from the class names
``results.json`` keeps (``scores.csv``'s ``label``); :class:`RunTables` is a finished run
as its two tables, what the verdict (:mod:`miaudit.verdict`) reads. The typed result
(:class:`miaudit.result.AuditResult`) writes the files and the report
(:mod:`miaudit.report.run`) reads them back, so this sits below both, importing only
NumPy and :mod:`miaudit.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from miaudit.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CLASS_INDEX_FORMAT",
    "RESULTS_FORMAT",
    "RunTables",
    "label_values",
    "results_format",
]

#: The layout of ``results.json`` (and ``scores.csv`` beside it) this miaudit writes.
#: Later versions that only add fields keep the number; one that moves or renames a
#: field raises it. 3: ``scores.csv``'s ``label`` is the user's label value, the class
#: code moved to ``class_index`` (format 2 wrote the code in ``label``).
RESULTS_FORMAT = 3
#: The first format whose ``scores.csv`` has ``class_index``; before it, ``label`` held
#: the class code.
CLASS_INDEX_FORMAT = 3


def results_format(results: dict[str, Any]) -> Any:
    """``results_format``: 1 for files written before it existed."""
    return results.get("results_format", 1)


def label_values(class_names: Sequence[str]) -> np.ndarray:
    """The user's label value of each class, from the names ``results.json`` keeps.

    A class is named by the text of its value (``str(value)``, a whole float written as
    an integer: :func:`miaudit.data.build.encode_labels`). When every name is the text
    of a number (or of True/False), the numbers come back, so that a label 3 is 3 (not
    ``"3"``) and joins the user's numeric label column; ``"2.5"`` is 2.5. Otherwise
    (``">50K"``, ``"007"``, an image set's class names) the names are the values.
    """
    names = [str(n) for n in class_names]
    ints = [_exact(int, n) for n in names]
    if names and all(v is not None for v in ints):
        try:
            return np.array(ints, dtype=np.int64)
        except OverflowError:  # beyond int64: Python integers, still numbers
            return np.array(ints, dtype=object)
    # Integers and fractions together (an object column of 1 and 2.5): numbers all.
    numbers = [_exact(float, n) if i is None else i for n, i in zip(names, ints, strict=True)]
    if names and all(v is not None for v in numbers):
        try:
            as_float = np.array(numbers, dtype=np.float64)
        except OverflowError:
            as_float = np.array([np.nan])
        if np.isfinite(as_float).all():
            return as_float
    if names and set(names) <= {"True", "False"}:
        return np.array([n == "True" for n in names], dtype=bool)
    return np.array(names, dtype=object)


def _exact(kind: type, text: str) -> Any:
    """``kind(text)`` when it writes ``text`` back exactly (so ``"007"`` and ``" 3"``
    stay text), else ``None``."""
    try:
        value = kind(text)
    except (ValueError, OverflowError):
        return None
    return value if str(value) == text else None


@dataclass(frozen=True)
class RunTables:
    """A finished run as its two tables: ``results.json`` (as a dict) and ``scores.csv``
    (as a DataFrame with ``record``, optional ``id``, ``label`` (the user's value),
    ``class_index``, ``member`` 0/1, a ``score_<attack>`` column per attack,
    ``exposure_rank``; a run of results format 2 or older has class codes in ``label``
    and no ``class_index``), and where it lies. What :func:`miaudit.verdict.verdict`
    reads; an :class:`~miaudit.result.AuditResult` makes one in memory, and
    :class:`miaudit.report.run.Run` (a folder read back, and what a page shows of it) is
    one too."""

    results: dict[str, Any]
    scores: pd.DataFrame
    path: Path | None = None

    @property
    def name(self) -> str:
        """The folder's name, or the data set's for a run in memory."""
        return self.path.name if self.path is not None else str(self.results["dataset"]["name"])

    @property
    def member(self) -> np.ndarray:
        return self.scores["member"].to_numpy().astype(bool)

    @property
    def class_index(self) -> np.ndarray:
        """Each record's class code ``0 .. C-1`` (:meth:`class_name` names it).

        Read it here, never from ``label``: since results format 3 ``label`` is the
        user's own value (``20``, ``">50K"``), and only older runs hold the code there.
        """
        if "class_index" in self.scores.columns:
            return self.scores["class_index"].to_numpy(dtype=np.int64)
        if results_format(self.results) < CLASS_INDEX_FORMAT:
            return self.scores["label"].to_numpy(dtype=np.int64)
        # A newer run's label is a value, not a code: reading it as one would silently
        # file records under the wrong classes.
        raise ConfigError("scores.csv: no column 'class_index'; it is damaged")

    def score(self, attack: str) -> np.ndarray:
        return self.scores[f"score_{attack}"].to_numpy(dtype=np.float64)

    @property
    def attacks(self) -> list[str]:
        return list(self.results["attacks"])

    def class_name(self, code: int) -> str:
        names = self.results["dataset"].get("class_names") or []
        return str(names[code]) if 0 <= code < len(names) else str(code)
