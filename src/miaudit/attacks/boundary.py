"""Label-only distance to the decision boundary (Choquette-Choo et al., ICML 2021).

Position in the pipeline: ``signals -> attack -> scores``, asking the target itself.
A model's training records sit further from its decision boundary than unseen
records. For each evaluated record the target labels correctly, the attack walks
along ``directions`` paths away from it: by default each heads for a random other
evaluated record of another class (``path="towards"``: such paths stay among
plausible records and cross the boundary, where random noise mostly leaves a
network's label alone), or along a random direction up to ``max_distance``
(``"noise"``). ``scan`` evenly spaced queries find the first stretch where the
target's label changes (labels may change back further out, so the far end alone
would not do), and a binary search of ``steps`` queries narrows it down. The score is
how far the record moved before its label changed: the smallest over the paths (or
their mean). A path that never flips counts its whole length; a record the target
already misclassifies scores 0.

Paths keep the data's format: distances are root-mean-square changes of the numeric
features (standard deviations for a table's standardised columns, intensity for
pixels); each categorical feature's one-hot block switches, whole, to the other
record's category (or a random one) once the path passes a random point of its own;
image pixels stay in [0, 1]. Every query is counted against ``--query-budget``: at most
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
        description="noise paths' length: standard deviations for tables (default 4), pixel "
        "intensity for images (default 1); a towards path ends on its record",
    )
    path: Literal["towards", "noise"] = Field(
        default="towards",
        description="towards: each path heads for a random record of another class; noise: "
        "along a random direction",
    )
    aggregate: Literal["min", "mean"] = Field(
        default="min",
        description="a record's score: the smallest distance over its paths (its distance "
        "to the boundary), or their mean",
    )


class _Paths:
    """Format-keeping paths from each record: ``at(t, rows)`` gives the records moved a
    distance ``t`` along paths ``rows`` (``directions`` paths per record, record-major).

    ``towards``: each path heads for a random other record of another class and ends
    on it (its ``reach``); ``noise``: along a random direction, up to ``reach``."""

    def __init__(self, X, labels, fmt: RecordFormat, directions, reach, rng, mode) -> None:
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
        if mode == "towards":
            end = flat[_other_class(np.asarray(labels), directions, rng)]
            d = (end - self.start) * numeric
        else:
            end = None
            d = rng.standard_normal((m, width)).astype(np.float32) * numeric
        # Unit root-mean-square over the numeric features: distance t moves them t on average.
        rms = np.sqrt((d**2).sum(axis=1) / max(1, int(numeric.sum())))
        self.direction = d / np.maximum(rms, 1e-12)[:, None]
        self.reach = np.maximum(rms, 1e-6) if end is not None else np.full(m, float(reach))
        # Each categorical block switches past a random point of its own: to the end
        # record's category (towards), or to a random other one (noise).
        self.switch, self.category = [], []
        for g in self.blocks:
            current = self.start[:, g].argmax(axis=1)
            if end is not None:
                self.category.append(end[:, g].argmax(axis=1))
                self.switch.append(rng.uniform(0, 1, m) * self.reach)
            else:
                self.category.append((current + rng.integers(1, len(g), m)) % len(g))
                self.switch.append(rng.uniform(0, 2 * reach, m))

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


def _other_class(labels: np.ndarray, directions: int, rng) -> np.ndarray:
    """For each record, ``directions`` random records of another class (record-major);
    a record's own class when no other exists."""
    n = len(labels)
    picks = rng.integers(0, n, (n, directions))
    for _ in range(20):  # redraw clashes; a handful of rounds settle nearly all
        same = labels[picks] == labels[:, None]
        if not same.any():
            break
        picks[same] = rng.integers(0, n, int(same.sum()))
    return picks.reshape(-1)


class Boundary(Attack):
    """How far each record is from the target's decision boundary, by label queries."""

    name = "boundary"
    section = "boundary"
    label_only_family = True
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
        rng = np.random.default_rng([inputs.seed, 0xB0])
        y = np.asarray(inputs.labels)
        correct = inputs.target_probs.argmax(axis=1) == y
        D = c.directions
        paths = _Paths(inputs.features, y, fmt, D, reach, rng, c.path)
        # A typical path's length: half of it is where the attack's own cut lies.
        self.reach_ = float(np.median(paths.reach))
        label = np.repeat(y, D)
        alive = np.repeat(correct, D)  # paths worth searching: the record is labelled right
        rows = np.flatnonzero(alive)
        sent = 0

        def flips(t: np.ndarray, rows: np.ndarray) -> np.ndarray:
            nonlocal sent
            sent += len(rows)
            return inputs.oracle(paths.at(t, rows)).argmax(axis=1) != label[rows]

        distance = np.zeros(len(label))
        distance[rows] = paths.reach[rows]
        # The first flip along each path: scan outwards, dropping paths as they flip.
        lo = np.zeros(len(label))
        found = np.zeros(len(label), bool)
        pending = rows
        for k in range(1, c.scan + 1):
            if not len(pending):
                break
            t = paths.reach[pending] * k / c.scan
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
            "path": c.path,
            "max_distance": reach if c.path == "noise" else None,
            "aggregate": c.aggregate,
            "queries": sent,
        }
        return per_path.mean(axis=1) if c.aggregate == "mean" else per_path.min(axis=1)

    @property
    def decision_threshold(self) -> float:
        # A record that keeps its label half-way along a typical path is called a member.
        return 0.5 * self.reach_
