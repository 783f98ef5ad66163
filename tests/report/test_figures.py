"""The page's figures read without guessing: the class chart's reference lines are named
and its caption says the table's numbers, the histograms have a y axis that says what it
counts, the strongest ROC curves tell apart where they overlap, and classes are named as
the data names them (or said to be codes where it does not)."""

from __future__ import annotations

import html
import itertools
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from miaudit.report import plots
from miaudit.report.findings import class_exposure, verdict
from miaudit.report.html import _classes_html, inline_svg
from miaudit.report.run import Run

#: A census-occupation run's note on its classes (as the census loader writes it).
CODES = {
    "what": "detailed occupation recode", "group": "major occupation group",
    "group_column": "major_occupation_code",
    "groups": {"20": "Sales", "34": "Precision production craft & repair", "46": "Armed Forces"},
}  # fmt: skip


def _svg_texts(svg: str) -> list[str]:
    """The text the SVG draws, in drawing order (matplotlib keeps text as <text>)."""
    return [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


def _run(class_names: list[str], *, notes: dict | None = None, n: int = 4000,
         seed: int = 0) -> Run:  # fmt: skip
    """A run of one attack ``x`` on ``n`` records, half members, whose last class's
    members stand out (so the classes differ), with ``class_names``."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, len(class_names), n)
    member = np.r_[np.ones(n // 2, int), np.zeros(n // 2, int)]
    s = rng.normal(0, 1, n) + 0.8 * member
    s[(label == len(class_names) - 1) & (member == 1)] += 2.0
    per_class = [{"class": c, "n": int((label == k).sum()), "precision": 0.6, "recall": 0.5}
                 for k, c in enumerate(class_names)]  # fmt: skip
    attack = {
        "auc": 0.7, "precision": 0.6, "recall": 0.5, "advantage": 0.2,
        "tpr_at_fpr": {"0.01": 0.2}, "tpr_at_fpr_ci": {"0.01": [0.15, 0.25]},
        "epsilon_lower_bound_cp": {"0.01": 1.0}, "per_class": per_class,
        "n_members": n // 2, "n_nonmembers": n // 2,
    }  # fmt: skip
    dataset = {"name": "d", "class_names": class_names, "notes": notes or {}}
    results = {
        "miaudit_version": "test", "results_format": 3, "seed": 0, "dataset": dataset,
        "target": {"n_train": n // 2, "train_accuracy": 0.9, "test_accuracy": 0.9,
                   "defense": [], "source": "builtin"},
        "shadows": {}, "attacks": {"x": attack}, "strongest_attack": "x",
        "ranking": {"fpr": 0.01, "distinguishable_from_chance": True, "above_chance": ["x"],
                    "above_chance_at_threshold": []},
        "most_exposed": {"attack": "x", "records": []},
    }  # fmt: skip
    scores = pd.DataFrame({"record": np.arange(n), "class_index": label, "member": member,
                           "score_x": s})  # fmt: skip
    return Run(results, scores)


def _section(run: Run, fpr: float | None = None):
    """The class section's HTML, its verdict and its rows (at ``fpr`` when given)."""
    found = verdict(run)
    if fpr is not None:
        found = replace(found, fpr=fpr)
    rows = class_exposure(run, found.attack, found.fpr)
    return _classes_html(run, found, rows), found, rows


def _cells(row_html: str) -> list[str]:
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row_html, flags=re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells]


def _caption(section: str) -> str:
    """The chart's caption as text (user text in it is isolated in ``<bdi>``)."""
    caption = re.search(r"<figcaption>(.*?)</figcaption>", section, re.S).group(1)
    return html.unescape(re.sub(r"</?bdi>", "", caption))


# --------------------------------------------------------------------------- class chart


def test_the_class_charts_reference_lines_are_named_in_a_legend():
    rows = [{"class": c, "tpr": t, "low": t - 0.1, "high": t + 0.1}
            for c, t in (("a", 0.6), ("b", 0.4), ("c", 0.2))]  # fmt: skip
    fig = plots.class_figure(rows, 0.01, "loss", overall=0.35)
    ax = fig.axes[0]
    legend = fig.legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["chance: a guess finds 1.0 % of members",
                     "all classes together: 35.0 % found"]  # fmt: skip
    # Each legend entry is drawn as its line: the chance line at the FPR, the overall at
    # the overall TPR, each with the colour and dash its entry shows.
    # (Vertical lines across the axes: the error bars' caps are lines too.)
    lines = {float(ln.get_xdata()[0]): ln for ln in ax.get_lines()
             if list(ln.get_ydata()) == [0, 1] and len(set(ln.get_xdata())) == 1}  # fmt: skip
    assert set(lines) == {0.01, 0.35}
    for handle, x in zip(legend.legend_handles, (0.01, 0.35), strict=True):
        assert handle.get_color() == lines[x].get_color()
        assert handle.get_linestyle() == lines[x].get_linestyle()
    assert lines[0.01].get_linestyle() != lines[0.35].get_linestyle()
    drawn = _svg_texts(inline_svg(fig, "c"))
    assert "chance: a guess finds 1.0 % of members" in drawn
    assert "all classes together: 35.0 % found" in drawn
    # The axes say what the bars and the classes are.
    assert "members found" in ax.get_xlabel() and "1.0 % FPR" in ax.get_xlabel()
    assert ax.get_ylabel() == "class"
    # Without an overall rate only chance is drawn, and still named.
    fig = plots.class_figure(rows, 0.01, "loss")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [texts[0]]


