"""The verdict: its level follows the documented thresholds, its numbers are results.json's."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from miaudit.errors import ConfigError
from miaudit.report.findings import (
    Levels,
    class_exposure,
    recommendations,
    unmistaken_members,
    verdict,
)
from miaudit.report.run import Run


def _run(low: float, *, tpr: float = 0.3, high: float = 0.4, fpr: float = 0.01,
         eps: float | None = None, distinguishable: bool = True, above: bool = True,
         n_train: int = 10_000, gap: float = 0.0, defense=()) -> Run:  # fmt: skip
    """A run whose strongest attack has TPR ``tpr`` at ``fpr`` with interval
    ``[low, high]`` and the largest ε bound ``eps``."""
    key = f"{fpr:g}"
    attack = {
        "auc": 0.7, "precision": 0.6, "recall": 0.5, "advantage": 0.2,
        "tpr_at_fpr": {key: tpr}, "tpr_at_fpr_ci": {key: [low, high]},
        "epsilon_lower_bound_cp": {key: eps}, "per_class": [],
        "n_members": 1000, "n_nonmembers": 1000,
    }  # fmt: skip
    results = {
        "miaudit_version": "test", "results_format": 2, "seed": 0,
        "dataset": {"name": "d", "class_names": ["a", "b"]},
        "target": {"n_train": n_train, "train_accuracy": 0.9 + gap, "test_accuracy": 0.9,
                   "defense": list(defense), "source": "builtin"},
        "shadows": {}, "attacks": {"x": attack}, "strongest_attack": "x",
        "ranking": {"fpr": fpr, "distinguishable_from_chance": distinguishable,
                    "above_chance": ["x"] if above else [],
                    "above_chance_at_threshold": [] if above else ["x"]},
        "most_exposed": {"attack": "x", "records": []},
    }  # fmt: skip
    rng = np.random.default_rng(0)
    scores = pd.DataFrame({
        "record": np.arange(2000), "label": rng.integers(0, 2, 2000),
        "member": np.r_[np.ones(1000, int), np.zeros(1000, int)],
        "score_x": rng.random(2000),
    })  # fmt: skip
    return Run(results, scores)


@pytest.mark.parametrize(
    ("ratio", "level"),
    [
        (1.0001, "low"), (1.9999, "low"), (2.0, "moderate"), (9.9999, "moderate"),
        (10.0, "high"), (49.999, "high"), (50.0, "severe"), (400.0, "severe"),
    ],
)  # fmt: skip
def test_the_level_follows_the_documented_thresholds_at_each_boundary(ratio, level):
    assert Levels().level(ratio) == level
    # The ratio is the interval's lower end over the FPR: at 1 % FPR, lower end ratio / 100.
    run = _run(low=ratio * 0.01, tpr=min(1.0, ratio * 0.01 + 0.01), high=1.0)
    assert verdict(run).level == level
    assert verdict(run).ratio == pytest.approx(ratio)


@pytest.mark.parametrize(
    ("eps", "level"),
    [(math.log(2) - 1e-6, "low"), (math.log(2) + 1e-9, "moderate"),
     (math.log(10) + 1e-9, "high"), (math.log(50) + 1e-9, "severe")],
)  # fmt: skip
def test_a_lower_bound_on_epsilon_raises_the_level_through_e_to_the_epsilon(eps, level):
    # A TPR interval at chance level (ratio 1.01), the ε bound decides.
    assert verdict(_run(low=0.0101, tpr=0.02, eps=eps)).level == level


def test_no_attack_distinguishable_is_not_detected_with_the_resolution_said():
    found = verdict(_run(low=0.002, tpr=0.012, high=0.031, distinguishable=False, above=False))
    assert found.level == "not detected"
    assert "No attack told members from non-members better than chance" in found.sentence
    # The resolution the evaluation allows: the interval's upper end.
    assert "a leak smaller than 3.1 % of the training records" in found.sentence
    assert found.sentence.endswith("Leakage: not detected.")


def test_other_thresholds_change_the_words_not_the_numbers():
    run = _run(low=0.05, tpr=0.08)  # ratio 5
    assert verdict(run).level == "moderate"
    assert verdict(run, Levels.parse("6,20,80")).level == "low"
    assert verdict(run, Levels.parse("1.5,4,5")).level == "severe"
    for bad in ("2,10", "10,2,50", "a,b,c", "1,2,3"):
        with pytest.raises(ConfigError, match="--levels"):
            Levels.parse(bad)


def test_the_sentence_of_a_real_audit_says_its_results_json_numbers(digits_runs):
    from miaudit.report.run import load_run

    run = load_run(digits_runs[0])
    d = run.results
    found = verdict(run)
    a = d["attacks"][d["strongest_attack"]]
    key = f"{d['ranking']['fpr']:g}"
    tpr, (low, high) = a["tpr_at_fpr"][key], a["tpr_at_fpr_ci"][key]
    m = re.search(
        r"accepts 1 false accusation per ([\d,]+) non-members identifies about ([\d,]+) of the "
        r"([\d,]+) training records \(([\d.]+) %; 95 % interval ([\d.]+)–([\d.]+) %\)\. "
        r"Leakage: (\w+)\.",
        found.sentence,
    )
    assert m, found.sentence
    per, about, total, pct, lo, hi, level = m.groups()
    assert int(per.replace(",", "")) == round(1 / d["ranking"]["fpr"])
    assert int(total.replace(",", "")) == d["target"]["n_train"]
    assert int(about.replace(",", "")) == pytest.approx(tpr * d["target"]["n_train"], rel=5e-3)
    assert float(pct) == pytest.approx(100 * tpr, abs=0.5)
    assert float(lo) == pytest.approx(100 * low, abs=0.5)
    assert float(hi) == pytest.approx(100 * high, abs=0.5)
    assert level == found.level == Levels().level(max(low / d["ranking"]["fpr"], found.ratio))
    page = (digits_runs[0] / "report.html").read_text()
    assert found.sentence in page and f"Leakage: {found.level}" in page


def test_advice_needs_a_measured_reason():
    quiet = _run(low=0.0101, tpr=0.02, high=0.03)
    assert [a.tags for a in recommendations(quiet, verdict(quiet))] == []
    gap = _run(low=0.2, tpr=0.25, gap=0.08)
    advice = recommendations(gap, verdict(gap))
    assert [a.tags for a in advice] == [("gap",)]
    assert "a gap of 0.080" in advice[0].evidence
    policy = _run(low=0.2, tpr=0.25, defense=["top-k=1"])
    assert ("policy",) in [a.tags for a in recommendations(policy, verdict(policy))]
    wide = _run(low=0.011, tpr=0.03, high=0.09)
    assert ("resolution",) in [a.tags for a in recommendations(wide, verdict(wide))]


def test_classes_and_records_are_named_from_the_scores():
    rng = np.random.default_rng(1)
    n = 4000
    label, member = rng.integers(0, 4, n), np.r_[np.ones(n // 2, int), np.zeros(n // 2, int)]
    s = rng.normal(0, 1, n)
    s[(label == 2) & (member == 1)] += 3.0  # class 2's members stand out
    s[:25] = 100.0  # 25 members above every non-member
    run = _run(low=0.2, tpr=0.25, high=0.3)
    run = Run(
        {**run.results, "dataset": {"name": "d", "class_names": ["a", "b", "c", "d"]}},
        pd.DataFrame({"record": np.arange(n), "label": label, "member": member, "score_x": s}),
    )
    rows = class_exposure(run, "x", 0.01)
    assert rows[0]["class"] == "c" and rows[0]["tpr"] > 0.5
    flagged = s >= np.sort(s[member == 0])[::-1][int(0.01 * (n // 2))]
    inside = (label == 2) & (member == 1)
    assert rows[0]["found"] == int((flagged & inside).sum())
    assert unmistaken_members(run, "x") == (int((s[member == 1] > s[member == 0].max()).sum()),
                                            n // 2, n // 2)  # fmt: skip
    tags = [a.tags for a in recommendations(run, verdict(run), rows)]
    assert ("classes",) in tags and ("records",) in tags


def test_the_terminal_summary_opens_with_the_verdict_and_gives_the_pages_advice(tmp_path):
    import io

    from rich.console import Console

    import miaudit
    from miaudit.report.summary import print_summary

    rng = np.random.default_rng(3)
    n, C = 3000, 4
    y, member = rng.integers(0, C, n), rng.random(n) < 0.5
    logits = rng.normal(0, 1, (n, C))
    logits[np.arange(n), y] += 1.0 + 2.0 * member
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = miaudit.evaluate(probs, y, member, bootstrap=100)
    buf = io.StringIO()
    print_summary(result, tmp_path, Console(file=buf, width=100))
    lines = buf.getvalue().splitlines()
    run = Run(result.to_dict(), result.to_frame(label_names=False))
    found = verdict(run)
    assert lines[0] == found.sentence
    advice = [line for line in lines if line.startswith("What to do")]
    assert [line.split(": ", 1)[1] for line in advice] == [
        a.action for a in recommendations(run, found)
    ]


def test_percentages_keep_their_digits_and_never_round_up_to_all():
    from miaudit.report.findings import _pct

    cases = {0: "0", 1: "100", 0.999: "99.9", 0.9951: "99.5", 0.18: "18", 0.079: "7.9",
             0.004: "0.4", 1e-7: "0.00001", 2.5e-7: "0.000025"}  # fmt: skip
    assert {v: _pct(v) for v in cases} == cases


def test_the_chance_of_members_above_every_non_member_is_exact():
    from miaudit.report.findings import chance_of_unmistaken

    rng = np.random.default_rng(0)
    n_pos, n_neg, trials = 30, 40, 40_000
    member = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    counts = np.empty(trials, int)
    for t in range(trials):
        order = member[rng.permutation(n_pos + n_neg)]
        counts[t] = np.argmin(order) if not order.all() else n_pos
    for k in (1, 2, 3, 4):
        assert (counts >= k).mean() == pytest.approx(chance_of_unmistaken(k, n_pos, n_neg),
                                                     abs=0.01)  # fmt: skip


def test_user_text_is_printed_as_is_not_read_as_markup(monkeypatch, tmp_path):
    import io

    from rich.console import Console

    import miaudit
    from miaudit.report import summary
    from miaudit.report.findings import Advice

    rng = np.random.default_rng(0)
    y, member = rng.integers(0, 3, 600), rng.random(600) < 0.5
    result = miaudit.evaluate(rng.dirichlet(np.ones(3), 600), y, member, bootstrap=50)
    monkeypatch.setattr(
        summary, "recommendations", lambda run, found: [Advice("class [/] and [bold]x", "e")]
    )
    buf = io.StringIO()
    summary.print_summary(result, tmp_path, Console(file=buf, width=100))
    assert "What to do (1/1): class [/] and [bold]x" in buf.getvalue()


def test_labels_with_dollar_signs_are_drawn_as_text():
    from miaudit.report import plots
    from miaudit.report.html import inline_svg

    rows = [{"class": name, "tpr": 0.3, "low": 0.2, "high": 0.4}
            for name in ("income_$0_to_$10k", "$10%-$20%", "tier_$1_$2")]  # fmt: skip
    svg = inline_svg(plots.class_figure(rows, 0.01, "loss"), "c")
    for row in rows:
        assert row["class"].replace("&", "&amp;") in svg
    assert "rdf:" not in svg and "purl.org" not in svg
