"""Per-record signals computed from prediction vectors, and reference-model signals.

Position in the pipeline: ``target / shadows -> signals -> attack``. From here on
everything is NumPy: a signal is a function of a model's probability vector on
a record and the record's true label, computed the same way for the target and
for every shadow (reference) model.

All functions take probabilities of shape ``(..., C)`` and labels broadcastable
to ``(...)`` and return ``(...)``, so they apply to one model's ``(n, C)`` outputs
and to ``K`` models' ``(K, n, C)`` outputs alike.

**Every signal comes from log-probabilities** (:func:`log_probabilities`), computed
so that no record loses its place to rounding. A black-box target answers
probabilities, often in float32, where a confident model's top probability rounds to
exactly 1.0 (for some 7 % of an MLP's training records) although the other classes'
probabilities still say how confident it is: the loss, the confidence and the
entropies of all those records would tie. So the top class's log-probability is
``-log1p(sum of the others / p_top)`` (``log p_top`` normalised, without forming
``1 - p_top``), the others' ``log p_j`` normalised by the row's sum, and each class's
``log(1 - p_j)`` likewise from what the vector says. Logarithms are clipped at
``log`` :data:`TINY` (about float32's smallest normal number: a float32 softmax cannot
say more than that a probability is below it). A row that does not sum to 1 (a
rounding policy) is read as the distribution it is proportional to.

The logit-scaled confidence LiRA uses, ``log p_y - log(1 - p_y)``, is computed
as ``log p_y - log(sum_{j != y} p_j)``, which needs no normalisation.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

#: Smallest probability a signal distinguishes (float32's smallest normal number).
TINY = float(np.finfo(np.float32).tiny)
LOG_TINY = float(np.log(TINY))

SIGNALS = ("loss", "confidence", "entropy", "mentr")


def _true(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    y = np.broadcast_to(np.asarray(y), P.shape[:-1])
    return np.take_along_axis(P, y[..., None], axis=-1)[..., 0]


def log_probabilities(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log p, log(1 - p))`` of every class, each ``(..., C)``, accurate at both ends.

    The top class's are computed from the sum of the other classes' probabilities
    (``log p_top = -log1p(rest / p_top)``, ``log(1 - p_top) = log(rest / total)``), so a
    probability that rounds to 1.0 keeps what the others say; the other classes'
    from their own probability (``log(p_j / total)``, ``log1p(-p_j / total)``). Both
    are clipped at :data:`LOG_TINY`.
    """
    return _log_pair(*_row_parts(P))


def _row_parts(P: np.ndarray):
    """``(P, total, p_top, rest, is_top)`` of :func:`log_probabilities`: the rows in
    float64, their sums, top entries, the sums of the others, and where the top is."""
    P = np.maximum(np.asarray(P, dtype=np.float64), 0.0)
    total = np.maximum(P.sum(axis=-1, keepdims=True), TINY)
    top = P.argmax(axis=-1)[..., None]
    is_top = np.arange(P.shape[-1]) == top
    p_top = np.take_along_axis(P, top, axis=-1)
    # The others, added up directly: neither total - p_top nor 1 - p_top, which cancel.
    rest = np.where(is_top, 0.0, P).sum(axis=-1, keepdims=True)
    return P, total, p_top, rest, is_top


def _log_pair(p, total, p_top, rest, is_top) -> tuple[np.ndarray, np.ndarray]:
    """``(log p, log(1 - p))`` of entries ``p`` of rows with sum ``total``, top entry
    ``p_top`` and the others' sum ``rest`` (``is_top``: ``p`` is the top entry): from
    ``rest`` for the top entry, from ``p`` itself for the others; clipped at
    :data:`LOG_TINY`. Every argument broadcasts against ``p``."""
    with np.errstate(divide="ignore"):
        log_1mp = np.where(
            is_top,
            np.log(np.maximum(rest, TINY)) - np.log(total),
            np.log1p(-np.minimum(p / total, 1.0)),
        )
    return _log_p(p, total, p_top, rest, is_top), np.maximum(log_1mp, LOG_TINY)


def _log_p(p, total, p_top, rest, is_top) -> np.ndarray:
    """The ``log p`` of :func:`_log_pair` alone, for the entropy, which needs no
    ``log(1 - p)`` (that took some 40 % of its time)."""
    with np.errstate(divide="ignore"):
        log_p = np.where(
            is_top,
            -np.log1p(rest / np.maximum(p_top, TINY)),
            np.log(np.maximum(p, TINY)) - np.log(total),
        )
    return np.maximum(log_p, LOG_TINY)


#: Rows (prediction vectors) the true-class signals work through at a time: their
#: temporaries stay a few tens of MB whatever the number of models and records.
BLOCK_ROWS = 1 << 14


def _true_logs(P: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log p_y, log(1 - p_y))`` of :func:`log_probabilities`, the same numbers, for
    the true class alone: the logarithms of one entry per row rather than of all C
    (a tenth of the time at 46 classes), in blocks of :data:`BLOCK_ROWS` rows, so an
    array of K models' outputs is never copied whole to float64."""
    return by_blocks(_true_logs_block, P, y, outputs=2)


