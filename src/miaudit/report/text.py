"""Tables that read anywhere: a rich table on a terminal, plain aligned text elsewhere.

Redirected to a file or a pipe, rich wraps a wide table into an 80-column box and cuts
its cells into fragments; plain text keeps every cell whole on its row, columns aligned
by spaces, so the output reads in a log and in ``grep``."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from rich import box
from rich.console import Console
from rich.table import Table


def plain_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[str] = ()
) -> str:
    """``rows`` under ``headers``, each column as wide as its widest cell, two spaces
    apart; columns named in ``right`` aligned right. No cell is wrapped or cut."""
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
    the output is a file or a pipe."""
    if not console.is_terminal:
        console.print(title, highlight=False)
        console.print(plain_table(headers, rows, right), highlight=False, soft_wrap=True)
        return
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
    for h in headers:
        table.add_column(h, justify="right" if h in right else "left", no_wrap=h in no_wrap)
    for r in rows:
        table.add_row(*r)
    console.print(table)
