"""``report.html``: one self-contained page for the people who must act on an audit.

Position in the pipeline: ``metrics -> report``. The page reads a
:class:`~miaudit.report.run.Run` only (``results.json`` and ``scores.csv``), so an
audit's page and the one ``miaudit report RUN_DIR`` renders later are the same.

It opens with the verdict in words and its level, then what to do (each advice with
the measurement behind it), then the evidence: what was audited, the attacks with
every term explained beside the table, matplotlib pictures inline as SVG (ROC on
linear and log-log axes, score distributions, leakage per class), the most exposed
records as the user knows them, and the privacy claim when there is one. No
scripts and no external references: the page is one file that prints.

Everything the page writes from ``results.json`` is either a number (checked to be
one when the run is loaded: :func:`miaudit.report.run.check_results`) or text escaped
here: user text (names of data sets, columns, classes, attacks, runs; record values)
goes through :func:`_u`, isolated in ``<bdi>`` so that a right-to-left override in it
cannot reverse what follows, and breakable anywhere so that a long name cannot widen
the page; sentences that embed user text go through :func:`_e`, which drops the
bidirectional controls. A Content-Security-Policy (:data:`CSP`) forbids scripts, so
text that slipped through could still run nothing.
"""

from __future__ import annotations

import html
import math
import re

import numpy as np

from miaudit.claim import claim_sentences
from miaudit.metrics import (
    OPTIMISTIC_THRESHOLD,
    clopper_pearson,
    false_positive_budget,
    operating_points,
    roc_points,
)
from miaudit.report import plots
from miaudit.report.disclosure import disclosure_note, level_of
from miaudit.report.findings import (
    Levels,
    Verdict,
    class_exposure,
    recommendations,
    tpr_interval,
    verdict,
)
from miaudit.report.run import Run
from miaudit.report.summary import describe_target, ranked_attacks
from miaudit.report.text import UNPRINTABLE

#: One line on each term the page uses, shown beside the table that uses it.
TERMS = {
    "AUC": "the chance that a random member scores higher than a random non-member; "
    "0.5 is a coin toss, 1 a perfect attack.",
    "TPR at x % FPR": "the share of training records (true positives) an attacker finds "
    "when it may wrongly accuse x % of the records that were not in training (false "
    "positives); a guess finds x %.",
    "95 % interval": "the range the rate lies in with 95 % confidence, given how many "
    "records were evaluated (stratified bootstrap).",
    "precision / recall": "at the attack's own decision threshold: the share of its "
    "accusations that are right, and the share of members it accuses.",
    "advantage": "recall minus the false-positive rate at that threshold: 0 means no "
    "better than guessing, 1 a perfect split.",
    "ε ≥": "a lower bound on the ε of differential privacy that the training cannot be "
    "better than (90 % confidence, from the operating point at 1 % FPR); 0 means the "
    "counts do not rule out ε = 0. It is a floor, not an estimate: the real ε may be "
    "far larger.",
}

#: Points of each drawn ROC curve (the low-FPR half exact; see metrics.roc_points).
ROC_POINTS = 600
#: How many of a record's columns its row on the page shows (all are in results.json).
VALUES_SHOWN = 16

_LEVEL_COLOURS = {
    "not detected": ("#e8f1fa", "#0072B2"),
    "low": ("#eaf6f1", "#009E73"),
    "moderate": ("#fdf5e0", "#b07800"),
    "high": ("#fbe9df", "#D55E00"),
    "severe": ("#f6dfe0", "#a3001b"),
}

