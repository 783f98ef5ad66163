"""The verdict: its level follows the documented thresholds, its numbers are results.json's."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import pytest

from miaudit.errors import ConfigError
from miaudit.report.findings import (
    Levels,
    _about,
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


def _leaky(shift: float, n: int = 1000, *, seed: int = 0, **kw) -> Run:
    """A run whose one attack scores members ``shift`` standard deviations above
    non-members (``n`` of each)."""
    run = _run(0.0, **kw)
    rng = np.random.default_rng(seed)
    scores = pd.DataFrame({
        "record": np.arange(2 * n), "label": rng.integers(0, 2, 2 * n),
        "member": np.r_[np.ones(n, int), np.zeros(n, int)],
        "score_x": np.r_[rng.normal(shift, 1, n), rng.normal(0, 1, n)],
    })  # fmt: skip
    a = {**run.results["attacks"]["x"], "n_members": n, "n_nonmembers": n}
    return Run({**run.results, "attacks": {"x": a}}, scores)


@pytest.mark.parametrize(
    ("ratio", "level"),
    [
        (1.0001, "low"), (1.9999, "low"), (2.0, "moderate"), (9.9999, "moderate"),
        (10.0, "high"), (49.999, "high"), (50.0, "severe"), (400.0, "severe"),
    ],
)  # fmt: skip
def test_the_level_follows_the_documented_thresholds_at_each_boundary(ratio, level):
    from miaudit.report.findings import level_of

    assert Levels().level(ratio) == level == level_of(ratio, Levels())
    assert level_of(1.0, Levels()) == level_of(0.0, Levels()) == "not detected"


def test_the_verdicts_ratio_is_the_scores_leak_bound_and_names_its_figures():
    from miaudit.metrics import leak_bound

    run = _leaky(2.0)
    found = verdict(run)
    b = leak_bound(run.score("x"), run.member)
    assert found.ratio == pytest.approx(b.ratio) and found.bound == b
    assert found.level == Levels().level(b.ratio)
    assert found.epsilon == pytest.approx(math.log(b.ratio))
    assert f"x finds {b.tp:,} of the 1,000 members evaluated" in found.sentence
    assert f"at least {math.floor(b.ratio * 10) / 10:.1f} times as often" in found.sentence
    assert f"Leakage: {found.label}." in found.sentence
    # A count scaled to the whole training set says it is an estimate.
    assert "an estimate from the 1,000 members evaluated" in found.sentence
    assert found.estimate and found.identified == _about(b.tp * 10)  # three figures
    whole = verdict(_leaky(2.0, n_train=1000))
    assert "estimate" not in whole.sentence and whole.identified == b.tp


def test_no_attack_distinguishable_is_not_detected_with_the_resolution_said():
    found = verdict(_run(low=0.002, tpr=0.012, high=0.031, distinguishable=False, above=False))
    assert found.level == "not detected" and found.ratio <= 1
    assert "No attack told members from non-members better than chance" in found.sentence
    # The resolution the evaluation allows: the interval's upper end.
    assert "a leak smaller than 3.1 % of the training records" in found.sentence
    assert found.sentence.endswith("Leakage: not detected.")


def test_other_thresholds_change_the_words_not_the_numbers():
    run = _leaky(1.0)
    found = verdict(run)
    assert 2 <= found.ratio < 10 and found.level == "moderate"
    assert verdict(run, Levels.parse(f"{found.ratio + 1:g},20,80")).level == "low"
    assert verdict(run, Levels.parse("1.1,1.2,1.5")).level == "severe"
    assert verdict(run, Levels.parse("1.1,1.2,1.5")).ratio == found.ratio
    for bad in ("2,10", "10,2,50", "a,b,c", "1,2,3"):
        with pytest.raises(ConfigError, match="--levels"):
            Levels.parse(bad)


def test_an_evaluation_too_small_for_the_next_level_says_at_least_and_how_many_would_tell():
    from miaudit.metrics import perfect_ratio

    # 60 members and 60 non-members, perfectly separated: no evaluation this small can
    # show a ratio of 10, however strong the attack.
    assert perfect_ratio(60, 60) < 10
    found = verdict(_leaky(50.0, n=60))
    assert found.level == "moderate" and found.at_least and found.next_level == "high"
    assert found.label == "at least moderate"
    assert found.sentence.endswith(
        f"Leakage: at least moderate. This evaluation is too small to show high (a ratio of "
        f"10) even for an attack that finds every member first: about "
        f"{found.nonmembers_needed:,} non-members ({found.nonmembers_needed - 60:,} more, "
        "with members in proportion) would be needed to tell."
    )
    needed = found.nonmembers_needed
    assert perfect_ratio(needed, needed) >= 10 > perfect_ratio(needed - 2, needed - 2)
    # A large clean separation decides every level: no "at least".
    assert not verdict(_leaky(50.0, n=3000)).at_least


def test_rates_that_would_reach_the_next_level_leave_it_open():
    # Members found at a rate 30 times the non-members' at a few false positives: the
    # point estimate says severe... no, high; the bound cannot yet say more than moderate.
    rng = np.random.default_rng(5)
    n = 400
    s = np.r_[np.where(rng.random(n) < 0.12, 10.0, rng.normal(0, 1, n)), rng.normal(0, 1, n)]
    run = _leaky(0.0, n=n)
    run = Run(run.results, run.scores.assign(score_x=s))
    found = verdict(run)
    assert found.at_least, found.sentence
    assert "At the rates observed the leak may be" in found.sentence
    assert found.nonmembers_needed > n


def test_the_sentence_of_a_real_audit_says_its_scores_numbers(digits_runs):
    from miaudit.metrics import leak_bound
    from miaudit.report.run import load_run

    run = load_run(digits_runs[0])
    d = run.results
    found = verdict(run)
    bound = leak_bound(run.score(found.attack), run.member, attacks=len(d["attacks"]))
    assert found.ratio == pytest.approx(bound.ratio)
    # results.json carries the same verdict for other tools.
    assert d["verdict"]["level"] == found.level
    assert d["verdict"]["sentence"] == found.sentence
    assert d["verdict"]["ratio"] == pytest.approx(found.ratio)
    assert d["attacks"][found.attack]["leak_bound"]["ratio"] == pytest.approx(found.ratio)
    page = (digits_runs[0] / "report.html").read_text()
    assert html.escape(found.sentence) in page and f"Leakage: {found.label}" in page


def test_advice_needs_a_measured_reason():
    quiet = _run(low=0.0101, tpr=0.02, high=0.03, distinguishable=False, above=False)
    assert verdict(quiet).level == "not detected"
    assert [a.tags for a in recommendations(quiet, verdict(quiet))] == []
    gap = _leaky(1.0, gap=0.08, n_train=1000)
    advice = recommendations(gap, verdict(gap))
    assert ("gap",) in [a.tags for a in advice]
    assert "a gap of 0.080" in advice[0].evidence
    policy = _leaky(2.0, defense=["top-k=1"])
    assert ("policy",) in [a.tags for a in recommendations(policy, verdict(policy))]
    small = _leaky(50.0, n=60)
    assert ("resolution",) in [a.tags for a in recommendations(small, verdict(small))]


@pytest.mark.parametrize(
    ("target", "says", "never"),
    [
        ({"source": "python", "recipe": None}, "weight_decay=", "--l2"),
        ({"source": "outputs", "recipe": None}, "make_private", "--dp-epsilon"),
        ({"source": "trained", "recipe": {"model": "mlp", "l2": 0.0}}, "--l2 0.001", "l2 0.01"),
        ({"source": "trained", "recipe": {"model": "mlp", "l2": 1e-3}}, "--l2 0.01", "--l2 0.001"),
        ({"source": "trained", "recipe": {"model": "mlp", "l2": 0.0},
          "dp": {"epsilon": 8.0}}, "--dp-epsilon 4", "--dp-epsilon 8"),
        ({"source": "trained", "recipe": {"model": "random-forest", "max_depth": None}},
         "max_depth = 10", "--l2"),
    ],
)  # fmt: skip
def test_advice_fits_who_trained_the_target(target, says, never):
    run = _leaky(1.0, gap=0.08)
    run = Run({**run.results, "target": {**run.results["target"], **target}}, run.scores)
    gap = [a for a in recommendations(run, verdict(run)) if a.tags == ("gap",)]
    assert gap and says in gap[0].action and never not in gap[0].action, gap[0].action


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


def test_a_leak_the_ranking_sees_is_never_called_not_detected():
    """Six members and six non-members perfectly apart: the ranking's one test tells them
    apart, the bound corrected for every threshold cannot exceed 1 with so few; the level
    is at least low, never "not detected" or "what a guess finds"."""
    run = _leaky(50.0, n=6)
    run = Run({**run.results, "ranking": {**run.results["ranking"], "fpr": 0.1,
                                          "above_chance": ["x"],
                                          "distinguishable_from_chance": True}},
              run.scores)  # fmt: skip
    a = run.results["attacks"]["x"]
    run.results["attacks"]["x"] = {**a, "tpr_at_fpr": {"0.1": 1.0},
                                   "tpr_at_fpr_ci": {"0.1": [1.0, 1.0]}}  # fmt: skip
    found = verdict(run)
    assert found.ratio <= 1
    assert found.level == "low" and found.at_least
    assert "what a guess finds" not in found.sentence
    assert "better than chance" in found.sentence and "Leakage: at least low." in found.sentence


def test_non_members_cleared_add_a_dp_bound_but_not_a_level():
    run = _leaky(0.0, n=2000)
    member = run.member
    s = np.where(member, 1.0, (np.arange(len(member)) % 2).astype(float))
    run = Run(run.results, run.scores.assign(score_x=s))
    found = verdict(run)
    assert found.level in ("not detected", "low")  # members are not exposed
    assert "For a differential-privacy claim the records x clears say more" in found.sentence
    assert found.bound.dp_epsilon > 4
