"""How well an attack's scores separate members from non-members.

Position in the pipeline: ``signals -> attack -> scores -> metrics -> report``.
Every function here is pure NumPy: it takes one score per record (higher means
"more likely a member"), the true membership, and sometimes the records' labels
and a decision threshold, and returns plain numbers. Nothing here trains,
reads files or knows which attack produced the scores.

Two families of measures, following the paper and LiRA's lesson on reporting:

* threshold-free: the ROC curve, its AUC, the TPR at a fixed low FPR (with a
  bootstrap confidence interval) and the lower bound on ε that an operating
  point implies;
* at the attack's own decision threshold (0.5 on P(member) for Shokri's attack):
  precision, recall, accuracy and advantage, overall and per class (the paper's
  figure is the mean over classes).

Conventions
-----------
* A record is predicted a member iff ``score >= threshold``.
* Undefined ratios never become NaN (JSON cannot hold it): precision with no
  record predicted a member is ``0.0`` (scikit-learn's ``zero_division=0``, and
  the conservative reading: no demonstrated leakage); a per-class rate that the
  evaluation set cannot measure (the class has no members or no non-members) is
  ``None`` and is left out of the class means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from miaudit.errors import ConfigError

__all__ = [
    "DEFAULT_FPRS",
    "MIN_FALSE_POSITIVES",
    "AttackMetrics",
    "ConfusionMetrics",
    "Strength",
    "TprInterval",
    "auc",
    "bootstrap_tpr_at_fpr",
    "clopper_pearson",
    "confusion_metrics",
    "epsilon_lower_bound",
    "epsilon_lower_bound_cp",
    "evaluate_attack",
    "fpr_key",
    "mean_class_rates",
    "min_resolvable_fpr",
    "per_class_metrics",
    "precision_at_recall",
    "ranking_fpr",
    "roc_curve",
    "roc_points",
    "tpr_at_fpr",
]

#: The low false-positive rates every report states the TPR at.
DEFAULT_FPRS: tuple[float, ...] = (0.001, 0.01, 0.1)
#: Where a decision threshold came from when an attack learnt none (it scored without
#: shadows): its precision and recall are then optimistic (results.json's
#: ``threshold_from``).
OPTIMISTIC_THRESHOLD = "the evaluated records (optimistic: no shadows to learn it from)"
#: Recalls at which every report states the best precision.
PRECISION_RECALLS: tuple[float, ...] = (0.1, 0.5, 0.9)

# Target FPR times the number of non-members is the number of false positives
# allowed; ``0.01 * 300`` is 3.0000000000000004 in floating point, and without
# the slack ``floor`` would still be right here but ``0.07 * 100`` = 7.000000000000001
# and ``0.29 * 100`` = 28.999999999999996 would not.
_COUNT_SLACK = 1e-9

# Bootstrap replicates are drawn in batches of about this many resampled records
# so that memory stays bounded (a few tens of MB) whatever the data size.


# --------------------------------------------------------------------------- validation


def _as_scores(scores: ArrayLike, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ConfigError(
            f"{name} must be one-dimensional (one score per record); got shape {s.shape}."
        )
    if not (np.issubdtype(s.dtype, np.number) or s.dtype == bool):
        raise ConfigError(f"{name} must be numeric; got dtype {s.dtype}.")
    s = s.astype(np.float64, copy=False)
    n_nan = int(np.isnan(s).sum())
    if n_nan:
        raise ConfigError(
            f"{name} contains {n_nan} NaN value(s); an attack must give every record a score "
            "(check the attack's inputs for NaN or zero-variance statistics)."
        )
    return s


def _as_bool(values: ArrayLike, name: str, n: int | None = None, ref: str = "scores") -> np.ndarray:
    """Boolean 1-D array from booleans or 0/1, of length ``n`` when given."""
    v = np.asarray(values)
    if v.ndim != 1:
        raise ConfigError(f"{name} must be one-dimensional; got shape {v.shape}.")
    if n is not None and v.shape[0] != n:
        raise ConfigError(
            f"{name} has {v.shape[0]} entries but {ref} has {n}; "
            "they must describe the same records."
        )
    if v.dtype == bool:
        return v
    if not np.issubdtype(v.dtype, np.number) or not np.isin(v, (0, 1)).all():
        raise ConfigError(f"{name} must be boolean or 0/1; got values outside {{0, 1}}.")
    return v.astype(bool)


def _check_member(member: ArrayLike, n: int, ref: str = "scores") -> np.ndarray:
    m = _as_bool(member, "member", n, ref)
    n_pos = int(m.sum())
    if n_pos == 0:
        raise ConfigError("member has no members (all False); the evaluation set needs both.")
    if n_pos == m.shape[0]:
        raise ConfigError("member has no non-members (all True); the evaluation set needs both.")
    return m


def _check_binary(scores: ArrayLike, member: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = _as_scores(scores)
    return s, _check_member(member, s.shape[0])


def _check_labels(labels: ArrayLike, n: int, class_names: Sequence[str]) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ConfigError(f"labels must have one entry per record ({n}); got shape {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"labels must be integer class indices; got dtype {y.dtype}.")
    y = y.astype(np.int64, copy=False)
    n_classes = len(class_names)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ConfigError(
            f"labels must lie in 0 .. {n_classes - 1} (one per class name); "
            f"got values from {y.min()} to {y.max()}."
        )
    return y


def _check_fpr(fpr: float) -> float:
    f = float(fpr)
    if not 0.0 <= f <= 1.0:
        raise ConfigError(f"a false-positive rate must lie in [0, 1]; got {fpr}.")
    return f


def _allowed_false_positives(fprs: np.ndarray, n_neg: int) -> np.ndarray:
    return np.floor(fprs * n_neg + _COUNT_SLACK).astype(np.int64)


def false_positive_budget(fpr: float, n_nonmembers: int) -> int:
    """How many false positives a rate ``fpr`` allows among ``n_nonmembers`` (the count
    :func:`tpr_at_fpr` reads its operating point at)."""
    return int(_allowed_false_positives(np.array([_check_fpr(fpr)]), int(n_nonmembers))[0])


# --------------------------------------------------------------------------- ROC


def _roc_counts(s: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False/true positive counts at each distinct score, from the highest down."""
    order = np.argsort(s, kind="stable")[::-1]
    s_desc = s[order]
    m_desc = m[order]
    # `!=` rather than `np.diff`: inf - inf is NaN and would split a run of +inf scores.
    run_ends = np.append(np.flatnonzero(s_desc[1:] != s_desc[:-1]), s_desc.size - 1)
    tps = np.cumsum(m_desc)[run_ends]
    fps = (run_ends + 1) - tps
    return (
        np.concatenate(([0], fps)),
        np.concatenate(([0], tps)),
        np.concatenate(([np.inf], s_desc[run_ends])),
    )


