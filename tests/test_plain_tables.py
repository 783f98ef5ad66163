"""Tables that read anywhere (report.text): redirected output keeps every cell whole on
its row, aligned; a terminal still gets rich's box."""

from __future__ import annotations

import io

from rich.console import Console

from miaudit.cli import main
from miaudit.data import list_datasets
from miaudit.report.text import plain_table, print_table


def test_plain_columns_align_and_no_cell_is_cut():
    text = plain_table(("name", "n"), [("a", "1"), ("longer name", "1,234")], right=("n",))
    lines = text.splitlines()
    assert lines[0] == "name             n"
    assert lines[1] == "-----------  -----"
    assert lines[2] == "a                1"
    assert lines[3] == "longer name  1,234"


def test_datasets_redirected_keeps_each_description_on_its_row(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out.splitlines()
    infos = list_datasets()
    # Title, header, rule, then one line per data set with its whole description.
    assert len(out) == 3 + len(infos)
    for info, line in zip(infos, out[3:], strict=True):
        assert line.startswith(info.name) and line.endswith(info.description)
        assert f"{info.n_records:,}" in line
    header = out[1]
    assert out[3].index("tabular") == header.index("kind")  # columns line up


def test_a_terminal_still_gets_the_box():
    console = Console(force_terminal=True, file=io.StringIO(), width=80, color_system=None)
    print_table(console, "T", ("a", "b"), [("x", "1")])
    assert "─" in console.file.getvalue()
