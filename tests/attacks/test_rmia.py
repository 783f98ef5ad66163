"""RMIA: the pairwise likelihood ratio, online and offline, and its choice of a."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.attacks.rmia import RMIA
from miaudit.errors import ConfigError
from miaudit.metrics import auc
from miaudit.splits import balanced_memberships


def test_score_is_the_fraction_of_population_dominated():
    # One reference model (online: Pr(x) is its probability), two records, four z.
    p_target_x = np.array([0.9, 0.2])
    p_ref_x = np.array([[0.3, 0.4]])
    p_target_z = np.array([0.5, 0.5, 0.5, 0.5])
    p_ref_z = np.array([[0.25, 0.5, 1.0, 0.1]])
    s = RMIA(online=True, gamma=1.0).score(
        p_target_x, p_ref_x, np.zeros((1, 2), bool), p_target_z, p_ref_z, np.zeros((1, 4), bool)
    )
    # ratio_x = [3, 0.5]; ratio_z = [2, 1, 0.5, 5]: record 0 beats 2, 1, 0.5 -> 3 of 4;
    # record 1 beats none (0.5 > 0.5 is false) -> 0. The score is (count + u) / (m + 1),
    # u in (0, 1) the tie-break: arctan of the mean log ratio over z, mapped to (0, 1).
    mean_log_z = np.log([2, 1, 0.5, 5]).mean()
    u = 0.5 + np.arctan(np.log([3, 0.5]) - mean_log_z) / np.pi
    np.testing.assert_allclose(s, (np.array([3, 0]) + u) / 5)
    s2 = RMIA(online=True, gamma=2.0).score(
        p_target_x, p_ref_x, np.zeros((1, 2), bool), p_target_z, p_ref_z, np.zeros((1, 4), bool)
    )
    np.testing.assert_array_equal(np.floor(s2 * 5), [2, 0])  # ratio_x / 2 = 1.5 beats 1, 0.5


def _world(rng, n=3000, m=1000, K=8, leak=0.2):
    """True-class probabilities: members' are raised by ``leak`` on every model."""
    base_x, base_z = rng.uniform(0.2, 0.7, n), rng.uniform(0.2, 0.7, m)
    member_ref = balanced_memberships(K, n, rng)
    p_ref_x = np.clip(base_x + member_ref * leak + rng.normal(0, 0.02, (K, n)), 0.01, 1)
    p_ref_z = np.clip(base_z + rng.normal(0, 0.02, (K, m)), 0.01, 1)
    truth = rng.random(n) < 0.5
    p_target_x = np.clip(base_x + truth * leak + rng.normal(0, 0.02, n), 0.01, 1)
    p_target_z = np.clip(base_z + rng.normal(0, 0.02, m), 0.01, 1)
    return p_target_x, p_ref_x, member_ref, p_target_z, p_ref_z, np.zeros((K, m), bool), truth


def test_online_and_offline_find_the_leak_and_a_is_chosen():
    rng = np.random.default_rng(0)
    px, rx, mx, pz, rz, mz, truth = _world(rng)
    online = RMIA(online=True).score(px, rx, mx, pz, rz, mz)
    assert auc(online, truth) > 0.9
    offline = RMIA(online=False)
    a = offline.choose_a(rx, mx, rz, mz)
    assert 0.0 <= a <= 1.0 and len(offline.a_grid_) == 11
    assert offline.a_grid_[a] == max(offline.a_grid_.values())
    assert auc(offline.score(px, rx, mx, pz, rz, mz), truth) > 0.85


def test_no_leak_is_chance():
    rng = np.random.default_rng(1)
    px, rx, mx, pz, rz, mz, truth = _world(rng, leak=0.0)
    assert abs(auc(RMIA().score(px, rx, mx, pz, rz, mz), truth) - 0.5) < 0.04


def test_offline_needs_out_models():
    with pytest.raises(ConfigError, match="no OUT reference model"):
        RMIA(online=False).score(
            np.ones(1) * 0.5, np.ones((1, 1)) * 0.5, np.ones((1, 1), bool),
            np.ones(2) * 0.5, np.ones((1, 2)) * 0.5, np.zeros((1, 2), bool),
        )  # fmt: skip
    with pytest.raises(ConfigError, match="population"):
        RMIA().score(np.ones(1), np.ones((1, 1)), np.zeros((1, 1), bool), [], np.ones((1, 0)), [])


def test_saturated_scores_are_ordered_by_the_tie_break():
    """Many records dominate every population record; the old score (the fraction)
    tied them all at 1.0, members and a few non-members together, so TPR at the lowest
    resolvable FPR read 0. The tie-break orders them by their likelihood ratio."""
    from miaudit.metrics import tpr_at_fpr

    rng = np.random.default_rng(3)
    n, m, K = 2000, 50, 4
    member = rng.random(n) < 0.5
    # Reference models never saw the records (offline-like Pr(x)); the target's
    # probability is raised for members (the planted leak), most strongly for the
    # members the target memorised hardest.
    p_ref = rng.uniform(0.3, 0.6, (K, n))
    lift = np.where(member, rng.uniform(1.2, 1.6, n), rng.uniform(0.7, 1.25, n))
    p_x = np.clip(p_ref.mean(axis=0) * lift, 0, 1)
    p_ref_z = rng.uniform(0.3, 0.6, (K, m))
    p_z = p_ref_z.mean(axis=0) * rng.uniform(0.8, 1.15, m)
    rmia = RMIA(online=True)
    s = rmia.score(p_x, p_ref, np.zeros((K, n), bool), p_z, p_ref_z, np.zeros((K, m), bool))
    ratio = rmia.log_ratios(p_x, p_ref, np.zeros((K, n), bool))
    top = np.floor(s * (m + 1)) == m  # dominate all m population records
    assert top.sum() > 300 and (~member[top]).sum() > 0  # saturated, and not only members
    assert rmia.dominate_all_ == top.sum()
    # At the top, the order is the likelihood ratio's.
    order = np.argsort(-s[top], kind="stable")
    assert (np.diff(ratio[top][order]) <= 0).all()
    # The fraction alone could not resolve the lowest FPR; the tie-broken score can.
    lowest = 1 / int((~member).sum())
    fraction = np.floor(s * (m + 1)) / m
    assert tpr_at_fpr(fraction, member, lowest) == 0.0
    assert tpr_at_fpr(s, member, lowest) > 0.05