def roc_curve(scores: ArrayLike, member: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve with one point per distinct score.

    Parameters
    ----------
    scores:
        One score per record; higher means more likely a member. NaN is refused.
    member:
        True membership, boolean or 0/1, same length.

    Returns
    -------
    fpr, tpr, thresholds:
        Arrays of equal length ``n_distinct_scores + 1``. Point ``i`` is what the
        rule ``score >= thresholds[i]`` achieves. The first point is ``(0, 0)``
        with threshold ``+inf`` (nothing predicted a member); the last is
        ``(1, 1)`` at the lowest score. Tied scores give a single point, because
        no threshold can separate them. Matches
        ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.

    Raises
    ------
    ConfigError
        Length mismatch, NaN scores, or no members / no non-members.
    """
    s, m = _check_binary(scores, member)
    fps, tps, thresholds = _roc_counts(s, m)
    return fps / fps[-1], tps / tps[-1], thresholds


def auc(scores: ArrayLike, member: ArrayLike) -> float:
    """Area under the ROC curve (trapezoid rule over :func:`roc_curve`).

    Equals the Mann–Whitney probability that a random member scores higher than
    a random non-member, counting ties as one half; 0.5 is chance.
    """
    s, m = _check_binary(scores, member)
    fps, tps, _ = _roc_counts(s, m)
    return _auc_from_counts(fps, tps)


def _auc_from_counts(fps: np.ndarray, tps: np.ndarray) -> float:
    # Integer arithmetic up to the final division keeps tiny AUC differences exact.
    area2 = np.sum(np.diff(fps) * (tps[1:] + tps[:-1]), dtype=np.float64)
    return float(area2 / (2.0 * fps[-1] * tps[-1]))


def _operating_index(fps: np.ndarray, fprs: np.ndarray) -> np.ndarray:
    """Each FPR's operating point on the ROC counts: the most false positives it allows."""
    allowed = _allowed_false_positives(fprs, int(fps[-1]))
    # fps is non-decreasing along the curve and so is tps: the last point whose
    # false-positive count fits the budget has the highest TPR among those that fit.
    return np.searchsorted(fps, allowed, side="right") - 1


def _tpr_at_fprs_from_counts(fps: np.ndarray, tps: np.ndarray, fprs: np.ndarray) -> np.ndarray:
    return tps[_operating_index(fps, fprs)] / tps[-1]


def operating_points(
    scores: ArrayLike, member: ArrayLike, fprs: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """True and false positives at each FPR's operating point (the one
    :func:`tpr_at_fpr` reads, whose counts :func:`evaluate_attack`'s Clopper–Pearson
    bounds use), and the numbers of members and non-members."""
    s, m = _check_binary(scores, member)
    fps, tps, _ = _roc_counts(s, m)
    at = _operating_index(fps, np.array([_check_fpr(f) for f in fprs], dtype=np.float64))
    return tps[at], fps[at], int(tps[-1]), int(fps[-1])


def tpr_at_fpr(scores: ArrayLike, member: ArrayLike, fpr: float) -> float:
    """Highest TPR of any threshold whose FPR does not exceed ``fpr``.

    There is no interpolation between ROC points: a point on the segment between
    two thresholds is reached only by a randomised rule, and interpolating would
    report a rate no threshold achieves (at low FPR, a large over-statement).
    The FPR budget is ``floor(fpr * n_nonmembers)`` false positives.

    Edge cases follow from that definition: all scores equal gives ``0.0`` for
    any ``fpr < 1``; ``fpr == 1`` gives ``1.0``; ``fpr == 0`` gives the TPR of
    the highest-scoring records above every non-member. Below
    :func:`min_resolvable_fpr` the result is the TPR at zero false positives and
    says nothing about the requested rate.

    Raises
    ------
    ConfigError
        ``fpr`` outside [0, 1], or invalid scores / membership (see :func:`roc_curve`).
    """
    f = _check_fpr(fpr)
    s, m = _check_binary(scores, member)
    fps, tps, _ = _roc_counts(s, m)
    return float(_tpr_at_fprs_from_counts(fps, tps, np.array([f]))[0])


def min_resolvable_fpr(n_nonmembers: int) -> float:
    """Smallest FPR an evaluation set with ``n_nonmembers`` non-members can measure.

    One false positive is already a rate of ``1 / n_nonmembers``; a target rate
    below it allows zero false positives, so the TPR reported "at" it is the TPR
    at zero false positives and means nothing about the requested rate.
    """
    n = int(n_nonmembers)
    if n < 1:
        raise ConfigError(f"n_nonmembers must be at least 1; got {n_nonmembers}.")
    return 1.0 / n


def roc_points(
    scores: ArrayLike, member: ArrayLike, max_points: int = 2000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve thinned to at most ``max_points`` points for plotting.

    The first ``max_points // 2`` points (the low-FPR end, which log-log plots
    and TPR-at-low-FPR claims depend on) are kept exactly, as is the final
    ``(1, 1)``; the rest are sampled geometrically in index, which is roughly
    even spacing on a log-FPR axis. Returns ``(fpr, tpr, thresholds)`` like
    :func:`roc_curve`, including the ``+inf`` first threshold.
    """
    if int(max_points) < 4:
        raise ConfigError(f"max_points must be at least 4; got {max_points}.")
    fpr, tpr, thresholds = roc_curve(scores, member)
    n = fpr.size
    if n <= max_points:
        return fpr, tpr, thresholds
    head = max_points // 2
    tail = np.geomspace(head, n - 1, max_points - head).round().astype(np.int64)
    keep = np.unique(np.concatenate((np.arange(head), tail, [n - 1])))
    return fpr[keep], tpr[keep], thresholds[keep]


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class TprInterval:
    """Bootstrap percentile interval for the TPR at one target FPR.

    Attributes
    ----------
    fpr:
        The target false-positive rate.
    tpr:
        Point estimate on the full evaluation set (:func:`tpr_at_fpr`).
    low, high:
        Percentile interval bounds at confidence ``level``.
    level:
        Nominal coverage, e.g. 0.95.
    n_boot:
        Number of bootstrap replicates.
    resolvable:
        False when ``fpr`` is below :func:`min_resolvable_fpr` for the number of
        non-members; the interval is then about zero false positives only.
    """

    fpr: float
    tpr: float
    low: float
    high: float
    level: float
    n_boot: int
    resolvable: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Most bootstrap replicates an audit draws; intervals at 95 % need a few thousand.
MAX_BOOTSTRAP = 1_000_000
#: Replicates drawn at once (about 100 bytes each per rate in working arrays).
BOOTSTRAP_CHUNK = 20_000


def bootstrap_tpr_at_fpr(
    scores: ArrayLike,
    member: ArrayLike,
    fprs: Sequence[float] = DEFAULT_FPRS,
    n_boot: int = 1000,
    rng: np.random.Generator | int | None = None,
    level: float = 0.95,
) -> list[TprInterval]:
    """Percentile bootstrap intervals for :func:`tpr_at_fpr` at several rates.

    Members and non-members are resampled separately (stratified), so every
    replicate keeps the evaluation set's class balance and the FPR budget
    ``floor(fpr * n_nonmembers)`` is the same in every replicate. Each replicate
    computes the same statistic as :func:`tpr_at_fpr` in closed form: the share
    of resampled members scoring strictly above the ``(budget + 1)``-th highest
    resampled non-member.

    Parameters
    ----------
    scores, member:
        As for :func:`roc_curve`.
    fprs:
        Target false-positive rates.
    n_boot:
        Replicates (1000 is usual for 95 % percentile intervals).
    rng:
        A ``numpy.random.Generator`` (or a seed for one); the same generator
        state gives the same intervals.
    level:
        Nominal coverage in (0, 1).

    Returns
    -------
    list of TprInterval
        One per entry of ``fprs``, in order.
    """
    s, m = _check_binary(scores, member)
    targets = np.array([_check_fpr(f) for f in fprs], dtype=np.float64)
    if int(n_boot) < 1:
        raise ConfigError(f"n_boot must be at least 1; got {n_boot}.")
    if not 0.0 < float(level) < 1.0:
        raise ConfigError(f"level must lie strictly between 0 and 1; got {level}.")
    rng = np.random.default_rng(rng)

    if int(n_boot) > MAX_BOOTSTRAP:
        raise ConfigError(
            f"n_boot {int(n_boot):,}: at most {MAX_BOOTSTRAP:,} replicates (a 95 % interval "
            "needs a few thousand)"
        )
    # Drawn in chunks, so the working arrays stay small however many replicates.
    reps = np.concatenate(
        [
            _bootstrap_replicates(s, m, targets, min(BOOTSTRAP_CHUNK, int(n_boot) - start), rng)
            for start in range(0, int(n_boot), BOOTSTRAP_CHUNK)
        ]
    )
    allowed = _allowed_false_positives(targets, int((~m).sum()))
    fps, tps, _ = _roc_counts(s, m)
    point = _tpr_at_fprs_from_counts(fps, tps, targets)
    alpha = (1.0 - float(level)) / 2.0
    low, high = np.quantile(reps, [alpha, 1.0 - alpha], axis=0)
    return [
        TprInterval(
            fpr=float(targets[i]),
            tpr=float(point[i]),
            low=float(low[i]),
            high=float(high[i]),
            level=float(level),
            n_boot=int(n_boot),
            resolvable=bool(allowed[i] >= 1),
        )
        for i in range(targets.size)
    ]


def _bootstrap_replicates(
    s: np.ndarray, m: np.ndarray, targets: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``(n_boot, len(targets))`` replicates of :func:`tpr_at_fpr` under stratified resampling.

    Each replicate is drawn exactly from its bootstrap distribution without
    materialising a resample, in O(1) work per replicate and rate:

    * Non-members. Resampling ``n`` non-members with replacement draws ``n``
      positions uniformly from the scores sorted highest first; the ``(k+1)``-th
      highest resampled score sits at the ``(k+1)``-th smallest position, which is
      ``floor(n · U₍ₖ₊₁₎)`` for the order statistics ``U₍ᵢ₎`` of ``n`` uniforms (floor
      is monotone). Those are drawn jointly for every rate from gamma spacings:
      ``U₍ᵢ₎ = (G₁+…+Gᵢ) / (G₁+…+Gₙ₊₁)`` with ``Gⱼ`` independent Exp(1).
    * Members. The resampled members scoring at most that threshold are those of
      ``n`` uniform draws landing on the ``p`` lowest-scoring members; for all
      rates at once that is a multinomial over the gaps between the ``p``s, drawn
      as a chain of binomials.

    The replicate statistic is the share of resampled members scoring strictly
    above the threshold, as :func:`tpr_at_fpr` computes it.
    """
    if targets.size == 0:
        return np.empty((n_boot, 0))
    pos = np.sort(s[m])
    neg_desc = np.sort(s[~m])[::-1]
    n_pos, n_neg = pos.size, neg_desc.size
    allowed = _allowed_false_positives(targets, n_neg)
    # With a budget of every non-member, the lowest threshold is allowed: TPR 1.
    open_ = allowed < n_neg
    k = np.minimum(allowed, n_neg - 1)

    order = np.argsort(k, kind="stable")
    ks = k[order]
    shapes = np.diff(np.r_[0, ks + 1]).astype(np.float64)  # Gamma(0) draws 0: equal rates
    g = rng.standard_gamma(np.r_[shapes, n_neg - ks[-1]], size=(n_boot, ks.size + 1))
    u = np.cumsum(g[:, :-1], axis=1) / g.sum(axis=1, keepdims=True)
    j = np.empty((n_boot, ks.size), dtype=np.int64)
    j[:, order] = np.minimum((u * n_neg).astype(np.int64), n_neg - 1)
    n_le = np.searchsorted(pos, neg_desc[j], side="right")  # members scoring <= threshold

    by_p = np.argsort(n_le, axis=1, kind="stable")
    p_sorted = np.take_along_axis(n_le, by_p, axis=1)
    below_sorted = np.empty_like(p_sorted)
    remaining = np.full(n_boot, n_pos, dtype=np.int64)
    counted = np.zeros(n_boot, dtype=np.int64)
    prev = np.zeros(n_boot, dtype=np.int64)
    for t in range(p_sorted.shape[1]):
        rest = n_pos - prev
        prob = np.divide(p_sorted[:, t] - prev, rest, out=np.zeros(n_boot), where=rest > 0)
        drawn = rng.binomial(remaining, np.clip(prob, 0.0, 1.0))
        counted += drawn
        remaining -= drawn
        prev = p_sorted[:, t]
        below_sorted[:, t] = counted
    below = np.empty_like(below_sorted)
    np.put_along_axis(below, by_p, below_sorted, axis=1)
    return np.where(open_[None, :], (n_pos - below) / n_pos, 1.0)


# --------------------------------------------------------------------------- at a threshold


@dataclass(frozen=True)
class ConfusionMetrics:
    """Rates of the decision ``predicted`` against the true membership.

    ``precision`` is ``0.0`` when no record is predicted a member. ``recall`` and
    ``tpr`` are the same number under their two customary names; ``advantage``
    is ``tpr - fpr`` (Yeom et al.'s membership advantage).
    """

    precision: float
    recall: float
    accuracy: float
    tpr: float
    fpr: float
    advantage: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def confusion_metrics(predicted: ArrayLike, member: ArrayLike) -> ConfusionMetrics:
    """Precision, recall, accuracy, TPR, FPR and advantage of a member/non-member decision.

    Parameters
    ----------
    predicted:
        The attack's decision per record (boolean or 0/1).
    member:
        True membership (boolean or 0/1); must contain both values.
    """
    p = _as_bool(predicted, "predicted")
    m = _check_member(member, p.shape[0], ref="predicted")
    tp = int(np.count_nonzero(p & m))
    fp = int(np.count_nonzero(p & ~m))
    n_pos = int(m.sum())
    n_neg = m.size - n_pos
    tpr = tp / n_pos
    fpr = fp / n_neg
    return ConfusionMetrics(
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tpr,
        accuracy=(tp + (n_neg - fp)) / m.size,
        tpr=tpr,
        fpr=fpr,
        advantage=tpr - fpr,
    )


def per_class_metrics(
    predicted: ArrayLike,
    member: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
) -> list[dict[str, Any]]:
    """Precision, recall and accuracy of the decision within each true class.

    Returns
    -------
    list of dict
        One entry per class name, in label order, with keys ``class`` (name),
        ``label``, ``n``, ``n_members``, ``precision``, ``recall``, ``accuracy``.
        ``precision`` and ``recall`` are ``None`` when the class has no members
        or no non-members in the evaluation set (membership inference cannot be
        measured there), ``accuracy`` is ``None`` when the class has no records;
        otherwise precision is ``0.0`` when nothing in the class is predicted a
        member. Plain Python types, ready for JSON.
    """
    p = _as_bool(predicted, "predicted")
    m = _as_bool(member, "member", p.shape[0], ref="predicted")
    y = _check_labels(labels, p.shape[0], class_names)
    n_classes = len(class_names)
    # One bincount per confusion cell keeps this O(n) whatever the number of classes.
    n = np.bincount(y, minlength=n_classes)
    n_mem = np.bincount(y, weights=m, minlength=n_classes).astype(np.int64)
    tp = np.bincount(y, weights=p & m, minlength=n_classes).astype(np.int64)
    fp = np.bincount(y, weights=p & ~m, minlength=n_classes).astype(np.int64)
    n_non = n - n_mem
    rows = []
    for c, name in enumerate(class_names):
        measurable = n_mem[c] > 0 and n_non[c] > 0
        predicted_pos = tp[c] + fp[c]
        rows.append(
            {
                "class": str(name),
                "label": c,
                "n": int(n[c]),
                "n_members": int(n_mem[c]),
                "precision": (
                    (float(tp[c] / predicted_pos) if predicted_pos else 0.0) if measurable else None
                ),
                "recall": float(tp[c] / n_mem[c]) if measurable else None,
                "accuracy": (float((tp[c] + n_non[c] - fp[c]) / n[c]) if n[c] else None),
            }
        )
    return rows


def mean_class_rates(per_class: Sequence[dict[str, Any]]) -> tuple[float | None, float | None]:
    """Mean precision and mean recall over the classes where they are defined.

    This is the paper's headline figure (baseline 0.5 on a balanced set);
    ``None`` when no class is measurable.
    """

    def mean(key: str) -> float | None:
        vals = [r[key] for r in per_class if r[key] is not None]
        return float(np.mean(vals)) if vals else None

    return mean("precision"), mean("recall")


# --------------------------------------------------------------------------- privacy


def epsilon_lower_bound(tpr: float, fpr: float, delta: float = 0.0) -> float:
    """Lower bound on ε implied by one attack operating point, as a point estimate.

    An (ε, δ)-DP training algorithm forces every membership test to satisfy
    ``tpr <= e^ε·fpr + δ`` and ``1 - fpr <= e^ε·(1 - tpr) + δ`` (Kairouz et al.'s
    hypothesis-testing view), so an observed operating point implies

        ε >= max(log((tpr - δ) / fpr), log((1 - fpr - δ) / (1 - tpr)), 0).

    The rates plugged in here are empirical, so this is a point estimate, not a
    high-confidence bound: with few records it can overstate ε. Use it to
    compare audits, and the bootstrap interval to judge the noise. Returns
    ``math.inf`` when a denominator is zero and its numerator is positive (for
    example ``tpr == 1`` with ``fpr < 1``: no finite ε allows that).
    """
    t, f, d = float(tpr), float(fpr), float(delta)
    for name, v in (("tpr", t), ("fpr", f), ("delta", d)):
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"{name} must lie in [0, 1]; got {v}.")
    return max(_log_ratio(t - d, f), _log_ratio(1.0 - f - d, 1.0 - t), 0.0)


def clopper_pearson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper–Pearson (exact binomial) interval for a proportion."""
    # The beta quantiles straight from scipy.special (what scipy.stats.beta.ppf
    # computes): importing scipy.stats costs a second, a cached rerun's largest part.
    from scipy.special import betaincinv

    k, n = int(successes), int(trials)
    if n <= 0:
        return 0.0, 1.0
    alpha = 1.0 - float(level)
    low = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, alpha / 2))
    high = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - alpha / 2))
    return low, high


def epsilon_lower_bound_cp(
    true_positives: int,
    n_members: int,
    false_positives: int,
    n_nonmembers: int,
    level: float = 0.95,
    delta: float = 0.0,
) -> float:
    """A high-confidence lower bound on ε from one operating point (Jagielski et al.).

    The TPR and FPR are replaced by the ends of their Clopper–Pearson intervals
    that make ε smallest (TPR low, FPR high, each at ``level`` two-sided, so the
    bound holds with probability at least ``2·level − 1``), then plugged into the
    hypothesis-testing inequalities of :func:`epsilon_lower_bound`. Unlike the
    point estimate, this never claims more than the counts support: with few
    records it is 0.
    """
    tpr_low, _ = clopper_pearson(true_positives, n_members, level)
    _, fpr_high = clopper_pearson(false_positives, n_nonmembers, level)
    d = float(delta)
    return max(
        _log_ratio(tpr_low - d, fpr_high), _log_ratio(1.0 - fpr_high - d, 1.0 - tpr_low), 0.0
    )


# --------------------------------------------------------------------------- the leak's bound

#: Confidence of :func:`leak_bound`: for all the operating points and attacks tried at once.
LEAK_CONFIDENCE = 0.95

#: The largest evaluation, as a multiple of the one at hand, that
#: :func:`nonmembers_needed` considers.
_MAX_SCALE = 1e4


def false_positive_grid(n_nonmembers: int) -> np.ndarray:
    """The false-positive budgets :func:`leak_bound` tries: 0 and every whole number of the
    form 2^(j/4) below the number of non-members (0, 1, 2, 3, 4, 5, 6, 8, 9, 11, 13, 16,
    …): each budget within a factor 1.19 of the next, so that an operating point is never
    judged at more than 1.19 times its own false positives.

    The grid depends on the number of non-members alone, never on the scores: every
    attack of an audit is tried at the same budgets, so the multiple-testing correction is
    the same for all of them, and an attack whose ROC curve lies above another's finds at
    least as many members within every budget (its bound can only be higher).
    """
    m = int(n_nonmembers)
    if m <= 1:
        return np.zeros(1, dtype=np.int64)
    steps = np.floor(2.0 ** (np.arange(0, 4 * math.log2(m) + 1) / 4)).astype(np.int64)
    return np.unique(np.r_[0, steps[steps < m]])


def _one_sided_alpha(n_nonmembers: int, attacks: int, confidence: float) -> float:
    """The error allowed each one-sided bound: Bonferroni over the grid's budgets, the
    attacks, and the two bounds (TPR and FPR) of each operating point."""
    tests = len(false_positive_grid(n_nonmembers)) * max(1, int(attacks))
    return (1.0 - float(confidence)) / (2 * tests)


def _ratio_bounds(
    tp: np.ndarray, n: float, fp: np.ndarray, m: float, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The one-sided Clopper–Pearson lower bound on TPR (``tp`` of ``n``), the upper bound
    on FPR (``fp`` of ``m``), and the two likelihood ratios they bound: ``low / high``
    (members accused more often than non-members) and ``(1 - high) / (1 - low)``
    (non-members cleared more often than members: the other inequality an ε-DP training
    keeps, ``1 - FPR ≤ e^ε·(1 - TPR)``). Counts may be fractional (an evaluation scaled up
    at the observed rates)."""
    from scipy.special import betaincinv

    tp = np.asarray(tp, dtype=np.float64)
    fp = np.asarray(fp, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(tp > 0, betaincinv(np.maximum(tp, 1e-12), n - tp + 1, alpha), 0.0)
        high = np.where(fp < m, betaincinv(fp + 1, np.maximum(m - fp, 1e-12), 1 - alpha), 1.0)
        cleared = np.where(low < 1, (1 - high) / np.maximum(1 - low, 1e-300), 0.0)
    return low, high, low / high, cleared


@dataclass(frozen=True)
class LeakBound:
    """How many times more often an attack accuses a member than a non-member, at least.

    At each false-positive budget ``k`` of :func:`false_positive_grid`, the threshold
    that lets at most ``k`` non-members through finds ``tp`` members. The true FPR of
    that threshold is at most the one-sided Clopper–Pearson upper end for ``k`` of the
    non-members (exact: it is an order statistic of the non-members' scores), and its
    true TPR at least the lower end for ``tp`` of the members; their ratio bounds the
    likelihood ratio TPR/FPR from below. The same bounds bound (1 - FPR)/(1 - TPR), how
    many times more often the threshold clears a non-member than a member
    (``cleared_ratio``, the best over the budgets, at ``cleared_budget``): evidence against
    a differential-privacy claim (:attr:`dp_epsilon`), but not of members exposed, so the
    level reads ``ratio`` alone. ``ratio`` is the best over the budgets, each
    bound at the Bonferroni-corrected level, so that it holds with probability
    ``confidence`` for all budgets and attacks tried together. An ε-DP training
    algorithm keeps TPR ≤ e^ε·FPR and 1 - FPR ≤ e^ε·(1 - TPR) at every threshold, so
    ε ≥ ln(ratio) and ε ≥ ln(cleared_ratio).

    Attributes
    ----------
    ratio:
        The lower bound on TPR/FPR (0 when no member is found within any budget).
    fp_budget, tp, fp:
        The budget that gives it, the members found there and the non-members let through
        (``fp <= fp_budget``).
    tpr_low, fpr_high:
        The bounds whose ratio it is.
    points:
        ``(budget, members found)`` at every budget of the grid.
    attacks:
        How many attacks the correction counts.
    """

    ratio: float
    fp_budget: int
    tp: int
    fp: int
    tpr_low: float
    fpr_high: float
    n_members: int
    n_nonmembers: int
    points: tuple[tuple[int, int], ...]
    attacks: int = 1
    confidence: float = LEAK_CONFIDENCE
    cleared_ratio: float = 0.0
    cleared_budget: int = 0

    @property
    def epsilon(self) -> float:
        """The lower bound on ε the members' side implies, ``ln(ratio)`` (0 below 1)."""
        return math.log(self.ratio) if self.ratio > 1 else 0.0

    @property
    def dp_epsilon(self) -> float:
        """The lower bound on ε from either inequality of differential privacy: ``ln`` of
        the larger of ``ratio`` and ``cleared_ratio`` (0 below 1)."""
        best = max(self.ratio, self.cleared_ratio)
        return math.log(best) if best > 1 else 0.0

    @property
    def tpr(self) -> float:
        return self.tp / self.n_members

    @property
    def fpr(self) -> float:
        return self.fp / self.n_nonmembers

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "ratio": self.ratio, "epsilon": self.epsilon, "fp_budget": self.fp_budget,
            "tp": self.tp, "fp": self.fp, "tpr_low": self.tpr_low, "fpr_high": self.fpr_high,
            "n_members": self.n_members, "n_nonmembers": self.n_nonmembers,
            "points": [list(p) for p in self.points], "attacks": self.attacks,
            "confidence": self.confidence, "cleared_ratio": self.cleared_ratio,
            "cleared_budget": self.cleared_budget, "dp_epsilon": self.dp_epsilon,
        })  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LeakBound:
        return cls(
            ratio=float(d["ratio"] or 0.0), fp_budget=int(d["fp_budget"]), tp=int(d["tp"]),
            fp=int(d["fp"]), tpr_low=float(d["tpr_low"]), fpr_high=float(d["fpr_high"]),
            n_members=int(d["n_members"]), n_nonmembers=int(d["n_nonmembers"]),
            points=tuple((int(k), int(t)) for k, t in d["points"]),
            attacks=int(d.get("attacks", 1)), confidence=float(d.get("confidence", 0.95)),
            cleared_ratio=float(d.get("cleared_ratio") or 0.0),
            cleared_budget=int(d.get("cleared_budget", 0)),
        )  # fmt: skip


