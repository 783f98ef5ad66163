"""Hill-climbing synthesis (Algorithm 1) against a real target on a small real data set."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.data import load_dataset
from miaudit.errors import ConfigError
from miaudit.models import Recipe, train_models
from miaudit.shadow_data import feature_groups
from miaudit.synthesis import SynthesisConfig, format_sampler, hill_climb, records_needed


@pytest.fixture(scope="module")
def target():
    data = load_dataset("digits")
    recipe = Recipe(model="mlp", epochs=40, batch_size=32, lr=0.003)
    model = train_models(recipe, data.X, data.y, data.n_classes, [np.arange(800)], [0]).model(0)
    return data, model


def test_synthesised_records_are_classified_as_requested(target):
    data, model = target
    groups = feature_groups(data)
    classes = records_needed(40, data.n_classes)
    cfg = SynthesisConfig(k_max=32, k_min=2, conf_min=0.6, rej_max=5, iter_max=300)
    calls = []

    def oracle(X):
        calls.append(len(X))
        return model.predict_proba(X)

    res = hill_climb(
        oracle,
        classes,
        groups,
        format_sampler(groups, data.encoder),
        data.n_features,
        np.random.default_rng(0),
        cfg,
    )
    assert len(res.y) >= 20  # most searches succeed on this easy target
    P = model.predict_proba(res.X)
    assert np.array_equal(P.argmax(axis=1), res.y)
    assert (P[np.arange(len(res.y)), res.y] > cfg.conf_min).all()
    assert np.allclose(P[np.arange(len(res.y)), res.y], res.confidence, atol=1e-5)
    # every query is counted, and no candidate queries more than iter_max times
    assert res.queries == sum(calls) == sum(res.queries_per_class.values())
    assert res.queries <= cfg.iter_max * len(classes)
    assert res.queries_per_record is not None and res.queries_per_record >= 1
    assert set(res.unreached_classes) == {c for c, a in res.accepted_per_class.items() if a == 0}


def test_budget_is_enforced_and_unreached_classes_reported(target):
    data, model = target
    groups = feature_groups(data)
    res = hill_climb(
        model.predict_proba,
        records_needed(20, 10),
        groups,
        format_sampler(groups, data.encoder),
        data.n_features,
        np.random.default_rng(1),
        SynthesisConfig(conf_min=0.99, iter_max=50),
        query_budget=45,
    )
    assert res.queries <= 45
    assert set(res.unreached_classes) | set(res.y.tolist()) == set(range(10))


def test_config_is_validated():
    with pytest.raises(ConfigError, match="k_min"):
        SynthesisConfig(k_min=10, k_max=5)
    with pytest.raises(ConfigError, match="conf_min"):
        SynthesisConfig(conf_min=1.5)
