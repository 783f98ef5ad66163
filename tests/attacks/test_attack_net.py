"""Shokri's attack networks trained as one stack: each model's result is its own, and
the stack is as strong as the learners fitted one by one."""

from __future__ import annotations

import numpy as np
import pytest
from test_shokri import N_CLASSES, make_split

from miaudit.attacks import ShokriAttack
from miaudit.attacks import attack_net as an
from miaudit.errors import ModelError
from miaudit.metrics import auc


def _tasks(seed: int = 0):
    """Four tasks of different sizes (so different step counts) and widths."""
    rng = np.random.default_rng(seed)
    tasks = []
    for n, d in [(900, 5), (120, 6), (3000, 5), (400, 3)]:
        member = rng.random(n) < 0.5
        X = rng.normal(size=(n, d)) + 0.8 * member[:, None]
        tasks.append((X, member))
    return tasks


def test_models_give_the_same_scores_together_or_one_by_one(monkeypatch):
    monkeypatch.setattr(an, "MIN_STEPS", 40)
    monkeypatch.setattr(an, "MAX_STEPS", 300)
    monkeypatch.setattr(an, "EPOCHS", 20)
    tasks = _tasks()
    seeds = [11, 12, 13, 14]
    steps = [an.steps_for(len(m)) for _, m in tasks]
    assert len(set(steps)) == 3  # the stack shrinks as models finish
    together = an.fit_attack_nets(tasks, seeds, width=6)
    probe = np.random.default_rng(1).normal(size=(200, 6))
    for k, (X, m) in enumerate(tasks):
        alone = an.fit_attack_nets([(X, m)], [seeds[k]], width=6)
        a = together.p_member(k, probe[:, : X.shape[1]])
        b = alone.p_member(0, probe[:, : X.shape[1]])
        np.testing.assert_allclose(a, b, atol=1e-5)
        # And each learned its own task: members score higher.
        p = together.p_member(k, X)
        assert auc(p, m) > 0.65
    # Another seed is another model.
    other = an.fit_attack_nets(tasks[:1], [99], width=6)
    assert np.abs(other.p_member(0, probe[:, :5]) - together.p_member(0, probe[:, :5])).max() > 1e-3


def test_the_step_rule():
    assert an.steps_for(10) == an.MIN_STEPS
    assert an.steps_for(10**7) == an.MAX_STEPS
    n = 20_000
    assert an.steps_for(n) == int(np.ceil(an.EPOCHS * n / an.BATCH))


def test_the_stacked_network_matches_gradient_boosting_on_a_planted_leak():
    # About 4,000 shadow records per class; the leak raises the true class's logit.
    shadow = make_split(20_000, seed=21, boost_member=3.5, boost_nonmember=2.0)
    p, y, m = make_split(8000, seed=22, boost_member=3.5, boost_nonmember=2.0)
    gbdt = auc(ShokriAttack(learner="gbdt", seed=0).fit(*shadow).score(p, y), m)
    net = auc(ShokriAttack(learner="nn", seed=0).fit(*shadow).score(p, y), m)
    # AUC's noise here is about 0.005 (8,000 records).
    assert gbdt > 0.65
    assert net > gbdt - 0.01, (net, gbdt)


def test_a_class_dependent_leak_is_found_per_class():
    # Only class 0 leaks; per-class networks must find it where the pooled model sees
    # little (as the logistic-regression test in test_shokri.py does).
    member_boost = np.array([5.0, 2.0, 2.0, 2.0, 2.0])
    shadow = make_split(10_000, seed=31, boost_member=member_boost, boost_nonmember=2.0)
    p, y, m = make_split(6000, seed=32, boost_member=member_boost, boost_nonmember=2.0)
    scores = ShokriAttack(learner="nn", seed=0).fit(*shadow).score(p, y)
    leaky = y == 0
    assert auc(scores[leaky], m[leaky]) > 0.8
    assert abs(auc(scores[~leaky], m[~leaky]) - 0.5) < 0.05


def test_fitting_reports_progress_in_model_steps():
    seen = []
    shadow = make_split(3000, seed=41)
    ShokriAttack(learner="nn", seed=0).fit(*shadow, progress=lambda d, t: seen.append((d, t)))
    total = an.steps_for(3000) + N_CLASSES * an.steps_for(600)  # about 600 per class
    assert len(seen) >= 10 and {t for _, t in seen} == {seen[-1][0]}
    assert abs(seen[-1][0] - total) <= N_CLASSES * 20
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_missing_gpu_is_one_line():
    shadow = make_split(600, seed=51)
    with pytest.raises(ModelError, match="no CUDA GPU"):
        ShokriAttack(learner="nn", device="cuda").fit(*shadow)
