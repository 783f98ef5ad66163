"""QMIA: the hinge score, a planted leak found, the quantile's false-positive rate held."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.attacks.base import AttackInputs
from miaudit.attacks.qmia import QMIA, hinge
from miaudit.errors import ConfigError
from miaudit.metrics import auc


def test_hinge_is_the_log_ratio_of_the_true_class_to_the_best_other():
    P = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    np.testing.assert_allclose(hinge(P, np.array([0, 0])), np.log([0.7 / 0.2, 0.1 / 0.6]))


def _world(rng, n, leak):
    """Two classes; a record's score depends on how easy it is (its first feature) and,
    for members, on ``leak``: only conditioning on the record separates them."""
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = rng.integers(0, 2, n)
    member = rng.random(n) < 0.5
    s = 3.0 * X[:, 0] + rng.normal(0, 0.5, n) + leak * member
    p_true = 1 / (1 + np.exp(-s))
    P = np.empty((n, 2))
    P[np.arange(n), y] = p_true
    P[np.arange(n), 1 - y] = 1 - p_true
    return X, y, member, P


def _inputs(rng, leak):
    X, y, member, P = _world(rng, 4000, leak)
    Xp, yp, _, Pp = _world(rng, 5000, 0.0)  # public records: non-members only
    inputs = AttackInputs(
        np.zeros((0, 2)), np.zeros(0, int), np.zeros(0, bool), P, y, n_eval=len(y),
        features=X, public_outputs=Pp, public_labels=yp, public_features=Xp, seed=1,
    )  # fmt: skip
    return inputs, member


def test_qmia_finds_a_leak_the_raw_score_hides_and_holds_its_fpr():
    inputs, member = _inputs(np.random.default_rng(0), leak=1.5)
    attack = QMIA().fit(inputs)
    scores = attack.score(inputs)
    raw = hinge(inputs.target_probs, inputs.labels)
    assert auc(scores, member) > 0.8 > auc(raw, member) + 0.1
    # The cut at 0 calls about fpr = 1 % of the non-members members.
    fpr = float((scores[~member] > 0).mean())
    assert 0.002 <= fpr <= 0.03, fpr
    assert attack.notes_["public_records"] == 5000


def test_qmia_needs_public_records_and_the_records_themselves():
    need = QMIA(public=300).needs()
    assert need.public == 300 and need.features and need.probabilities
    with pytest.raises(ConfigError, match="fpr"):
        QMIA(fpr=0.7)


def test_too_few_records_the_target_never_saw_are_refused_before_training(monkeypatch):
    import miaudit

    def refuse(*args, **kwargs):
        raise AssertionError("a model was trained before the bad input was refused")

    monkeypatch.setattr("miaudit.models.classifier.train_models", refuse)
    # digits has 1,797 records: a pool of 2 × 850 leaves 97 outside it.
    with pytest.raises(ConfigError, match=r"qmia learns from records the target never saw.*97"):
        miaudit.audit(dataset="digits", game="recipe", target_size=850, attacks=["qmia"])
