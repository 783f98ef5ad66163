"""A self-contained HTML page for people: summary, ROC curves, per-class table.

No scripts, no external assets: the ROC curves are inline SVG drawn here, on
linear and on log-log axes (the low false-positive end is where membership
inference matters, and a linear plot hides it).
"""

from __future__ import annotations

import html
import math

import numpy as np

from miaudit.claim import claim_sentences
from miaudit.report.summary import describe_target, ranked_attacks

_W, _H, _PAD = 360, 300, 48


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _axis_map(log: bool, lo: float):
    def f(v: np.ndarray) -> np.ndarray:
        if not log:
            return v
        v = np.clip(v, lo, 1.0)
        return (np.log10(v) - math.log10(lo)) / -math.log10(lo)

    return f


def roc_svg(curves: dict[str, dict[str, list[float]]], *, log: bool, n_neg: int) -> str:
    """An SVG ROC plot of each attack's curve, with the chance diagonal."""
    lo = max(1e-5, 10 ** math.floor(math.log10(1.0 / max(n_neg, 1)))) if log else 0.0
    m = _axis_map(log, lo)
    inner_w, inner_h = _W - 2 * _PAD + 20, _H - 2 * _PAD + 10

    def xy(fpr, tpr):
        x = _PAD + m(np.asarray(fpr)) * inner_w
        y = _H - _PAD - m(np.asarray(tpr)) * inner_h
        return x, y

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="ROC curve">',
        f'<rect x="{_PAD}" y="{_H - _PAD - inner_h}" width="{inner_w}" height="{inner_h}" '
        'fill="#fafafa" stroke="#999"/>',
    ]
    ticks = (
        [lo * 10**i for i in range(round(-math.log10(lo)) + 1)]
        if log
        else [0, 0.25, 0.5, 0.75, 1.0]
    )
    for t in ticks:
        tx, ty = xy([t], [t])
        label = f"{t:g}"
        parts.append(
            f'<line x1="{tx[0]:.1f}" y1="{_H - _PAD}" x2="{tx[0]:.1f}" y2="{_H - _PAD + 4}" '
            'stroke="#333"/>'
            f'<text x="{tx[0]:.1f}" y="{_H - _PAD + 16}" font-size="10" '
            f'text-anchor="middle">{label}</text>'
            f'<line x1="{_PAD - 4}" y1="{ty[0]:.1f}" x2="{_PAD}" y2="{ty[0]:.1f}" stroke="#333"/>'
            f'<text x="{_PAD - 6}" y="{ty[0] + 3:.1f}" font-size="10" '
            f'text-anchor="end">{label}</text>'
        )
    grid = np.logspace(math.log10(lo), 0, 50) if log else np.array([0.0, 1.0])
    gx, gy = xy(grid, grid)
    parts.append(
        '<polyline fill="none" stroke="#bbb" stroke-dasharray="4 3" points="'
        + " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(gx, gy, strict=True))
        + '"/>'
    )
    # Ten colours, then the same colours dashed: every attack of `--attacks all` (17)
    # keeps a line of its own. The legend shows each line's sample, 12 to a column.
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
               "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]  # fmt: skip
    for i, (name, c) in enumerate(curves.items()):
        fpr, tpr = np.asarray(c["fpr"]), np.asarray(c["tpr"])
        if log:
            keep = fpr >= lo
            fpr, tpr = (
                np.r_[lo, fpr[keep]],
                np.r_[tpr[~keep].max() if (~keep).any() else 0, tpr[keep]],
            )
        x, y = xy(fpr, tpr)
        colour = colours[i % len(colours)]
        dash = "" if i < len(colours) else ' stroke-dasharray="5 3"'
        lx = _PAD + 8 + 122 * (i // 12)
        ly = _H - _PAD - inner_h + 14 + 13 * (i % 12)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.8"{dash} points="'
            + " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y, strict=True))
            + f'"><title>{html.escape(name)}</title></polyline>'
            f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 14}" y2="{ly - 4}" stroke="{colour}" '
            f'stroke-width="1.8"{dash}/>'
            f'<text x="{lx + 18}" y="{ly}" font-size="11" fill="{colour}">'
            f"{html.escape(name)}</text>"
        )
    scale = "log" if log else "linear"
    parts.append(
        f'<text x="{_PAD + inner_w / 2}" y="{_H - 8}" font-size="11" text-anchor="middle">'
        f"false-positive rate ({scale})</text>"
        f'<text x="12" y="{_H / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {_H / 2})">true-positive rate ({scale})</text></svg>'
    )
    return "".join(parts)


