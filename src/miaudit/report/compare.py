"""``miaudit compare``: runs side by side, and whether they differ by more than noise.

Position in the pipeline: ``report``. It reads finished runs
(:func:`miaudit.report.run.load_run`): before and after a mitigation, two models,
two recipes. The first run is the baseline. For each other run it measures the
change in the strongest attack's TPR at a common low false-positive rate, with a
95 % bootstrap interval of the change:

* *paired* when both runs evaluated the same records with the same membership (the
  same seed and split): each replicate resamples the records once and scores both
  runs on that one resample, so what the two runs share cancels out;
* *unpaired* otherwise (the runs evaluated different records of the same data):
  each run is resampled on its own and the interval is wider.

A change is *larger than the noise* when its interval leaves out 0. Runs on
different data sets are refused: their rates measure different things.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miaudit.errors import ConfigError
from miaudit.metrics import clopper_pearson, false_positive_budget, fpr_key, roc_points, tpr_at_fpr
from miaudit.progress import Reporter
from miaudit.report import plots
from miaudit.report.findings import Levels, Verdict, percent, tpr_interval, verdict
from miaudit.report.run import Run
from miaudit.report.summary import describe_target
from miaudit.report.text import clean

#: Replicates of the bootstrap of a change.
N_BOOT = 1000
#: Replicates drawn at once (the working arrays are ``chunk × records``).
_CHUNK = 100


@dataclass(frozen=True)
class Change:
    """One run against the baseline at ``fpr``: each run's strongest attack and its
    TPR, the change and its 95 % interval, and whether the records were paired."""

    run: str
    attack: str
    base_attack: str
    fpr: float
    tpr: float
    base_tpr: float
    delta: float
    interval: tuple[float, float]
    paired: bool

    @property
    def beyond_noise(self) -> bool:
        """Whether the interval of the change leaves out 0."""
        return self.interval[0] > 0 or self.interval[1] < 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run, "attack": self.attack, "baseline_attack": self.base_attack,
            "fpr": self.fpr, "tpr": self.tpr, "baseline_tpr": self.base_tpr,
            "change": self.delta, "interval": list(self.interval), "paired": self.paired,
            "beyond_noise": self.beyond_noise,
        }  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """What ``miaudit compare`` found: the runs' verdicts, the changes against the
    first run, per-attack changes for attacks every run has, and notes on what
    differs between the runs besides the model."""

    runs: list[Run]
    fpr: float
    verdicts: list[Verdict]
    changes: list[Change]
    per_attack: dict[str, list[Change]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def increases(self) -> list[Change]:
        """The runs whose strongest attack's TPR rose above the baseline's by more than
        the noise (the change's 95 % interval lies above 0): what ``--fail-on-increase``
        fails on."""
        return [c for c in self.changes if c.delta > 0 and c.beyond_noise]

    def to_dict(self) -> dict[str, Any]:
        return {
            "fpr": self.fpr,
            "runs": [
                {
                    "run": r.name,
                    "path": None if r.path is None else str(r.path),
                    "verdict": v.to_dict(),
                }
                for r, v in zip(self.runs, self.verdicts, strict=True)
            ],
            "changes": [c.to_dict() for c in self.changes],
            "per_attack": {a: [c.to_dict() for c in cs] for a, cs in self.per_attack.items()},
            "notes": list(self.notes),
        }


def _labels(runs: list[Run]) -> list[str]:
    """Each run's folder name; where several share one, with its parent folder's, and
    where that is shared too (a run passed twice), numbered."""
    names = [r.name for r in runs]
    out = []
    for r in runs:
        label = r.name
        if names.count(r.name) > 1 and r.path is not None:
            label = f"{r.path.resolve().parent.name}/{r.name}"
        out.append(label)
    return [
        f"{lab} ({out[:i].count(lab) + 1})" if out.count(lab) > 1 else lab
        for i, lab in enumerate(out)
    ]


def check_comparable(runs: list[Run]) -> list[str]:
    """Refuse runs on different data; return notes on other differences."""
    if len(runs) < 2:
        raise ConfigError("compare needs at least two run folders: miaudit compare RUN RUN …")
    base = runs[0]
    labels = _labels(runs)
    notes = []
    for run, label in zip(runs[1:], labels[1:], strict=True):
        a, b = base.results["dataset"], run.results["dataset"]
        for key, what in (("name", "data sets"), ("class_names", "classes")):
            if a.get(key) != b.get(key):
                raise ConfigError(
                    f"{clean(label)} and {clean(labels[0])} audit different {what} "
                    f"({_short(b.get(key))} against {_short(a.get(key))}): their rates are not "
                    "comparable; compare runs on one data set"
                )
        if not _named(base) or not _named(run):
            notes.append(
                f"{label} or {labels[0]} was written with --records none, so nothing says "
                "which records each evaluated: its change is compared unpaired, with a "
                "wider interval."
            )
        elif not _same_records(base, run):
            overlap = len(set(base.scores["record"]) & set(run.scores["record"]))
            notes.append(
                f"{label} evaluated other records than {labels[0]} "
                f"({overlap:,} of {len(base.scores):,} in common, or their membership differs): "
                "its change is compared unpaired, with a wider interval."
            )
    return notes


def _short(v: Any) -> str:
    text = clean(v)
    return text if len(text) <= 60 else text[:57] + "…"


def _named(run: Run) -> bool:
    """Whether the run's scores name their records (not one written with --records none)."""
    return "record" in run.scores.columns


def _same_records(a: Run, b: Run) -> bool:
    if not _named(a) or not _named(b):
        return False
    ra, rb = a.scores["record"].to_numpy(), b.scores["record"].to_numpy()
    if len(ra) != len(rb) or len(np.unique(ra)) != len(ra) or len(np.unique(rb)) != len(rb):
        return False
    oa, ob = np.argsort(ra, kind="stable"), np.argsort(rb, kind="stable")
    # Class codes, not label values: an older run's scores.csv holds only the codes.
    la, lb = a.class_index, b.class_index
    # Outputs evaluated without record numbers are numbered by position: the labels too
    # must agree record by record before two runs count as the same records.
    return bool(
        np.array_equal(ra[oa], rb[ob])
        and np.array_equal(a.member[oa], b.member[ob])
        and np.array_equal(la[oa], lb[ob])
    )


def _aligned(run: Run, attack: str, order: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    s, m = run.score(attack), run.member
    return (s, m) if order is None else (s[order], m[order])


def _replicates(
    s: np.ndarray, m: np.ndarray, fpr: float, pos: np.ndarray, neg: np.ndarray
) -> np.ndarray:
    """TPR at ``fpr`` on each resample (rows of member and non-member positions), as
    :func:`miaudit.metrics.tpr_at_fpr` computes it: the share of resampled members
    scoring above the (budget + 1)-th highest resampled non-member."""
    s_pos, s_neg = s[m], s[~m]
    budget = false_positive_budget(fpr, s_neg.size)
    if budget >= s_neg.size:
        return np.ones(len(pos))
    neg_scores = -s_neg[neg]
    threshold = -np.partition(neg_scores, budget, axis=1)[:, budget]
    return (s_pos[pos] > threshold[:, None]).mean(axis=1)


def _draws(m: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n_pos, n_neg = int(m.sum()), int((~m).sum())
    return rng.integers(0, n_pos, (n, n_pos)), rng.integers(0, n_neg, (n, n_neg))


def change(base: Run, run: Run, base_attack: str, attack: str, fpr: float, *,
           n_boot: int = N_BOOT, seed: int = 0, label: str | None = None,
           tick: Callable[[int], None] | None = None) -> Change:  # fmt: skip
    """``run``'s ``attack`` against ``base``'s ``base_attack``: the change of TPR at
    ``fpr`` and its 95 % bootstrap interval (paired when the records are the same).
    ``tick(n)`` is told of every ``n`` replicates drawn."""
    paired = _same_records(base, run)
    rng = np.random.default_rng(seed)
    if paired:
        # Both in the baseline's record order, so one resample draws the same records.
        order_b = np.argsort(base.scores["record"].to_numpy(), kind="stable")
        order_r = np.argsort(run.scores["record"].to_numpy(), kind="stable")
    else:
        order_b = order_r = None
    sb, mb = _aligned(base, base_attack, order_b)
    sr, mr = _aligned(run, attack, order_r)
    diffs = []
    for start in range(0, n_boot, _CHUNK):
        n = min(_CHUNK, n_boot - start)
        pos_b, neg_b = _draws(mb, n, rng)
        pos_r, neg_r = (pos_b, neg_b) if paired else _draws(mr, n, rng)
        diffs.append(
            _replicates(sr, mr, fpr, pos_r, neg_r) - _replicates(sb, mb, fpr, pos_b, neg_b)
        )
        if tick is not None:
            tick(n)
    d = np.concatenate(diffs)
    low, high = np.quantile(d, [0.025, 0.975])
    t, tb = tpr_at_fpr(sr, mr, fpr), tpr_at_fpr(sb, mb, fpr)
    return Change(
        label or run.name, attack, base_attack, fpr, t, tb, t - tb,
        (float(low), float(high)), paired,
    )  # fmt: skip


def run_interval(run: Run, attack: str, fpr: float) -> tuple[float, float]:
    """The 95 % interval of ``attack``'s TPR at ``fpr`` in ``run``: the audit's own
    bootstrap interval when it measured that rate, else Clopper–Pearson's."""
    a = run.results["attacks"][attack]
    interval = tpr_interval(a, fpr_key(fpr))
    if interval is not None:
        return interval
    n = int(run.member.sum())
    return clopper_pearson(round(tpr_at_fpr(run.score(attack), run.member, fpr) * n), n)


def common_fpr(runs: list[Run]) -> float:
    """The rate every run resolves: the highest of the runs' ranking rates."""
    rates = [r.results["ranking"].get("fpr") for r in runs]
    missing = [r.name for r, f in zip(runs, rates, strict=True) if f is None]
    if missing:
        raise ConfigError(
            f"{clean(missing[0])}: too few non-members to resolve any false-positive rate, so its "
            "TPR cannot be compared; evaluate more records"
        )
    return float(max(rates))


def compare_runs(runs: list[Run], *, levels: Levels | None = None, n_boot: int = N_BOOT,
                 seed: int = 0, reporter: Reporter | None = None) -> Comparison:  # fmt: skip
    """The :class:`Comparison` of ``runs`` against the first; ``reporter`` shows the
    bootstraps' progress (runs of millions of records take minutes)."""
    reporter = reporter or Reporter()
    notes = check_comparable(runs)
    fpr = common_fpr(runs)
    labels = _labels(runs)
    base = runs[0]
    verdicts = [verdict(r, levels) for r in runs]
    shared = [a for a in base.attacks if all(a in r.results["attacks"] for r in runs[1:])]
    total = n_boot * (len(runs) - 1) * (1 + len(shared))
    with reporter.stage("bootstrap", "bootstrapping the changes", total, "replicates") as bar:
        drawn = [0]

        def tick(n: int) -> None:
            drawn[0] += n
            bar.update(drawn[0], total)

        changes = [
            change(base, r, base.results["strongest_attack"], r.results["strongest_attack"],
                   fpr, n_boot=n_boot, seed=seed, label=lab, tick=tick)
            for r, lab in zip(runs[1:], labels[1:], strict=True)
        ]  # fmt: skip
        per_attack = {
            a: [change(base, r, a, a, fpr, n_boot=n_boot, seed=seed, label=lab, tick=tick)
                for r, lab in zip(runs[1:], labels[1:], strict=True)]
            for a in shared
        }  # fmt: skip
    if not math.isclose(fpr, base.results["ranking"]["fpr"]):
        notes.append(
            f"Compared at {100 * fpr:g} % FPR, the lowest rate every run resolves (the "
            f"baseline alone resolves {100 * base.results['ranking']['fpr']:g} %)."
        )
    return Comparison(runs, fpr, verdicts, changes, per_attack, notes)


# --------------------------------------------------------------------------- output


def _delta(c: Change) -> str:
    return f"{100 * c.delta:+.1f} pts [{100 * c.interval[0]:+.1f}, {100 * c.interval[1]:+.1f}]"


def _noise(c: Change) -> str:
    if c.beyond_noise:
        return "yes: " + ("lower" if c.delta < 0 else "higher")
    return "no difference" if c.interval == (0.0, 0.0) else "no: within noise"


def table_rows(cmp: Comparison) -> list[tuple[str, ...]]:
    """The terminal table: one row per run."""
    labels = _labels(cmp.runs)
    rows = []
    for i, (run, v) in enumerate(zip(cmp.runs, cmp.verdicts, strict=True)):
        a = run.results["attacks"][run.results["strongest_attack"]]
        t = tpr_at_fpr(run.score(run.results["strongest_attack"]), run.member, cmp.fpr)
        c = None if i == 0 else cmp.changes[i - 1]
        rows.append((
            labels[i], v.label, run.results["strongest_attack"], percent(t),
            f"{a['auc']:.3f}", "baseline" if c is None else _delta(c),
            "" if c is None else _noise(c),
        ))  # fmt: skip
    return rows


HEADERS = ("run", "leakage", "strongest", "TPR", "AUC", "change vs first [95 %]", "beyond noise")


def print_comparison(cmp: Comparison, out, console) -> None:
    """The comparison as a table, and where the page is."""
    from miaudit.report.text import print_table

    if not console.is_terminal:  # a log: whole lines
        console.soft_wrap = True
    headers = (*HEADERS[:3], f"TPR@{100 * cmp.fpr:g}%", *HEADERS[4:])
    print_table(console, "Runs compared", headers, table_rows(cmp), right=headers[3:5])
    for note in cmp.notes:
        console.print(clean(note), markup=False, highlight=False)
    console.print(
        "change: the strongest attack's TPR against the first run's, in percentage points, "
        "with its 95 % bootstrap interval.",
        style="dim",
    )
    console.print(
        f"Written {clean(out)}/compare.html and compare.json", markup=False, highlight=False
    )


def render_compare_html(cmp: Comparison) -> str:
    """``compare.html``: the runs' verdicts, the changes, overlaid ROC curves."""
    from miaudit.report.html import _CSS, _LEVEL_COLOURS, CSP, ROC_POINTS, _e, _u, inline_svg

    labels = _labels(cmp.runs)
    cards = []
    for lab, run, v in zip(labels, cmp.runs, cmp.verdicts, strict=True):
        bg, edge = _LEVEL_COLOURS[v.level]
        tg = run.results["target"]
        cards.append(
            f'<section class=verdict style="--bg:{bg};--edge:{edge}"><p><strong>{_u(lab)}</strong>'
            f" · {describe_target(tg, user=_u)}, train / test accuracy "
            f"{tg['train_accuracy']:.3f} / "
            f"{tg['test_accuracy']:.3f} <span class=level>Leakage: {_e(v.label)}</span></p>"
            f"<p>{_e(v.sentence)}</p></section>"
        )
    head = "".join(f"<th>{_e(h)}</th>" for h in (*HEADERS[:3], f"TPR at {100 * cmp.fpr:g} % FPR",
                                                  *HEADERS[4:]))  # fmt: skip
    # The run and its strongest attack are user text; the rest the page's own.
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=text' if i < 3 else ''}>{_u(c) if i in (0, 2) else _e(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in table_rows(cmp)
    )
    per = ""
    if cmp.per_attack:
        cols = "".join(f"<th>{_u(lab)}</th>" for lab in labels[1:])
        rows = "".join(
            f"<tr><td>{_u(a)}</td><td>{percent(cs[0].base_tpr)}</td>"
            + "".join(
                f"<td>{percent(c.tpr)} <small>({_e(_delta(c))}; {_e(_noise(c))})</small></td>"
                for c in cs
            )
            + "</tr>"
            for a, cs in cmp.per_attack.items()
        )
        per = (
            f"<h2>Every attack the runs share, at {100 * cmp.fpr:g} % FPR</h2>"
            f"<table><tr><th>attack</th><th>{_u(labels[0])}</th>{cols}</tr>{rows}</table>"
        )
    curves = {}
    for lab, run in zip(labels, cmp.runs, strict=True):
        name = run.results["strongest_attack"]
        fpr, tpr, _ = roc_points(run.score(name), run.member, max_points=ROC_POINTS)
        curves[f"{lab}: {name}"] = (fpr, tpr)
    n_neg = min(int(r.member.size - r.member.sum()) for r in cmp.runs)
    roc = inline_svg(plots.roc_figure(curves, n_neg), "roc")
    points = []
    for run in cmp.runs:
        name = run.results["strongest_attack"]
        s, m = run.score(name), run.member
        t = tpr_at_fpr(s, m, cmp.fpr)
        points.append((t, *run_interval(run, name, cmp.fpr)))
    bars = inline_svg(plots.runs_figure(labels, points, cmp.fpr), "runs")
    notes = "".join(f"<p class=warn>{_e(n)}</p>" for n in cmp.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
{CSP}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>miaudit: {len(cmp.runs)} runs compared</title>
<style>{_CSS}</style></head><body>
<h1>{len(cmp.runs)} runs compared: {_u(cmp.runs[0].results["dataset"]["name"])}</h1>
<p class=meta>The first run is the baseline. A change is larger than the noise when its 95 %
bootstrap interval leaves out 0 (paired over the same records where the runs evaluated the
same ones).</p>
{"".join(cards)}
{notes}
<h2>The strongest attack of each run, at {100 * cmp.fpr:g} % false positives</h2>
<table><tr>{head}</tr>{body}</table>
<figure>{bars}<figcaption>TPR at {100 * cmp.fpr:g} % FPR of each run's strongest attack, with
its 95 % interval; the dashed line is what a guess reaches.</figcaption></figure>
{per}
<h2>ROC curves</h2>
<figure>{roc}<figcaption>Each run's strongest attack, on linear and log-log axes; the dashed
diagonal is guessing.</figcaption></figure>
</body></html>
"""
