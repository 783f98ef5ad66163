"""QMIA, quantile-regression membership inference (Bertran et al., NeurIPS 2023).

Position in the pipeline: ``signals -> attack -> scores``. No shadow models: the
attacker asks the target about public records it never trained on, computes each
one's score ``s(x, y)`` (the hinge ``log p_y - log max_{j != y} p_j`` of the target's
answer), and fits a quantile regressor ``q(x, y)`` predicting, from the record and its
class, the ``1 - fpr`` quantile of that score among non-members. A record is then
scored by its margin ``s(x, y) - q(x, y)``: a non-member exceeds its own quantile
with probability ``fpr``, so the margin's natural cut at 0 holds the false-positive
rate at about ``fpr`` record by record, and records that are easy for every model
(high scores whether seen or not) are not mistaken for members.

The regressor is scikit-learn's histogram gradient boosting with the pinball loss,
on the record's features (as the model reads them, flattened) and its one-hot class.
"""

from __future__ import annotations

import warnings
from typing import Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from miaudit.attacks.base import Attack, AttackInputs, Needs, check_fitted
from miaudit.signals import TINY

__all__ = ["QMIA", "QMIASettings", "hinge"]


def hinge(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``log p_y - log max_{j != y} p_j`` of each prediction vector (clipped at TINY)."""
    P = np.asarray(P, dtype=np.float64)
    y = np.asarray(y)
    rows = np.arange(len(P))
    p_y = P[rows, y]
    others = P.copy()
    others[rows, y] = -np.inf
    return np.log(np.maximum(p_y, TINY)) - np.log(np.maximum(others.max(axis=1), TINY))


class QMIASettings(BaseModel):
    """QMIA's settings (``[attacks.qmia]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fpr: float = Field(
        default=0.01,
        gt=0,
        lt=0.5,
        description="the false-positive rate whose score quantile is regressed (its cut at 0 "
        "calls about this share of non-members members)",
    )
    public: int = Field(
        default=5000,
        ge=100,
        description="records the target never saw, drawn from the attacker's pool and asked "
        "of the target (fewer when the pool is smaller)",
    )
    max_iter: int = Field(default=200, ge=10, description="boosting rounds of the regressor")
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    max_leaf_nodes: int = Field(default=15, ge=2)


class QMIA(Attack):
    """Margin of the target's hinge score over its predicted non-member quantile."""

    name = "qmia"
    section = "qmia"
    Config = QMIASettings
    summary = (
        "Bertran et al.'s quantile regression: no shadows; a regressor on public non-members "
        "predicts each record's score quantile"
    )

    def needs(self) -> Needs:
        return Needs(public=self.config.public, features=True)

    @staticmethod
    def _design(X: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
        flat = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        return np.hstack([flat, np.eye(n_classes, dtype=np.float32)[y]])

    def fit(self, inputs: AttackInputs) -> Self:
        c = self.config
        n_classes = inputs.target_probs.shape[1]
        design = self._design(inputs.public_features, inputs.public_labels, n_classes)
        target = hinge(inputs.public_outputs, inputs.public_labels)
        self.regressor_ = HistGradientBoostingRegressor(
            loss="quantile",
            quantile=1.0 - c.fpr,
            max_iter=c.max_iter,
            learning_rate=c.learning_rate,
            max_leaf_nodes=c.max_leaf_nodes,
            early_stopping=False,
            random_state=int(inputs.seed % 2**32),
        )
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.regressor_.fit(design, target)
        # How well the quantile holds on the records it was fitted on.
        self.fitted_exceed_ = float((target > self.regressor_.predict(design)).mean())
        return self

    def score(self, inputs: AttackInputs) -> np.ndarray:
        check_fitted(self, "regressor_")
        n_classes = inputs.target_probs.shape[1]
        design = self._design(inputs.features, inputs.labels, n_classes)
        with threadpool_limits(limits=1):
            quantile = self.regressor_.predict(design)
        self.notes_ = {
            "fpr": self.config.fpr,
            "public_records": len(inputs.public_labels),
            "public_above_quantile": self.fitted_exceed_,
        }
        return hinge(inputs.target_probs, inputs.labels) - quantile

    @property
    def decision_threshold(self) -> float:
        return 0.0
