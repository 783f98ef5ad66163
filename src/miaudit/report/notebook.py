"""An audit's result in a notebook: the verdict box, the attacks' table and the ROC figure
(:meth:`miaudit.result.AuditResult._repr_html_`).

Position in the pipeline: ``result -> report``. It draws what the page draws, from the
same :class:`~miaudit.report.run.Run` a run folder reads back, so a notebook, the page and
the terminal say the same thing. The block is self-contained: its styles are scoped to its
own ``<div>`` (a notebook's own look is left alone), its figure is inline SVG whose ids
are its own (two results in one notebook do not share clip paths), and it holds no script.
What it shows of the records follows the result's ``show_records``: no record's values,
and the ids of none.
"""

from __future__ import annotations

import uuid

from miaudit.report import plots
from miaudit.report.html import _attack_rows, _curves, _e, inline_svg, verdict_html
from miaudit.report.run import Run
from miaudit.report.summary import ranked_attacks
from miaudit.verdict import Levels, verdict

#: The class of the block's ``<div>``; every style below is scoped to it.
SCOPE = "miaudit-result"

_CSS = f"""
.{SCOPE}{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;line-height:1.45;
color:#1d1d1d;max-width:1020px}}
.{SCOPE} .verdict{{border-left:8px solid var(--edge);background:var(--bg);padding:.7em 1em;
margin:.5em 0}}
.{SCOPE} .verdict p{{margin:.3em 0}}
.{SCOPE} .level{{display:inline-block;font-weight:700;text-transform:uppercase;
letter-spacing:.04em;color:#fff;background:var(--edge);padding:.1em .6em;border-radius:3px;
font-size:.85em}}
.{SCOPE} .note{{color:#555;font-size:.88em}}
.{SCOPE} table{{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}}
.{SCOPE} td,.{SCOPE} th{{border:1px solid #ccc;padding:.2em .5em;text-align:right}}
.{SCOPE} td:first-child,.{SCOPE} th:first-child{{text-align:left}}
.{SCOPE} th{{background:#f4f4f4}}
.{SCOPE} figure{{margin:.5em 0}} .{SCOPE} figure svg{{max-width:100%;height:auto}}
.{SCOPE} figcaption{{font-size:.85em;color:#444}}
.{SCOPE} bdi{{overflow-wrap:anywhere}}
"""


def result_html(result, levels: Levels | None = None) -> str:
    """The HTML block a notebook shows for ``result`` (an
    :class:`~miaudit.result.AuditResult`)."""
    levels = levels or Levels()
    run = Run(result.to_dict(), result.to_frame(label_names=False))
    d = run.results
    found = verdict(run, levels)
    ranked = [name for name, _ in ranked_attacks(d)]
    a = d["attacks"][d["strongest_attack"]]
    n_neg, n_pos = int(a["n_nonmembers"]), int(a["n_members"])
    # Each block's figure ids are its own: a notebook holds several results.
    roc = inline_svg(plots.roc_figure(_curves(run, ranked), n_neg), f"mia-{uuid.uuid4().hex[:8]}")
    return (
        f'<div class="{SCOPE}"><style>{_CSS}</style>'
        f"{verdict_html(found, levels)}"
        f"<p class=note>{_e(d['dataset']['name'])}: {n_pos:,} members and {n_neg:,} "
        "non-members evaluated. Attacks strongest first:</p>"
        "<table><tr><th>attack</th><th>AUC</th><th>precision</th><th>recall</th>"
        "<th>advantage</th><th>TPR at 0.1 % FPR [95 % interval]</th>"
        "<th>TPR at 1 % FPR [95 % interval]</th><th>TPR at 10 % FPR [95 % interval]</th>"
        f"<th>ε ≥ (at 1 % FPR)</th></tr>{_attack_rows(d)}</table>"
        f"<figure>{roc}<figcaption>ROC curves: members found against non-members wrongly "
        "accused, on linear and log-log axes (the low false-positive end is what matters for "
        "privacy); the dashed diagonal is guessing.</figcaption></figure>"
        "<p class=note>The whole report (what to do, the most exposed records, the "
        "classes): <code>miaudit.audit(..., out=folder)</code> writes "
        "<code>report.html</code>.</p></div>"
    )
