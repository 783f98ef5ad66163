"""The model under audit, seen only through its prediction vectors.

Position in the pipeline: ``splits -> target -> signals``. A target is anything
with ``predict_proba(X) -> P`` whose rows are probability vectors. The attack
never sees a target's parameters; the auditor additionally knows which records
were its members (to evaluate the attack, never to train it).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from miaudit.errors import ModelError, QueryBudgetError, key


@runtime_checkable
class Target(Protocol):
    """Black-box query access: records in, one probability vector per record out."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


class LocalTarget:
    """A model in this process (trained here or loaded from a file) as a target.

    Parameters
    ----------
    model:
        Anything with ``predict_proba``; a :class:`miaudit.models.Classifier` usually.
    n_classes:
        Width every answer must have.
    query_budget:
        Most records this target answers; more raise :class:`QueryBudgetError` (as a
        paid API would refuse), so an audit's query accounting is checked locally too.
    """

    def __init__(self, model, n_classes: int, *, query_budget: int | None = None) -> None:
        self.model = model
        self.n_classes = n_classes
        self.query_budget = query_budget
        self.queries_ = 0

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.query_budget is not None and self.queries_ + len(X) > self.query_budget:
            raise QueryBudgetError(
                f"the query budget of {self.query_budget} is spent ({self.queries_} asked, "
                f"{len(X)} more needed): raise {key('query_budget')}"
            )
        P = np.asarray(self.model.predict_proba(X), dtype=np.float64)
        self.queries_ += len(X)
        check_probabilities(P, len(X), self.n_classes, source="the target model")
        return P


def check_probabilities(P: np.ndarray, n: int, n_classes: int, *, source: str) -> None:
    """Refuse answers that are not ``n`` probability vectors of width ``n_classes``."""
    if P.shape != (n, n_classes):
        raise ModelError(
            f"{source} answered an array of shape {P.shape} for {n} records; expected "
            f"({n}, {n_classes}): does it predict the data set's {n_classes} classes?"
        )
    if not np.isfinite(P).all():
        raise ModelError(f"{source} answered NaN or infinite probabilities")
    if (P < -1e-6).any() or not np.allclose(P.sum(axis=1), 1.0, atol=1e-3):
        raise ModelError(f"{source} answered rows that are not probability vectors (sum != 1)")
