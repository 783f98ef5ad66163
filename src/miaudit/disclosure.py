"""What a run's files say of the records in it: ``values``, ``ids`` or ``none``.

A run folder is personal data: ``results.json`` and ``report.html`` list the records the
strongest attack is surest were trained on, and ``scores.csv`` every evaluated record
with its true membership. How much of each record they show is one setting
(``--records``, ``show_records=`` in Python, ``show_records`` in a config file):

``values``
    the most exposed records as the user knows them (their values, an image's
    thumbnail, a text), with their row and id; ``scores.csv`` with ``record`` and ``id``.
``ids`` (the default)
    their row and id only: the page and ``results.json`` name which records are
    exposed, and the data's owner looks them up in their own data; ``scores.csv`` as
    with ``values``. Data protection by default (GDPR, Article 25): a page is made to be
    handed on, and what it must show for a decision (the verdict, the figures, which
    records) needs no record's values; ``--records values`` adds them when its reader
    may see them.
``none``
    no value, row or id of any record: the most exposed records by rank, label,
    membership and score only, and ``scores.csv`` without ``record`` and ``id``, its rows
    in order of exposure (so the rows' order says nothing of the data's). A folder, and
    a page, to share. ``miaudit compare`` then compares such runs as runs of different
    records (nothing pairs them).

``miaudit report --records LEVEL RUN`` draws the page at a level at most the run's own
(a page cannot show what the folder does not hold).

The levels are here, with what each leaves out of the files (:func:`redact_results`,
:func:`redact_scores`), below the typed result that writes the files
(:meth:`miaudit.result.AuditResult.to_dict`) and the report that reads them back and
draws a page at a level (:mod:`miaudit.report.disclosure` says it in a sentence).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from miaudit.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONTENT",
    "DEFAULT_LEVEL",
    "FIELD",
    "IDENTITY",
    "LEVELS",
    "check_level",
    "level_of",
    "redact_results",
    "redact_scores",
    "shows_more",
]

#: From the most to the least a run's files show of its records.
LEVELS = ("values", "ids", "none")
DEFAULT_LEVEL = "ids"
#: What ``results.json`` names a record's content with, in ``most_exposed.records``.
CONTENT = ("values", "image", "text", "object")
#: What names a record: its row in the user's table, and the user's id.
IDENTITY = ("record", "id")
#: ``results.json``'s field naming the level its run was written at.
FIELD = "records_shown"


def check_level(level: Any, where: str = "--records") -> str:
    """``level`` if it is one of :data:`LEVELS`, else one line naming them."""
    if level not in LEVELS:
        raise ConfigError(
            f"{where} is {level!r}: pass one of {', '.join(LEVELS)} (how much of each record "
            "the page, results.json and scores.csv show)"
        )
    return level


def level_of(results: dict[str, Any]) -> str:
    """The level a ``results.json`` was written at (runs before the setting: values)."""
    level = results.get(FIELD, "values")
    return level if level in LEVELS else "values"


def shows_more(a: str, b: str) -> bool:
    """Whether level ``a`` shows more of the records than ``b``."""
    return LEVELS.index(a) < LEVELS.index(b)


def redact_results(results: dict[str, Any], level: str) -> dict[str, Any]:
    """A copy of ``results`` (``results.json``) at ``level``: its most exposed records
    without what the level leaves out, and :data:`FIELD` saying the level."""
    out = copy.deepcopy(results)
    drop = (*CONTENT, *(IDENTITY if level == "none" else ())) if level != "values" else ()
    for r in out.get("most_exposed", {}).get("records", []):
        if isinstance(r, dict):
            for key in drop:
                r.pop(key, None)
    out[FIELD] = level
    return out


def redact_scores(frame: pd.DataFrame, level: str) -> pd.DataFrame:
    """``scores.csv`` at ``level``: at ``none`` without ``record`` and ``id`` and in
    order of exposure (ties kept in their order); otherwise as it is."""
    if level != "none":
        return frame
    out = frame.drop(columns=[c for c in IDENTITY if c in frame.columns])
    if "exposure_rank" in out.columns:
        out = out.sort_values("exposure_rank", kind="stable")
    return out.reset_index(drop=True)
