"""Label-only distance to the decision boundary (Choquette-Choo et al., ICML 2021).

Position in the pipeline: ``signals -> attack -> scores``, asking the target itself.
A model's training records sit further from its decision boundary than unseen
records. For each evaluated record the target labels correctly, the attack walks
along ``directions`` random paths away from it: ``scan`` evenly spaced queries up to
``max_distance`` find the first stretch where the target's label changes (labels may
change back further out, so the far end alone would not do), and a binary search of
``steps`` queries narrows it down. The score is how far the record moved before its
label changed: the smallest over the paths (or their mean). A path that never flips
within ``max_distance`` counts as ``max_distance``; a record the target already
misclassifies scores 0.

Paths keep the data's format: numeric (standardised) features move along a random
direction, scaled so a distance of 1 moves them one standard deviation on average;
each categorical feature's one-hot block switches, whole, to another random
category once the distance passes a random point of its own; image pixels move
along a random direction (distance 1: one full intensity step on average) and stay
in [0, 1]. Every query is counted against ``--query-budget``: at most
``directions × (scan + steps)`` per record.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from miaudit.attacks.base import Attack, AttackInputs, Needs, RecordFormat

__all__ = ["Boundary", "BoundarySettings"]


class BoundarySettings(BaseModel):
    """The boundary-distance attack's settings (``[attacks.boundary]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    directions: int = Field(default=8, ge=1, description="random paths per record")
    scan: int = Field(
        default=8, ge=1, description="evenly spaced queries per path to find its first flip"
    )
    steps: int = Field(default=6, ge=0, description="binary-search queries per path after it")
    max_distance: float | None = Field(
        default=None,
        gt=0,
        description="longest path: standard deviations for tables (default 4), pixel "
        "intensity for images (default 1)",
    )
    aggregate: Literal["min", "mean"] = Field(
        default="min",
        description="a record's score: the smallest distance over its paths (its distance "
        "to the boundary), or their mean",
    )


class _Paths:
    """Random format-keeping paths from each record: ``at(t)`` gives the records moved
    a distance ``t`` (one per record and path)."""

    def __init__(
        self, X: np.ndarray, fmt: RecordFormat, directions: int, reach: float, rng
    ) -> None:
        n = len(X)
        self.shape = X.shape[1:]
        flat = np.asarray(X, dtype=np.float32).reshape(n, -1)
        self.start = np.repeat(flat, directions, axis=0)  # (n·D, F), record-major
        m, width = self.start.shape
        self.image = fmt.image
        numeric = np.zeros(width, bool)
        self.blocks: list[np.ndarray] = []
        if fmt.image:
            numeric[:] = True
        else:
            for g in fmt.groups:
                if len(g) == 1:
                    numeric[g[0]] = True
                else:
                    self.blocks.append(np.asarray(g))
        d = rng.standard_normal((m, width)).astype(np.float32) * numeric
        # Unit root-mean-square over the numeric features: distance t moves them t on average.
        rms = np.sqrt((d**2).sum(axis=1, keepdims=True) / max(1, int(numeric.sum())))
        self.direction = d / np.maximum(rms, 1e-12)
        # Each categorical block switches to a random other category past its own point.
        self.switch = [rng.uniform(0, 2 * reach, m) for _ in self.blocks]
        self.category = []
        for g in self.blocks:
            current = self.start[:, g].argmax(axis=1)
            shift = rng.integers(1, len(g), m)
            self.category.append((current + shift) % len(g))

    def at(self, t: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = self.start[rows] + t[:, None] * self.direction[rows]
        if self.image:
            np.clip(out, 0.0, 1.0, out=out)
        for g, switch, category in zip(self.blocks, self.switch, self.category, strict=True):
            moved = t >= switch[rows]
            if moved.any():
                block = np.zeros((int(moved.sum()), len(g)), np.float32)
                block[np.arange(len(block)), category[rows][moved]] = 1.0
                sub = out[:, g]
                sub[moved] = block
                out[:, g] = sub
        return out.reshape(len(rows), *self.shape)


class Boundary(Attack):
    """How far each record is from the target's decision boundary, by label queries."""

    name = "boundary"
    section = "boundary"
    Config = BoundarySettings
    summary = (
        "label-only: distance to the decision boundary along random format-keeping paths "
        "(binary search)"
    )

    def needs(self) -> Needs:
        c = self.config
        return Needs(features=True, adaptive=c.directions * (c.scan + c.steps), probabilities=False)

    def score(self, inputs: AttackInputs) -> np.ndarray:
        c = self.config
        fmt = inputs.format
        reach = c.max_distance if c.max_distance is not None else (1.0 if fmt.image else 4.0)
        self.reach_ = reach
        rng = np.random.default_rng([inputs.seed, 0xB0])
        y = np.asarray(inputs.labels)
        correct = inputs.target_probs.argmax(axis=1) == y
        D = c.directions
        paths = _Paths(inputs.features, fmt, D, reach, rng)
        label = np.repeat(y, D)
        alive = np.repeat(correct, D)  # paths worth searching: the record is labelled right
        rows = np.flatnonzero(alive)
        sent = 0

        def flips(t: np.ndarray, rows: np.ndarray) -> np.ndarray:
            nonlocal sent
            sent += len(rows)
            return inputs.oracle(paths.at(t, rows)).argmax(axis=1) != label[rows]

        distance = np.zeros(len(label))
        distance[rows] = reach
        # The first flip along each path: scan outwards, dropping paths as they flip.
        lo = np.zeros(len(label))
        found = np.zeros(len(label), bool)
        pending = rows
        for k in range(1, c.scan + 1):
            if not len(pending):
                break
            t = np.full(len(pending), reach * k / c.scan)
            flipped = flips(t, pending)
            distance[pending[flipped]] = t[flipped]
            found[pending[flipped]] = True
            lo[pending[~flipped]] = t[~flipped]
            pending = pending[~flipped]
        # Then bisect the stretch where each path first flipped.
        rows = rows[found[rows]]
        lo, hi = lo[rows], distance[rows]
        for _ in range(c.steps):
            mid = (lo + hi) / 2
            flipped = flips(mid, rows)
            hi = np.where(flipped, mid, hi)
            lo = np.where(flipped, lo, mid)
        distance[rows] = hi
        per_path = distance.reshape(-1, D)
        self.notes_ = {
            "directions": D,
            "scan": c.scan,
            "steps": c.steps,
            "max_distance": reach,
            "aggregate": c.aggregate,
            "queries": sent,
        }
        return per_path.mean(axis=1) if c.aggregate == "mean" else per_path.min(axis=1)

    @property
    def decision_threshold(self) -> float:
        # Half the reach: a record that survives half-way along its paths is called a member.
        return 0.5 * self.reach_