def leak_bound(
    scores: ArrayLike,
    member: ArrayLike,
    *,
    attacks: int = 1,
    confidence: float = LEAK_CONFIDENCE,
) -> LeakBound:
    """The :class:`LeakBound` of one attack's scores; ``attacks``: how many attacks of
    the audit are bounded together (the correction divides the error among them)."""
    s, m = _check_binary(scores, member)
    if not 0.0 < float(confidence) < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1; got {confidence}.")
    fps, tps, _ = _roc_counts(s, m)
    n_pos, n_neg = int(tps[-1]), int(fps[-1])
    ks = false_positive_grid(n_neg)
    at = np.searchsorted(fps, ks, side="right") - 1
    tp_at, fp_at = tps[at], fps[at]
    alpha = _one_sided_alpha(n_neg, attacks, confidence)
    # The budget, not the count let through, bounds the FPR: the threshold is the
    # (budget + 1)-th highest non-member score, whatever falls between.
    low, high, ratio, cleared = _ratio_bounds(tp_at, n_pos, ks, n_neg, alpha)
    best = int(np.argmax(ratio))
    clear = int(np.argmax(cleared))
    return LeakBound(
        ratio=float(ratio[best]),
        fp_budget=int(ks[best]),
        tp=int(tp_at[best]),
        fp=int(fp_at[best]),
        tpr_low=float(low[best]),
        fpr_high=float(high[best]),
        n_members=n_pos,
        n_nonmembers=n_neg,
        points=tuple((int(k), int(t)) for k, t in zip(ks, tp_at, strict=True)),
        attacks=max(1, int(attacks)),
        confidence=float(confidence),
        cleared_ratio=float(cleared[clear]),
        cleared_budget=int(ks[clear]),
    )


