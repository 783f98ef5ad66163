"""The model under audit, seen only through its prediction vectors.

Position in the pipeline: ``splits -> target -> signals``. A target is anything
with ``predict_proba(X) -> P`` whose rows are probability vectors. The attack
never sees a target's parameters; the auditor additionally knows which records
were its members (to evaluate the attack, never to train it).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from miaudit.errors import QueryBudgetError, key

# Its home is the models' layer (the user's models check their answers too); still
# importable from here.
from miaudit.models.family import check_probabilities


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