def _each_block(work, n_rows: int) -> None:
    """``work(rows)`` for every block of :data:`BLOCK_ROWS` rows, on one thread per
    core when there are several blocks (NumPy's array operations release the GIL;
    each block writes its own rows of the output, so the numbers do not depend on
    the threads)."""
    blocks = [slice(a, a + BLOCK_ROWS) for a in range(0, n_rows, BLOCK_ROWS)]
    threads = min(len(blocks), _cores())
    if threads <= 1:
        for rows in blocks:
            work(rows)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="miaudit-signals") as pool:
        for done in pool.map(work, blocks):
            del done


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _true_logs_block(P: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # The operations of log_probabilities, entry for entry, on the true class only.
    P = np.maximum(P.astype(np.float64), 0.0)
    n = np.arange(P.shape[0])
    total = np.maximum(P.sum(axis=-1), TINY)
    top = P.argmax(axis=-1)
    p_top = P[n, top]
    P[n, top] = 0.0
    rest = P.sum(axis=-1)
    P[n, top] = p_top
    return _log_pair(P[n, y], total, p_top, rest, top == y)


def log_true_probability(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``log p_y`` (see :func:`log_probabilities`)."""
    return _true_logs(P, y)[0]


def true_class_parts(P: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(p_y, 1 - p_y)``, each accurate where it is small (see :func:`log_probabilities`):
    the pair a caller needs to average probabilities near 1 without losing them."""
    log_p, log_1mp = _true_logs(P, y)
    return np.exp(log_p), np.exp(log_1mp)


def true_class_probability(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``p_y``: the probability the model gives the true class (normalised)."""
    return np.exp(log_true_probability(P, y))


def cross_entropy(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The loss ``-log p_y``."""
    return -log_true_probability(P, y)


def logit_confidence(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """LiRA's ``φ = log(p_y / (1 - p_y))``, stable near ``p_y = 1`` (see module notes);
    :data:`BLOCK_ROWS` rows at a time, so K models' outputs are not copied to float64."""
    return by_blocks(_logit_block, P, y)


def _logit_block(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    P = np.asarray(P, dtype=np.float64)
    p_y = _true(P, y)
    # The sum of the others, added up directly: neither 1 - p_y nor sum(P) - p_y,
    # which both cancel to 0 when p_y rounds to 1. A row that does not sum to 1 (a
    # rounding policy) still gives the ratio of what it says.
    is_true = np.arange(P.shape[-1]) == y[..., None]
    rest = np.where(is_true, 0.0, P).sum(axis=-1)
    return np.log(np.maximum(p_y, TINY)) - np.log(np.maximum(rest, TINY))


def by_blocks(fn, P: np.ndarray, y: np.ndarray | None = None, outputs: int = 1):
    """``fn(rows, labels)`` of every row of ``P`` (``(..., C)``), :data:`BLOCK_ROWS`
    rows at a time, as ``(...)`` float64 (a tuple of ``outputs`` such arrays when
    ``fn`` returns that many): the ``(..., C)`` temporaries of a signal over K
    models' outputs stay the size of one block."""
    P = np.asarray(P)
    shape = P.shape[:-1]
    flat = P.reshape(-1, P.shape[-1])
    labels = None if y is None else np.broadcast_to(np.asarray(y), shape).reshape(-1)
    out = [np.empty(flat.shape[0]) for _ in range(outputs)]

    def block(rows: slice) -> None:
        parts = fn(flat[rows], None if labels is None else labels[rows])
        for o, part in zip(out, parts if outputs > 1 else (parts,), strict=True):
            o[rows] = part

    _each_block(block, flat.shape[0])
    arrays = tuple(o.reshape(shape) for o in out)
    return arrays if outputs > 1 else arrays[0]


def entropy(P: np.ndarray) -> np.ndarray:
    """Shannon entropy of each prediction vector (nats)."""
    return by_blocks(_entropy_block, P)


def _entropy_block(P: np.ndarray, _y: None) -> np.ndarray:
    log_p = _log_p(*_row_parts(P))
    return -(np.exp(log_p) * log_p).sum(axis=-1)


def modified_entropy(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Song & Mittal's modified entropy (USENIX Security 2021, eq. 3):

    ``Mentr(p, y) = -(1 - p_y) log p_y - sum_{j != y} p_j log(1 - p_j)``.

    It is small for confident correct predictions and large for confident wrong
    ones, unlike the entropy, which is small for both.
    """
    return by_blocks(_mentr_block, P, y)


def _mentr_block(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    log_p, log_1mp = log_probabilities(P)
    y = np.broadcast_to(np.asarray(y), log_p.shape[:-1])
    is_true = np.arange(log_p.shape[-1]) == y[..., None]
    own = -np.exp(_true(log_1mp, y)) * _true(log_p, y)
    others = -np.where(is_true, 0.0, np.exp(log_p) * log_1mp).sum(axis=-1)
    return own + others


def member_signal(name: str, P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The signal ``name`` oriented so that higher means "more likely a member".

    ``confidence`` is ``p_y - 1``, computed as ``-(1 - p_y)`` from the other classes
    (:func:`true_class_parts`): the true class's probability, less 1, so that
    confidences which round to 1 in float64 too keep their order.
    """
    match name:
        case "loss":
            return -cross_entropy(P, y)
        case "confidence":
            return -true_class_parts(P, y)[1]
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