def _scaled_ratio(bound: LeakBound, scale: float, rates: np.ndarray) -> float:
    """The best bound an evaluation ``scale`` times as large would give if each rate pair
    ``(tpr, fpr)`` of ``rates`` held there."""
    n, m = bound.n_members * scale, bound.n_nonmembers * scale
    alpha = _one_sided_alpha(math.ceil(m), bound.attacks, bound.confidence)
    _, _, ratio, _ = _ratio_bounds(rates[:, 0] * n, n, rates[:, 1] * m, m, alpha)
    return float(ratio.max())


def _smallest_scale(bound: LeakBound, rates: np.ndarray, target: float) -> float | None:
    """The smallest scale (at least 1) at which :func:`_scaled_ratio` reaches ``target``;
    ``None`` when no evaluation up to ``_MAX_SCALE`` times as large does."""
    if not len(rates) or _scaled_ratio(bound, _MAX_SCALE, rates) < target:
        return None
    if _scaled_ratio(bound, 1.0, rates) >= target:
        return 1.0
    low, high = 1.0, 2.0
    while _scaled_ratio(bound, high, rates) < target:
        low, high = high, high * 2
    for _ in range(40):  # the ratio grows with the scale: bisect
        mid = (low + high) / 2
        if _scaled_ratio(bound, mid, rates) >= target:
            high = mid
        else:
            low = mid
    return high


