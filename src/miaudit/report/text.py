"""Tables that read anywhere: a rich table on a terminal, plain aligned text elsewhere.

Redirected to a file or a pipe, rich wraps a wide table into an 80-column box and cuts
its cells into fragments; plain text keeps every cell whole on its row, columns aligned
by spaces, so the output reads in a log and in ``grep``."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

#: What user text (names of columns, classes, folders, data sets) must not bring to a
#: terminal: C0 controls but tab and newline (a carriage return or an escape sequence
#: rewrites what was printed), DEL and the C1 controls, and the bidirectional marks,
#: embeddings, overrides and isolates (U+202E prints the rest of the line backwards).
UNPRINTABLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def clean(text: object) -> str:
    """``text`` as the terminal may show it: without the :data:`UNPRINTABLE` characters.
    Every user string printed by the summary and the tables goes through it."""
    return UNPRINTABLE.sub("", str(text))


def markup_safe(text: object) -> str:
    """:func:`clean` text to put inside rich markup: its brackets shown, not obeyed."""
    return escape(clean(text))


def plain_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[str] = ()
) -> str:
    """``rows`` under ``headers``, each column as wide as its widest cell, two spaces
    apart; columns named in ``right`` aligned right. No cell is wrapped or cut; every
    cell is :func:`clean`."""
    headers = [clean(h) for h in headers]
    rows = [[clean(c) for c in r] for r in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if h in right else c.ljust(w)
            for c, w, h in zip(cells, widths, headers, strict=True)
        ]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def print_table(
    console: Console,
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Collection[str] = (),
    no_wrap: Collection[str] = (),
) -> None:
    """Print the table: rich on a terminal, :func:`plain_table` (under ``title``) when
    the output is a file or a pipe. Cells are :func:`clean`, and never read as markup."""
    if not console.is_terminal:
        console.print(title, highlight=False)
        table = plain_table(headers, rows, right)
        console.print(table, highlight=False, soft_wrap=True, markup=False)
        return
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
    for h in headers:
        table.add_column(h, justify="right" if h in right else "left", no_wrap=h in no_wrap)
    for r in rows:
        # Cells are user text (names of runs, attacks, classes): shown, never obeyed.
        table.add_row(*(markup_safe(c) for c in r))
    console.print(table)
