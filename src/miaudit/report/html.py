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
"""

from __future__ import annotations

import html
import math
import re

import numpy as np

from miaudit.claim import claim_sentences
from miaudit.metrics import roc_points
from miaudit.report import plots
from miaudit.report.findings import (
    Levels,
    Verdict,
    class_exposure,
    percent,
    recommendations,
    tpr_interval,
    verdict,
)
from miaudit.report.run import Run
from miaudit.report.summary import describe_target, ranked_attacks

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

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1020px;margin:1.5em auto;
padding:0 1em;color:#1d1d1d;line-height:1.45}
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
td.values span{display:inline-block;margin-right:.9em;white-space:nowrap}
td.values b{font-weight:600;color:#555}
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


def _e(text) -> str:
    return html.escape(str(text))


def _score(v: float) -> str:
    """A score with six significant digits (scores range from log-ratios to 1 - 1e-9)."""
    return "–" if v is None else f"{v:.6g}"


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
        "The level follows the strongest attack's likelihood ratio: the lower end of the "
        "95 % interval of its TPR divided by the false-positive rate (how many times more "
        "often it accuses a member than a non-member), or e<sup>ε</sup> for its lower "
        f"bound on ε at that rate, whichever is larger. Below {levels.moderate:g}: low; from "
        f"{levels.moderate:g}: moderate; from {levels.high:g}: high; from {levels.severe:g}: "
        "severe; not detected when no attack is distinguishable from chance."
    )
    figures = ""
    if found.level != "not detected":
        eps = "" if found.epsilon is None else f", ε ≥ {found.epsilon:.2f}"
        figures = f" Here: {found.attack}, ratio {found.ratio:.1f}{eps}."
    return (
        f'<section class=verdict style="--bg:{bg};--edge:{edge}" aria-label="verdict">'
        f"<p><span class=level>Leakage: {_e(found.level)}</span></p>"
        f"<p>{_e(found.sentence)}</p>"
        f"<p class=note>{rule}{_e(figures)}</p></section>"
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
            f"<tr><td>{_e(name)}</td>{one_cell}"
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

        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_fmt(a['auc'])}</td>"
            f"<td>{_fmt(a['precision'])}</td><td>{_fmt(a['recall'])}</td>"
            f"<td>{_fmt(a['advantage'])}</td>{cell('0.001')}{cell('0.01')}{cell('0.1')}"
            f"<td>{_fmt(eps.get('0.01'), 2)}</td></tr>"
        )
    return "".join(rows)


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
    if not values:
        return "<td class=values>–</td>"
    items = list(values.items())
    spans = "".join(
        f"<span><b>{_e(k)}</b> {_e('–' if v is None else v)}</span>"
        for k, v in items[:VALUES_SHOWN]
    )
    more = (
        f" <small>… {len(items) - VALUES_SHOWN} more columns in results.json</small>"
        if len(items) > VALUES_SHOWN
        else ""
    )
    return f"<td class=values>{spans}{more}</td>"


def _exposed_html(d: dict) -> str:
    exposed = d["most_exposed"]
    records = exposed["records"]
    has_id = any("id" in r for r in records)
    has_in = any("in_models" in r for r in records)
    has_record = any("values" in r or "image" in r for r in records)
    k = exposed.get("reference_models")
    head = (
        "<th>rank</th><th>row</th>" + ("<th>id</th>" if has_id else "")
        + "<th>label</th><th>member</th><th>score</th>"
        + (f"<th>IN for (of {k})</th>" if has_in else "")
        + ("<th>the record</th>" if has_record else "")
    )  # fmt: skip
    rows = "".join(
        f"<tr><td>{_rank_text(r)}</td><td>{r['record']}</td>"
        + (f"<td>{_e(r.get('id', '–'))}</td>" if has_id else "")
        + f"<td>{_e(r['label'])}</td><td>{'yes' if r['member'] else 'no'}</td>"
        f"<td class=num>{_score(r['score'])}</td>"
        + (f"<td>{r.get('in_models', '–')}</td>" if has_in else "")
        + (_record_cells(r) if has_record else "")
        + "</tr>"
        for r in records
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
    return f"""<h2>Whose privacy is at stake</h2>