def perfect_ratio(n_members: int, n_nonmembers: int, attacks: int = 1,
                  confidence: float = LEAK_CONFIDENCE) -> float:  # fmt: skip
    """The largest :class:`LeakBound` ratio an evaluation of this size can show at all:
    that of an attack that finds every member before any non-member."""
    alpha = _one_sided_alpha(n_nonmembers, attacks, confidence)
    _, _, ratio, _ = _ratio_bounds(
        np.array([n_members]), n_members, np.array([0]), n_nonmembers, alpha
    )
    return float(ratio[0])


def nonmembers_needed(bound: LeakBound, target: float, *, observed: bool) -> int | None:
    """How many non-members (with members in the same proportion) an evaluation needs for
    its bound to reach the likelihood ratio ``target``.

    ``observed=True``: if the attack's rates at the budgets of one false positive or more
    held in the larger evaluation (the budget of none gives no rate to extrapolate);
    ``observed=False``: for an attack that finds every member before any non-member (the
    least any attack needs). ``None`` when no evaluation up to ten thousand times this
    one's size would do.
    """
    if observed:
        n, m = bound.n_members, bound.n_nonmembers
        rates = np.array([(tp / n, k / m) for k, tp in bound.points if k >= 1 and tp > 0])
    else:
        rates = np.array([(1.0, 0.0)])
    scale = _smallest_scale(bound, rates, float(target))
    return None if scale is None else math.ceil(scale * bound.n_nonmembers)


