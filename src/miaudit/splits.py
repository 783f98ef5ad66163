"""Who is a member of what: every index set of an audit, made in one place from a seed.

Position in the pipeline: ``data -> splits -> target / shadows``. The target's
members and non-members and the attacker's pool are disjoint; each shadow model
draws its own "in" set and a disjoint "out" set of the same size from the pool
(shadows may overlap each other, as in Shokri et al., but never the target's data).
Nothing else in the code invents its own split.

When the pool holds fewer than two training sets (a user's own data often does), a
shadow still trains on as many records as the target (its in-sets overlap the other
shadows' more), is tested on the rest of the pool, and the attack learns from as
many of its training records as it has test records: balanced, as ever. The pool
must hold at least :data:`MIN_OUT_SHARE` of a training set beyond one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace

import numpy as np

from miaudit.errors import ConfigError, DataError, key

#: The target's training-set size when the user asks for none and the data allows it.
DEFAULT_TARGET_SIZE = 10_000
#: Fewest out-records a shadow may have, as a share of its training set, when the
#: pool is too small for disjoint in- and out-sets of the full size.
MIN_OUT_SHARE = 0.25


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
        ``shadow_in[i]`` and ``shadow_out[i]`` are disjoint and of equal size: the
        records the attack learns from.
    shadow_train:
        Each shadow's training set, of which ``shadow_in[i]`` is a part, when it holds
        more than its in-set: a small pool (see the module notes), or an online draw
        made up to the target's size (:func:`online_shadow_sets`); ``None`` when the
        shadows train on ``shadow_in``.
    """

    target_in: np.ndarray
    target_out: np.ndarray
    pool: np.ndarray
    shadow_in: tuple[np.ndarray, ...]
    shadow_out: tuple[np.ndarray, ...]
    shadow_train: tuple[np.ndarray, ...] | None = None
    #: How many records each shadow is meant to train on: the target's training-set
    #: size unless the user asks for another (``shadow_size``); shadows imitate the
    #: target, so every draw keeps to it.
    train_size: int = 0
    #: Whether the pool was too small for disjoint in- and out-sets, so that the
    #: shadows' training sets overlap more than a disjoint draw's.
    overlap: bool = False
    #: Records the target trains on besides ``target_in`` that are not evaluated:
    #: the canary game's ordinary training records (:func:`with_canaries`).
    target_extra: np.ndarray | None = None

    @property
    def target_train(self) -> np.ndarray:
        """Every record the target trains on."""
        if self.target_extra is None:
            return self.target_in
        return np.sort(np.concatenate([self.target_in, self.target_extra]))

    @property
    def training_sets(self) -> tuple[np.ndarray, ...]:
        """What each shadow trains on."""
        return self.shadow_in if self.shadow_train is None else self.shadow_train

    @property
    def shadow_size(self) -> int:
        return len(self.training_sets[0]) if self.training_sets else 0

    @property
    def target_size(self) -> int:
        return len(self.target_train)

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
        raise ConfigError(f"{key('target_size')} must be at least 1, got {requested}")
    return requested