def _claim_html(section: dict | None) -> str:
    """The privacy claim against the empirical lower bounds on ε, per attack."""
    if not section:
        return ""
    said = "".join(f"<p>{html.escape(line)}</p>" for line in claim_sentences(section))
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
            f"<tr><td>{html.escape(name)}</td>{one_cell}"
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


def render_html(result) -> str:
    """The report page of an :class:`miaudit.result.AuditResult`."""
    d = result.to_dict()
    ds, tg, sh = d["dataset"], d["target"], d["shadows"]
    n_neg = int((np.asarray(result.member) == 0).sum())
    rows = []
    for name, a in ranked_attacks(d):
        t = a["tpr_at_fpr"]
        ci = a.get("tpr_at_fpr_ci") or {}
        eps = a.get("epsilon_lower_bound_cp") or {}

        def interval(key, ci=ci):
            c = ci.get(key)
            return "" if c is None else f" <small>[{_fmt(c[0], 3)}, {_fmt(c[1], 3)}]</small>"

        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{_fmt(a['auc'])}</td>"
            f"<td>{_fmt(a['precision'])}</td><td>{_fmt(a['recall'])}</td>"
            f"<td>{_fmt(a['advantage'])}</td>"
            f"<td>{_fmt(t['0.001'], 4)}{interval('0.001')}</td>"
            f"<td>{_fmt(t['0.01'], 4)}{interval('0.01')}</td>"
            f"<td>{_fmt(t['0.1'], 4)}{interval('0.1')}</td><td>{_fmt(eps.get('0.01'), 2)}</td></tr>"
        )
    exposed = d["most_exposed"]
    exposed_rows = "".join(
        f"<tr><td>{r['rank']}</td><td>{r['record']}</td>"
        + (f"<td>{html.escape(str(r['id']))}</td>" if "id" in r else "")
        + f"<td>{html.escape(str(r['label']))}</td>"
        f"<td>{'yes' if r['member'] else 'no'}</td><td>{_fmt(r['score'], 4)}</td></tr>"
        for r in exposed["records"]
    )
    per_class_html = []
    # Per-class tables for the paper's attack and the strongest one; the rest are in
    # results.json.
    shown = dict.fromkeys(n for n in ("shokri", d["strongest_attack"]) if n in d["attacks"])
    for name, a in ((n, d["attacks"][n]) for n in shown):
        fallback = set(a.get("fallback_classes", []))
        body = "".join(
            f"<tr><td>{html.escape(str(pc['class']))}{' *' if pc['class'] in fallback else ''}"
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
        per_class_html.append(
            f"<h3>{html.escape(name)}: per class</h3><table><tr><th>class</th><th>records</th>"
            f"<th>precision</th><th>recall</th></tr>{body}</table>{note}"
        )
    timings = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.2f}</td></tr>" for k, v in d["timings_s"].items()
    )
    gap = tg["train_accuracy"] - tg["test_accuracy"]
    game = (
        f" (recipe game: every record of a {sh['pool_size']}-record pool scored)"
        if sh.get("game") == "recipe"
        else ""
    )
    id_head = "<th>id</th>" if any("id" in r for r in exposed["records"]) else ""
    features = "" if ds.get("n_features") is None else f"{ds['n_features']} features, "
    if sh.get("source") == "outputs":
        count = sh.get("count")
        shadows = "outputs computed elsewhere" + (f": {count} reference models" if count else "")
    else:
        shadows = (
            f"{sh['count']} × {html.escape(str(sh['model']))} on {html.escape(sh['source'])} "
            f"data, {sh.get('n_in')} in + {sh.get('n_out')} out records each{game}"
        )
        if sh.get("overlapping_in_sets"):
            shadows += (
                f". The attacker's pool ({sh['pool_size']} records) holds fewer than two "
                "training sets, so the shadows' training sets overlap more than in the paper "
                "and each is tested on the rest of the pool"
            )
    ranking = d["ranking"]
    ranked_by = f"Attacks ranked by the {ranking['by']}."
    n_attacks = len(d["attacks"])
    if ranking["above_chance"]:
        ranked_by += (
            f" {len(ranking['above_chance'])} of {n_attacks} are above chance at "
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
        f"{html.escape(reason[0].upper() + reason[1:])}: this audit shows no leakage it can "
        "tell apart from luck (which is not proof that there is none; more records or "
        "shadows narrow the intervals).</p>"
        if not ranking["distinguishable_from_chance"]
        else ""
    )
    sent = (tg.get("queries") or {}).get("sent")
    queries = f"; {sent} queries sent" if tg.get("source") == "http" and sent is not None else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>miaudit report: {html.escape(ds["name"])}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}