def precision_at_recall(scores: ArrayLike, member: ArrayLike, recall: float) -> float:
    """The highest precision of any threshold whose recall is at least ``recall``."""
    s, m = _check_binary(scores, member)
    fps, tps, _ = _roc_counts(s, m)
    return _precision_at_recall_from_counts(fps, tps, recall)


def _precision_at_recall_from_counts(fps: np.ndarray, tps: np.ndarray, recall: float) -> float:
    ok = tps >= float(recall) * tps[-1] - _COUNT_SLACK
    if not ok.any():
        return 0.0
    precision = tps[ok] / np.maximum(tps[ok] + fps[ok], 1)
    return float(precision.max())


def _log_ratio(num: float, den: float) -> float:
    if num <= 0.0:
        return 0.0
    if den <= 0.0:
        return math.inf
    return math.log(num / den)


# --------------------------------------------------------------------------- everything


def fpr_key(fpr: float) -> str:
    """The string a target FPR is keyed by in results (``0.001 -> "0.001"``)."""
    return f"{float(fpr):g}"


#: Fewest false positives a rate must allow for attacks to be ranked at it: below
#: that, a TPR is decided by a handful of records and says little.
MIN_FALSE_POSITIVES = 10


def ranking_fpr(fprs: Sequence[str], n_nonmembers: int) -> str | None:
    """The FPR (its key) attacks are ranked at: the lowest of ``fprs`` that allows at
    least :data:`MIN_FALSE_POSITIVES` false positives among ``n_nonmembers``; else the
    highest that allows one; ``None`` when none does."""
    allowed = {k: math.floor(float(k) * n_nonmembers + _COUNT_SLACK) for k in fprs}
    well = [k for k, n in allowed.items() if n >= MIN_FALSE_POSITIVES]
    if well:
        return min(well, key=float)
    some = [k for k, n in allowed.items() if n >= 1]
    return max(some, key=float) if some else None


