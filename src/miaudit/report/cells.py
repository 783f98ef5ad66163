"""``scores.csv``'s text cells, safe to open in a spreadsheet, and read back as they were.

A text cell (an id, a label) that begins with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return would be run as a formula by Excel, LibreOffice or Google Sheets, so
it is written with a single quote before it (``'=1+2``), as OWASP advises against CSV
injection; a spreadsheet shows the text, without the quote, as text. A text cell that
begins with a quote gets one more, so the escape can be undone exactly. Numbers are
never escaped: a negative score or label in a column of numbers is written ``-3``.
Whoever reads ``scores.csv`` back undoes the escape with :func:`unescape_cells`
(miaudit's reader, :func:`miaudit.report.run.load_run`, which ``miaudit report`` and
``miaudit compare`` read runs with), and so gets the ids and labels of ``results.json``.

The writer (:mod:`miaudit.report.files`) and the reader (:mod:`miaudit.report.run`)
both import this module, which imports no other part of the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

#: First characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: What :func:`escape_cell` puts before such a cell (and before one that starts with it).
ESCAPE = "'"


def escape_cell(value: Any) -> Any:
    """A text cell as ``scores.csv`` writes it: with :data:`ESCAPE` before it when it
    begins with a formula's character or with the escape itself; anything else (a
    number, a boolean) as it is."""
    if isinstance(value, str) and value.startswith((*FORMULA_STARTS, ESCAPE)):
        return ESCAPE + value
    return value


def unescape_cell(value: Any) -> Any:
    """A cell of ``scores.csv`` as it was before :func:`escape_cell`: text that begins
    with :data:`ESCAPE` loses that one character; anything else is as it is."""
    if isinstance(value, str) and value.startswith(ESCAPE):
        return value[len(ESCAPE) :]
    return value


def _text_columns(frame: pd.DataFrame) -> list[Any]:
    import pandas as pd

    return [
        c
        for c in frame.columns
        if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c].dtype)
    ]


def escape_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with :func:`escape_cell` applied to every cell of its text columns (a
    copy; columns of numbers are left alone)."""
    out = frame.copy()
    for column in _text_columns(frame):
        out[column] = frame[column].map(escape_cell).astype(frame[column].dtype)
    return out


def unescape_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """A ``scores.csv`` read back (``pd.read_csv``) with its text cells as they were
    before :func:`escape_cells`: the one helper every reader of the file calls."""
    out = frame.copy()
    for column in _text_columns(frame):
        out[column] = frame[column].map(unescape_cell).astype(frame[column].dtype)
    return out
