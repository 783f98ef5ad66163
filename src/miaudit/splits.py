"""Who is a member of what: every index set of an audit, made in one place from a seed.

Position in the pipeline: ``data -> splits -> target / shadows``. The target's
members and non-members and the attacker's pool are disjoint; each shadow model
draws its own "in" set and a disjoint "out" set of the same size from the pool
(shadows may overlap each other, as in Shokri et al., but never the target's data).
Nothing else in the code invents its own split.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from miaudit.errors import ConfigError, DataError

#: The target's training-set size when the user asks for none and the data allows it.
DEFAULT_TARGET_SIZE = 10_000


@dataclass(frozen=True, eq=False)
class AuditSplits:
    """Index arrays into the data set (all ``int64``, sorted within each set).

    Attributes
    ----------
    target_in:
        The target's training records (members).
    target_out:
        Records the target never saw, as many as ``target_in`` (non-members).
    pool:
        The attacker's data, disjoint from both.
    shadow_in, shadow_out:
        One pair per shadow model, each drawn without replacement from ``pool``;
        ``shadow_in[i]`` and ``shadow_out[i]`` are disjoint and of equal size.
    """

    target_in: np.ndarray
    target_out: np.ndarray
    pool: np.ndarray
    shadow_in: tuple[np.ndarray, ...]
    shadow_out: tuple[np.ndarray, ...]

    @property
    def target_size(self) -> int:
        return len(self.target_in)

    @property
    def n_shadows(self) -> int:
        return len(self.shadow_in)

    def evaluation(self) -> tuple[np.ndarray, np.ndarray]:
        """The balanced evaluation set: record indices and their membership (1 = member)."""
        index = np.concatenate([self.target_in, self.target_out])
        member = np.concatenate(
            [np.ones(len(self.target_in), np.int8), np.zeros(len(self.target_out), np.int8)]
        )
        return index, member


def max_target_size(n_records: int) -> int:
    """Largest target size whose members, non-members and a shadow pool of twice that fit."""
    return n_records // 4


def resolve_target_size(n_records: int, requested: int | None) -> int:
    """The target size to use: the request, or the default where the data allows it."""
    if requested is None:
        size = min(DEFAULT_TARGET_SIZE, max_target_size(n_records))
        if size < 1:
            raise DataError(
                f"the data set has {n_records} records; an audit needs at least 4 "
                "(members, non-members and a shadow pool of twice the target size)"
            )
        return size
    if requested < 1:
        raise ConfigError(f"--target-size must be at least 1, got {requested}")
    return requested


def make_splits(
    n_records: int,
    target_size: int,
    n_shadows: int,
    rng: np.random.Generator,
    *,
    fixed_target: tuple[np.ndarray, np.ndarray] | None = None,
) -> AuditSplits:
    """Draw the target's members and non-members, the pool, and the shadows' in/out sets.

    Parameters
    ----------
    n_records:
        Size of the data set.
    target_size:
        Members of the target; as many non-members are drawn, and each shadow gets
        an in-set and an out-set of this size.
    n_shadows:
        Number of shadow models (at least 1).
    rng:
        The only source of randomness.
    fixed_target:
        ``(members, non_members)`` of a target trained earlier (a saved model);
        the pool is then everything else.

    Raises
    ------
    DataError
        When the data cannot supply the requested sizes; the message says what fits.
    """
    if n_shadows < 1:
        raise ConfigError(
            f"--shadows must be at least 1, got {n_shadows}: the attack learns from shadow models"
        )
    if fixed_target is not None:
        target_in = np.asarray(fixed_target[0], dtype=np.int64)
        target_out = np.asarray(fixed_target[1], dtype=np.int64)
        used = np.concatenate([target_in, target_out])
        if used.size and (used.min() < 0 or used.max() >= n_records):
            raise DataError(
                f"the saved target's member indices reach {int(used.max())}, but the data set "
                f"has {n_records} records: audit it with the data set it was trained on"
            )
        if len(np.unique(used)) != len(used):
            raise DataError("the saved target's members and non-members overlap")
        mask = np.ones(n_records, dtype=bool)
        mask[used] = False
        pool = np.flatnonzero(mask)
        shadow_size = len(target_in)
        if len(pool) < 2 * shadow_size:
            raise DataError(
                f"the pool left beside the saved target has {len(pool)} records but each shadow "
                f"needs {2 * shadow_size} (in + out of the target's size {shadow_size})"
            )
    else:
        needed = 4 * target_size
        if needed > n_records:
            raise DataError(
                f"--target-size {target_size} needs {needed} records (members, as many "
                f"non-members, and a shadow pool of twice the target size) but the data set "
                f"has {n_records}: use --target-size {max_target_size(n_records)} or less"
            )
        order = rng.permutation(n_records)
        target_in = order[:target_size]
        target_out = order[target_size : 2 * target_size]
        pool = order[2 * target_size :]
        shadow_size = target_size

    shadow_in, shadow_out = draw_shadow_sets(pool, shadow_size, n_shadows, rng)
    return AuditSplits(
        target_in=np.sort(target_in),
        target_out=np.sort(target_out),
        pool=np.sort(pool),
        shadow_in=shadow_in,
        shadow_out=shadow_out,
    )


def draw_shadow_sets(
    pool: np.ndarray, size: int, n_shadows: int, rng: np.random.Generator
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Each shadow's in-set and a disjoint out-set of ``size`` records from ``pool``."""
    if 2 * size > len(pool):
        raise DataError(
            f"each shadow needs {2 * size} records (in + out of {size}) but the pool has "
            f"{len(pool)}: use a smaller --target-size"
        )
    shadow_in, shadow_out = [], []
    for _ in range(n_shadows):
        draw = rng.choice(pool, size=2 * size, replace=False)
        shadow_in.append(np.sort(draw[:size]))
        shadow_out.append(np.sort(draw[size:]))
    return tuple(shadow_in), tuple(shadow_out)


