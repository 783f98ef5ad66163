"""What drawing report.html costs: the whole page and each figure, and the report's
fixed-margin layout against matplotlib's constrained layout, side by side in one run.

    python bench/report_render.py [RUN_DIR] [--repeats 5]

Without RUN_DIR it audits digits (6 attacks, 4 shadows) into a temporary folder first.
Times are medians over the repeats, on this machine; the ratio is the number to quote.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import miaudit
from miaudit.report import plots
from miaudit.report.findings import class_exposure, verdict
from miaudit.report.html import ROC_POINTS, render_html
from miaudit.report.run import load_run
from miaudit.report.summary import ranked_attacks


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    folder = args.run
    if folder is None:
        folder = Path(tempfile.mkdtemp()) / "digits"
        miaudit.audit(dataset="digits", shadows=4, seed=0, out=folder)
    run = load_run(folder)
    render_html(run)  # imports and font caches warm before timing
    names = [n for n, _ in ranked_attacks(run.results)]
    found = verdict(run)
    from miaudit.metrics import roc_points

    curves = {n: roc_points(run.score(n), run.member, max_points=ROC_POINTS)[:2] for n in names}
    n_neg = int((~run.member).sum())

    def roc(layout: str | None):
        def draw():
            fig = plots.roc_figure(curves, n_neg)
            if layout:
                fig.set_layout_engine(layout)
            plots.to_svg(fig)

        return draw

    panels = [(n, run.score(n)[run.member], run.score(n)[~run.member]) for n in names[:2]]
    rows = class_exposure(run, found.attack, found.fpr) if found.fpr else []
    timed = {
        "whole page": lambda: render_html(run),
        "ROC figure (fixed margins)": roc(None),
        "ROC figure (constrained layout)": roc("constrained"),
        "score distributions": lambda: plots.to_svg(plots.score_figure(panels)),
    }
    if rows:
        timed["leakage per class"] = lambda: plots.to_svg(
            plots.class_figure(rows[:30], found.fpr, found.attack)
        )
    results = {label: _median(fn, args.repeats) for label, fn in timed.items()}
    print(f"{run.results['dataset']['name']}: {len(names)} attacks, "
          f"{len(run.member):,} records evaluated")  # fmt: skip
    for label, seconds in results.items():
        print(f"  {label:<34} {seconds:6.3f} s")
    ratio = results["ROC figure (constrained layout)"] / results["ROC figure (fixed margins)"]
    print(f"  constrained layout / fixed margins: {ratio:.2f}x")


if __name__ == "__main__":
    main()
