"""scikit-learn recipes: all classes in label order, finite logs, the l2 mapping."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.errors import ModelError
from miaudit.models import Recipe, train_models
from miaudit.models.sklearn_models import PROBA_FLOOR, make_estimator

SMALL = {
    "logistic-regression": Recipe(model="logistic-regression"),
    "random-forest": Recipe(model="random-forest", n_estimators=10),
    "gradient-boosting": Recipe(model="gradient-boosting", n_estimators=5, max_depth=3),
    "sklearn-mlp": Recipe(model="sklearn-mlp", hidden=16, epochs=5),
}


@pytest.mark.parametrize("name", list(SMALL))
def test_missing_class_gets_its_own_column_in_label_order(name, digits):
    X, y = digits
    idx = np.flatnonzero(y != 3)[:300]  # class 3 never seen
    models = train_models(SMALL[name], X, y, 10, [idx], [0])
    estimator = models.model(0).estimator
    assert list(estimator.classes_) == [0, 1, 2, 4, 5, 6, 7, 8, 9]

    p = models.predict_proba(X)[0]
    log_p = models.predict_log_proba(X)[0]
    assert p.shape == (1797, 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert np.isfinite(log_p).all()
    # The unseen class holds only the floor; the others keep the estimator's ranking.
    assert p[:, 3].max() <= PROBA_FLOOR * 1.0001
    raw = estimator.predict_proba(X)
    seen = [0, 1, 2, 4, 5, 6, 7, 8, 9]
    np.testing.assert_array_equal(p[:, seen].argmax(axis=1), raw.argmax(axis=1))
    np.testing.assert_allclose(p[:, seen], np.maximum(raw, PROBA_FLOOR), atol=1e-6)


def test_exact_zero_probabilities_are_floored(digits):
    X, y = digits
    forest = train_models(SMALL["random-forest"], X, y, 10, [np.arange(300)], [0])
    estimator = forest.model(0).estimator
    assert (estimator.predict_proba(X) == 0).any()  # forests do return exact zeros
    assert forest.predict_log_proba(X).min() >= np.log(PROBA_FLOOR) - 1e-3


def test_same_seed_same_forest_different_seed_different(digits):
    X, y = digits
    idx = [np.arange(300)] * 3
    p = train_models(SMALL["random-forest"], X, y, 10, idx, [4, 4, 5]).predict_proba(X)
    np.testing.assert_array_equal(p[0], p[1])
    assert not np.array_equal(p[0], p[2])


def test_l2_maps_to_the_documented_parameters():
    lr = make_estimator(Recipe(model="logistic-regression", l2=1e-3), seed=0, n_train=500)
    assert pytest.approx(1.0 / (2 * 1e-3 * 500)) == lr.C
    assert np.isinf(make_estimator(Recipe(model="logistic-regression", l2=0.0), 0, 500).C)
    mlp = make_estimator(Recipe(model="sklearn-mlp", l2=1e-3, batch_size=50), 0, 500)
    assert pytest.approx(2 * 1e-3 * 50) == mlp.alpha


def test_sklearn_mlp_runs_exactly_the_recipe_epochs(digits):
    X, y = digits
    models = train_models(SMALL["sklearn-mlp"], X, y, 10, [np.arange(300)], [0])
    assert models.model(0).estimator.n_iter_ == SMALL["sklearn-mlp"].epochs


def test_single_class_training_set_is_refused(digits):
    X, y = digits
    only_zeros = np.flatnonzero(y == 0)[:20]
    with pytest.raises(ModelError, match=r"training set 1 holds only class 0: .* at least two"):
        train_models(SMALL["logistic-regression"], X, y, 10, [np.arange(50), only_zeros], [0, 1])
