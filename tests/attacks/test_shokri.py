"""Tests of ShokriAttack on synthetic prediction vectors with a known (or no) leak."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.attacks import ShokriAttack
from miaudit.attacks.shokri import LEARNERS, _transform
from miaudit.errors import ConfigError
from miaudit.metrics import auc, tpr_at_fpr

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
        ({"learner": "svm"}, "learner: Input should be 'auto', 'nn', 'gbdt', 'logreg' or 'rf'"),
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


# ------------------------------------------------------------ auto: the learner chosen


def make_shadows(k: int, n: int, seed: int, **boosts) -> tuple[np.ndarray, ...]:
    """``k`` shadows of ``n`` rows each, laid out as an audit stacks them (each
    shadow's in-records, then its out-records): signals, labels, member, shadow."""
    rng = np.random.default_rng(seed)
    member = np.tile(np.r_[np.ones(n // 2, bool), np.zeros(n - n // 2, bool)], k)
    labels = rng.integers(0, N_CLASSES, k * n)
    shadow = np.repeat(np.arange(k), n)
    return make_signals(member, labels, rng, **boosts), labels, member, shadow


def _fake_candidates(
    monkeypatch, strong: str, weak: str = "noise", truth: np.ndarray | None = None
) -> list[dict]:
    """Replace the candidates' fits: ``strong`` scores the held-out rows by their
    true-class probability (which leaks membership here), the other by ``weak``:
    ``"noise"``; ``"same"`` (an exact tie); ``"lower half shuffled"`` (the same top
    of the ranking, so the same TPR at a low FPR, and a far lower AUC); or ``"one
    record"`` (the top-scoring member, by ``truth``, the held-out rows' membership,
    moved to the bottom: weaker, within the noise). Returns what each call received."""
    import miaudit.attacks.shokri as shokri

    calls: list[dict] = []

    def fake(learner, cfg, device, train, test, progress):
        p, y = test
        calls.append({"learner": learner, "train": train, "test": test})
        leak = p[np.arange(len(y)), y]
        out = leak.copy()
        if learner == strong or weak == "same":
            return out
        if weak == "noise":
            return np.random.default_rng(0).random(len(y))
        if weak == "one record":
            out[np.argmax(np.where(truth, leak, -1.0))] = leak.min()
            return out
        low = np.flatnonzero(leak < np.median(leak))
        out[low] = np.random.default_rng(0).permutation(leak[low])
        return out

    monkeypatch.setattr(shokri, "_candidate_scores", fake)
    return calls


@pytest.mark.parametrize("winner", ["nn", "gbdt"])
def test_auto_keeps_the_candidate_stronger_on_the_held_out_shadow(monkeypatch, winner):
    from miaudit.attacks.shokri import CANDIDATES
    from miaudit.attacks.shokri import _NetModel as NetModel

    p, y, m, shadow = make_shadows(4, 400, seed=20)
    calls = _fake_candidates(monkeypatch, strong=winner)
    attack = ShokriAttack(learner="auto", seed=0).fit(p, y, m, shadow=shadow)
    assert attack.learner_ == winner
    # The final models are the winner's, fitted on every shadow.
    assert isinstance(attack.class_models_[0], NetModel) == (winner == "nn")
    assert attack.class_counts_.sum() == len(y)
    choice = attack.learner_choice_
    assert set(choice["candidates"]) == set(CANDIDATES) == {c["learner"] for c in calls}
    assert choice["held_out_shadow"] == 3 and choice["shadows"] == 4
    # 200 non-members held out: 1 % allows 2 false positives, 10 % is the ranking rate.
    assert choice["fpr"] == "0.1"
    held = shadow == 3
    truth = m[held]
    for call in calls:
        # Trained on the other shadows only, judged on the held-out one.
        np.testing.assert_array_equal(call["test"][0], p[held])
        assert len(call["train"][0]) == int((~held).sum())
        assert not np.isin(call["train"][0][:, 0], p[held, 0]).any()
    leak = p[held][np.arange(held.sum()), y[held]]
    assert choice["candidates"][winner] == {
        "tpr": tpr_at_fpr(leak, truth, 0.1),
        "auc": auc(leak, truth),
    }
    loser = next(c for c in CANDIDATES if c != winner)
    assert choice["candidates"][loser]["tpr"] < choice["candidates"][winner]["tpr"]
    assert choice["records"] == held.sum() and choice["classes"] == N_CLASSES
    assert choice["decided_by"] == "tpr"
    low, high = choice["difference"]["tpr"]  # gbdt - nn, beyond the noise
    assert choice["difference"]["of"] == "gbdt - nn"
    assert (low > 0) if winner == "gbdt" else (high < 0)


@pytest.mark.parametrize("winner", ["nn", "gbdt"])
def test_auto_breaks_a_tpr_tie_by_auc_and_a_tie_by_the_fallback(monkeypatch, winner):
    from miaudit.attacks.shokri import FALLBACK_LEARNER

    p, y, m, shadow = make_shadows(3, 2000, seed=21)
    _fake_candidates(monkeypatch, strong=winner, weak="lower half shuffled")
    attack = ShokriAttack(learner="auto").fit(p, y, m, shadow=shadow)
    choice = attack.learner_choice_
    figures = choice["candidates"]
    assert choice["fpr"] == "0.01"
    assert figures["nn"]["tpr"] == figures["gbdt"]["tpr"] > 0.01
    assert choice["difference"]["tpr"] == [0.0, 0.0]
    assert attack.learner_ == winner and choice["decided_by"] == "auc"
    # Weaker by one record: within the noise of the held-out shadow, so a tie, and
    # ties go to the fallback even where it is the (slightly) weaker.
    loser = "gbdt" if winner == "nn" else "nn"
    for weak in ("same", "one record"):
        _fake_candidates(monkeypatch, strong=winner, weak=weak, truth=m[shadow == 2])
        attack = ShokriAttack(learner="auto").fit(p, y, m, shadow=shadow)
        assert attack.learner_ == FALLBACK_LEARNER == "nn"
        assert attack.learner_choice_["decided_by"] == "tie"
        figures = attack.learner_choice_["candidates"]
        assert (figures[loser]["auc"] < figures[winner]["auc"]) == (weak == "one record")


def test_auto_judges_classes_spread_over_their_sizes(monkeypatch):
    p, _, m, shadow = make_shadows(3, 600, seed=22)
    # Classes by size: 4, 1, 0, 3, 2. Three of five at evenly spaced ranks: the largest
    # (4), the middle (0) and the smallest (2), not the three largest.
    share = {4: 0.40, 1: 0.25, 0: 0.15, 3: 0.12, 2: 0.08}
    y = np.random.default_rng(0).choice(list(share), size=len(m), p=list(share.values()))
    calls = _fake_candidates(monkeypatch, strong="gbdt")
    attack = ShokriAttack(learner="auto", choice_classes=3).fit(p, y, m, shadow=shadow)
    assert attack.learner_choice_["classes"] == 3
    for call in calls:
        assert set(np.unique(call["train"][1])) == {0, 2, 4}
        assert set(np.unique(call["test"][1])) == {0, 2, 4}
    assert attack.learner_choice_["records"] == int(((shadow == 2) & np.isin(y, [0, 2, 4])).sum())
    # The final fit: every class a model of its own.
    assert sorted(attack.class_models_) == list(range(N_CLASSES))
    # 0 judges every class.
    calls.clear()
    ShokriAttack(learner="auto", choice_classes=0).fit(p, y, m, shadow=shadow)
    assert set(np.unique(calls[0]["test"][1])) == set(range(N_CLASSES))


def test_auto_judges_the_class_agnostic_models_where_no_class_has_enough_records(
    monkeypatch,
):
    # 3 shadows of 150 rows: 52 to 71 rows per class in the two not held out, fewer
    # than 75, though every class has more than 75 in all three (the final fit).
    p, y, m, shadow = make_shadows(3, 150, seed=30)
    calls = _fake_candidates(monkeypatch, strong="gbdt")
    attack = ShokriAttack(learner="auto", min_class_records=75).fit(p, y, m, shadow=shadow)
    choice = attack.learner_choice_
    assert choice["models"] == "class-agnostic" and choice["classes"] == N_CLASSES
    assert choice["records"] == 150 and attack.learner_ == "gbdt"
    assert all(len(c["test"][0]) == 150 for c in calls)
    assert sorted(attack.class_models_) == list(range(N_CLASSES))
    # With enough records per class, the per-class models are judged.
    attack = ShokriAttack(learner="auto", min_class_records=20).fit(p, y, m, shadow=shadow)
    assert attack.learner_choice_["models"] == "per class"


@pytest.mark.parametrize(
    ("shadow", "why"),
    [
        (np.zeros(1200, np.int64), "a single shadow: none to hold out"),
        (None, "which shadow each attack record came from is unknown: none to hold out"),
    ],
)
def test_auto_without_a_shadow_to_hold_out_takes_the_documented_fallback(monkeypatch, shadow, why):
    import miaudit.attacks.shokri as shokri

    def never(*args):
        raise AssertionError("no candidate can be judged without a held-out shadow")

    monkeypatch.setattr(shokri, "_candidate_scores", never)
    p, y, m, _ = make_shadows(1, 1200, seed=23)
    attack = ShokriAttack(learner="auto").fit(p, y, m, shadow=shadow)
    assert shokri.FALLBACK_LEARNER == "nn"  # as the module's docstring and README say
    assert attack.learner_ == "nn"
    assert attack.learner_choice_ == {"why": why, "fallback": "nn"}
    plain = ShokriAttack(learner="nn").fit(p, y, m)
    np.testing.assert_array_equal(attack.score(p, y), plain.score(p, y))
    assert "single shadow" in shokri.__doc__ and "FALLBACK_LEARNER" in shokri.__doc__


def test_auto_with_real_candidates_is_deterministic_and_scores_as_its_choice():
    # Real nn and gbdt candidates on small data: the same seed gives the same choice,
    # figures and scores, and those scores are the chosen learner's own.
    p, y, m, shadow = make_shadows(3, 600, seed=24, boost_member=3.5, boost_nonmember=2.0)
    tp, ty, tm = make_split(600, seed=25, boost_member=3.5, boost_nonmember=2.0)
    a = ShokriAttack(learner="auto", seed=3).fit(p, y, m, shadow=shadow)
    b = ShokriAttack(learner="auto", seed=3).fit(p, y, m, shadow=shadow)
    assert a.learner_ == b.learner_ and a.learner_choice_ == b.learner_choice_
    scores = a.score(tp, ty)
    np.testing.assert_array_equal(scores, b.score(tp, ty))
    figures = a.learner_choice_["candidates"]
    assert all(f["auc"] > 0.6 for f in figures.values()), figures
    own = ShokriAttack(learner=a.learner_, seed=3).fit(p, y, m).score(tp, ty)
    np.testing.assert_allclose(scores, own, rtol=0, atol=1e-12)
    assert auc(scores, tm) > 0.6


def test_auto_on_one_core_fits_the_same_models(monkeypatch):
    # With a spare core the fallback's models are fitted while the candidates are
    # judged; on one core after the choice. Either way the same scores.
    import miaudit.attacks.shokri as shokri

    p, y, m, shadow = make_shadows(3, 600, seed=24, boost_member=3.5, boost_nonmember=2.0)
    tp, ty, _ = make_split(300, seed=25)
    for strong in ("nn", "gbdt"):
        _fake_candidates(monkeypatch, strong=strong)
        both = ShokriAttack(learner="auto", seed=3).fit(p, y, m, shadow=shadow)
        with monkeypatch.context() as one:
            one.setattr(shokri.os, "sched_getaffinity", lambda pid: {0})
            alone = ShokriAttack(learner="auto", seed=3).fit(p, y, m, shadow=shadow)
        assert both.learner_ == alone.learner_ == strong
        np.testing.assert_array_equal(both.score(tp, ty), alone.score(tp, ty))


def test_auto_progress_runs_once_from_start_to_end(monkeypatch):
    _fake_candidates(monkeypatch, strong="nn")
    seen: list[tuple[int, int]] = []
    p, y, m, shadow = make_shadows(2, 400, seed=26)
    ShokriAttack(learner="auto").fit(p, y, m, lambda d, t: seen.append((d, t)), shadow=shadow)
    done = [d for d, _ in seen]
    assert done == sorted(done) and seen[-1] == (1000, 1000) and done[0] >= 400


def test_shadow_rows_reads_both_games_layouts():
    from miaudit.attacks.shokri import shadow_rows

    # The paper's game: in-records then out-records, shadow after shadow (sizes may differ).
    m = np.r_[[1] * 30 + [0] * 30, [1] * 20 + [0] * 25, [1] * 30 + [0] * 30].astype(np.int8)
    expected = np.repeat([0, 1, 2], [60, 45, 60])
    np.testing.assert_array_equal(shadow_rows(m), expected)
    np.testing.assert_array_equal(shadow_rows(m, 3), expected)
    # The recipe game: each reference model answers the same pool, membership interleaved.
    pool = np.random.default_rng(0).random((4, 50)) < 0.5
    np.testing.assert_array_equal(shadow_rows(pool.ravel(), 4), np.repeat(np.arange(4), 50))
    # Interleaved without the count, or rows that fit neither: unknown.
    assert shadow_rows(pool.ravel()) is None
    assert shadow_rows(m[:-5], 3) is not None  # still three in-then-out blocks
    assert shadow_rows(np.r_[m, 1]) is None
    assert shadow_rows(m, 7) is None
    # One shadow.
    np.testing.assert_array_equal(shadow_rows(m[:60]), np.zeros(60, np.int64))


def test_shadow_ids_are_checked():
    p, y, m, shadow = make_shadows(2, 100, seed=27)
    with pytest.raises(ConfigError, match=r"shadow must have one entry per row of signals \(200\)"):
        ShokriAttack(learner="auto").fit(p, y, m, shadow=shadow[:-1])
    with pytest.raises(ConfigError, match="shadow must hold integer shadow ids"):
        ShokriAttack(learner="auto").fit(p, y, m, shadow=shadow.astype(float))


def test_the_audit_attack_notes_its_choice_and_finds_the_shadows(monkeypatch):
    from miaudit.attacks.base import AttackInputs
    from miaudit.attacks.shokri import Shokri, ShokriConfig

    calls = _fake_candidates(monkeypatch, strong="nn")
    p, y, m, _ = make_shadows(4, 300, seed=28)
    tp, ty, _ = make_split(200, seed=29)
    inputs = AttackInputs(
        own_probs=p, own_labels=y, own_member=m.astype(np.int8), target_probs=tp, labels=ty,
        n_eval=200, class_names=[str(c) for c in range(N_CLASSES)],
    )  # fmt: skip
    attack = Shokri(ShokriConfig())
    attack.fit(inputs).score(inputs)
    assert attack.notes_["learner"] == "nn"
    assert attack.notes_["learner_choice"]["shadows"] == 4
    assert len(calls[0]["test"][0]) == 300
    parts = attack.cache_parts(inputs)
    assert "shadow_rows" in parts and parts["attack"]["choice_classes"] == 12
    # A fixed learner: no choice noted, and its cache key ignores the choice's setting.
    fixed = Shokri(ShokriConfig(learner="gbdt"))
    fixed.fit(inputs).score(inputs)
    assert fixed.notes_["learner"] == "gbdt" and "learner_choice" not in fixed.notes_
    assert "choice_classes" not in fixed.cache_parts(inputs)["attack"]
