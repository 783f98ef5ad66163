"""Tests of ShokriAttack on synthetic prediction vectors with a known (or no) leak."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.attacks import ShokriAttack
from miaudit.attacks.shokri import LEARNERS, _transform
from miaudit.errors import ConfigError
from miaudit.metrics import auc

N_CLASSES = 5


def make_signals(
    member: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    boost_member: float | np.ndarray = 4.0,
    boost_nonmember: float | np.ndarray = 2.0,
) -> np.ndarray:
    """Softmax of noisy logits whose true-class logit is raised by a membership-dependent boost.

    The boosts may be per-class arrays (indexed by label) to make the leak class-dependent.
    """
    n = labels.size
    logits = rng.normal(size=(n, N_CLASSES))
    boost = np.where(
        member,
        np.broadcast_to(boost_member, (N_CLASSES,))[labels],
        np.broadcast_to(boost_nonmember, (N_CLASSES,))[labels],
    )
    logits[np.arange(n), labels] += boost
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def make_split(n: int, seed: int, **boosts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    member = np.arange(n) % 2 == 0
    labels = rng.integers(0, N_CLASSES, n)
    return make_signals(member, labels, rng, **boosts), labels, member


@pytest.mark.parametrize("learner", LEARNERS)
def test_every_learner_finds_a_known_leak(learner):
    shadow = make_split(2000, seed=1)
    p, y, m = make_split(2000, seed=2)
    scores = ShokriAttack(learner=learner, seed=0).fit(*shadow).score(p, y)
    assert scores.shape == (2000,) and scores.dtype == np.float64
    assert np.all((scores >= 0) & (scores <= 1))
    assert auc(scores, m) > 0.75


@pytest.mark.parametrize(("learner", "n_eval"), [("gbdt", 8000), ("nn", 4000)])
def test_no_leak_gives_chance_auc(learner, n_eval):
    # Members and non-members from one distribution: any AUC away from 0.5 would be
    # invented. The null AUC's standard deviation is 0.0065 with 8000 records and
    # 0.0091 with 4000; the margin is about 3.3 of them.
    same = {"boost_member": 3.0, "boost_nonmember": 3.0}
    shadow = make_split(4000, seed=3, **same)
    p, y, m = make_split(n_eval, seed=4, **same)
    scores = ShokriAttack(learner=learner, seed=0).fit(*shadow).score(p, y)
    assert abs(auc(scores, m) - 0.5) < 3.3 * np.sqrt((n_eval + 1) / (3 * n_eval**2))


def test_per_class_models_capture_a_class_dependent_leak():
    # Classes 0, 2: members MORE confident; classes 1, 3: members LESS confident;
    # class 4: no leak. Pooled over classes the effects cancel, so a class-agnostic
    # model sees nothing; per-class models do.
    boosts = {
        "boost_member": np.array([4.0, 1.0, 4.0, 1.0, 2.5]),
        "boost_nonmember": np.array([1.0, 4.0, 1.0, 4.0, 2.5]),
    }
    shadow = make_split(4000, seed=5, **boosts)
    p, y, m = make_split(2000, seed=6, **boosts)
    per_class = ShokriAttack(learner="logreg", transform="logit").fit(*shadow)
    agnostic = ShokriAttack(learner="logreg", transform="logit", per_class=False).fit(*shadow)
    assert sorted(per_class.class_models_) == list(range(N_CLASSES))
    assert agnostic.class_models_ == {} and agnostic.fallback_classes_ == {}
    assert auc(per_class.score(p, y), m) > 0.8
    assert abs(auc(agnostic.score(p, y), m) - 0.5) < 0.05


def test_class_agnostic_scores_do_not_depend_on_class_order():
    shadow_p, shadow_y, shadow_m = make_split(2000, seed=7)
    p, y, _ = make_split(500, seed=8)
    perm = np.array([3, 0, 4, 1, 2])  # new column j holds old class perm[j]
    relabel = np.argsort(perm)  # old class c is new class relabel[c]
    a = ShokriAttack(learner="gbdt", per_class=False).fit(shadow_p, shadow_y, shadow_m)
    b = ShokriAttack(learner="gbdt", per_class=False).fit(
        shadow_p[:, perm], relabel[shadow_y], shadow_m
    )
    np.testing.assert_array_equal(a.score(p, y), b.score(p[:, perm], relabel[y]))


def test_small_and_one_sided_classes_fall_back_with_reasons():
    p, y, m = make_split(3000, seed=9)
    keep = (y != 3) | (np.cumsum(y == 3) <= 10)  # class 3: only 10 records
    p, y, m = p[keep], y[keep], m[keep].copy()
    m[y == 1] = True  # class 1: members only
    keep = y != 4  # class 4: no shadow records at all
    p, y, m = p[keep], y[keep], m[keep]
    attack = ShokriAttack(learner="logreg", min_class_records=50, transform="none").fit(p, y, m)
    assert sorted(attack.class_models_) == [0, 2]
    assert attack.fallback_classes_ == {
        1: "no non-members among its shadow records",
        3: "10 shadow records (fewer than min_class_records=50)",
        4: "no shadow records",
    }
    assert attack.class_counts_[4] == 0

    # Records of class 4, never seen in the shadow data, are scored by the
    # class-agnostic model; class 0 records by their own model.
    tp, ty, _ = make_split(400, seed=10)
    scores = attack.score(tp, ty)
    sel = ty == 4
    feats = np.column_stack((-np.sort(-tp[sel], axis=1), tp[sel, 4]))
    np.testing.assert_allclose(scores[sel], attack.agnostic_model_.predict_proba(feats)[:, 1])
    sel0 = ty == 0
    np.testing.assert_allclose(scores[sel0], attack.class_models_[0].predict_proba(tp[sel0])[:, 1])


@pytest.mark.parametrize("learner", ["nn", "gbdt", "rf"])
def test_same_seed_same_scores_whatever_n_jobs(learner):
    shadow = make_split(600, seed=11)
    p, y, _ = make_split(200, seed=12)
    a = ShokriAttack(learner=learner, seed=5).fit(*shadow).score(p, y)
    b = ShokriAttack(learner=learner, seed=5, n_jobs=2).fit(*shadow).score(p, y)
    np.testing.assert_array_equal(a, b)
    if learner != "gbdt":  # gradient boosting without subsampling uses no randomness
        c = ShokriAttack(learner=learner, seed=6).fit(*shadow).score(p, y)
        assert not np.array_equal(a, c)


def test_transforms_are_accurate_near_one():
    # An overfitted model's top probability rounds to 1.0 in float64; the logit
    # transform must still tell 1 - 1e-20 from 1 - 1e-12.
    p = np.array([[1.0, 1e-20, 0.0], [1.0 - 1e-12, 1e-12, 0.0]])
    t = _transform(p, "logit")
    assert t[0, 0] == pytest.approx(np.log(1 / 1e-20))
    assert t[1, 0] == pytest.approx(np.log((1 - 1e-12) / 1e-12))
    assert np.all(np.isfinite(t))
    assert np.all(np.isfinite(_transform(p, "log")))


def test_decision_threshold_is_half():
    assert ShokriAttack().decision_threshold == 0.5


@pytest.mark.parametrize(
    ("fit_args", "message"),
    [
        ((np.full((4, 2), 0.5), [0, 1, 0], [True, False, True, False]), "one entry per row"),
        ((np.full((4, 2), 0.5), [0, 1, 2, 0], [True, False, True, False]), r"0 \.\. 1"),
        ((np.full((4, 2), 0.5), [0, 1, 0, 1], [True, False, True]), "member must have"),
        ((np.full((4, 2), 0.5), [0, 1, 0, 1], [True] * 4), "no non-members"),
        ((np.full(4, 0.5), [0, 1, 0, 1], [True, False] * 2), "2-D array"),
        ((np.full((4, 2), 2.0), [0, 1, 0, 1], [True, False] * 2), r"probabilities in \[0, 1\]"),
        ((np.full((4, 2), np.nan), [0, 1, 0, 1], [True, False] * 2), "probabilities"),
        ((np.full((4, 2), 0.5), [0.0, 1.0, 0.0, 1.0], [True, False] * 2), "integer class"),
    ],
)
def test_fit_errors(fit_args, message):
    with pytest.raises(ConfigError, match=message):
        ShokriAttack(learner="logreg").fit(*fit_args)


def test_score_errors():
    with pytest.raises(ConfigError, match="not fitted yet"):
        ShokriAttack().score(np.full((2, 2), 0.5), [0, 1])
    attack = ShokriAttack(learner="logreg").fit(*make_split(400, seed=13))
    with pytest.raises(ConfigError, match="fitted on 5 classes"):
        attack.score(np.full((2, 3), 1 / 3), [0, 1])
    with pytest.raises(ConfigError, match=r"labels must lie in 0 \.\. 4"):
        attack.score(np.full((2, 5), 0.2), [0, 5])
    with pytest.raises(ConfigError, match="one entry per row"):
        attack.score(np.full((2, 5), 0.2), [0])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"learner": "svm"}, "learner: Input should be 'nn', 'gbdt', 'logreg' or 'rf'"),
        ({"min_class_records": 1}, "min_class_records"),
        ({"n_jobs": 0}, "n_jobs must be a positive number"),
        ({"transform": "sqrt"}, "transform"),
    ],
)
def test_bad_options_fail_at_construction(options, message):
    with pytest.raises(ConfigError, match=message):
        ShokriAttack(**options)


def test_from_config_round_trips():
    attack = ShokriAttack(learner="rf", per_class=False, seed=3)
    again = ShokriAttack.from_config(attack.config)
    assert again.config == attack.config
    assert "learner='rf'" in repr(again)


def test_a_bounded_training_set_is_balanced_seeded_and_all_when_small():
    from miaudit.attacks.shokri import _balanced_subset

    member = np.r_[np.ones(700, bool), np.zeros(300, bool)]
    keep = _balanced_subset(member, 400, seed=3, key=2)
    assert keep.size == 400 and np.all(np.diff(keep) > 0)
    assert member[keep].sum() == 200  # half members, half non-members
    np.testing.assert_array_equal(keep, _balanced_subset(member, 400, seed=3, key=2))
    assert not np.array_equal(keep, _balanced_subset(member, 400, seed=3, key=1))
    # One side short: all of it, the rest from the other side.
    keep = _balanced_subset(member, 800, seed=3, key=None)
    assert keep.size == 800 and (~member[keep]).sum() == 300
    np.testing.assert_array_equal(_balanced_subset(member, 0, 3, 1), np.arange(1000))
    np.testing.assert_array_equal(_balanced_subset(member, 5000, 3, 1), np.arange(1000))


def test_bounded_models_train_on_at_most_their_bound_and_keep_the_strength(monkeypatch):
    import miaudit.attacks.shokri as shokri

    seen = []
    real = shokri._fit_one

    def spy(learner, seed, X, target):
        seen.append((X.shape[0], int(target.sum())))
        return real(learner, seed, X, target)

    monkeypatch.setattr(shokri, "_fit_one", spy)
    # 40,000 shadow records, about 8,000 per class and a weak leak: a bound of 6,000
    # per model (the class-agnostic one included) keeps the AUC to within its noise
    # (about 0.006 here). Gradient boosting of fixed size does gain from more records:
    # at 2,000 the AUC fell by 0.027, so a bound must leave most of a class's records.
    shadow = make_split(40_000, seed=11, boost_member=3.0, boost_nonmember=2.0)
    p, y, m = make_split(8000, seed=12, boost_member=3.0, boost_nonmember=2.0)
    full = auc(ShokriAttack(learner="gbdt", seed=0).fit(*shadow).score(p, y), m)
    seen.clear()
    bounded = ShokriAttack(learner="gbdt", seed=0, max_records=6000).fit(*shadow)
    assert len(seen) == N_CLASSES + 1
    assert all(n <= 6000 and members == n // 2 for n, members in seen), seen
    assert abs(auc(bounded.score(p, y), m) - full) < 0.015
    assert full > 0.6
