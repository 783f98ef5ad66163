"""ModelSet and Classifier: one model out of a set, input checks."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.data.dataset import Dataset
from miaudit.errors import ModelError
from miaudit.models import Recipe, check_input, train_models


@pytest.mark.parametrize(
    "recipe",
    [Recipe(model="mlp", hidden=16, epochs=2), Recipe(model="random-forest", n_estimators=5)],
)
def test_model_k_predicts_what_the_set_predicts(recipe, digits, train_sets):
    X, y = digits
    models = train_models(recipe, X, y, 10, train_sets, [0, 1, 2, 3])
    assert models.n_models == len(models) == 4
    p, log_p = models.predict_proba(X), models.predict_log_proba(X)
    for k in range(4):
        clf = models.model(k)
        assert clf.recipe == recipe and clf.input_shape == (64,) and clf.n_classes == 10
        np.testing.assert_allclose(clf.predict_proba(X), p[k], atol=1e-6)
        np.testing.assert_allclose(clf.predict_log_proba(X), log_p[k], atol=1e-5)
    with pytest.raises(IndexError):
        models.model(4)


def _dataset(X: np.ndarray, n_classes: int) -> Dataset:
    names = [str(c) for c in range(n_classes)]
    return Dataset("d", X, np.zeros(len(X), dtype=np.int64), names, ["x"])


def test_check_input_names_the_mismatch(digits, train_sets):
    X, y = digits
    clf = train_models(Recipe(model="mlp", hidden=8, epochs=1), X, y, 10, train_sets[:1], [0])
    check_input(clf, _dataset(X, 10))
    check_input(clf.model(0), (64,))
    with pytest.raises(
        ModelError,
        match=r"^model expects 64 features, data has 512: was it trained on another data set",
    ):
        check_input(clf.model(0), _dataset(np.zeros((3, 512), np.float32), 10))
    with pytest.raises(ModelError, match=r"model predicts 10 classes, data has 46"):
        check_input(clf, _dataset(X, 46))
    with pytest.raises(ModelError, match=r"expects 64 features, data has 784 \(records of shape"):
        check_input(clf, (1, 28, 28))
    images = train_models(
        Recipe(model="cnn", filters=2, hidden=4, epochs=1), X.reshape(-1, 1, 8, 8), y, 10,
        train_sets[:1], [0],
    )  # fmt: skip
    with pytest.raises(ModelError, match=r"expects records of shape \(1, 8, 8\), data has \(64,\)"):
        check_input(images, (64,))


def test_predicting_on_the_wrong_width_is_a_model_error(digits, train_sets):
    X, y = digits
    clf = train_models(Recipe(model="mlp", hidden=8, epochs=1), X, y, 10, train_sets[:1], [0])
    with pytest.raises(ModelError, match="model expects 64 features, data has 63"):
        clf.model(0).predict_proba(X[:, :63])
