"""What a run's files say of the records in it, as the page and the terminal say it.

A run folder is personal data; how much of each record its files show is one setting
(``--records``, ``show_records=`` in Python, ``show_records`` in a config file):
``values``, ``ids`` (the default) or ``none``. The levels and what each leaves out of
the files (:data:`LEVELS`, :func:`redact_results`, :func:`redact_scores`, …) are
:mod:`miaudit.disclosure`'s, below the typed result that writes the files, and are named
here too; here is what the report adds: the sentence that says a level
(:func:`disclosure_note`) and the refusal of ``--save-outputs`` at ``none``.

``miaudit report --records LEVEL RUN`` draws the page at a level at most the run's own
(a page cannot show what the folder does not hold).
"""

from __future__ import annotations

from miaudit.disclosure import (
    CONTENT,
    DEFAULT_LEVEL,
    FIELD,
    IDENTITY,
    LEVELS,
    check_level,
    level_of,
    redact_results,
    redact_scores,
    shows_more,
)
from miaudit.errors import ConfigError

__all__ = [
    "CONTENT",
    "DEFAULT_LEVEL",
    "FIELD",
    "IDENTITY",
    "LEVELS",
    "check_level",
    "disclosure_note",
    "level_of",
    "redact_results",
    "redact_scores",
    "refuse_outputs_at",
    "shows_more",
]


def disclosure_note(level: str) -> str:
    """One sentence for the page and the terminal: what the files hold of the records."""
    if level == "none":
        return (
            "This run's files show no record's values, row or id: the page can be shared "
            "with anyone entitled to the figures."
        )
    what = "values, rows and ids" if level == "values" else "rows (and ids)"
    return (
        f"This run folder is personal data: its page and results.json show the {what} of "
        "the training records most exposed, with their true membership, and scores.csv "
        "every evaluated record's. Keep it as you keep the data; to share the page, make one "
        "with miaudit report --records none."
    )


def refuse_outputs_at(level: str) -> None:
    """Refuse ``--save-outputs`` at ``none``: ``outputs.npz`` keeps the evaluated
    records' outputs in the data's order, which would name them."""
    if level == "none":
        raise ConfigError(
            "--save-outputs with --records none: outputs.npz keeps every evaluated record's "
            "outputs in the data's order, which names them; pass --records ids to keep it"
        )
