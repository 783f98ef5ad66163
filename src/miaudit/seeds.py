"""The audit's seeds: one seed, split into independent streams, one per purpose.

Adding a shadow never changes the target's split or weights, and the same seed gives
the same bytes, because every purpose draws from its own stream. New purposes go at the
end of :data:`STREAMS`: the streams before them stay as they were.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: The purposes, in the order their streams are spawned (append only).
STREAMS = (
    "splits",
    "target",
    "shadows",
    "attack",
    "shadow_data",
    "online",
    "population",
    "robustness",
    "bootstrap",
    "public",
    "canaries",
)


def seeds_for(seed: int) -> dict[str, np.random.SeedSequence]:
    """One independent stream per purpose of :data:`STREAMS`, from the audit's seed."""
    streams = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return dict(zip(STREAMS, streams, strict=True))


def named_stream(seq: np.random.SeedSequence, name: str) -> np.random.SeedSequence:
    """A stream of ``seq`` for the purpose ``name``, the same whatever else is drawn."""
    tag = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, tag))


def int_seeds(seq: np.random.SeedSequence, n: int) -> list[int]:
    """``n`` integer seeds from ``seq`` (one per model, say)."""
    return [int(s) for s in seq.generate_state(n, dtype=np.uint32)]
