"""The report's pictures: matplotlib figures written as inline SVG.

Position in the pipeline: ``metrics -> report``. Every figure here is drawn from
plain arrays (what ``results.json`` and ``scores.csv`` hold), so a page renders the
same from an audit in memory and from its files (``miaudit report``).

Figures are bare :class:`matplotlib.figure.Figure` objects (no pyplot state). The SVG
keeps its text as ``<text>`` (searchable, selectable, sharp on paper), has
no date and fixed element ids, so the same numbers give the same bytes. Legends sit
outside the axes, below the plots, so a legend never covers a curve or another
legend, however many attacks there are.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np

from miaudit.report.text import clean

#: Okabe and Ito's colour-blind-safe palette (black first for the strongest).
PALETTE = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#F0E442",
)  # fmt: skip
#: Line styles cycle with the colours, so that neighbouring curves (the strongest attacks,
#: which overlap most) differ in dash as well as hue: in grey print, and for readers
#: who cannot tell two of the colours apart.
LINESTYLES = ("-", "--", ":", "-.")
#: Members and non-members in the distributions (blue and vermilion: safe for all
#: common colour-vision deficiencies and in grey print).
MEMBER_COLOUR, NON_MEMBER_COLOUR = "#0072B2", "#D55E00"
#: The reference lines of the class chart: chance, and all classes together.
CHANCE_COLOUR, OVERALL_COLOUR = "#D55E00", "#000000"


def style(i: int) -> dict:
    """The colour and line style of the ``i``-th curve: both change from one curve to
    the next, and no two of the first 32 curves share the pair."""
    n_colours, n_styles = len(PALETTE), len(LINESTYLES)
    # Each round of the eight colours shifts the dashes by one: pairs never repeat
    # within n_colours × n_styles curves.
    return {
        "color": PALETTE[i % n_colours],
        "linestyle": LINESTYLES[(i + i // n_colours) % n_styles],
    }


def line_width(i: int) -> float:
    """The ``i``-th curve's width: the strongest a little heavier, so that it stands out
    where curves run together (kept slight: a heavy line hides the others' dashes)."""
    return (2.2, 1.8, 1.5)[i] if i < 3 else 1.2


def rate_text(v: float) -> str:
    """A rate as a figure and its caption write it: one decimal from 1 % (``38.0 %``),
    two significant digits below (``0.10 %``, ``0.010 %``), so a small FPR never reads
    as 0.0 %."""
    p = 100 * float(v)
    if p == 0 or p >= 1 or not math.isfinite(p):
        return f"{p:.1f} %"
    return f"{p:.{1 - math.floor(math.log10(p))}f} %"


@contextmanager
def _rc():
    import matplotlib

    # Text stays text; ids come from a fixed salt, not a random one: same input, same file.
    with matplotlib.rc_context({
        "svg.fonttype": "none",
        "svg.hashsalt": "miaudit",
        "font.family": "sans-serif",
        "font.size": 9,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }):  # fmt: skip
        yield


def to_svg(fig) -> str:
    """``fig`` as an SVG element (no XML prolog, no date)."""
    buf = io.StringIO()
    with _rc():
        # No date (same numbers, same bytes) and no RDF block: plain SVG inside HTML.
        plain = {"Date": None, "Creator": None, "Format": None, "Type": None}
        fig.savefig(buf, format="svg", metadata=plain)
    text = buf.getvalue()
    return text[text.index("<svg") :].strip()


#: Inches per character of 8–9 pt text, a little over DejaVu Sans's average: margins
#: for labels are sized from their length, without a layout engine's extra drawing pass.
_CHAR = 0.075
_LEGEND_ROW = 0.2  # inches per legend row of 8 pt text


def _figure(ncols: int, axes_w: float, axes_h: float, *, left: float = 0.7,
            right: float = 0.15, bottom: float = 0.55, top: float = 0.15,
            gap: float = 0.8):  # fmt: skip
    """A figure of ``ncols`` axes of ``axes_w × axes_h`` inches, with fixed margins (in
    inches) around them: ``bottom`` holds the tick labels, the axis label and any legend."""
    # A bare Figure, not pyplot: no global figure list to close, no backend switched
    # under a user's notebook; savefig picks the SVG backend itself.
    from matplotlib.figure import Figure

    width = left + ncols * axes_w + (ncols - 1) * gap + right
    height = bottom + axes_h + top
    with _rc():
        fig = Figure(figsize=(width, height))
        axes = fig.subplots(1, ncols)
        fig.subplots_adjust(
            left=left / width, right=1 - right / width, bottom=bottom / height,
            top=1 - top / height, wspace=gap / axes_w,
        )  # fmt: skip
        return fig, axes


def _legend_shape(labels: Sequence[str], width: float) -> tuple[int, float]:
    """Columns that fit ``width`` inches, and the legend's height in inches."""
    longest = max((len(str(label)) for label in labels), default=1)
    ncol = max(1, min(3, len(labels), int(width // (_CHAR * longest + 0.7))))
    return ncol, _LEGEND_ROW * math.ceil(len(labels) / ncol) + 0.1


def _legend_below(fig, handles, labels, ncol: int, *, handlelength: float = 2.0) -> None:
    """A legend under the plots, below the axis labels (the margin holds it)."""
    with _rc():
        fig.legend(
            handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=ncol,
            frameon=False, fontsize=8, borderaxespad=0.3, handlelength=handlelength,
        )  # fmt: skip


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], n_nonmembers: int,
               *, title: str = "") -> object:  # fmt: skip
    """ROC curves on linear and on log-log axes, side by side, one shared legend below.

    ``curves`` maps a label (an attack, or a run) to ``(fpr, tpr)``, strongest first:
    the first curves get the heaviest lines and are drawn on top, each curve its own
    colour and dash (:func:`style`). The log axes end at ``1 / n_nonmembers``: a
    false-positive rate below that is not measured.
    """
    with _rc():
        ncol, legend_h = _legend_shape(list(curves), 7.6)
        fig, (lin, log) = _figure(2, 2.95, 2.7, bottom=0.6 + legend_h, top=0.35 if title else 0.15)
        floor = 1.0 / max(1, n_nonmembers)
        handles = []
        n = len(curves)
        for i, (fpr, tpr) in enumerate(curves.values()):
            # Later artists hide earlier ones: the strongest gets the highest zorder, so
            # where curves coincide it is the one seen. Lines' default zorder is 2.
            kw = {**style(i), "linewidth": line_width(i), "zorder": 2 + (n - i) / n}
            (h,) = lin.plot(fpr, tpr, **kw)
            handles.append(h)
            keep = np.asarray(fpr) >= floor
            log.plot(np.asarray(fpr)[keep], np.clip(np.asarray(tpr)[keep], floor, 1), **kw)
        for ax, scale in ((lin, "linear"), (log, "log")):
            # Guessing lies under every curve (zorder below theirs).
            ax.plot([floor if scale == "log" else 0, 1], [floor if scale == "log" else 0, 1],
                    color="#999999", linestyle=(0, (4, 3)), linewidth=1, zorder=1.9)  # fmt: skip
            ax.set_xlabel(f"false-positive rate ({scale})")
            ax.set_ylabel(f"true-positive rate ({scale})")
        log.set_xscale("log")
        log.set_yscale("log")
        log.minorticks_off()  # decades suffice, and each minor tick costs drawing time
        log.set_xlim(floor, 1)
        log.set_ylim(floor, 1)
        lin.set_xlim(0, 1)
        lin.set_ylim(0, 1)
        if title:
            fig.suptitle(title, fontsize=10)
        # Longer legend lines than the default, so that dots and dash-dots read as such.
        _legend_below(fig, handles, [_plain(c) for c in curves], ncol, handlelength=3.0)
        return fig


def score_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> object:
    """Histograms of members' and non-members' scores, one panel per attack:
    ``(attack, member_scores, non_member_scores)``. Overlap means the attack cannot
    tell them apart; a member hump to the right is what it finds.

    Each bar is the share of its own group (members, or non-members) whose scores fall
    in the bin, so the two compare fairly when the groups differ in size; the y axis
    says so and the legend gives each group's size."""
    from matplotlib.ticker import PercentFormatter

    with _rc():
        fig, axes = _figure(len(panels), 2.95, 1.9, left=0.85, bottom=0.6 + 0.3, top=0.3,
                            gap=0.65)  # fmt: skip
        axes = np.atleast_1d(axes)
        sizes = (0, 0)
        for ax, (name, inside, outside) in zip(axes, panels, strict=True):
            both = np.concatenate([inside, outside])
            both = both[np.isfinite(both)]
            lo, hi = np.quantile(both, [0.005, 0.995]) if both.size else (0.0, 1.0)
            if hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
            bins = np.linspace(lo, hi, 41)
            handles = []
            for values, colour, hatch in (
                (outside, NON_MEMBER_COLOUR, "//"), (inside, MEMBER_COLOUR, None),
            ):  # fmt: skip
                v = np.clip(values[np.isfinite(values)], lo, hi)
                # Weights of 1/n: a bar's height is the share of the group in the bin,
                # read straight off the axis (a density would be per unit of score).
                weights = np.full(v.size, 1.0 / max(1, v.size))
                _, _, patches = ax.hist(
                    v, bins=bins, weights=weights, histtype="stepfilled", alpha=0.35,
                    color=colour, hatch=hatch, edgecolor=colour, linewidth=1.2,
                )  # fmt: skip
                handles.append(patches[0])
            sizes = (len(inside), len(outside))
            ax.set_title(_plain(name), fontsize=9)
            ax.set_xlabel("score (higher: surer it was a member)")
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=None))
            ax.yaxis.set_major_locator(_percent_locator())
        axes[0].set_ylabel("% of each group per bin")
        labels = [f"members ({sizes[0]:,})", f"non-members ({sizes[1]:,})"]
        _legend_below(fig, handles[::-1], labels, 2)
        return fig