<p class=note>The {len(records)} records {_e(exposed["attack"])} (the strongest attack) is surest
were in the training set, as they are in your data: “row” is the record's row in your table (or
the built-in set's), “member” whether it really was a training record.{_e(ties)}{_e(ins)}
<code>scores.csv</code> ranks every evaluated record (<code>exposure_rank</code>).</p>
<table><tr>{head}</tr>{rows}</table>
"""


def _classes_html(run: Run, found: Verdict, rows: list[dict]) -> str:
    d = run.results
    parts = ["<h2>Which classes leak most</h2>"]
    if found.fpr and rows:
        shown = rows[:30]
        parts.append(
            "<figure>"
            + inline_svg(plots.class_figure(shown, found.fpr, found.attack), "classes")
            + f"<figcaption>Share of each class's members {_e(found.attack)} finds at the "
            f"threshold that wrongly accuses {percent(found.fpr)} of all non-members, with 95 % "
            "(Clopper–Pearson) intervals, most exposed first"
            + (f"; the {len(shown)} most exposed of {len(rows)} classes" if len(rows) > 30 else "")
            + ".</figcaption></figure>"
        )
        body = "".join(
            f"<tr><td>{_e(r['class'])}</td><td>{r['members']}</td><td>{r['found']}</td>"
            f"<td>{percent(r['tpr'])} "
            f"<small>[{percent(r['low'])}, {percent(r['high'])}]</small></td>"
            f"<td>{percent(r['fpr'])}</td></tr>"
            for r in rows
        )
        parts.append(
            "<table><tr><th>class</th><th>members evaluated</th><th>found</th>"
            "<th>TPR [95 % interval]</th><th>class's own FPR</th></tr>"
            f"{body}</table>"
        )
    # The paper's per-class precision and recall at the attack's own threshold.
    shown_attacks = dict.fromkeys(n for n in ("shokri", d["strongest_attack"]) if n in d["attacks"])
    for name in shown_attacks:
        a = d["attacks"][name]
        fallback = set(a.get("fallback_classes", []))
        body = "".join(
            f"<tr><td>{_e(pc['class'])}{' *' if pc['class'] in fallback else ''}"
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
            f"<h3>{_e(name)}: precision and recall per class, at its own threshold</h3>"
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
            f"{sh['count']} × {_e(sh.get('model'))} on {_e(sh['source'])} "
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
    named = ", ".join(_e(c) for c in classes[:12]) + (", …" if len(classes) > 12 else "")
    return f"""<h2>What was audited</h2>
<table class=facts>
<tr><th>data set</th><td>{_e(ds["name"])} ({ds["n_records"]:,} records, {features}{ds["n_classes"]}
classes: {named})</td></tr>
<tr><th>target</th><td>{_e(describe_target(tg))}, {tg["n_train"]:,} training
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
    classes = class_exposure(run, found.attack, found.fpr) if found.fpr else []
    advice = recommendations(run, found, classes)
    a = d["attacks"][d["strongest_attack"]]
    n_neg, n_pos = int(a["n_nonmembers"]), int(a["n_members"])
    ranked = [n for n, _ in ranked_attacks(d)]
    roc = inline_svg(plots.roc_figure(_curves(run, ranked), n_neg), "roc")
    panels = [(n, run.score(n)[run.member], run.score(n)[~run.member]) for n in ranked[:2]]
    dists = inline_svg(plots.score_figure(panels), "scores")
    ranking = d["ranking"]
    ranked_by = f"Attacks ranked by the {ranking['by']}."
    if ranking["above_chance"]:
        ranked_by += (
            f" {len(ranking['above_chance'])} of {len(d['attacks'])} are above chance at "
            f"{100 * ranking['fpr']:g} % FPR."
        )
    elif ranking["above_chance_at_threshold"]:
        ranked_by += (
            " None is above chance at a low FPR; "
            f"{', '.join(ranking['above_chance_at_threshold'])} beat chance only at their own "
            "decision threshold, where more non-members are called members."
        )
    reason = ranking["verdict"].split(": ", 1)[-1]
    chance = (
        "<p class=warn><strong>No attack is distinguishable from chance.</strong> "
        f"{_e(reason[0].upper() + reason[1:])}: this audit shows no leakage it can "
        "tell apart from luck (which is not proof that there is none; more records or "
        "shadows narrow the intervals).</p>"
        if not ranking["distinguishable_from_chance"]
        else ""
    )
    timings = "".join(
        f"<tr><td>{_e(k)}</td><td>{v:.2f}</td></tr>" for k, v in d.get("timings_s", {}).items()
    )
    times = f"<h2>Stage times (s)</h2><table>{timings}</table>" if timings else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>miaudit report: {_e(d["dataset"]["name"])}</title>
<style>{_CSS}</style></head><body>
<h1>Membership inference audit: {_e(d["dataset"]["name"])}</h1>
<p class=meta>Does the model give away which records it was trained on? miaudit
{_e(d["miaudit_version"])} · seed {d["seed"]}</p>
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
{_terms_html()}
{chance}<p class=note>{_e(ranked_by)}</p>
<figure>{roc}<figcaption>ROC curves: the share of members found (true-positive rate) against
the share of non-members wrongly accused (false-positive rate). Left, linear axes; right,
log-log axes, where the low false-positive end that matters for privacy is visible. The
dashed diagonal is guessing.</figcaption></figure>
<figure>{dists}<figcaption>Scores of members and non-members for the two strongest attacks.
Where the two overlap, the attack cannot tell them apart; members' scores reaching beyond every
non-member's are records it finds without error.</figcaption></figure>
{_claim_html(d.get("privacy_claim"))}{_exposed_html(d)}
{_classes_html(run, found, classes)}
{times}
</body></html>
"""
