"""The boundary-distance attack: label queries only, format kept, a planted leak found."""

from __future__ import annotations

import numpy as np
import pytest

import miaudit
from miaudit.attacks.base import AttackInputs, RecordFormat
from miaudit.attacks.boundary import Boundary
from miaudit.attacks.label_only import gap_scores
from miaudit.errors import ConfigError
from miaudit.metrics import auc


def _inputs(X, y, oracle, fmt, seed=0):
    P = oracle(X)
    return AttackInputs(
        np.zeros((0, P.shape[1])), np.zeros(0, int), np.zeros(0, bool), P, y, n_eval=len(y),
        features=X, oracle=oracle, format=fmt, seed=seed,
    )  # fmt: skip


def test_boundary_finds_a_leak_the_gap_attack_misses():
    """A target reliable only near its training records: around each member its label
    is the rule's within a ball; elsewhere it follows the rule with fine-grained errors.
    A non-member labelled right by luck sits next to a label change; a member does not."""
    rng = np.random.default_rng(0)
    n, d = 1000, 3
    X = (3 * rng.normal(size=(n, d))).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    member = np.arange(n) < n // 2
    M = X[member]

    def oracle(Z):
        Z = Z.reshape(len(Z), -1)
        rule = (Z[:, 0] > 0).astype(int)
        near = ((Z[:, None, :] - M[None]) ** 2).sum(-1).min(axis=1) < 0.25
        cell = np.floor(Z / 0.25).astype(np.int64)
        wrong = (cell * np.array([73856093, 19349663, 83492791])).sum(axis=1) % 7 < 3
        return np.eye(2)[np.where(near, rule, rule ^ wrong)]

    fmt = RecordFormat([np.array([j]) for j in range(d)], image=False)
    gap = gap_scores(oracle(X), y)
    for path in ("towards", "noise"):
        attack = Boundary(directions=6, path=path)
        scores = attack.score(_inputs(X, y, oracle, fmt))
        assert auc(scores, member) > auc(gap, member) + 0.08, path
        # Misclassified records score 0; every query was counted.
        assert (scores[gap == 0] == 0).all()
        assert 0 < attack.notes_["queries"] <= n * 6 * (8 + 6)
    # A noise path is no longer than its reach.
    assert scores.max() <= attack.reach_


def test_paths_keep_one_hot_blocks_and_pixels_valid():
    rng = np.random.default_rng(1)
    # A table: two numeric columns and a one-hot block of three.
    X = np.zeros((50, 5), np.float32)
    X[:, :2] = rng.normal(size=(50, 2))
    X[np.arange(50), 2 + rng.integers(0, 3, 50)] = 1.0
    seen = []

    def table_oracle(Z):
        block = Z[:, 2:]
        assert set(np.unique(block)) <= {0.0, 1.0} and (block.sum(axis=1) == 1).all()
        seen.append(Z)
        return np.eye(2)[(Z[:, 0] + 2 * Z[:, 2] > 0).astype(int)]

    fmt = RecordFormat([np.array([0]), np.array([1]), np.array([2, 3, 4])], image=False)
    y = table_oracle(X).argmax(axis=1)
    Boundary(directions=4, steps=5).score(_inputs(X, y, table_oracle, fmt))
    # Categories do switch along the paths.
    assert any((Z[:, 2:].argmax(axis=1) != 0).any() for Z in seen)

    images = rng.random((20, 1, 4, 4)).astype(np.float32)

    def image_oracle(Z):
        assert Z.shape[1:] == (1, 4, 4) and Z.min() >= 0.0 and Z.max() <= 1.0
        return np.eye(2)[(Z.reshape(len(Z), -1).mean(axis=1) > 0.5).astype(int)]

    y = image_oracle(images).argmax(axis=1)
    Boundary(directions=3, steps=4).score(_inputs(images, y, image_oracle, RecordFormat([], True)))


def test_boundary_queries_count_against_the_budget_before_training():
    # 150 + 150 evaluated records, each up to 2 × (4 + 3) queries: 300 + 4,200 at most.
    with pytest.raises(ConfigError, match="cannot cover the 4500 queries"):
        miaudit.audit(
            dataset="digits", target_size=150, shadows=2, query_budget=2000,
            attacks={"run": ["boundary"], "boundary": {"directions": 2, "scan": 4, "steps": 3}},
        )  # fmt: skip