def _percent_locator():
    """At most four ticks on a short axis of shares, at round percentages."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10])


def class_figure(rows: Sequence[dict], fpr: float, attack: str, *,
                 overall: float | None = None, classes: str = "class") -> object:  # fmt: skip
    """Each class's TPR at one threshold (the verdict's: ``fpr`` over all non-members)
    with its 95 % interval, most exposed first (the order of ``rows``; ``row["label"]``,
    when given, is the class as drawn, else ``row["class"]``).

    Two labelled reference lines, named in a legend below: chance (dashed; a guess
    that accuses ``fpr`` of the records finds ``fpr`` of each class's members) and,
    when ``overall`` is given, the TPR of all classes together (solid). ``classes``
    names the y axis (what the class labels are)."""
    with _rc():
        shown = list(rows)
        # A little wider than other labels: a code with its group ("34 · Precision
        # production craft & repair") should keep most of its group.
        names = [_short(r.get("label", r["class"]), 34) for r in shown]
        labels = [f"chance: a guess finds {rate_text(fpr)} of members"]
        if overall is not None:
            labels.append(f"all classes together: {rate_text(overall)} found")
        ncol, legend_h = _legend_shape(labels, 7.2)
        # Room for the tick labels and, left of them, the axis label.
        left = 0.45 + _CHAR * max((len(n) for n in names), default=2)
        axes_h = 0.2 + 0.24 * len(shown)
        fig, ax = _figure(1, 6.9 - left, axes_h, left=left, right=0.3,
                          bottom=0.75 + legend_h)  # fmt: skip
        y = np.arange(len(shown))[::-1]
        tpr = np.array([r["tpr"] for r in shown])
        low = np.array([r["low"] for r in shown])
        high = np.array([r["high"] for r in shown])
        ax.barh(y, tpr, color=MEMBER_COLOUR, alpha=0.75, height=0.6)
        ax.errorbar(tpr, y, xerr=[tpr - low, high - tpr], fmt="none", ecolor="#000000",
                    capsize=2.5, linewidth=1)  # fmt: skip
        handles = [ax.axvline(fpr, color=CHANCE_COLOUR, linestyle="--", linewidth=1.2)]
        if overall is not None:
            handles.append(ax.axvline(overall, color=OVERALL_COLOUR, linewidth=1.2))
        ax.set_yticks(y, names)
        # No longer than the axis is tall: a rotated label spills onto the legend.
        ax.set_ylabel(_short(classes, max(5, int(axes_h / _CHAR))))
        reach = max([float(high.max()) * 1.1 if len(shown) else 0.0, fpr * 3,
                     (overall or 0.0) * 1.1, 0.01])  # fmt: skip
        ax.set_xlim(0, min(1.0, reach))
        # Two lines: beside long class labels the axes are too narrow for one.
        ax.set_xlabel(f"share of the class's members found (TPR)\n{_short(attack, 20)} at "
                      f"{rate_text(fpr)} FPR over all non-members")  # fmt: skip
        ax.grid(axis="y", alpha=0)
        _legend_below(fig, handles, labels, ncol)
        return fig


def _plain(text) -> str:
    """User text (class names, folder names, attack names) as matplotlib must show it:
    ``$0-$10k`` is money, not mathematics, and must neither vanish nor fail to parse.
    (Mathematics stays on for matplotlib's own labels, such as log ticks' 10⁻².)
    Control characters and bidirectional overrides are dropped (a U+202E would print
    the rest of a legend entry backwards; SVG text has no ``<bdi>``), and so are lone
    surrogates, which the page's UTF-8 cannot hold."""
    return _SURROGATE.sub("", clean(text)).replace("$", r"\$")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _short(text: str, width: int = 28) -> str:
    text = _SURROGATE.sub("", clean(text))
    return _plain(text if len(text) <= width else text[: width - 1] + "…")


def runs_figure(labels: Sequence[str], points: Sequence[tuple[float, float, float]],
                fpr: float) -> object:  # fmt: skip
    """One run against another: each run's TPR at ``fpr`` as ``(tpr, low, high)``,
    first run on top; the dashed line is the rate a guess reaches."""
    with _rc():
        left = 0.2 + _CHAR * max((len(_short(label, 40)) for label in labels), default=2)
        fig, ax = _figure(1, 6.9 - left, 0.2 + 0.34 * len(points), left=left, right=0.3)
        y = np.arange(len(points))[::-1]
        tpr = np.array([p[0] for p in points])
        low = np.array([p[1] for p in points])
        high = np.array([p[2] for p in points])
        for i, (yy, t, lo, hi) in enumerate(zip(y, tpr, low, high, strict=True)):
            ax.errorbar([t], [yy], xerr=[[t - lo], [hi - t]], fmt="o", capsize=3,
                        color=style(i)["color"], markersize=5)  # fmt: skip
        ax.axvline(fpr, color="#999999", linestyle=(0, (4, 3)), linewidth=1)
        ax.set_yticks(y, [_short(label, 40) for label in labels])
        ax.set_ylim(-0.6, len(points) - 0.4)
        ax.set_xlim(0, min(1.0, max(float(high.max()) * 1.1, fpr * 3)))
        ax.set_xlabel(f"true-positive rate at {100 * fpr:g} % false positives")
        ax.grid(axis="y", alpha=0)
        return fig