def test_the_class_captions_numbers_are_the_tables():
    run = _run(["a", "b", "c", "d"])
    section, found, rows = _section(run)
    caption = _caption(section)
    table = re.search(r"<table class=classes>(.*?)</table>", section, re.S).group(1)
    trs = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
    head, body, total = _cells(trs[0]), [_cells(t) for t in trs[1:-1]], _cells(trs[-1])
    assert head[0] == "class" and total[0] == "all classes"
    n_neg = int((~run.member).sum())
    budget = int(np.floor(found.fpr * n_neg + 1e-9))
    rate = plots.rate_text(found.fpr)
    # The caption's threshold is the verdict's, said the way the chart's axis says it.
    assert f"{found.attack} finds (TPR)" in caption
    assert f"at most {budget:,} of the {n_neg:,} non-members ({rate} FPR)" in caption
    # Its overall numbers are the table's last row, and the sum of the rows above it.
    said = re.search(r"all classes together, ([\d,]+) of ([\d,]+) members found \(([^)]+)\)",
                     caption)  # fmt: skip
    assert said, caption
    hits, members, tpr = said.groups()
    assert [total[1], total[2], total[3].split(" [")[0]] == [members, hits, tpr]
    assert int(hits.replace(",", "")) == sum(int(r[2].replace(",", "")) for r in body)
    assert int(members.replace(",", "")) == sum(int(r[1].replace(",", "")) for r in body)
    # At the verdict's threshold, the classes together are the verdict's own count.
    assert int(hits.replace(",", "")) == round(found.tpr * found.bound.n_members)
    # The chart: the same classes in the table's order, the same two reference rates.
    svg = re.search(r"<svg.*?</svg>", section, re.S).group(0)
    drawn = _svg_texts(svg)
    # Top to bottom on the chart (SVG's y grows downwards) is the table's order.
    ticks = re.findall(r'<text[^>]*\by="([\d.]+)"[^>]*>([a-d])</text>', svg)
    order = [name for _, name in sorted(ticks, key=lambda yt: float(yt[0]))]
    assert order == [r[0] for r in body] == [r["class"] for r in rows]
    assert f"chance: a guess finds {rate} of members" in drawn
    assert f"all classes together: {tpr} found" in drawn
    assert f"x at {rate} FPR over all non-members" in drawn


def test_a_threshold_with_no_false_positive_still_gets_its_chart():
    # A verdict at a budget of 0 false positives (members above every non-member) is a
    # rate of 0: the class section must not vanish as if there were none.
    run = _run(["a", "b", "c"])
    section, found, rows = _section(run, fpr=0.0)
    assert found.fpr == 0.0 and rows
    assert "<figure>" in section and "<table class=classes>" in section
    assert "at most 0 of the 2,000 non-members (0.0 % FPR)" in html.unescape(section)


def test_small_rates_keep_their_digits():
    assert [plots.rate_text(v) for v in (0.38, 0.01, 0.008, 0.001, 0.0001, 0.0)] == [
        "38.0 %", "1.0 %", "0.80 %", "0.10 %", "0.010 %", "0.0 %",
    ]  # fmt: skip


# --------------------------------------------------------------------------- histograms


def test_the_histograms_have_a_labelled_y_axis_of_each_groups_share():
    rng = np.random.default_rng(0)
    # Ten times more non-members than members, from the same distribution: as shares of
    # each group the two histograms agree; as counts they would differ tenfold.
    inside, outside = rng.normal(0, 1, 2_000), rng.normal(0, 1, 20_000)
    fig = plots.score_figure([("loss", inside, outside), ("lira", inside, outside)])
    ax = fig.axes[0]
    assert "each group" in ax.get_ylabel()
    lo, hi = ax.get_ylim()
    ticks = [(loc, t.get_text()) for loc, t in zip(ax.get_yticks(), ax.get_yticklabels(),
                                                   strict=True) if lo <= loc <= hi]  # fmt: skip
    assert len(ticks) >= 2 and all(text.endswith("%") for _, text in ticks)
    # Both panels carry ticks (their scales may differ).
    assert any(t.get_text() for t in fig.axes[1].get_yticklabels())
    # Each group's bars (the step outline's heights) add up to all of that group.
    heights = [p.get_xy()[1:81:2, 1] for p in ax.patches]
    assert [h.sum() for h in heights] == [pytest.approx(1.0), pytest.approx(1.0)]
    assert 0.7 < heights[0].max() / heights[1].max() < 1.4
    drawn = _svg_texts(inline_svg(fig, "s"))
    assert ax.get_ylabel() in drawn and "members (2,000)" in drawn
    assert "non-members (20,000)" in drawn
    assert sum(text in drawn for _, text in ticks) >= 2


