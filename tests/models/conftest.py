"""Small data for the model tests: scikit-learn's digits (1,797 records, 10 classes)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """``X`` ``(1797, 64)`` float32 in [0, 1], ``y`` int64."""
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="session")
def digit_images(digits) -> tuple[np.ndarray, np.ndarray]:
    """The same records as ``(1797, 1, 8, 8)`` images."""
    X, y = digits
    return X.reshape(-1, 1, 8, 8), y


@pytest.fixture()
def train_sets() -> list[np.ndarray]:
    """Four overlapping training sets of 200 records."""
    rng = np.random.default_rng(0)
    return [rng.choice(1797, 200, replace=False) for _ in range(4)]