td:first-child,th:first-child{{text-align:left}}
.plots{{display:flex;gap:1.5em;flex-wrap:wrap}} .note{{color:#555;font-size:.9em}}
.warn{{background:#fff4e5;border-left:4px solid #e08a00;padding:.5em .8em}}
</style></head><body>
<h1>Membership inference audit</h1>
<p>miaudit {html.escape(d["miaudit_version"])} · seed {d["seed"]}</p>
<h2>What was audited</h2>
<table>
<tr><th>data set</th><td>{html.escape(ds["name"])} ({ds["n_records"]} records,
{features}{ds["n_classes"]} classes)</td></tr>
<tr><th>target</th><td>{html.escape(describe_target(tg))}, {tg["n_train"]} training records
{queries}</td></tr>
<tr><th>train / test accuracy</th><td>{_fmt(tg["train_accuracy"])} / {_fmt(tg["test_accuracy"])}
(gap {_fmt(gap)})</td></tr>
<tr><th>shadows</th><td>{shadows}</td></tr>
</table>
<h2>How much it leaks</h2>
<p class=note>Evaluated on {len(result.member)} records: {int(np.sum(result.member))} members of
the target's training set and {n_neg} non-members. AUC 0.5 and TPR equal to FPR mean no leakage.
Precision and recall use the attack's own decision threshold; TPR at a false-positive rate
below 1/{n_neg} cannot be resolved with this many non-members.</p>
<table><tr><th>attack</th><th>AUC</th><th>precision</th><th>recall</th>
<th>advantage</th><th>TPR@0.1%FPR [95% CI]</th><th>TPR@1%FPR [95% CI]</th>
<th>TPR@10%FPR [95% CI]</th>
<th>ε ≥ (at 1% FPR)</th></tr>
{"".join(rows)}</table>
{chance}<p class=note>{html.escape(ranked_by)} Intervals: stratified bootstrap. ε ≥: the
smallest ε that the operating point at 1 % FPR allows with 90 % confidence (Clopper–Pearson
bounds on TPR and FPR); 0 means the counts do not rule out ε = 0.</p>
<div class=plots>{roc_svg(result.roc, log=False, n_neg=n_neg)}
{roc_svg(result.roc, log=True, n_neg=n_neg)}</div>
{_claim_html(d.get("privacy_claim"))}<h2>Whose privacy is at stake</h2>
<p class=note>The {len(exposed["records"])} records {html.escape(exposed["attack"])} (the
strongest attack) is surest were in the training set; <code>scores.csv</code> ranks every
record (<code>exposure_rank</code>).</p>
<table><tr><th>rank</th><th>record</th>{id_head}<th>label</th><th>member</th><th>score</th></tr>
{exposed_rows}</table>
{"".join(per_class_html)}
<h2>Stage times (s)</h2><table>{timings}</table>
</body></html>
"""