# --------------------------------------------------------------------------- ROC curves


def test_the_strongest_roc_curves_differ_in_colour_and_dash_and_the_strongest_is_on_top():
    grid = np.linspace(0, 1, 50)
    # Six curves that coincide: only style tells them apart.
    curves = {f"attack {i}": (grid, np.sqrt(grid)) for i in range(6)}
    fig = plots.roc_figure(curves, 1000)
    for ax in fig.axes:
        lines = ax.get_lines()[: len(curves)]
        pairs = [(ln.get_color(), ln.get_linestyle()) for ln in lines]
        # Neighbours differ in both colour and dash, and no two of the first four share
        # either: in grey print the dash alone tells the strongest apart.
        for a, b in itertools.pairwise(pairs):
            assert a[0] != b[0] and a[1] != b[1], (a, b)
        assert len({c for c, _ in pairs[:4]}) == 4 and len({s for _, s in pairs[:4]}) == 4
        # Strongest first in the legend, drawn on top and heaviest.
        z = [ln.get_zorder() for ln in lines]
        w = [ln.get_linewidth() for ln in lines]
        assert z == sorted(z, reverse=True) and len(set(z)) == len(z)
        assert w == sorted(w, reverse=True) and w[0] > w[1] > w[2]
        diagonal = ax.get_lines()[len(curves)]
        assert diagonal.get_zorder() < min(z)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(curves)
    legend_styles = [h.get_linestyle() for h in fig.legends[0].legend_handles]
    assert legend_styles == [ln.get_linestyle() for ln in fig.axes[0].get_lines()[:6]]


def test_no_two_of_the_first_32_curves_share_a_style():
    pairs = [tuple(plots.style(i).values()) for i in range(32)]
    assert len(set(pairs)) == 32


# --------------------------------------------------------------------------- class names


def test_named_classes_are_shown_by_name_in_the_chart_and_the_tables():
    names = ["<=50K", ">50K"]
    section, _, _ = _section(_run(names))
    svg = re.search(r"<svg.*?</svg>", section, re.S).group(0)
    drawn = _svg_texts(svg)
    assert set(names) <= set(drawn)
    cells = [_cells(t)[0] for t in re.findall(r"<tr>(.*?)</tr>", section, re.S)]
    # The leakage table and each precision/recall table list both classes by name.
    assert cells.count("<=50K") == 2 and cells.count(">50K") == 2
    # Names are not codes: nothing says they are.
    assert "numeric codes" not in section and "ships without names" not in section


def test_numeric_codes_are_said_to_be_codes_with_the_group_the_records_give():
    run = _run(["20", "34", "46"], notes={"class_codes": CODES})
    section, _, _ = _section(run)
    caption = _caption(section)
    assert "detailed occupation recodes: numeric codes, which the data set ships " in caption
    assert "without names" in caption and "major occupation group" in caption
    page = html.unescape(section)
    assert "34 (Precision production craft & repair)" in re.sub(r"<[^>]+>", "", page)
    drawn = _svg_texts(re.search(r"<svg.*?</svg>", section, re.S).group(0))
    assert "34 · Precision production craft &…" in drawn or (
        "34 · Precision production craft & repair" in drawn
    )
    assert "20 · Sales" in drawn and "46 · Armed Forces" in drawn
    # The y axis says what the labels are (cut to the height of a three-class chart).
    assert any(t.startswith("detailed oc") for t in drawn)


def test_code_groups_are_read_from_the_records_and_never_guessed():
    from miaudit.data.builtin import _code_groups

    df = pd.DataFrame({
        "detailed_occupation_recode": ["10", "2", "2", "7", "7"],
        "major_occupation_code": ["Sales", "Other service", "Other service", "Sales", "Armed"],
    })  # fmt: skip
    codes = _code_groups(df, "detailed_occupation_recode")
    assert codes["what"] == "detailed occupation recode"
    # Code 7 lies in two groups in these records: no one group to name, left out.
    assert codes["groups"] == {"2": "Other service", "10": "Sales"}
    assert list(codes["groups"]) == ["2", "10"]  # numeric order, not "10" < "2"


@pytest.mark.parametrize(("name", "code", "group", "n"), [
    ("census-occupation", "34", "Precision production craft & repair", 46),
    ("census-industry", "3", "Mining", 51),
])  # fmt: skip
def test_the_census_recodes_carry_their_groups_from_the_data(name, code, group, n):
    from miaudit.data.builtin import _BUILTINS

    spec = _BUILTINS[name]
    if not spec.installed():
        pytest.skip(f"{name} is not installed here ({spec.install})")
    notes = spec.table(spec.source_files()).notes["class_codes"]
    assert notes["groups"][code] == group and len(notes["groups"]) == n
    assert notes["what"].startswith("detailed ")