#: No script, no request: styles inline, images only the data: PNGs of image records.
#: Inline SVG needs nothing more (its ids are the document's own).
CSP = (
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
    "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">"
)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1020px;margin:1.5em auto;
padding:0 1em;color:#1d1d1d;line-height:1.45;overflow-wrap:break-word}
bdi{overflow-wrap:anywhere}
h1{font-size:1.55em;margin-bottom:.1em} h2{font-size:1.2em;margin-top:1.8em;
border-bottom:1px solid #ddd;padding-bottom:.2em} h3{font-size:1.02em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.92em}
td,th{border:1px solid #ccc;padding:.25em .55em;text-align:right;vertical-align:top}
td:first-child,th:first-child,td.text{text-align:left} th{background:#f4f4f4}
table.facts th{text-align:left;background:none;font-weight:600}
table.facts td{text-align:left}
.meta,.note{color:#555;font-size:.9em}
.verdict{border-left:8px solid var(--edge);background:var(--bg);padding:.8em 1em;margin:1em 0}
.verdict p{margin:.3em 0;font-size:1.08em}
.level{display:inline-block;font-weight:700;text-transform:uppercase;letter-spacing:.04em;
color:#fff;background:var(--edge);padding:.1em .6em;border-radius:3px;font-size:.85em}
.advice li{margin:.45em 0} .advice .evidence{color:#444;font-size:.92em}
dl.terms{display:grid;grid-template-columns:max-content 1fr;gap:.15em .8em;font-size:.88em;
color:#333;margin:.4em 0 1em} dl.terms dt{font-weight:600} dl.terms dd{margin:0}
figure{margin:.6em 0 1.2em} figure svg{max-width:100%;height:auto}
figcaption{font-size:.88em;color:#444}
td.num{white-space:nowrap} td.values{text-align:left;font-size:.85em;max-width:52em}
td.values span{display:inline-block;margin-right:.9em;max-width:100%}
td.values b{font-weight:600;color:#555}
td.values q.text{display:block;white-space:normal;margin-bottom:.2em}
th.record{text-align:left}
img.thumb{width:56px;height:56px;image-rendering:pixelated;border:1px solid #ccc}
.warn{background:#fff4e5;border-left:4px solid #e08a00;padding:.5em .8em}
@media print{
 body{max-width:none;margin:0;font-size:10pt;color:#000}
 h2{break-after:avoid} table,figure,.verdict,li{break-inside:avoid}
 .verdict{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 .level{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 a{color:#000;text-decoration:none}
}
"""


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.{digits}f}"
    return html.escape(str(v))


#: What HTML forbids in text (C0 controls but tab and newline, DEL, C1 controls,
#: noncharacters) and lone surrogates (which UTF-8 cannot write).
_NOT_HTML = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ufdd0-\ufdef\ud800-\udfff"
    + "".join(chr(p) + chr(p + 1) for p in range(0xFFFE, 0x110000, 0x10000))
    + "]"
)


def _e(text) -> str:
    """Text for the page, escaped; for sentences of the page's own that may embed user
    text: bidirectional controls are dropped, so none reverses the rest."""
    return html.escape(UNPRINTABLE.sub("", _NOT_HTML.sub("", str(text))))


def _u(text) -> str:
    """User text (a name, a value) for the page: escaped, in ``<bdi>``, which isolates
    its direction (a U+202E in it reverses only itself) and lets it break anywhere."""
    return f"<bdi>{html.escape(_NOT_HTML.sub('', str(text)))}</bdi>"


def _scores_apart(values: list[float | None]) -> list[str]:
    """The most exposed records' scores, with the fewest significant digits (six at
    least) that write different scores differently: scores range from log-ratios to
    1 - 1e-9, and near 1 six digits read 0.999973 for twenty different scores. Equal
    scores read alike; their rank marks them tied (``_rank_text``). ``None`` (an
    infinite score, null in JSON) is a dash."""
    distinct = {v for v in values if v is not None}
    digits = 6
    # 17 significant digits tell any two doubles apart.
    while digits < 17 and len({f"{v:.{digits}g}" for v in distinct}) < len(distinct):
        digits += 1
    return ["–" if v is None else f"{v:.{digits}g}" for v in values]


def inline_svg(fig, prefix: str) -> str:
    """A matplotlib figure as inline SVG whose element ids start with ``prefix``: several
    figures on one page keep their own clip paths and patterns."""
    svg = plots.to_svg(fig)
    svg = re.sub(r'\bid="', f'id="{prefix}-', svg)
    svg = re.sub(r"url\(#", f"url(#{prefix}-", svg)
    return re.sub(r'xlink:href="#', f'xlink:href="#{prefix}-', svg)


def verdict_html(found: Verdict, levels: Levels) -> str:
    """The verdict box: the level and the sentence, and how the level is decided."""
    bg, edge = _LEVEL_COLOURS[found.level]
    rule = (
        "The level follows a lower bound on the likelihood ratio TPR/FPR — how many times "
        "more often an attack accuses a member than a non-member. At each threshold that "
        "lets through at most 0, 1, 2, 3, 4, 5, 6, 8, … non-members, the lower end of the TPR's "
        "interval is divided by the upper end of the FPR's (exact Clopper–Pearson bounds); "
        "the best over thresholds and attacks, corrected so that all hold together with "
        "95 % confidence, is the ratio (and ε ≥ ln ratio). Up to 1: not detected; below "
        f"{levels.moderate:g}: low; from {levels.moderate:g}: moderate; from "
        f"{levels.high:g}: high; from {levels.severe:g}: severe. A better attack can only "
        "raise it; an evaluation too small to decide the next level says “at least”."
    )
    figures = ""
    if found.level != "not detected" and found.bound is not None:
        b = found.bound
        figures = (
            f" Here: {_u(found.attack)}, {b.tp:,} of {b.n_members:,} members against at most "
            f"{b.fp_budget:,} of {b.n_nonmembers:,} non-members, ratio at least "
            f"{found.ratio:.1f}, ε ≥ {found.epsilon:.2f}."
        )
    weakened = ""
    if found.weakened:
        items = "".join(f"<li>{_e(w)}</li>" for w in found.weakened)
        weakened = (
            "<p><strong>This audit is weaker than it could be</strong>; the leak it "
            f"measures is a lower bound:</p><ul class=weakened>{items}</ul>"
        )
    return (
        f'<section class=verdict style="--bg:{bg};--edge:{edge}" aria-label="verdict">'
        f"<p><span class=level>Leakage: {_e(found.label)}</span></p>"
        f"<p>{_e(found.sentence)}</p>{weakened}"
        f"<p class=note>{rule}{figures}</p></section>"
    )


def _advice_html(items) -> str:
    if not items:
        return (
            "<h2>What to do</h2><p>Nothing measured in this audit calls for a change. "
            "Audit again after retraining or when the data changes.</p>"
        )
    body = "".join(
        f"<li><strong>{_e(a.action)}</strong><br><span class=evidence>Evidence: "
        f"{_e(a.evidence)}</span></li>"
        for a in items
    )
    return f"<h2>What to do</h2><ol class=advice>{body}</ol>"


def _terms_html() -> str:
    return (
        "<dl class=terms>"
        + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in TERMS.items())
        + "</dl>"
    )


def _claim_html(section: dict | None) -> str:
    """The privacy claim against the empirical lower bounds on ε, per attack."""
    if not section:
        return ""
    said = "".join(f"<p>{_e(line)}</p>" for line in claim_sentences(section))
    rows = []
    for name, e in section["attacks"].items():
        one = e.get("one_run")
        one_cell = (
            ""
            if one is None
            else f"<td>{_fmt(one['epsilon'], 2)} <small>({one['correct']} of {one['guesses']} "
            f"guesses right)</small></td>"
        )
        rows.append(
            f"<tr><td>{_u(name)}</td>{one_cell}"
            f"<td>{_fmt(e['clopper_pearson']['epsilon'], 2)}</td>"
            f"<td>{_fmt(e['gdp']['epsilon'], 2)} "
            f"<small>(μ {_fmt(e['gdp']['mu'], 2)})</small></td></tr>"
        )
    one_head = (
        "<th>ε ≥ (one run)</th>" if any("one_run" in e for e in section["attacks"].values()) else ""
    )
    return f"""<h2>Does the training honour its privacy claim?</h2>
{said}
<table><tr><th>attack</th>{one_head}<th>ε ≥ (Clopper–Pearson)</th><th>ε ≈ (GDP estimate)</th></tr>
{"".join(rows)}</table>
<p class=note>Lower bounds at δ = {section["delta"]:.1e}, {100 * section["confidence"]:g} %
confidence. One run: canaries each put in the training set with probability ½, the highest
and lowest scores guessed in and out (Steinke, Nasr and Jagielski 2023). Clopper–Pearson: the
best of the audit's false-positive rates, corrected for trying several. GDP: the ε of the
Gaussian trade-off curve with the attack's AUC, an estimate rather than a bound.</p>
"""


def _attack_rows(d: dict) -> str:
    rows = []
    for name, a in ranked_attacks(d):
        t = a["tpr_at_fpr"]
        eps = a.get("epsilon_lower_bound_cp") or {}

        def cell(key, a=a, t=t):
            ci = tpr_interval(a, key) if t.get(key) is not None else None
            span = "" if ci is None else f" <small>[{_fmt(ci[0])}, {_fmt(ci[1])}]</small>"
            return f"<td>{_fmt(t.get(key), 4)}{span}</td>"

        # Precision and recall at a threshold chosen on the evaluated records: marked.
        mark = "*" if a.get("threshold_from") == OPTIMISTIC_THRESHOLD else ""
        rows.append(
            f"<tr><td>{_u(name)}</td><td>{_fmt(a['auc'])}</td>"
            f"<td>{_fmt(a['precision'])}{mark}</td><td>{_fmt(a['recall'])}{mark}</td>"
            f"<td>{_fmt(a['advantage'])}</td>{cell('0.001')}{cell('0.01')}{cell('0.1')}"
            f"<td>{_fmt(eps.get('0.01'), 2)}</td></tr>"
        )
    return "".join(rows)


def _optimistic_note(d: dict) -> str:
    marked = [n for n, a in d["attacks"].items() if a.get("threshold_from") == OPTIMISTIC_THRESHOLD]
    if not marked:
        return ""
    return (
        f"<p class=note>* {', '.join(_u(n) for n in marked)}: no shadows were given to learn a "
        "decision threshold from, so precision and recall are read at the threshold that best "
        "separates the evaluated records themselves — optimistic. Their ROC curves, AUC, "
        "TPR at each FPR and ε bounds need no threshold and are exact.</p>"
    )


def _skipped_html(d: dict) -> str:
    skipped = d.get("skipped_attacks") or {}
    if not isinstance(skipped, dict) or not skipped:
        return ""
    # miaudit's own attack names and words for what they need (:func:`_e`).
    items = "".join(f"<li>{_e(n)}: needs {_e(why)}</li>" for n, why in skipped.items())
    return (
        "<p class=warn><strong>Attacks not run.</strong> What they need was not given, so the "
        "leak above is a lower bound:</p>"
        f"<ul class=skipped>{items}</ul>"
    )


def _curves(run: Run, names) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name in names:
        fpr, tpr, _ = roc_points(run.score(name), run.member, max_points=ROC_POINTS)
        out[f"{name} (AUC {run.results['attacks'][name]['auc']:.3f})"] = (fpr, tpr)
    return out


def _rank_text(r: dict) -> str:
    tied = int(r.get("tied", 1))
    return f"{r['rank']}" if tied <= 1 else f"{r['rank']}= <small>(tie of {tied:,})</small>"


def _record_cells(r: dict) -> str:
    if "image" in r and str(r["image"]).startswith("data:image/png;base64,"):
        return (
            f'<td><img class=thumb src="{_e(r["image"])}" alt="record {r["record"]}" '
            f'width="56" height="56"></td>'
        )
    values = r.get("values")
    shown = ""
    if isinstance(r.get("text"), str):  # whole in results.json, an excerpt here
        shown = f"<q class=text>{_u(_excerpt(r['text']))}</q>"
    elif isinstance(r.get("object"), str):
        shown = f"<code>{_u(_excerpt(r['object']))}</code>"
    if not values:
        return f"<td class=values>{shown or '–'}</td>"
    items = list(values.items())
    spans = "".join(
        f"<span><b>{_u(k)}</b> {_u('–' if v is None else v)}</span>"
        for k, v in items[:VALUES_SHOWN]
    )
    more = (
        f" <small>… {len(items) - VALUES_SHOWN} more columns in results.json</small>"
        if len(items) > VALUES_SHOWN
        else ""
    )
    return f"<td class=values>{shown}{spans}{more}</td>"


#: Characters of a text record the page shows (results.json keeps it whole).
TEXT_SHOWN = 280


def _excerpt(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) <= TEXT_SHOWN:
        return one_line
    return f"{one_line[: TEXT_SHOWN - 1]}… ({len(one_line):,} characters in results.json)"


def _exposed_html(d: dict) -> str:
    exposed = d["most_exposed"]
    records = exposed["records"]
    has_id = any("id" in r for r in records)
    has_in = any("in_models" in r for r in records)
    has_record = any(
        any(part in r for part in ("values", "image", "text", "object")) for r in records
    )
    has_row = any("record" in r for r in records)
    k = exposed.get("reference_models")
    head = (
        "<th>rank</th>" + ("<th>row</th>" if has_row else "") + ("<th>id</th>" if has_id else "")
        + "<th>label</th><th>member</th><th>score</th>"
        + (f"<th>IN for (of {k})</th>" if has_in else "")
        + ("<th class=record>the record</th>" if has_record else "")
    )  # fmt: skip
    scores = _scores_apart([r["score"] for r in records])
    rows = "".join(
        f"<tr><td>{_rank_text(r)}</td>"
        + (f"<td>{r.get('record', '–')}</td>" if has_row else "")
        + (f"<td>{_u(r.get('id', '–'))}</td>" if has_id else "")
        + f"<td>{_u(r['label'])}</td><td>{'yes' if r['member'] else 'no'}</td>"
        f"<td class=num>{score}</td>"
        + (f"<td>{r.get('in_models', '–')}</td>" if has_in else "")
        + (_record_cells(r) if has_record else "")
        + "</tr>"
        for r, score in zip(records, scores, strict=True)
    )
    top_tie = int(records[0].get("tied", 1)) if records else 0
    ties = (
        f" {top_tie:,} evaluated records share the top score, so these {len(records)} are "
        "tied for first place: the attack cannot tell them apart, and which of them are "
        "listed is only the evaluation set's order."
        if top_tie > len(records)
        else ""
    )
    ins = (
        f" “IN for”: how many of the {k} reference models trained on the record (each "
        "record is in about half of them in this game)."
        if has_in
        else ""
    )
    level = level_of(d)
    row = " “row” is the record's row in your table (or the built-in set's);" if has_row else ""
    return f"""<h2>Whose privacy is at stake</h2>
<p class=note>The {len(records)} records {_u(exposed["attack"])} (the strongest attack) is surest
were in the training set.{row} “member” is whether it really was a training
record.{_e(ties)}{_e(ins)} <code>scores.csv</code> ranks every evaluated record
(<code>exposure_rank</code>).</p>
<p class={"note" if level == "none" else "warn"} id=disclosure>{_e(disclosure_note(level))}
{_e(_more_shown(level))}</p>
<table><tr>{head}</tr>{rows}</table>
"""


def _more_shown(level: str) -> str:
    if level == "values":
        return ""
    return (
        "The records' values are not in this run's files: an audit run with --records "
        "values puts them here, for a reader entitled to see them."
    )


def _class_codes(d: dict) -> dict | None:
    """What the class names are when the data set's classes are numeric codes, and each
    code's group where the records give one (``dataset.notes.class_codes``, written by
    the census loaders: ``{"what", "group", "groups": {code: group}}``)."""
    codes = (d["dataset"].get("notes") or {}).get("class_codes")
    return codes if isinstance(codes, dict) and codes.get("what") else None


def _class_label(name, codes: dict | None) -> str:
    """A class as the chart draws it: its name, and its group when it is a code."""
    group = None if codes is None else (codes.get("groups") or {}).get(str(name))
    return f"{name} · {group}" if group else str(name)


def _class_cell(name, codes: dict | None) -> str:
    """A class in a table cell: its name, and its group (smaller) when it is a code."""
    group = None if codes is None else (codes.get("groups") or {}).get(str(name))
    return _u(name) + (f" <small>({_u(group)})</small>" if group else "")


def _codes_sentence(codes: dict | None) -> str:
    """Says (in HTML) that the classes are codes: a bare number must not pass for a name."""
    if codes is None:
        return ""
    group = codes.get("group")
    beside = f"; beside each code, its {_u(group)}, as the same records give it" if group else ""
    return (
        f" The classes are the data set's {_u(codes['what'])}s: numeric codes, which the data "
        f"set ships without names{beside}."
    )


def _classes_html(run: Run, found: Verdict, rows: list[dict]) -> str:
    d = run.results
    codes = _class_codes(d)
    parts = ["<h2>Which classes leak most</h2>"]
    # fpr 0 is a threshold too (members found without a single false accusation).
    if found.fpr is not None and rows:
        rate = plots.rate_text
        shown = rows[:30]
        n_neg = int((~run.member).sum())
        budget = false_positive_budget(found.fpr, n_neg)
        # The operating point class_exposure reads, for the false positives it lets through.
        _, fps, _, _ = operating_points(run.score(found.attack), run.member, [found.fpr])
        # All classes together, from the table's own rows: the caption, the chart's solid
        # line and the table's last row say the same numbers.
        members = sum(int(r["members"]) for r in rows)
        hits = sum(int(r["found"]) for r in rows)
        overall = hits / members
        low, high = clopper_pearson(hits, members)
        labelled = [{**r, "label": _class_label(r["class"], codes)} for r in shown]
        axis = "class" if codes is None else f"{codes['what']} · {codes.get('group') or ''}"
        figure = plots.class_figure(labelled, found.fpr, found.attack, overall=overall,
                                    classes=axis.rstrip(" ·"))  # fmt: skip
        more = (
            f" The chart shows the {len(shown)} most exposed of the table's {len(rows)} classes."
            if len(rows) > len(shown)
            else ""
        )
        parts.append(
            "<figure>"
            + inline_svg(figure, "classes")
            + f"<figcaption>Share of each class's members {_u(found.attack)} finds (TPR) at "
            f"the threshold that wrongly accuses at most {budget:,} of the {n_neg:,} "
            f"non-members ({rate(found.fpr)} FPR), with 95 % (Clopper–Pearson) intervals, "
            f"most exposed first, in the order of the table below.{_e(more)} Solid line: all "
            f"classes together, {hits:,} of {members:,} members found ({rate(overall)}), the "
            f"table's last row. Dashed line: chance, the {rate(found.fpr)} of any class's "
            f"members that a guess accusing {rate(found.fpr)} of all records finds."
            f"{_codes_sentence(codes)}</figcaption></figure>"
        )
        body = "".join(
            f"<tr><td>{_class_cell(r['class'], codes)}</td><td>{r['members']:,}</td>"
            f"<td>{r['found']:,}</td><td>{rate(r['tpr'])} "
            f"<small>[{rate(r['low'])}, {rate(r['high'])}]</small></td>"
            f"<td>{'–' if r['fpr'] is None else rate(r['fpr'])}</td></tr>"
            for r in rows
        )
        total = (
            f"<tr class=total><th>all classes</th><th>{members:,}</th><th>{hits:,}</th>"
            f"<th>{rate(overall)} <small>[{rate(low)}, {rate(high)}]</small></th>"
            f"<th>{rate(int(fps[0]) / max(1, n_neg))}</th></tr>"
        )
        parts.append(
            "<table class=classes><tr><th>class</th><th>members evaluated</th><th>found</th>"
            "<th>TPR [95 % interval]</th><th>class's own FPR</th></tr>"
            f"{body}{total}</table>"
        )
    # The paper's per-class precision and recall at the attack's own threshold.
    shown_attacks = dict.fromkeys(n for n in ("shokri", d["strongest_attack"]) if n in d["attacks"])
    for name in shown_attacks:
        a = d["attacks"][name]
        fallback = set(a.get("fallback_classes", []))
        body = "".join(
            f"<tr><td>{_class_cell(pc['class'], codes)}{' *' if pc['class'] in fallback else ''}"
            f"</td><td>{pc['n']}</td><td>{_fmt(pc['precision'])}</td>"
            f"<td>{_fmt(pc['recall'])}</td></tr>"
            for pc in a["per_class"]
        )
        note = (
            "<p class=note>* too few attack records for its own attack model; scored by the "
            "class-agnostic model.</p>"
            if fallback
            else ""
        )
        parts.append(
            f"<h3>{_u(name)}: precision and recall per class, at its own threshold</h3>"
            "<table><tr><th>class</th><th>records</th><th>precision</th><th>recall</th></tr>"
            f"{body}</table>{note}"
        )
    return "".join(parts)


def _audited_html(d: dict) -> str:
    ds, tg, sh = d["dataset"], d["target"], d["shadows"]
    gap = tg["train_accuracy"] - tg["test_accuracy"]
    game = (
        f" (recipe game: every record of a {sh['pool_size']}-record pool scored)"
        if sh.get("game") == "recipe"
        else ""
    )
    features = "" if ds.get("n_features") is None else f"{ds['n_features']} features, "
    if sh.get("source") == "outputs":
        count = sh.get("count")
        shadows = "outputs computed elsewhere" + (f": {count} reference models" if count else "")
    else:
        shadows = (
            f"{sh['count']} × {_u(sh.get('model'))} on {_u(sh['source'])} "
            f"data, {sh.get('n_in')} in + {sh.get('n_out')} out records each{game}"
        )
        if sh.get("overlapping_in_sets"):
            shadows += (
                f". The attacker's pool ({sh['pool_size']} records) holds fewer than two "
                "training sets, so the shadows' training sets overlap more than in the paper "
                "and each is tested on the rest of the pool"
            )
    sent = (tg.get("queries") or {}).get("sent")
    queries = f"; {sent} queries sent" if tg.get("source") == "http" and sent is not None else ""
    classes = ds.get("class_names") or []
    named = ", ".join(_u(c) for c in classes[:12]) + (", …" if len(classes) > 12 else "")
    return f"""<h2>What was audited</h2>
<table class=facts>
<tr><th>data set</th><td>{_u(ds["name"])} ({ds["n_records"]:,} records, {features}{ds["n_classes"]}
classes: {named})</td></tr>
<tr><th>target</th><td>{describe_target(tg, user=_u)}, {tg["n_train"]:,} training
records{queries}</td></tr>
<tr><th>train / test accuracy</th><td>{_fmt(tg["train_accuracy"])} / {_fmt(tg["test_accuracy"])}
(gap {_fmt(gap)})</td></tr>
<tr><th>shadows</th><td>{shadows}</td></tr>
</table>"""


def render_html(run: Run, levels: Levels | None = None) -> str:
    """The report page of a :class:`~miaudit.report.run.Run`."""
    levels = levels or Levels()
    d = run.results
    found = verdict(run, levels)
    classes = class_exposure(run, found.attack, found.fpr) if found.fpr is not None else []
    advice = recommendations(run, found, classes)
    a = d["attacks"][d["strongest_attack"]]
    n_neg, n_pos = int(a["n_nonmembers"]), int(a["n_members"])
    ranked = [n for n, _ in ranked_attacks(d)]
    roc = inline_svg(plots.roc_figure(_curves(run, ranked), n_neg), "roc")
    panels = [(n, run.score(n)[run.member], run.score(n)[~run.member]) for n in ranked[:2]]
    dists = inline_svg(plots.score_figure(panels), "scores")
    ranking = d["ranking"]
    ranked_by = f"Attacks ranked by the {_e(ranking['by'])}."
    if ranking["above_chance"]:
        ranked_by += (
            f" {len(ranking['above_chance'])} of {len(d['attacks'])} are above chance at "
            f"{100 * ranking['fpr']:g} % FPR."
        )
    elif ranking["above_chance_at_threshold"]:
        ranked_by += (
            " None is above chance at a low FPR; "
            f"{', '.join(_u(n) for n in ranking['above_chance_at_threshold'])} beat chance only "
            "at their own decision threshold, where more non-members are called members."
        )
    reason = (
        ranking["verdict"].split(": ", 1)[-1]
        if not ranking["distinguishable_from_chance"]
        else "no threshold of any attack accuses members more often than non-members with "
        "95 % confidence for all the thresholds and attacks tried together"
    )
    chance = (
        "<p class=warn><strong>No attack is distinguishable from chance.</strong> "
        f"{_e(reason[0].upper() + reason[1:])}: this audit shows no leakage it can "
        "tell apart from luck (which is not proof that there is none; more records or "
        "shadows narrow the intervals).</p>"
        if found.level == "not detected"
        else ""
    )
    timings = "".join(
        f"<tr><td>{_u(k)}</td><td>{v:.2f}</td></tr>" for k, v in d.get("timings_s", {}).items()
    )
    times = f"<h2>Stage times (s)</h2><table>{timings}</table>" if timings else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
{CSP}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>miaudit report: {_e(d["dataset"]["name"])}</title>
<style>{_CSS}</style></head><body>
<h1>Membership inference audit: {_u(d["dataset"]["name"])}</h1>
<p class=meta>Does the model give away which records it was trained on? miaudit
{_u(d["miaudit_version"])} · seed {d["seed"]}</p>
{verdict_html(found, levels)}
{_advice_html(advice)}
{_audited_html(d)}
<h2>How much it leaks</h2>
<p class=note>Evaluated on {n_pos + n_neg:,} records: {n_pos:,} members of the target's
training set and {n_neg:,} non-members. A rate below 1/{n_neg:,} false positives cannot be
measured with this many non-members (shown as –).</p>
<table><tr><th>attack</th><th>AUC</th><th>precision</th><th>recall</th>
<th>advantage</th><th>TPR at 0.1 % FPR [95 % interval]</th><th>TPR at 1 % FPR [95 % interval]</th>
<th>TPR at 10 % FPR [95 % interval]</th><th>ε ≥ (at 1 % FPR)</th></tr>
{_attack_rows(d)}</table>
{_optimistic_note(d)}{_skipped_html(d)}
{_terms_html()}
{chance}<p class=note>{ranked_by}</p>
<figure>{roc}<figcaption>ROC curves: the share of members found (true-positive rate) against
the share of non-members wrongly accused (false-positive rate). Left, linear axes; right,
log-log axes, where the low false-positive end that matters for privacy is visible. The
dashed diagonal is guessing. The legend lists the attacks strongest first; each has its own
colour and dash, and where curves overlap the stronger is drawn heavier and on
top.</figcaption></figure>
<figure>{dists}<figcaption>Scores of members and non-members for the two strongest attacks.
Each bar is the share of its own group (of the {n_pos:,} members, or of the {n_neg:,}
non-members) whose scores fall in its bin, so the two groups compare fairly whatever their
sizes. Where the two overlap, the attack cannot tell them apart; members' scores reaching beyond
every non-member's are records it finds without error.</figcaption></figure>
{_claim_html(d.get("privacy_claim"))}{_exposed_html(d)}
{_classes_html(run, found, classes)}
{times}
</body></html>
"""
