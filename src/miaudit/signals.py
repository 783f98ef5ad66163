"""Per-record signals computed from prediction vectors, and reference-model signals.

Position in the pipeline: ``target / shadows -> signals -> attack``. From here on
everything is NumPy: a signal is a function of a model's probability vector on
a record and the record's true label, computed the same way for the target and
for every shadow (reference) model.

All functions take probabilities of shape ``(..., C)`` and labels broadcastable
to ``(...)`` and return ``(...)``, so they apply to one model's ``(n, C)`` outputs
and to ``K`` models' ``(K, n, C)`` outputs alike. A black-box target answers
probabilities, not logits, so the log-probabilities here are logarithms of
probabilities, clipped at :data:`TINY` (about float32's smallest normal number:
a float32 softmax cannot say more than that a probability is below it).

The logit-scaled confidence LiRA uses, ``log p_y - log(1 - p_y)``, is computed
as ``log p_y - log(sum_{j != y} p_j)``: when ``p_y`` rounds to 1, ``1 - p_y`` is 0
(or noise), while the sum of the other probabilities keeps the information that
the probabilities do carry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Smallest probability a signal distinguishes (float32's smallest normal number).
TINY = float(np.finfo(np.float32).tiny)

SIGNALS = ("loss", "confidence", "entropy", "mentr")


def _true(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    y = np.broadcast_to(np.asarray(y), P.shape[:-1])
    return np.take_along_axis(P, y[..., None], axis=-1)[..., 0]


def true_class_probability(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``p_y``: the probability the model gives the true class."""
    return _true(np.asarray(P, dtype=np.float64), y)


def log_true_probability(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``log p_y``, clipped at ``log(TINY)``."""
    return np.log(np.maximum(true_class_probability(P, y), TINY))


def cross_entropy(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The loss ``-log p_y``."""
    return -log_true_probability(P, y)


def logit_confidence(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """LiRA's ``φ = log(p_y / (1 - p_y))``, stable near ``p_y = 1`` (see module notes)."""
    P = np.asarray(P, dtype=np.float64)
    y = np.broadcast_to(np.asarray(y), P.shape[:-1])
    p_y = _true(P, y)
    # The sum of the others, added up directly: neither 1 - p_y nor sum(P) - p_y,
    # which both cancel to 0 when p_y rounds to 1. A row that does not sum to 1 (a
    # rounding policy) still gives the ratio of what it says.
    is_true = np.arange(P.shape[-1]) == y[..., None]
    rest = np.where(is_true, 0.0, P).sum(axis=-1)
    return np.log(np.maximum(p_y, TINY)) - np.log(np.maximum(rest, TINY))


def entropy(P: np.ndarray) -> np.ndarray:
    """Shannon entropy of each prediction vector (nats)."""
    P = np.asarray(P, dtype=np.float64)
    return -(P * np.log(np.maximum(P, TINY))).sum(axis=-1)


def modified_entropy(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Song & Mittal's modified entropy (USENIX Security 2021, eq. 3):

    ``Mentr(p, y) = -(1 - p_y) log p_y - sum_{j != y} p_j log(1 - p_j)``.

    It is small for confident correct predictions and large for confident wrong
    ones, unlike the entropy, which is small for both.
    """
    P = np.asarray(P, dtype=np.float64)
    y = np.asarray(y)
    p_y = _true(P, y)
    log_one_minus = np.log(np.maximum(1.0 - P, TINY))
    others = -(P * log_one_minus).sum(axis=-1) + p_y * _true(log_one_minus, y)
    return -(1.0 - p_y) * np.log(np.maximum(p_y, TINY)) + others


def member_signal(name: str, P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The signal ``name`` oriented so that higher means "more likely a member"."""
    match name:
        case "loss":
            return -cross_entropy(P, y)
        case "confidence":
            return true_class_probability(P, y)
        case "entropy":
            return -entropy(P)
        case "mentr":
            return -modified_entropy(P, y)
    raise ValueError(f"unknown signal {name!r}; one of {SIGNALS}")


@dataclass(frozen=True)
class ReferenceSignals:
    """Reference (shadow) models' outputs on a common set of records.

    Attributes
    ----------
    probs:
        ``(K, n, C)`` probabilities of each of ``K`` reference models on each record
        (``(K, n, A, C)`` with ``A`` queries per record, e.g. augmentations).
    member:
        ``(K, n)`` whether each record was in each model's training set.
    labels:
        ``(n,)`` true classes.
    """

    probs: np.ndarray
    member: np.ndarray
    labels: np.ndarray

    @property
    def n_models(self) -> int:
        return int(self.probs.shape[0])

    def subset(self, records: np.ndarray) -> ReferenceSignals:
        return ReferenceSignals(
            self.probs[:, records], self.member[:, records], self.labels[records]
        )