def make_splits(
    n_records: int,
    target_size: int,
    n_shadows: int,
    rng: np.random.Generator,
    *,
    fixed_target: tuple[np.ndarray, np.ndarray] | None = None,
    exclude: np.ndarray | None = None,
    shadow_size: int | None = None,
    need_pool: bool = True,
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
        ``(members, non_members)`` of a target trained earlier (a saved model, or the
        user's own): the evaluated records; the pool is then everything else.
    exclude:
        Records kept out of the pool although not evaluated (the user's target's
        members beyond those evaluated).
    shadow_size:
        Records each shadow trains on (default: the target's size).
    need_pool:
        ``False`` when no shadow trains on the pool (online attacks, synthetic shadow
        data): a pool too small for shadows is then no error (their sets stay empty,
        to be drawn elsewhere).

    Raises
    ------
    DataError
        When the data cannot supply the requested sizes; the message says what fits.
    """
    if n_shadows < 1:
        raise ConfigError(
            f"{key('shadows')} must be at least 1, got {n_shadows}: the attack learns from "
            "shadow models"
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
        if exclude is not None:
            mask[np.asarray(exclude, dtype=np.int64)] = False
        pool = np.flatnonzero(mask)
        size = shadow_size or len(target_in)
    else:
        needed = (4 if need_pool else 2) * target_size
        if needed > n_records:
            raise DataError(
                f"{key('target_size', target_size)} needs {needed} records (members, as many "
                f"non-members, and a shadow pool of twice the target size) but the data set "
                f"has {n_records}: use {key('target_size', max_target_size(n_records))} or less"
            )
        order = rng.permutation(n_records)
        target_in = order[:target_size]
        target_out = order[target_size : 2 * target_size]
        pool = order[2 * target_size :]
        size = shadow_size or target_size

    if 2 * size <= len(pool):
        shadow_in, shadow_out = draw_shadow_sets(pool, size, n_shadows, rng)
        train = None
    elif len(pool) >= size + _min_out(size):
        shadow_in, shadow_out, train = draw_overlapping_sets(pool, size, n_shadows, rng)
    elif not need_pool:
        shadow_in = shadow_out = tuple(np.zeros(0, np.int64) for _ in range(n_shadows))
        train = None
    else:
        fits = int(len(pool) / (1 + MIN_OUT_SHARE))
        raise DataError(
            f"the attacker's pool has {len(pool):,} records, but shadows of {size:,} training "
            f"records need at least {size + _min_out(size):,} (their training sets may overlap; "
            f"each is tested on a quarter of its size besides): train smaller shadows with "
            f"{key('shadow_size', fits)}, leave more records out of the evaluation "
            f"({key('non_members')}), use online attacks ({key('attacks.run', 'lira,rmia')}: "
            f"shadows train on halves of the evaluated records) or "
            f"{key('shadow_data', 'synthetic')}"
        )
    return AuditSplits(
        target_in=np.sort(target_in),
        target_out=np.sort(target_out),
        pool=np.sort(pool),
        shadow_in=shadow_in,
        shadow_out=shadow_out,
        shadow_train=train,
        train_size=size,
        overlap=train is not None,
    )


def with_canaries(splits: AuditSplits, n_canaries: int, rng: np.random.Generator) -> AuditSplits:
    """The canary game's splits (Steinke, Nasr and Jagielski 2023): ``n_canaries`` of
    the target's non-members become canaries, each put in its training set with
    probability ½, independently; the evaluated records are the canaries (members:
    those put in). The target's other training records stay in its training set,
    unevaluated; the pool and the shadows' sets are unchanged."""
    if n_canaries > len(splits.target_out):
        raise DataError(
            f"{key('canaries', n_canaries)}: the canaries come from the target's "
            f"{len(splits.target_out):,} non-members; use "
            f"{key('canaries', len(splits.target_out))} or less, or a larger {key('target_size')}"
        )
    canaries = rng.choice(splits.target_out, n_canaries, replace=False)
    included = rng.random(n_canaries) < 0.5
    return replace(
        splits,
        target_in=np.sort(canaries[included]),
        target_out=np.sort(canaries[~included]),
        target_extra=splits.target_in,
    )


def _min_out(size: int) -> int:
    return max(1, math.ceil(MIN_OUT_SHARE * size))


def draw_shadow_sets(
    pool: np.ndarray, size: int, n_shadows: int, rng: np.random.Generator
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Each shadow's in-set and a disjoint out-set of ``size`` records from ``pool``."""
    if 2 * size > len(pool):
        raise DataError(
            f"each shadow needs {2 * size} records (in + out of {size}) but the pool has "
            f"{len(pool)}: use a smaller {key('target_size')}"
        )
    shadow_in, shadow_out = [], []
    for _ in range(n_shadows):
        draw = rng.choice(pool, size=2 * size, replace=False)
        shadow_in.append(np.sort(draw[:size]))
        shadow_out.append(np.sort(draw[size:]))
    return tuple(shadow_in), tuple(shadow_out)


def draw_overlapping_sets(
    pool: np.ndarray, size: int, n_shadows: int, rng: np.random.Generator
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """For a pool smaller than ``2 * size``: each shadow trains on ``size`` records of it and
    is tested on the rest; the attack learns from as many of its training records.

    Returns ``(shadow_in, shadow_out, shadow_train)``; ``shadow_in[i]`` is a random part
    of ``shadow_train[i]`` as large as ``shadow_out[i]``.
    """
    shadow_in, shadow_out, train = [], [], []
    for _ in range(n_shadows):
        order = rng.permutation(pool)
        chosen, rest = order[:size], order[size:]
        train.append(np.sort(chosen))
        shadow_out.append(np.sort(rest))
        shadow_in.append(np.sort(rng.choice(chosen, size=len(rest), replace=False)))
    return tuple(shadow_in), tuple(shadow_out), tuple(train)


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


def balanced_picks(takes: list[int], n_records: int, rng: np.random.Generator) -> np.ndarray:
    """``(len(takes), n_records)`` bool: model ``k`` takes ``takes[k]`` records (all of
    them when there are fewer), each time those IN for the fewest models so far (ties
    at random), so that every record is IN for as many models as any other, give or
    take one, and the models' sets are random."""
    keep = np.zeros((len(takes), n_records), dtype=bool)
    count = np.zeros(n_records, dtype=np.int64)
    for k, take in enumerate(takes):
        chosen = np.lexsort((rng.random(n_records), count))[: min(take, n_records)]
        keep[k, chosen] = True
        count[chosen] += 1
    return keep


def online_shadow_sets(
    splits: AuditSplits, rng: np.random.Generator, fill: np.ndarray | None = None
) -> AuditSplits:
    """Shadows that train on the evaluated records, each on as many records as the target.

    Every evaluated record (the target's members and non-members) is IN for half of
    the shadows and OUT for the others: each shadow takes a balanced half. A shadow
    imitates the target, so its training set keeps to ``splits.train_size``:

    * when half of the evaluated records is more than that (a smaller ``shadow_size``),
      each shadow takes ``train_size`` of them, every record IN for as many shadows as
      any other (give or take one);
    * when it is fewer (the evaluation holds fewer non-members than members, or the
      user's target trained on records beyond those evaluated), each shadow makes up
      the difference from ``fill`` (records of the attacker's pool: RMIA's population
      first), balanced the same way. A pool too small for that leaves the shadows
      smaller; ``training_sets`` says by how much.

    Each shadow's out-set is the evaluated records it did not train on. Records of
    ``fill`` no shadow takes stay OUT for every shadow (RMIA's population, when the
    evaluated halves already have the target's size).
    """
    index, _ = splits.evaluation()
    n, size = len(index), splits.train_size or len(index) // 2
    if size >= n // 2:
        keep = balanced_memberships(splits.n_shadows, n, rng)
    else:
        keep = balanced_picks([size] * splits.n_shadows, n, rng)
    shadow_in = tuple(np.sort(index[k]) for k in keep)
    shadow_out = tuple(np.sort(index[~k]) for k in keep)
    train = None
    short = [size - len(s) for s in shadow_in]
    if max(short) > 0 and fill is not None and len(fill):
        extra = balanced_picks(short, len(fill), rng)
        train = tuple(np.sort(np.r_[s, fill[e]]) for s, e in zip(shadow_in, extra, strict=True))
    return dataclasses.replace(
        splits, shadow_in=shadow_in, shadow_out=shadow_out, shadow_train=train, overlap=False
    )


@dataclass(frozen=True)
class RecipePool:
    """The recipe game's draw: the pool, the population ``z`` outside it, the records
    outside the pool, and who trains on what: ``keep`` ``(1 + K, len(pool))`` (row 0
    the target, an independent random half; rows 1.. the reference models, balanced
    halves). Every model trains on half of the pool, as many records as the target;
    none trains on ``z``."""

    pool: np.ndarray
    z: np.ndarray
    outside: np.ndarray
    keep: np.ndarray

    @property
    def in_sets(self) -> list[np.ndarray]:
        """Each model's training set: the target's half of the pool, then each
        reference model's."""
        return [self.pool[k] for k in self.keep]


def draw_recipe_pool(
    n_records: int, pool_size: int, n_reference: int, population: int, rng: np.random.Generator
) -> RecipePool:
    """A pool of ``pool_size`` records, ``population`` records outside it, and the
    halves each model trains on (see :class:`RecipePool`)."""
    order = rng.permutation(n_records)
    pool = np.sort(order[:pool_size])
    z = np.sort(order[pool_size : pool_size + population])
    # The target takes an independent random half; the reference models balanced
    # halves (see balanced_memberships), so each pool record is IN for half of them.
    target_half = np.zeros(pool_size, dtype=bool)
    target_half[rng.permutation(pool_size)[: pool_size // 2]] = True
    keep = np.vstack([target_half, balanced_memberships(n_reference, pool_size, rng)])
    return RecipePool(pool, z, order[pool_size:], keep)