def balanced_memberships(n_models: int, n_records: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_models, n_records)`` bool: each record IN for half of the models, and each
    model trained on half of the records.

    The draw LiRA and RMIA use for online reference models. Models come in
    complementary pairs: model ``2j`` takes a random half of the records and model
    ``2j + 1`` the other half, so every record is IN for exactly ``n_models // 2``
    models (one more for an odd count's last model, itself a random half) and every
    model's training set has the same size (``n_records // 2`` or one more): equal
    sizes let the models train stacked as one batched network.
    """
    keep = np.zeros((n_models, n_records), dtype=bool)
    half = n_records // 2
    for k in range(0, n_models, 2):
        chosen = rng.permutation(n_records)[: half + (n_records % 2) * int(rng.random() < 0.5)]
        keep[k, chosen] = True
        if k + 1 < n_models:
            keep[k + 1] = ~keep[k]
    return keep


def online_shadow_sets(
    splits: AuditSplits, rng: np.random.Generator, extra: np.ndarray | None = None
) -> tuple[AuditSplits, np.ndarray]:
    """Shadows whose in-sets are balanced halves of the evaluated records.

    Every evaluated record (the target's members and non-members), and every record
    of ``extra`` (pool records, e.g. RMIA's population), is IN for half of the
    shadows; each shadow's out-set is the rest of them. Returns the new splits and
    the ``(n_shadows, n_eval + len(extra))`` membership matrix.
    """
    index, _ = splits.evaluation()
    if extra is not None and len(extra):
        index = np.concatenate([index, extra])
    keep = balanced_memberships(splits.n_shadows, len(index), rng)
    shadow_in = tuple(np.sort(index[k]) for k in keep)
    shadow_out = tuple(np.sort(index[~k]) for k in keep)
    return dataclasses.replace(splits, shadow_in=shadow_in, shadow_out=shadow_out), keep
