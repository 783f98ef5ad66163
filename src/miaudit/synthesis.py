"""Model-based synthesis of shadow data: hill climbing against the target (Algorithm 1).

Position in the pipeline: ``target -> shadows (source)``. An attacker with no data
of the target's distribution searches, for each class ``c``, for records the
target classifies as ``c`` with high confidence, using the target as an oracle
(Shokri et al., §1 of ``PAPER.md``). Many candidates climb at once, so each round
is one batched query of every candidate still searching.

Per candidate, as in the paper: start from a random record; when the target's
confidence in ``c`` does not drop, keep the proposal (and accept it with
probability ``y_c`` once ``y_c > conf_min`` and ``c`` is the top class); after
more than ``rej_max`` consecutive worse proposals halve the number of features
changed per step (not below ``k_min``); propose by re-randomising ``k`` features
of the best record so far. A candidate that is not accepted within ``iter_max``
queries fails; classes for which every candidate failed are reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from miaudit.errors import ConfigError

#: Draws ``(rows, features)`` fresh random values for the given feature groups.
FeatureSampler = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class SynthesisConfig:
    """Algorithm 1's knobs (names as in the paper)."""

    k_max: int = 64
    k_min: int = 4
    conf_min: float = 0.2
    rej_max: int = 10
    iter_max: int = 200

    def __post_init__(self) -> None:
        if not 1 <= self.k_min <= self.k_max:
            raise ConfigError(
                f"need 1 <= k_min <= k_max, got k_min={self.k_min}, k_max={self.k_max}"
            )
        if not 0.0 <= self.conf_min < 1.0:
            raise ConfigError(f"conf_min must be in [0, 1), got {self.conf_min}")
        if self.rej_max < 0 or self.iter_max < 1:
            raise ConfigError("rej_max must be >= 0 and iter_max >= 1")


@dataclass
class SynthesisResult:
    """Accepted records, their classes, and what they cost."""

    X: np.ndarray
    y: np.ndarray
    confidence: np.ndarray
    queries: int
    queries_per_class: dict[int, int] = field(default_factory=dict)
    accepted_per_class: dict[int, int] = field(default_factory=dict)
    unreached_classes: list[int] = field(default_factory=list)

    @property
    def queries_per_record(self) -> float | None:
        return self.queries / len(self.y) if len(self.y) else None


def hill_climb(
    predict_proba: Callable[[np.ndarray], np.ndarray],
    classes: np.ndarray,
    groups: list[np.ndarray],
    sample: Callable[[int, np.ndarray, np.random.Generator], np.ndarray],
    width: int,
    rng: np.random.Generator,
    config: SynthesisConfig | None = None,
    *,
    query_budget: int | None = None,
) -> SynthesisResult:
    """Run one hill-climbing search per entry of ``classes``, all in lockstep.

    Parameters
    ----------
    predict_proba:
        The target: ``(m, width)`` records -> ``(m, C)`` probabilities.
    classes:
        The class each candidate searches for (repeat a class for more records).
    groups:
        Encoded columns of each feature; a feature is re-randomised as a whole.
    sample:
        ``sample(m, group_index, rng)`` -> ``(m, len(groups[group_index]))`` random
        values of that feature (the attacker knows the input format, not the data).
    width:
        Encoded record width.
    query_budget:
        Stop when this many records have been queried; candidates still searching
        then count as failed.
    """
    cfg = config or SynthesisConfig()
    classes = np.asarray(classes, dtype=np.int64)
    m, n_groups = len(classes), len(groups)
    k_max = min(cfg.k_max, n_groups)
    k_min = min(cfg.k_min, k_max)

    x = np.empty((m, width), dtype=np.float32)
    for g, cols in enumerate(groups):
        x[:, cols] = sample(m, g, rng)
    best = x.copy()
    best_conf = np.zeros(m)
    rejections = np.zeros(m, dtype=np.int64)
    k = np.full(m, k_max, dtype=np.int64)
    active = np.ones(m, dtype=bool)
    accepted = np.zeros(m, dtype=bool)
    conf_at_accept = np.zeros(m)
    spent = np.zeros(m, dtype=np.int64)
    queries = 0

    for _ in range(cfg.iter_max):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        if query_budget is not None and queries + idx.size > query_budget:
            idx = idx[: max(0, query_budget - queries)]
            active[np.setdiff1d(np.flatnonzero(active), idx)] = False
            if idx.size == 0:
                break
        P = predict_proba(x[idx])
        queries += idx.size
        spent[idx] += 1
        c = classes[idx]
        yc = P[np.arange(idx.size), c]
        improved = yc >= best_conf[idx]
        take = improved & (yc > cfg.conf_min) & (P.argmax(axis=1) == c)
        take &= rng.random(idx.size) < yc
        done = idx[take]
        accepted[done] = True
        active[done] = False
        best[done] = x[done]
        conf_at_accept[done] = yc[take]

        keep = idx[improved & ~take]
        best[keep] = x[keep]
        best_conf[keep] = yc[improved & ~take]
        rejections[keep] = 0
        worse = idx[~improved]
        rejections[worse] += 1
        halve = worse[rejections[worse] > cfg.rej_max]
        k[halve] = np.maximum(k_min, np.ceil(k[halve] / 2).astype(np.int64))
        rejections[halve] = 0

        # Propose: re-randomise k features of the best record so far.
        idx = np.flatnonzero(active)
        x[idx] = best[idx]
        keys = rng.random((idx.size, n_groups))
        ranks = keys.argsort(axis=1).argsort(axis=1)
        change = ranks < k[idx, None]
        for g, cols in enumerate(groups):
            rows = idx[change[:, g]]
            if rows.size:
                x[np.ix_(rows, cols)] = sample(rows.size, g, rng)

    per_class_q = {int(c): int(spent[classes == c].sum()) for c in np.unique(classes)}
    per_class_a = {int(c): int(accepted[classes == c].sum()) for c in np.unique(classes)}
    return SynthesisResult(
        X=best[accepted],
        y=classes[accepted],
        confidence=conf_at_accept[accepted],
        queries=queries,
        queries_per_class=per_class_q,
        accepted_per_class=per_class_a,
        unreached_classes=[c for c, a in per_class_a.items() if a == 0],
    )


def format_sampler(groups: list[np.ndarray], encoder: dict | None) -> Callable:
    """Random values in the data's own format: a uniform category, or a numeric value.

    Categorical features get a uniformly random one-hot; numeric (standardised)
    features a standard normal value; image pixels (no encoder) a uniform [0, 1].
    """
    categorical_sizes = {i for i, g in enumerate(groups) if len(g) > 1}

    def sample(n: int, g: int, rng: np.random.Generator) -> np.ndarray:
        size = len(groups[g])
        if g in categorical_sizes:
            out = np.zeros((n, size), dtype=np.float32)
            out[np.arange(n), rng.integers(0, size, n)] = 1.0
            return out
        if encoder is None:
            return rng.random((n, 1), dtype=np.float32)
        return rng.standard_normal((n, 1), dtype=np.float32)

    return sample


def records_needed(n: int, n_classes: int) -> np.ndarray:
    """Class of each of ``n`` candidates, as balanced over classes as ``n`` allows."""
    return np.arange(n) % n_classes if n else np.zeros(0, np.int64)


__all__ = [
    "SynthesisConfig",
    "SynthesisResult",
    "format_sampler",
    "hill_climb",
    "records_needed",
]
