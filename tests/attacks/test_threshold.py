"""Threshold attacks: thresholds from shadows only, global and per class."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.attacks.registry import get_attack
from miaudit.attacks.threshold import ThresholdAttack, best_threshold
from miaudit.signals import member_signal


def test_best_threshold_separates_and_sits_between_values():
    s = np.array([0.1, 0.2, 0.3, 0.8, 0.9, 1.0])
    m = np.array([0, 0, 0, 1, 1, 1], bool)
    t = best_threshold(s, m)
    assert 0.3 < t < 0.8
    assert ((s >= t) == m).all()


def _shadow_like(rng, n=4000):
    # Two classes whose members are confident at different levels: class 1's members
    # sit where class 0's non-members do, so one global threshold cannot fit both.
    y = rng.integers(0, 2, n)
    member = rng.random(n) < 0.5
    level = np.where(y == 0, np.where(member, 0.95, 0.8), np.where(member, 0.8, 0.6))
    conf = np.clip(level + rng.normal(0, 0.03, n), 0.51, 0.999)
    P = np.zeros((n, 2))
    P[np.arange(n), y] = conf
    P[np.arange(n), 1 - y] = 1 - conf
    return P, y, member


def test_class_thresholds_beat_a_global_one_when_classes_differ():
    rng = np.random.default_rng(0)
    P, y, m = _shadow_like(rng)
    Pt, yt, mt = _shadow_like(rng)
    glob = ThresholdAttack(signal="confidence").fit(P, y, m)
    per = ThresholdAttack(signal="confidence", thresholds="class").fit(P, y, m)
    acc_g = ((glob.score(Pt, yt) >= glob.decision_threshold) == mt).mean()
    acc_c = ((per.score(Pt, yt) >= per.decision_threshold) == mt).mean()
    assert acc_c > 0.95 and acc_c > acc_g + 0.1
    # The confidence signal is p_y - 1 (see member_signal).
    np.testing.assert_allclose(per.thresholds_ + 1, [0.875, 0.7], atol=0.03)


def test_scores_are_the_oriented_signal_and_margins():
    rng = np.random.default_rng(1)
    P, y, m = _shadow_like(rng, 500)
    for name in ("loss", "entropy", "mentr"):
        a = ThresholdAttack(signal=name).fit(P, y, m)
        np.testing.assert_array_equal(a.score(P, y), member_signal(name, P, y))
        c = ThresholdAttack(signal=name, thresholds="class").fit(P, y, m)
        np.testing.assert_allclose(c.score(P, y), member_signal(name, P, y) - c.thresholds_[y])


def test_registry_names_and_small_classes_fall_back():
    assert get_attack("mentr-class").thresholds == "class"
    assert get_attack("loss").signal == "loss" and get_attack("loss").thresholds == "global"
    P = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.2, 0.2, 0.6]] * 10)
    y = np.array([0, 0, 2] * 10)
    m = np.array([1, 0, 1] * 10, bool)
    a = ThresholdAttack(signal="confidence", thresholds="class").fit(P, y, m)
    assert 2 in a.fallback_classes_ and 1 in a.fallback_classes_
    assert a.thresholds_[2] == a.global_threshold_


def test_unfitted_and_bad_options():
    from miaudit.errors import ConfigError

    with pytest.raises(ConfigError, match="not fitted"):
        ThresholdAttack().score(np.full((1, 2), 0.5), [0])
    with pytest.raises(ConfigError, match="signal"):
        ThresholdAttack(signal="nope")
