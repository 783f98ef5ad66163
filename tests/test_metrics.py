"""Tests of miaudit.metrics: scikit-learn as the independent check, laws as properties."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from miaudit import metrics as M
from miaudit.errors import ConfigError

# --------------------------------------------------------------------------- strategies


@st.composite
def scored_records(draw, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(min_value=2, max_value=60))
    if ties:
        # Few distinct values so that ties (within and across membership) are common.
        scores = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    else:
        scores = draw(
            st.lists(
                st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
                min_size=n,
                max_size=n,
                unique=True,
            )
        )
    member = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    assume(any(member) and not all(member))
    return np.asarray(scores, dtype=np.float64), np.asarray(member)


any_records = st.one_of(scored_records(ties=True), scored_records(ties=False))


def brute_force_tpr_at_fpr(scores: np.ndarray, member: np.ndarray, fpr: float) -> float:
    """Try every threshold; keep the best TPR whose false positives fit the budget."""
    n_neg = int((~member).sum())
    budget = math.floor(fpr * n_neg + 1e-9)
    best = 0.0
    for t in np.unique(scores):
        pred = scores >= t
        if (pred & ~member).sum() <= budget:
            best = max(best, (pred & member).sum() / member.sum())
    return best


# --------------------------------------------------------------------------- ROC and AUC


@settings(max_examples=100, deadline=None)
@given(any_records)
def test_auc_equals_sklearn(records):
    scores, member = records
    assert M.auc(scores, member) == pytest.approx(skm.roc_auc_score(member, scores), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(any_records)
def test_roc_curve_matches_sklearn_points(records):
    scores, member = records
    fpr, tpr, thr = M.roc_curve(scores, member)
    fpr_sk, tpr_sk, thr_sk = skm.roc_curve(member, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, fpr_sk)
    np.testing.assert_allclose(tpr, tpr_sk)
    np.testing.assert_array_equal(thr, thr_sk)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert fpr.size == np.unique(scores).size + 1


def test_auc_mann_whitney_ties_count_half():
    # One member and one non-member tied, one member above: (1 + 0.5) / 2.
    assert M.auc([1.0, 1.0, 2.0], [True, False, True]) == 0.75


@settings(max_examples=100, deadline=None)
@given(any_records, st.randoms(use_true_random=False))
def test_metrics_invariant_under_permutation(records, random):
    scores, member = records
    perm = np.array(random.sample(range(scores.size), scores.size))
    assert M.auc(scores[perm], member[perm]) == pytest.approx(M.auc(scores, member), abs=1e-12)
    for f in (0.0, 0.1, 0.5, 1.0):
        assert M.tpr_at_fpr(scores[perm], member[perm], f) == M.tpr_at_fpr(scores, member, f)
    pred = scores >= np.median(scores)
    assert M.confusion_metrics(pred[perm], member[perm]) == M.confusion_metrics(pred, member)


# --------------------------------------------------------------------------- TPR at FPR


@settings(max_examples=100, deadline=None)
@given(any_records, st.sampled_from([0.0, 0.01, 0.1, 0.25, 0.3, 0.5, 0.99, 1.0]))
def test_tpr_at_fpr_is_best_threshold_within_budget(records, fpr):
    scores, member = records
    assert M.tpr_at_fpr(scores, member, fpr) == pytest.approx(
        brute_force_tpr_at_fpr(scores, member, fpr)
    )


def test_tpr_at_fpr_all_equal_scores():
    member = np.array([True, False] * 50)
    scores = np.ones(100)
    for f in (0.0, 0.001, 0.5, 0.999):
        assert M.tpr_at_fpr(scores, member, f) == 0.0
    assert M.tpr_at_fpr(scores, member, 1.0) == 1.0


def test_tpr_at_fpr_perfect_separation():
    member = np.array([True] * 10 + [False] * 10)
    scores = np.r_[np.linspace(2, 3, 10), np.linspace(0, 1, 10)]
    assert M.tpr_at_fpr(scores, member, 0.0) == 1.0
    assert M.auc(scores, member) == 1.0


def test_tpr_at_fpr_tie_across_membership_cannot_be_split():
    scores = [1.0, 1.0, 0.0, 0.0]
    member = [True, False, True, False]
    assert M.tpr_at_fpr(scores, member, 0.0) == 0.0
    assert M.tpr_at_fpr(scores, member, 0.49) == 0.0
    assert M.tpr_at_fpr(scores, member, 0.5) == 0.5


def test_tpr_at_fpr_no_interpolation_between_points():
    # Points (0, 0), (0.5, 1), (1, 1): interpolation would claim TPR 0.5 at FPR 0.25.
    scores = [3.0, 2.0, 1.0, 0.0]
    member = [False, True, True, False]
    assert M.tpr_at_fpr(scores, member, 0.25) == 0.0


def test_tpr_at_fpr_budget_survives_floating_point():
    # 0.29 * 100 is 28.999999999999996: a plain floor would allow 28 false positives.
    member = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    scores = np.r_[np.full(100, 70.5), np.arange(100.0)]  # 29 non-members above the members
    assert M.tpr_at_fpr(scores, member, 0.28) == 0.0
    assert M.tpr_at_fpr(scores, member, 0.29) == 1.0


def test_min_resolvable_fpr():
    assert M.min_resolvable_fpr(1000) == 0.001
    with pytest.raises(ConfigError, match="at least 1"):
        M.min_resolvable_fpr(0)


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_covers_true_rate_near_nominal_level():
    # Binormal scores: non-members N(0, 1), members N(1, 1). At FPR 0.1 the true
    # TPR is 1 - Phi(Phi^-1(0.9) - 1).
    fpr, mu, n, sims = 0.1, 1.0, 400, 200
    true_tpr = norm.sf(norm.isf(fpr) - mu)
    rng = np.random.default_rng(12345)
    member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    covered = 0
    for _ in range(sims):
        scores = np.r_[rng.normal(mu, 1, n), rng.normal(0, 1, n)]
        (iv,) = M.bootstrap_tpr_at_fpr(scores, member, [fpr], n_boot=200, rng=rng)
        assert iv.low <= iv.tpr <= iv.high
        covered += iv.low <= true_tpr <= iv.high
    # Nominal 0.95; a binomial(200, 0.95) count falls in this range with p > 0.999.
    assert 0.88 <= covered / sims <= 0.995


def test_bootstrap_degenerate_cases_and_reproducibility():
    member = np.array([True] * 20 + [False] * 20)
    separated = np.r_[np.arange(20) + 100.0, np.arange(20.0)]
    ivs = M.bootstrap_tpr_at_fpr(separated, member, [0.0, 0.05, 1.0], n_boot=50, rng=0)
    assert [(iv.low, iv.tpr, iv.high) for iv in ivs] == [(1.0, 1.0, 1.0)] * 3
    assert [iv.resolvable for iv in ivs] == [False, True, True]

    equal = np.zeros(40)
    (iv,) = M.bootstrap_tpr_at_fpr(equal, member, [0.5], n_boot=50, rng=0)
    assert (iv.low, iv.tpr, iv.high) == (0.0, 0.0, 0.0)

    rng = np.random.default_rng(3)
    scores = rng.normal(size=40) + member
    a = M.bootstrap_tpr_at_fpr(scores, member, n_boot=100, rng=np.random.default_rng(7))
    b = M.bootstrap_tpr_at_fpr(scores, member, n_boot=100, rng=np.random.default_rng(7))
    assert a == b
    json.dumps([iv.to_dict() for iv in a], allow_nan=False)


@pytest.mark.parametrize("ties", [False, True])
def test_bootstrap_replicates_follow_explicit_resampling(ties):
    # The replicates are drawn without building resamples (order statistics and
    # binomials); their distribution must be that of tpr_at_fpr on explicit
    # stratified resamples, rate by rate, ties in the scores included.
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(11)
    member = np.r_[np.ones(120, bool), np.zeros(180, bool)]
    scores = rng.normal(size=300) + 0.8 * member
    if ties:
        scores = np.round(scores, 1)
    fprs = np.array([0.0, 0.01, 0.1, 0.5, 1.0])
    fast = M._bootstrap_replicates(scores, member, fprs, 3000, np.random.default_rng(1))
    pos, neg = np.flatnonzero(member), np.flatnonzero(~member)
    explicit = np.array(
        [
            [M.tpr_at_fpr(scores[idx], member[idx], f) for f in fprs]
            for idx in (
                np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)] for _ in range(3000)
            )
        ]
    )
    for t in range(len(fprs)):
        assert abs(fast[:, t].mean() - explicit[:, t].mean()) < 4 * explicit[:, t].std() / 30 + 1e-9
        if explicit[:, t].std() > 0:
            assert ks_2samp(fast[:, t], explicit[:, t]).pvalue > 1e-3
        else:
            assert np.all(fast[:, t] == explicit[0, t])


def test_bootstrap_median_tracks_point_estimate():
    # The replicates compute tpr_at_fpr in closed form; on a large set their
    # centre must agree with the direct computation.
    rng = np.random.default_rng(0)
    member = rng.random(4000) < 0.5
    scores = rng.normal(size=4000) + 1.5 * member
    ivs = M.bootstrap_tpr_at_fpr(scores, member, [0.01, 0.1], n_boot=400, rng=1, level=0.5)
    for iv in ivs:
        assert iv.tpr == M.tpr_at_fpr(scores, member, iv.fpr)
        assert iv.low - 0.01 <= iv.tpr <= iv.high + 0.01


# --------------------------------------------------------------------------- at a threshold


@settings(max_examples=60, deadline=None)
@given(any_records)
def test_confusion_metrics_match_sklearn(records):
    scores, member = records
    pred = scores >= np.median(scores)
    c = M.confusion_metrics(pred, member)
    assert c.precision == pytest.approx(skm.precision_score(member, pred, zero_division=0))
    assert c.recall == pytest.approx(skm.recall_score(member, pred))
    assert c.accuracy == pytest.approx(skm.accuracy_score(member, pred))
    tn, fp, _fn, _tp = skm.confusion_matrix(member, pred, labels=[False, True]).ravel()
    assert c.fpr == pytest.approx(fp / (fp + tn))
    assert c.tpr == c.recall
    assert c.advantage == pytest.approx(c.tpr - c.fpr)


def test_confusion_nothing_predicted_member_gives_precision_zero():
    c = M.confusion_metrics([False] * 4, [True, True, False, False])
    assert (c.precision, c.recall, c.accuracy, c.advantage) == (0.0, 0.0, 0.5, 0.0)


def test_per_class_metrics_match_sklearn_within_each_class():
    rng = np.random.default_rng(1)
    n = 600
    labels = rng.integers(0, 3, n)
    member = rng.random(n) < 0.5
    pred = rng.random(n) < np.where(member, 0.7, 0.4)
    labels[labels == 2] = 1  # class 2 has no records
    pred[labels == 0] = False  # class 0: nothing predicted member
    rows = M.per_class_metrics(pred, member, labels, ["a", "b", "c"])
    assert [r["class"] for r in rows] == ["a", "b", "c"]
    assert rows[0]["precision"] == 0.0
    sel = labels == 1
    assert rows[1]["n"] == sel.sum() and rows[1]["n_members"] == member[sel].sum()
    assert rows[1]["precision"] == pytest.approx(skm.precision_score(member[sel], pred[sel]))
    assert rows[1]["recall"] == pytest.approx(skm.recall_score(member[sel], pred[sel]))
    assert rows[1]["accuracy"] == pytest.approx(skm.accuracy_score(member[sel], pred[sel]))
    assert rows[2] == {
        "class": "c",
        "label": 2,
        "n": 0,
        "n_members": 0,
        "precision": None,
        "recall": None,
        "accuracy": None,
    }
    mean_p, mean_r = M.mean_class_rates(rows)
    assert mean_p == pytest.approx((0.0 + rows[1]["precision"]) / 2)
    assert mean_r == pytest.approx((0.0 + rows[1]["recall"]) / 2)


def test_evaluate_attack_is_json_ready_and_consistent():
    rng = np.random.default_rng(2)
    n = 500
    member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    labels = rng.integers(0, 4, 2 * n)
    scores = 1 / (1 + np.exp(-(rng.normal(size=2 * n) + member)))
    r = M.evaluate_attack(scores, member, labels, ["w", "x", "y", "z"], threshold=0.5)
    d = r.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text) == d
    assert set(d["tpr_at_fpr"]) == {"0.001", "0.01", "0.1"}
    # 500 non-members cannot resolve 0.1 %.
    assert d["tpr_at_fpr"]["0.001"] is None and d["epsilon_lower_bound"]["0.001"] is None
    assert d["tpr_at_fpr"]["0.01"] == M.tpr_at_fpr(scores, member, 0.01)
    assert d["auc"] == M.auc(scores, member)
    assert d["epsilon_lower_bound"]["0.1"] == pytest.approx(
        M.epsilon_lower_bound(d["tpr_at_fpr"]["0.1"], 0.1)
    )
    assert (d["n_members"], d["n_nonmembers"]) == (n, n)
    c = M.confusion_metrics(scores >= 0.5, member)
    assert (r.precision, r.recall, r.accuracy, r.advantage) == (
        c.precision,
        c.recall,
        c.accuracy,
        c.advantage,
    )
    assert len(d["per_class"]) == 4
    assert all(type(v) is float for v in (d["auc"], d["precision"], d["mean_class_recall"]))


def test_roc_points_keep_low_fpr_end_exact():
    rng = np.random.default_rng(4)
    member = rng.random(20_000) < 0.5
    scores = rng.normal(size=member.size) + member
    fpr, tpr, _ = M.roc_curve(scores, member)
    f, t, h = M.roc_points(scores, member, max_points=500)
    assert f.size <= 500
    np.testing.assert_array_equal(f[:250], fpr[:250])
    np.testing.assert_array_equal(t[:250], tpr[:250])
    assert (f[-1], t[-1], h[0]) == (1.0, 1.0, np.inf)
    assert np.all(np.diff(f) >= 0) and np.all(np.diff(t) >= 0)
    small = M.roc_points(scores[:50], member[:50])
    np.testing.assert_array_equal(small[0], M.roc_curve(scores[:50], member[:50])[0])


# --------------------------------------------------------------------------- privacy bound


def test_epsilon_lower_bound_known_values():
    assert M.epsilon_lower_bound(0.5, 0.05) == pytest.approx(math.log(10))
    assert M.epsilon_lower_bound(0.3, 0.3) == 0.0
    assert M.epsilon_lower_bound(0.1, 0.5) == 0.0  # worse than chance implies nothing
    # The complementary test dominates when few members are missed.
    assert M.epsilon_lower_bound(0.99, 0.5) == pytest.approx(math.log(0.5 / 0.01))
    assert M.epsilon_lower_bound(0.5, 0.05, delta=0.05) == pytest.approx(math.log(9))
    assert M.epsilon_lower_bound(1.0, 0.1) == math.inf
    assert M.epsilon_lower_bound(0.2, 0.0) == math.inf


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: M.auc([0.1, 0.2], [True]), "member has 1 entries but scores has 2"),
        (lambda: M.auc([0.1, 0.2], [True, True]), "no non-members"),
        (lambda: M.auc([0.1, 0.2], [False, False]), "no members"),
        (lambda: M.auc([0.1, np.nan], [True, False]), "1 NaN value"),
        (lambda: M.auc([[0.1, 0.2]], [True, False]), "one-dimensional"),
        (lambda: M.auc([0.1, 0.2], [2, 0]), "boolean or 0/1"),
        (lambda: M.tpr_at_fpr([0.1, 0.2], [True, False], 1.5), r"in \[0, 1\]"),
        (lambda: M.roc_points([0.1, 0.2], [True, False], 2), "max_points"),
        (lambda: M.bootstrap_tpr_at_fpr([0.1, 0.2], [True, False], n_boot=0), "n_boot"),
        (lambda: M.bootstrap_tpr_at_fpr([0.1, 0.2], [True, False], level=1.0), "level"),
        (
            lambda: M.confusion_metrics([True, False, True], [True, False]),
            "member has 2 entries but predicted has 3",
        ),
        (
            lambda: M.evaluate_attack([0.1, 0.9], [True, False], [0, 2], ["a", "b"], 0.5),
            r"labels must lie in 0 \.\. 1",
        ),
        (
            lambda: M.evaluate_attack([0.1, 0.9], [True, False], [0.0, 1.0], ["a", "b"], 0.5),
            "integer class indices",
        ),
        (
            lambda: M.evaluate_attack([0.1, 0.9], [True, False], [0], ["a", "b"], 0.5),
            "one entry per record",
        ),
        (lambda: M.epsilon_lower_bound(1.2, 0.1), "tpr must lie in"),
    ],
)
def test_errors_name_the_input(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


# --------------------------------------------------------------------------- intervals, bounds


def test_clopper_pearson_known_values():
    from miaudit.metrics import clopper_pearson

    low, high = clopper_pearson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.3084971, abs=1e-6)
    low, high = clopper_pearson(5, 10)
    assert (low, high) == pytest.approx((0.187086, 0.812914), abs=1e-5)
    assert clopper_pearson(10, 10)[1] == 1.0


def test_epsilon_cp_is_below_the_point_estimate_and_grows_with_data():
    from miaudit.metrics import epsilon_lower_bound, epsilon_lower_bound_cp

    point = epsilon_lower_bound(0.5, 0.01)
    small = epsilon_lower_bound_cp(50, 100, 1, 100)
    large = epsilon_lower_bound_cp(5000, 10000, 100, 10000)
    assert 0 <= small < large < point
    assert epsilon_lower_bound_cp(0, 100, 0, 100) == 0.0


def test_precision_at_recall():
    from miaudit.metrics import precision_at_recall

    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    member = np.array([1, 0, 1, 1, 0, 0])
    assert precision_at_recall(scores, member, 1 / 3) == 1.0
    # Recall 2/3 is first reached at precision 2/3, but a lower threshold keeps
    # recall above it at precision 3/4: the highest such precision is reported.
    assert precision_at_recall(scores, member, 2 / 3) == pytest.approx(3 / 4)
    assert precision_at_recall(scores, member, 1.0) == pytest.approx(3 / 4)


def test_every_attack_result_has_intervals_and_bounds():
    rng = np.random.default_rng(0)
    member = np.r_[np.ones(2000, bool), np.zeros(2000, bool)]
    scores = rng.normal(member * 1.0, 1.0)
    m = M.evaluate_attack(scores, member, np.zeros(4000, int), ["a"], 0.5, n_boot=200, rng=1)
    for key in ("0.001", "0.01", "0.1"):
        low, high = m.tpr_at_fpr_ci[key]
        assert low <= m.tpr_at_fpr[key] <= high
        assert 0 <= m.epsilon_lower_bound_cp[key] <= m.epsilon_lower_bound[key]
    assert set(m.precision_at_recall) == {"0.1", "0.5", "0.9"}
    # Unresolvable rates carry no interval either.
    few = np.r_[0:500, 2000:2100]  # 100 non-members cannot resolve FPR 0.1 %
    tiny = M.evaluate_attack(
        scores[few], member[few], np.zeros(600, int), ["a"], 0.5, n_boot=50, rng=1
    )
    assert tiny.tpr_at_fpr["0.001"] is None and tiny.tpr_at_fpr_ci["0.001"] is None


def test_bootstrap_intervals_cover_the_true_rate_at_their_nominal_level():
    # Members N(1, 1), non-members N(0, 1): at FPR 10 % the threshold is the 90 %
    # quantile of N(0, 1) and the true TPR is 1 - Φ(t - 1).
    truth = 1 - norm.cdf(norm.ppf(0.9) - 1)
    rng = np.random.default_rng(0)
    hits, trials = 0, 200
    member = np.r_[np.ones(1000, bool), np.zeros(1000, bool)]
    for _ in range(trials):
        scores = rng.normal(member * 1.0, 1.0)
        (interval,) = M.bootstrap_tpr_at_fpr(scores, member, [0.1], n_boot=300, rng=rng)
        hits += interval.low <= truth <= interval.high
    coverage = hits / trials
    # 95 % nominal; with 200 trials the sampling error of the coverage is about 1.5 %.
    assert 0.89 <= coverage <= 0.99, coverage


def _reported(tpr: float, low: float, high: float, auc_value: float, n_neg: int = 2500) -> dict:
    """An attack as results.json holds it, TPR at 1 % FPR with its interval."""
    return {
        "auc": auc_value,
        "tpr_at_fpr": {"0.001": 0.0, "0.01": tpr, "0.1": 0.2},
        "tpr_at_fpr_ci": {"0.001": [0.0, 0.0], "0.01": [low, high], "0.1": [0.1, 0.3]},
        "n_members": 2500,
        "n_nonmembers": n_neg,
    }


def test_the_strongest_attack_is_judged_by_its_interval_at_a_resolved_rate():
    from miaudit.metrics import attack_strength, ranking_fpr

    # 2,500 non-members: 0.1 % allows 2 false positives, too few; 1 % allows 25.
    assert ranking_fpr(["0.001", "0.01", "0.1"], 2500) == "0.01"
    assert ranking_fpr(["0.001", "0.01", "0.1"], 10_000) == "0.001"
    assert ranking_fpr(["0.01", "0.1"], 150) == "0.1"
    assert ranking_fpr(["0.01"], 50) is None
    lucky = attack_strength(_reported(0.030, 0.004, 0.05, 0.70))  # two records' worth
    steady = attack_strength(_reported(0.020, 0.014, 0.026, 0.60))
    assert lucky.above_chance is False and steady.above_chance is True
    assert steady.key() > lucky.key()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0.3, 1.0)),
        min_size=2,
        max_size=8,
    )
)
def test_the_rule_never_prefers_an_interval_that_covers_chance(draws):
    from miaudit.metrics import attack_strength

    attacks = {}
    for i, (a, b, c, auc_value) in enumerate(draws):
        low, tpr, high = sorted((a, b, c))
        attacks[f"a{i}"] = _reported(tpr, low, high, auc_value)
    ranked = sorted(attacks, key=lambda n: attack_strength(attacks[n]).key(), reverse=True)
    above = [n for n in attacks if attack_strength(attacks[n]).above_chance]
    if above:
        assert ranked[0] in above
        # and every attack above chance ranks before every one that is not
        first_chance = next((i for i, n in enumerate(ranked) if n not in above), len(ranked))
        assert set(ranked[:first_chance]) == set(above)


def test_an_audit_says_when_no_attack_is_distinguishable_from_chance():
    from miaudit.metrics import attack_strength
    from miaudit.result import ranking_facts

    none = {n: attack_strength(_reported(0.012, 0.004, 0.02, 0.51)) for n in ("loss", "lira")}
    facts = ranking_facts(none)
    assert facts["distinguishable_from_chance"] is False and facts["above_chance"] == []
    assert "no attack is distinguishable from chance" in facts["verdict"]
    some = {**none, "rmia": attack_strength(_reported(0.05, 0.03, 0.07, 0.6))}
    facts = ranking_facts(some)
    assert facts["distinguishable_from_chance"] is True and facts["above_chance"] == ["rmia"]
    assert facts["fpr"] == 0.01


# --------------------------------------------------------------------------- the leak's bound


@settings(max_examples=150, deadline=None)
@given(
    n_pos=st.integers(1, 1500),
    n_neg=st.integers(1, 1500),
    attacks=st.integers(1, 20),
    ties=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_roc_curve_above_another_never_gets_a_lower_bound_or_level(
    n_pos, n_neg, attacks, ties, seed
):
    """The level's monotonicity: raising members' scores only (non-members' unchanged)
    puts the ROC curve above the first at every FPR; the bound, and so the level under
    any thresholds, can only grow."""
    from miaudit.report.findings import LEVELS, Levels, level_of

    rng = np.random.default_rng(seed)
    member = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    lower = rng.normal(rng.uniform(-1, 3) * member, 1.0)
    if ties:  # coarse scores: many ties, as the gap attack's
        lower = np.round(lower)
    upper = lower + member * rng.exponential(rng.uniform(0, 2), member.size)
    if ties:
        upper = np.round(upper)
    a = M.leak_bound(upper, member, attacks=attacks)
    b = M.leak_bound(lower, member, attacks=attacks)
    assert a.ratio >= b.ratio - 1e-12
    for levels in (Levels(), Levels(1.5, 4, 20)):
        assert LEVELS.index(level_of(a.ratio, levels)) >= LEVELS.index(level_of(b.ratio, levels))


def test_the_leak_bound_is_the_clopper_pearson_ratio_at_its_budget():
    from scipy.stats import beta

    rng = np.random.default_rng(0)
    member = np.r_[np.ones(300, bool), np.zeros(500, bool)]
    s = rng.normal(2.0 * member, 1.0)
    b = M.leak_bound(s, member, attacks=3)
    grid = M.false_positive_grid(500)
    assert list(grid[:8]) == [0, 1, 2, 3, 4, 5, 6, 8] and grid[-1] < 500
    alpha = 0.05 / (2 * len(grid) * 3)
    neg = np.sort(s[~member])[::-1]
    best = cleared = 0.0
    for k in grid:
        # Members above the (k + 1)-th highest non-member: what lets at most k through.
        tp = int((s[member] > neg[k]).sum()) if k < 500 else 300
        low = beta.ppf(alpha, tp, 300 - tp + 1) if tp else 0.0
        high = beta.ppf(1 - alpha, k + 1, 500 - k)
        best = max(best, low / high)
        cleared = max(cleared, (1 - high) / (1 - low))
    assert b.ratio == pytest.approx(best, rel=1e-9)
    assert b.cleared_ratio == pytest.approx(cleared, rel=1e-9)
    assert b.epsilon == pytest.approx(math.log(best))
    assert b.dp_epsilon == pytest.approx(math.log(max(best, cleared)))
    assert b.fp <= b.fp_budget and b.tpr_low <= b.tp / 300 and b.fpr_high >= b.fp / 500


def test_scores_unrelated_to_membership_rarely_bound_the_ratio_above_one():
    """The bound's confidence: under no leak at all, a ratio above 1 (a leak "detected")
    comes up in fewer than 5 % of evaluations."""
    rng = np.random.default_rng(1)
    detected = 0
    for _ in range(300):
        n_pos, n_neg = rng.integers(20, 400, 2)
        member = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
        s = rng.normal(0, 1, member.size)
        detected += M.leak_bound(s, member).ratio > 1
    assert detected / 300 < 0.05


def test_the_non_members_needed_are_the_fewest_that_show_the_ratio():
    b = M.leak_bound(np.r_[np.ones(50), np.zeros(50)], np.r_[np.ones(50), np.zeros(50)] > 0)
    assert b.ratio == pytest.approx(M.perfect_ratio(50, 50)) and b.ratio < 50
    needed = M.nonmembers_needed(b, 50, observed=False)
    assert M.perfect_ratio(needed, needed) >= 50 > M.perfect_ratio(needed - 2, needed - 2)
    # The observed rates extrapolate at budgets of one false positive or more only.
    assert M.nonmembers_needed(b, 50, observed=True) is None
    assert M.nonmembers_needed(b, b.ratio / 2, observed=False) == 50


def test_a_threshold_that_clears_non_members_bounds_dp_epsilon_not_the_members_ratio():
    """An attack that flags every member and half the non-members never accuses a member
    more than twice as often, but a record it does not flag is surely a non-member: the
    other inequality of ε-DP, 1 - FPR <= e^eps (1 - TPR), is what it violates."""
    member = np.r_[np.ones(2000, bool), np.zeros(2000, bool)]
    s = np.where(member, 1.0, np.r_[np.ones(1000), np.zeros(1000)][np.arange(4000) % 2000])
    b = M.leak_bound(s, member)
    assert b.ratio < 2 < 100 < b.cleared_ratio
    assert b.dp_epsilon == pytest.approx(math.log(b.cleared_ratio))
    assert b.dp_epsilon > b.epsilon
