"""Per-record signals: known values, stability near certainty, and their orientation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from miaudit.signals import (
    SIGNALS,
    cross_entropy,
    entropy,
    logit_confidence,
    member_signal,
    modified_entropy,
    true_class_probability,
)

P = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
Y = np.array([0, 1])


def test_known_values():
    np.testing.assert_allclose(true_class_probability(P, Y), [0.7, 0.1])
    np.testing.assert_allclose(cross_entropy(P, Y), [-np.log(0.7), -np.log(0.1)])
    np.testing.assert_allclose(logit_confidence(P, Y), [np.log(0.7 / 0.3), np.log(0.1 / 0.9)])
    h = -(P * np.log(P)).sum(axis=1)
    np.testing.assert_allclose(entropy(P), h)
    # Song & Mittal, eq. 3, written out for the first row (true class 0).
    m0 = -(1 - 0.7) * np.log(0.7) - 0.2 * np.log(1 - 0.2) - 0.1 * np.log(1 - 0.1)
    m1 = -(1 - 0.1) * np.log(0.1) - 0.1 * np.log(1 - 0.1) - 0.8 * np.log(1 - 0.8)
    np.testing.assert_allclose(modified_entropy(P, Y), [m0, m1])


def test_logit_confidence_is_stable_near_certainty():
    # 1 - p_y is 0 in float64 here; the other probabilities still carry the ratio.
    p = np.array([[1.0, 1e-20, 3e-20]])
    assert np.isfinite(logit_confidence(p, [0])).all()
    np.testing.assert_allclose(logit_confidence(p, [0]), [np.log(1 / 4e-20)])
    # Wrong and certain: very negative, finite.
    assert logit_confidence(p, [1])[0] < -40


def test_signals_work_on_stacked_model_outputs():
    K = np.stack([P, P[::-1]])  # (2 models, 2 records, 3 classes)
    out = logit_confidence(K, Y)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out[0], logit_confidence(P, Y))


@settings(max_examples=50, deadline=None)
@given(
    arrays(np.float64, (6, 4), elements=st.floats(0.01, 1.0)),
    st.sampled_from(SIGNALS),
)
def test_member_signal_rewards_confident_correct_predictions(raw, name):
    P = raw / raw.sum(axis=1, keepdims=True)
    y = P.argmax(axis=1)
    # Sharpening every row towards its (correct) top class raises every signal.
    sharp = P**4 / (P**4).sum(axis=1, keepdims=True)
    before, after = member_signal(name, P, y), member_signal(name, sharp, y)
    assert (after >= before - 1e-9).all()


def test_unknown_signal():
    with pytest.raises(ValueError, match="unknown signal"):
        member_signal("nope", P, Y)


def test_probabilities_that_round_to_one_in_float32_keep_their_order():
    """Known answer: a float32 softmax of logit gaps 20..40 gives the true class exactly
    1.0, but the other classes still say how sure the model is. Every signal must order
    the records by their gap, as their exact float64 losses do."""
    from miaudit.attacks.threshold import ThresholdAttack
    from miaudit.metrics import auc

    gaps = np.array([20.0, 24.0, 28.0, 32.0, 36.0, 40.0])
    logits = np.zeros((len(gaps), 10), np.float32)
    logits[:, 3] = gaps
    z = logits - logits.max(axis=1, keepdims=True)
    P = (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)).astype(np.float32)
    y = np.full(len(gaps), 3)
    assert (P[:, 3] == 1.0).all()  # the true class rounds to exactly 1
    exact = np.log1p(9 * np.exp(-gaps))  # -log p_y in exact arithmetic
    np.testing.assert_allclose(cross_entropy(P, y), exact, rtol=1e-5)
    for name in SIGNALS:
        s = member_signal(name, P, y)
        assert (np.diff(s) > 0).all(), (name, s)  # a larger gap: surer, more a member
    # A threshold attack on those records: members are the surer half. Ties at
    # p_y = 1 would leave it at chance; the order gives it every member.
    member = np.array([0, 0, 0, 1, 1, 1], bool)
    for name in SIGNALS:
        a = ThresholdAttack(signal=name).fit(P, y, member)
        assert auc(a.score(P, y), member) == 1.0, name


def test_log_probabilities_are_exact_at_both_ends():
    from miaudit.signals import log_probabilities

    P = np.array([[1.0, 1e-30, 2e-30], [0.5, 0.25, 0.25], [1e-30, 1.0, 0.0]])
    log_p, log_1mp = log_probabilities(P)
    np.testing.assert_allclose(log_p[0], [-3e-30, np.log(1e-30), np.log(2e-30)])
    np.testing.assert_allclose(log_1mp[0, 0], np.log(3e-30))
    np.testing.assert_allclose(np.exp(log_p[1]), P[1])
    np.testing.assert_allclose(np.exp(log_1mp[1]), 1 - P[1])
    # A zero probability is clipped at the smallest a float32 softmax can say.
    from miaudit.signals import LOG_TINY

    assert log_p[2, 2] == LOG_TINY
    # A row that does not sum to 1 (a rounding policy) is read as what it is proportional to.
    np.testing.assert_allclose(np.exp(log_probabilities([[0.6, 0.2]])[0]), [[0.75, 0.25]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_true_class_path_gives_the_full_paths_numbers_bit_for_bit(dtype, monkeypatch):
    from miaudit import signals

    # Blocks of a few rows, so several blocks (and threads) are used.
    monkeypatch.setattr(signals, "BLOCK_ROWS", 700)
    rng = np.random.default_rng(3)
    C = 12
    logits = rng.normal(size=(3, 2000, C)) * rng.choice([1.0, 5.0, 40.0], size=(3, 2000, 1))
    P = np.exp(logits - logits.max(-1, keepdims=True))
    P = (P / P.sum(-1, keepdims=True)).astype(dtype)
    P[0, :10] = 0.0
    P[0, :10, 0] = 1.0  # one-hot rows
    P[1, :10] = 1.0 / C  # ties for the top class
    y = rng.integers(0, C, 2000)
    log_p, log_1mp = signals.log_probabilities(P)
    fast = signals._true_logs(P, y)
    assert np.array_equal(fast[0], signals._true(log_p, y))
    assert np.array_equal(fast[1], signals._true(log_1mp, y))
    # The blocked signals equal their whole-array formulas.
    assert np.array_equal(signals.entropy(P), -(np.exp(log_p) * log_p).sum(-1))
