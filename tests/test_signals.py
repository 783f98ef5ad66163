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
