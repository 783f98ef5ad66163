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
    # ratio_x = [3, 0.5]; ratio_z = [2, 1, 0.5, 5]: record 0 beats 2, 1, 0.5 -> 3/4;
    # record 1 beats none (0.5 > 0.5 is false) -> 0.
    np.testing.assert_allclose(s, [0.75, 0.0])
    s2 = RMIA(online=True, gamma=2.0).score(
        p_target_x, p_ref_x, np.zeros((1, 2), bool), p_target_z, p_ref_z, np.zeros((1, 4), bool)
    )
    np.testing.assert_allclose(s2, [0.5, 0.0])  # ratio_x / 2 = 1.5 beats 1 and 0.5


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