@dataclass(frozen=True)
class Strength:
    """How strong an attack showed itself, for ranking attacks honestly.

    Attributes
    ----------
    fpr:
        The key of the FPR it is judged at (:func:`ranking_fpr`); ``None`` when the
        evaluation resolves none of them (then only the AUC ranks).
    low, tpr:
        The lower end of the 95 % interval of the TPR at that FPR (the bootstrap's, or
        Clopper–Pearson's over the members when no bootstrap ran), and the TPR.
    auc:
        The AUC.
    above_chance:
        Whether the interval lies above chance (``low > fpr``: a guess that calls a
        share ``fpr`` of all records members reaches TPR ``fpr``); ``None`` without an FPR.
    at_threshold:
        Whether, at the attack's own decision threshold, the 95 % Clopper–Pearson
        intervals of its TPR and FPR do not overlap (TPR above FPR): it tells members
        apart better than chance there, however high that FPR.
    """

    fpr: str | None
    low: float
    tpr: float
    auc: float
    above_chance: bool | None
    at_threshold: bool = False

    def key(self) -> tuple[float, float, float]:
        """Sort key, strongest highest: the interval's lower end, then TPR, then AUC."""
        return (self.low, self.tpr, self.auc)


def _field(metrics: Any, name: str) -> Any:
    return metrics.get(name) if isinstance(metrics, dict) else getattr(metrics, name, None)


def attack_strength(metrics: AttackMetrics | dict[str, Any]) -> Strength:
    """An attack's :class:`Strength`, from its :class:`AttackMetrics` or the dict
    ``results.json`` holds of them.

    Attacks are ranked by the lower end of the 95 % interval of their TPR at the
    lowest well-resolved FPR, not by the point estimate at a fixed rate: an attack
    whose rate rests on two records (chance level) does not outrank one whose interval
    lies above chance.
    """
    tpr_at = _field(metrics, "tpr_at_fpr") or {}
    auc_value = float(_field(metrics, "auc"))
    n_neg = int(_field(metrics, "n_nonmembers") or 0)
    n_pos = int(_field(metrics, "n_members") or 0)
    # At its own threshold: recall is the TPR there, recall - advantage the FPR.
    recall, advantage = _field(metrics, "recall"), _field(metrics, "advantage")
    at_threshold = False
    if recall is not None and advantage is not None and n_pos and n_neg:
        tp, fp = round(recall * n_pos), round((recall - advantage) * n_neg)
        at_threshold = clopper_pearson(tp, n_pos)[0] > clopper_pearson(fp, n_neg)[1]
    fpr = ranking_fpr([k for k, v in tpr_at.items() if v is not None], n_neg)
    if fpr is None:
        return Strength(None, 0.0, 0.0, auc_value, None, at_threshold)
    tpr = float(tpr_at[fpr])
    ci = (_field(metrics, "tpr_at_fpr_ci") or {}).get(fpr)
    if ci is not None:
        low = float(ci[0])
    else:
        low = clopper_pearson(round(tpr * n_pos), n_pos)[0] if n_pos else 0.0
    return Strength(fpr, low, tpr, auc_value, low > float(fpr), at_threshold)


