"""Label-only attacks: the gap attack and label robustness under perturbation."""

from __future__ import annotations

import numpy as np

from miaudit.attacks.label_only import gap_scores, perturb, robustness_scores


def test_gap_is_correctness():
    P = np.array([[0.9, 0.1], [0.4, 0.6], [0.0, 1.0]])
    np.testing.assert_array_equal(gap_scores(P, [0, 0, 1]), [1, 0, 1])


def test_robustness_counts_surviving_labels():
    P0 = np.array([[1, 0], [1, 0]], float)
    copies = np.array([[[1, 0], [0, 1]], [[1, 0], [1, 0]], [[0, 1], [0, 1]]], float)
    # Record 0: original + copies 0, 1 correct -> 3/4; record 1: original + copy 1 -> 2/4.
    np.testing.assert_allclose(robustness_scores(P0, copies, [0, 0]), [0.75, 0.5])


def test_perturbations_keep_the_data_format():
    rng = np.random.default_rng(0)
    groups = [np.array([0]), np.array([1, 2, 3]), np.array([4])]
    X = np.zeros((50, 5), np.float32)
    X[:, 1] = 1.0
    out = perturb(X, groups, image=False, copies=4, noise=0.9, rng=rng)
    assert out.shape == (4, 50, 5)
    np.testing.assert_array_equal(out[..., 1:4].sum(-1), 1.0)  # still one category
    assert (out[..., 2:4].sum() > 0) and out[..., 0].std() > 0.5
    img = perturb(np.full((3, 1, 4, 4), 0.5, np.float32), [], image=True, copies=2, noise=3.0,
                  rng=rng)  # fmt: skip
    assert img.shape == (2, 3, 1, 4, 4) and img.min() >= 0 and img.max() <= 1
