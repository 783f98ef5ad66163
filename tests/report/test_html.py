"""The report's ROC plots: every attack keeps a line (and a legend entry) of its own."""

from __future__ import annotations

import re

from miaudit.attacks.registry import ATTACKS
from miaudit.report.html import _H, _PAD, _W, roc_svg


def test_every_attack_of_all_has_its_own_line_and_legend_inside_the_plot():
    curves = {name: {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.6, 1.0]} for name in ATTACKS}
    svg = roc_svg(curves, log=False, n_neg=100)
    lines = re.findall(
        r'<polyline fill="none" stroke="(#\w+)" stroke-width="1.8"([^>]*?) points', svg
    )
    styles = [(colour, "dasharray" in rest) for colour, rest in lines]
    assert len(styles) == len(ATTACKS) and len(set(styles)) == len(ATTACKS)
    # Legend entries: a sample line and the name, all within the plot's area.
    for x, y in re.findall(r'<text x="([\d.]+)" y="([\d.]+)" font-size="11" fill', svg):
        assert _PAD <= float(x) < _W and float(y) <= _H - _PAD
    for name in ATTACKS:
        assert f">{name}</text>" in svg