@dataclass(frozen=True)
class AttackMetrics:
    """Everything the report states about one attack on one evaluation set.

    Attributes
    ----------
    auc:
        Area under the ROC curve.
    precision, recall, accuracy, advantage:
        Of the decision ``score >= threshold`` over all records.
    threshold:
        The decision threshold used.
    tpr_at_fpr:
        TPR at each target FPR, keyed by :func:`fpr_key` (``"0.001"``, ``"0.01"``,
        ``"0.1"``); ``None`` where the target is below :func:`min_resolvable_fpr`.
    epsilon_lower_bound:
        :func:`epsilon_lower_bound` at ``(tpr_at_fpr[k], float(k))``, same keys;
        ``None`` where the TPR is ``None`` or the point estimate is unbounded.
    per_class:
        :func:`per_class_metrics` rows.
    mean_class_precision, mean_class_recall:
        Means over measurable classes (the paper's figures); ``None`` if none.
    n_members, n_nonmembers:
        Sizes of the evaluation set.
    tpr_at_fpr_ci:
        Stratified bootstrap 95 % intervals ``[low, high]`` of ``tpr_at_fpr``, same
        keys; ``None`` where the rate is unresolvable (or no bootstrap was asked).
    epsilon_lower_bound_cp:
        :func:`epsilon_lower_bound_cp` at the operating point of each FPR key: a
        lower bound on ε that holds with 90 % confidence.
    precision_at_recall:
        :func:`precision_at_recall` at recall 0.1, 0.5 and 0.9.
    """

    auc: float
    precision: float
    recall: float
    accuracy: float
    advantage: float
    threshold: float
    tpr_at_fpr: dict[str, float | None]
    epsilon_lower_bound: dict[str, float | None]
    per_class: list[dict[str, Any]] = field(repr=False)
    mean_class_precision: float | None
    mean_class_recall: float | None
    n_members: int
    n_nonmembers: int
    tpr_at_fpr_ci: dict[str, list[float] | None] = field(default_factory=dict)
    epsilon_lower_bound_cp: dict[str, float | None] = field(default_factory=dict)
    precision_at_recall: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types only (no NumPy scalars, no NaN or infinity)."""
        return json_safe(asdict(self))


def json_safe(obj: Any) -> Any:
    """``obj`` in plain Python types: no NumPy scalars, and ``None`` for NaN or infinity."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj


def evaluate_attack(
    scores: ArrayLike,
    member: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
    threshold: float,
    fprs: Sequence[float] = DEFAULT_FPRS,
    *,
    n_boot: int = 0,
    rng: np.random.Generator | int | None = None,
) -> AttackMetrics:
    """All metrics of one attack's scores on one evaluation set.

    Parameters
    ----------
    scores:
        One score per record, higher = more likely a member.
    member:
        True membership (both values must occur).
    labels:
        True class of each record, in ``0 .. len(class_names) - 1``.
    class_names:
        Name of each class.
    threshold:
        The attack's own decision threshold (``score >= threshold`` means member);
        0.5 on P(member) for Shokri's attack.
    fprs:
        Target FPRs for :attr:`AttackMetrics.tpr_at_fpr`.
    n_boot, rng:
        Bootstrap replicates for the TPR intervals (0: none) and their generator.
    """
    s, m = _check_binary(scores, member)
    y = _check_labels(labels, s.shape[0], class_names)
    t = float(threshold)
    if math.isnan(t):
        raise ConfigError("threshold must be a number; got NaN.")
    targets = np.array([_check_fpr(f) for f in fprs], dtype=np.float64)

    fps, tps, _ = _roc_counts(s, m)
    n_pos, n_neg = int(tps[-1]), int(fps[-1])
    tprs = _tpr_at_fprs_from_counts(fps, tps, targets)
    # A target that allows no false positive is below min_resolvable_fpr(n_neg).
    resolvable = _allowed_false_positives(targets, n_neg) >= 1
    tpr_map: dict[str, float | None] = {}
    eps_map: dict[str, float | None] = {}
    cp_map: dict[str, float | None] = {}
    points = _operating_index(fps, targets)
    for f, tpr, ok, at in zip(targets, tprs, resolvable, points, strict=True):
        key = fpr_key(f)
        if not ok:
            tpr_map[key] = eps_map[key] = cp_map[key] = None
            continue
        tpr_map[key] = float(tpr)
        eps = epsilon_lower_bound(float(tpr), float(f))
        eps_map[key] = eps if math.isfinite(eps) else None
        # The operating point's own counts: the most false positives the rate allows.
        cp = epsilon_lower_bound_cp(int(tps[at]), n_pos, int(fps[at]), n_neg)
        cp_map[key] = cp if math.isfinite(cp) else None
    ci_map: dict[str, list[float] | None] = {fpr_key(f): None for f in targets}
    if n_boot:
        for interval in bootstrap_tpr_at_fpr(s, m, targets.tolist(), n_boot=n_boot, rng=rng):
            if interval.resolvable:
                ci_map[fpr_key(interval.fpr)] = [interval.low, interval.high]

    predicted = s >= t
    overall = confusion_metrics(predicted, m)
    rows = per_class_metrics(predicted, m, y, class_names)
    mean_p, mean_r = mean_class_rates(rows)
    return AttackMetrics(
        auc=_auc_from_counts(fps, tps),
        precision=overall.precision,
        recall=overall.recall,
        accuracy=overall.accuracy,
        advantage=overall.advantage,
        threshold=t,
        tpr_at_fpr=tpr_map,
        epsilon_lower_bound=eps_map,
        per_class=rows,
        mean_class_precision=mean_p,
        mean_class_recall=mean_r,
        n_members=n_pos,
        n_nonmembers=n_neg,
        tpr_at_fpr_ci=ci_map,
        epsilon_lower_bound_cp=cp_map,
        precision_at_recall={
            str(r): _precision_at_recall_from_counts(fps, tps, r) for r in PRECISION_RECALLS
        },
    )
