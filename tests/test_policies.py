"""Output policies keep the target contract and do what the paper's mitigations say."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import miaudit
from miaudit.errors import ConfigError
from miaudit.policies import (
    LabelOnly,
    PolicyTarget,
    Rounding,
    Temperature,
    TopK,
    apply_policies,
    parse_policy,
)


@st.composite
def prob_rows(draw):
    n = draw(st.integers(1, 20))
    c = draw(st.integers(2, 12))
    raw = draw(arrays(np.float64, (n, c), elements=st.floats(0.0, 1.0)))
    raw[:, 0] += 1e-3  # no all-zero row
    if draw(st.booleans()):
        raw = np.exp(8 * raw)  # peaked rows, like an overfit model's
    return raw / raw.sum(axis=1, keepdims=True)


POLICIES = [
    TopK(1),
    TopK(3),
    Rounding(0),
    Rounding(1),
    Rounding(3),
    Temperature(5.0),
    Temperature(0.5),
    LabelOnly(),
]


@settings(max_examples=80, deadline=None)
@given(P=prob_rows(), policy=st.sampled_from(POLICIES))
def test_every_policy_returns_probability_vectors(P, policy):
    Q = policy.apply(P)
    assert Q.shape == P.shape
    assert (Q >= 0).all()
    assert np.allclose(Q.sum(axis=1), 1.0, atol=1e-12)


@settings(max_examples=80, deadline=None)
@given(P=prob_rows(), k=st.integers(1, 5))
def test_top_k_keeps_k_largest_and_their_ratios(P, k):
    Q = TopK(k).apply(P)
    k_eff = min(k, P.shape[1])
    assert ((Q > 0).sum(axis=1) <= k_eff).all()
    assert np.array_equal(Q.argmax(axis=1), P.argmax(axis=1))
    kept = Q > 0
    # renormalisation preserves ratios among the kept entries
    scale = P[kept] / Q[kept]
    rows = np.nonzero(kept)[0]
    for r in np.unique(rows):
        assert np.allclose(scale[rows == r], scale[rows == r][0])


@settings(max_examples=80, deadline=None)
@given(P=prob_rows(), d=st.integers(0, 4))
def test_rounding_is_on_the_grid_close_and_sums_to_one(P, d):
    Q = Rounding(d).apply(P)
    units = Q * 10**d
    assert np.allclose(units, np.rint(units), atol=1e-9)
    assert (np.abs(Q - P) <= 10.0**-d + 1e-12).all()
    assert np.allclose(Q.sum(axis=1), 1.0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(P=prob_rows(), t=st.floats(1.0, 50.0))
def test_temperature_keeps_the_ranking_and_raises_entropy(P, t):
    Q = Temperature(t).apply(P)

    def entropy(X):
        return -(X * np.log(np.clip(X, 1e-300, None))).sum(axis=1)

    # The top class stays a top class of each row (among classes tied at the top, the
    # flattened answer may name another).
    top = P[np.arange(len(P)), Q.argmax(axis=1)]
    assert np.allclose(top, P.max(axis=1), rtol=1e-9, atol=1e-12)
    assert (entropy(Q) >= entropy(P) - 1e-9).all()
    assert np.allclose(Temperature(1.0).apply(P), P, atol=1e-12)


def test_temperature_equals_softmax_of_scaled_logits():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 7)) * 3
    P = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    zt = z / 5.0
    expected = np.exp(zt) / np.exp(zt).sum(axis=1, keepdims=True)
    assert np.allclose(Temperature(5.0).apply(P), expected, atol=1e-12)


def test_label_only_is_one_hot_at_the_prediction():
    P = np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]])
    assert np.array_equal(LabelOnly().apply(P), [[0, 1, 0], [1, 0, 0]])


def test_known_rounding_example():
    P = np.array([[0.333, 0.333, 0.334], [0.96, 0.03, 0.01]])
    assert np.allclose(Rounding(1).apply(P), [[0.3, 0.3, 0.4], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("top-k=3", TopK(3)),
        ("round=2", Rounding(2)),
        ("temperature=20", Temperature(20.0)),
        ("label-only", LabelOnly()),
    ],
)
def test_parse_round_trips(spec, expected):
    assert parse_policy(spec) == expected
    assert parse_policy(spec).spec == spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("top-k=0", "at least 1"),
        ("round=x", "not a whole number"),
        ("temperature=0", "positive"),
        ("blur=2", "unknown output policy"),
    ],
)
def test_parse_errors_name_the_policy(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_policy(spec)


def test_policy_target_wraps_any_target():
    class Fixed:
        def predict_proba(self, X):
            return np.tile([0.7, 0.2, 0.1], (len(X), 1))

    target = PolicyTarget(Fixed(), [TopK(2), Rounding(1)])
    out = target.predict_proba(np.zeros((4, 2)))
    assert np.allclose(
        out, apply_policies(Fixed().predict_proba(np.zeros((4, 2))), target.policies)
    )
    assert np.allclose(out[0], [0.8, 0.2, 0.0])


def test_label_only_audit_scores_depend_only_on_label_and_prediction():
    FAST = {"epochs": 40, "batch_size": 32, "lr": 0.003}
    # Asked for by name, attacks that need probabilities are refused before any training.
    with pytest.raises(ConfigError, match=r"labels only, but loss, mentr-class need"):
        miaudit.audit(
            dataset="digits", defense=["label-only"], attacks=["gap", "loss", "mentr-class"]
        )
    # The default set adapts: what needs probabilities is left out, and the audit says so.
    with pytest.warns(UserWarning, match="left out of the default attacks"):
        adapted = miaudit.audit(
            dataset="digits", target_size=200, shadows=2, target=FAST, seed=1,
            defense=["label-only"],
        )  # fmt: skip
    assert list(adapted.attacks) == ["shokri", "gap"]
    assert adapted.config.attacks.run == ["shokri", "gap"]  # config.json repeats the run
    result = miaudit.audit(
        dataset="digits",
        target_size=200,
        shadows=2,
        target=FAST,
        seed=1,
        defense=["label-only"],
        attacks=["shokri", "gap", "robustness"],
    )
    assert result.target["defense"] == ["label-only"]
    # The gap attack's advantage is the train-test accuracy gap (its score is correctness).
    gap = result.attacks["gap"]
    assert gap.advantage == pytest.approx(
        result.target["train_accuracy"] - result.target["test_accuracy"]
    )
    from miaudit.data import load_dataset

    data = load_dataset("digits")
    # Re-create the target's predictions from the scores' groups: records sharing
    # a (label, score) must be indistinguishable to a label-only attacker, so the
    # number of distinct scores per label is at most the number of classes.
    scores, labels = result.scores["shokri"], result.labels
    for c in range(data.n_classes):
        assert len(np.unique(scores[labels == c])) <= data.n_classes
    with pytest.raises(ConfigError, match="defense=top-k=0"):
        miaudit.audit(dataset="digits", defense=["top-k=0"])
