"""LiRA on signals with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from miaudit.attacks.lira import LiRA
from miaudit.errors import ConfigError
from miaudit.metrics import auc, bootstrap_tpr_at_fpr
from miaudit.splits import balanced_memberships


def _gaussian_world(rng, n=400, K=2000, mu_in=2.0, mu_out=0.0, s_in=1.0, s_out=1.5):
    """Reference φ drawn from known IN/OUT Gaussians per record (record-specific shift)."""
    shift = rng.normal(0, 3, n)  # records differ in difficulty; LiRA must handle it
    member = balanced_memberships(K, n, rng)
    phi = (
        np.where(
            member,
            rng.normal(mu_in, s_in, (K, n)),
            rng.normal(mu_out, s_out, (K, n)),
        )
        + shift
    )
    return phi, member, shift


def test_online_per_record_matches_the_closed_form_likelihood_ratio():
    rng = np.random.default_rng(0)
    phi, member, shift = _gaussian_world(rng, n=100, K=8000)
    x = rng.normal(1.0, 1.0, 100) + shift
    got = LiRA(online=True, variance="per-record").score(phi, member, x)
    exact = norm.logpdf(x, 2.0 + shift, 1.0) - norm.logpdf(x, shift, 1.5)
    np.testing.assert_allclose(got, exact, atol=0.1, rtol=0.05)


def test_offline_is_the_one_sided_out_test():
    rng = np.random.default_rng(1)
    phi, member, shift = _gaussian_world(rng)
    x = rng.normal(1.0, 1.0, 400) + shift
    got = LiRA(online=False, variance="per-record").score(phi, member, x)
    exact = norm.logcdf(x, shift, 1.5)
    np.testing.assert_allclose(got, exact, atol=0.05, rtol=0.05)


def test_global_variance_pools_deviations():
    rng = np.random.default_rng(2)
    phi, member, shift = _gaussian_world(rng, n=200, K=4000)
    x = shift + 1.0
    got = LiRA(online=True, variance="global").score(phi, member, x)
    exact = norm.logpdf(x, 2.0 + shift, 1.0) - norm.logpdf(x, shift, 1.5)
    # Per-record means from 2,000 draws each: errors of a few hundredths, at most ~0.15.
    np.testing.assert_allclose(got, exact, atol=0.15)
    assert np.abs(got - exact).mean() < 0.03


def test_several_queries_add_up():
    rng = np.random.default_rng(3)
    phi, member, shift = _gaussian_world(rng, n=50, K=1000)
    x = shift + 0.5
    one = LiRA(variance="per-record").score(phi, member, x)
    two = LiRA(variance="per-record").score(np.stack([phi, phi], -1), member, np.c_[x, x])
    np.testing.assert_allclose(two, 2 * one)


def test_no_leak_gives_chance_and_intervals_cover_it():
    rng = np.random.default_rng(4)
    n, K = 4000, 16
    member = balanced_memberships(K, n, rng)
    phi = rng.normal(0, 1, (K, n))  # IN and OUT identical
    truth = rng.random(n) < 0.5
    x = rng.normal(0, 1, n)
    s = LiRA(online=True).score(phi, member, x)
    assert abs(auc(s, truth) - 0.5) < 0.03
    for interval in bootstrap_tpr_at_fpr(s, truth, [0.01, 0.1], n_boot=300, rng=0):
        assert interval.low <= interval.fpr <= interval.high


def test_not_enough_models_is_refused_before_scoring():
    member = np.array([[True, False], [False, True]])
    phi = np.zeros((2, 2))
    with pytest.raises(ConfigError, match=r"fewer than 2 IN models.*'variance': 'global'"):
        LiRA(online=True, variance="per-record").score(phi, member, np.zeros(2))
    LiRA(online=True, variance="global").score(phi, member, np.zeros(2))
    with pytest.raises(ConfigError, match="fewer than 1 OUT"):
        LiRA(online=False).score(phi, np.ones((2, 2), bool), np.zeros(2))


def _spread_world(rng, spread: bool, n=2000, K=16, shift=1.0):
    """φ of K reference models on n records, IN half of them each: members' φ is raised
    by ``shift`` standard deviations. With ``spread``, each record's standard deviation
    differs (log-uniform over two orders of magnitude), so a pooled variance drowns the
    records that vary little; without it, every record has the same one and per-record
    estimates only add noise."""
    member = balanced_memberships(K, n, rng)
    std = np.exp(rng.uniform(np.log(0.02), np.log(2.0), n)) if spread else np.ones(n)
    centre = rng.normal(0, 2, n)
    phi = centre + (member * shift + rng.normal(0, 1, (K, n))) * std
    return phi, member


@pytest.mark.parametrize("online", [True, False])
def test_the_variance_choice_follows_how_much_records_differ(online):
    from miaudit.attacks.lira import choose_variance

    rng = np.random.default_rng(5)
    chosen, facts = choose_variance(*_spread_world(rng, spread=True), online=online)
    assert chosen == "per-record", facts
    c = facts["candidates"]
    assert c["per-record"]["tpr"] > c["global"]["tpr"]
    assert facts["models_attacked"] == [0, 1, 2, 3] and facts["fpr"] == pytest.approx(0.01)
    chosen, facts = choose_variance(*_spread_world(rng, spread=False, K=8), online=online)
    assert chosen == "global", facts


def test_auto_variance_scores_with_its_choice_and_reports_both_candidates():
    from miaudit.attacks.base import AttackInputs
    from miaudit.attacks.lira import LiRAOnline
    from miaudit.signals import ReferenceSignals

    rng = np.random.default_rng(6)
    phi, member = _spread_world(rng, spread=True, shift=2.0)
    # Probabilities of two classes whose logit-scaled confidence is φ (label 0).
    p = 1 / (1 + np.exp(-phi))
    probs = np.stack([p, 1 - p], axis=-1)
    target = member[0]
    inputs = AttackInputs(
        own_probs=np.zeros((0, 2)), own_labels=np.zeros(0, int), own_member=np.zeros(0),
        target_probs=probs[0], labels=np.zeros(2000, int), n_eval=2000,
        reference=ReferenceSignals(probs[1:], member[1:], np.zeros(2000, int)),
    )  # fmt: skip
    attack = LiRAOnline()
    scores = attack.score(inputs)
    assert attack.notes_["variance"] == "per-record"
    assert set(attack.notes_["variance_choice"]["candidates"]) == {"global", "per-record"}
    forced = LiRAOnline(variance="global")
    pooled = forced.score(inputs)
    assert forced.notes_["variance"] == "global" and "variance_choice" not in forced.notes_
    # The choice made on the shadows holds on the target, at the low FPR it is made at.
    from miaudit.metrics import tpr_at_fpr

    assert tpr_at_fpr(scores, target, 0.01) > 1.3 * tpr_at_fpr(pooled, target, 0.01)
