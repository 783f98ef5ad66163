"""Extra queries per record (augmentations), shared by the attacks that score a signal
per record and average it over queries, as LiRA's paper does (Carlini et al., §VI).

Position in the pipeline: ``records -> variants -> target / reference models -> signals``.
The variants are fixed functions of a record, so the target and every reference model
see identical ones, and every attack that asks for ``q`` queries per record reads the
first ``q - 1`` of one shared set (the planner makes as many as the most any attack asks).

* Images: the mirror image, the four one-pixel shifts, the mirror image shifted the
  same four ways, then the four diagonal shifts and their mirror images: up to
  :data:`MAX_QUERIES` queries in all (the augmentations a network trained on images
  saw; Carlini et al. query 2 or 18).
* Tables have no natural augmentation: the variants add fixed, deterministic offsets of
  ``±noise``, ``±2·noise``, … standard deviations to every numeric (standardised)
  feature, and leave one-hot blocks and binary columns as they are.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from miaudit.attacks.base import RecordFormat

__all__ = ["MAX_QUERIES", "make_variants", "numeric_columns", "queries_field", "query_variants"]

#: Most queries per record (the record and its variants).
MAX_QUERIES = 18


def queries_field(what: str):
    """The ``queries`` setting of an attack that averages its signal over queries."""
    return Field(
        default=1,
        ge=1,
        le=MAX_QUERIES,
        description=f"queries per record, {what}: 1, or more with augmentations (images: "
        "mirror, then 1-pixel shifts; tables: small numeric offsets)",
    )


def _shift(dx: int, dy: int, mirror: bool):
    def move(a: np.ndarray) -> np.ndarray:
        if mirror:
            a = a[..., ::-1]
        if dx:
            a = np.roll(a, dx, axis=-1)
        if dy:
            a = np.roll(a, dy, axis=-2)
        return a

    return move


#: The image variants, in the order they are used.
_IMAGE_MOVES = (
    [_shift(0, 0, True)]
    + [_shift(dx, dy, False) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    + [_shift(dx, dy, True) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))]
    + [_shift(dx, dy, m) for m in (False, True) for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
)
assert len(_IMAGE_MOVES) == MAX_QUERIES - 1


def numeric_columns(X: np.ndarray) -> np.ndarray:
    """The columns of a table that hold more than two distinct values."""
    X = np.asarray(X)
    return np.array([len(np.unique(X[:, j])) > 2 for j in range(X.shape[1])], dtype=bool)


def query_variants(
    X: np.ndarray,
    n: int,
    *,
    image: bool,
    noise: float = 0.1,
    numeric: np.ndarray | None = None,
) -> np.ndarray:
    """``n - 1`` variants of each record: ``(n - 1, len(X), ...)`` (see the module notes).

    ``numeric`` marks a table's numeric columns (default: those of ``X`` with more than
    two values; pass the whole data set's, so that every block of records gets the same
    offsets).
    """
    from miaudit.errors import ConfigError

    if not 1 <= n <= MAX_QUERIES:
        raise ConfigError(f"queries {n}: between 1 and {MAX_QUERIES} per record")
    X = np.asarray(X, dtype=np.float32)
    if n == 1:
        return X[None][:0]
    if image:
        return np.stack([_IMAGE_MOVES[i](X) for i in range(n - 1)])
    numeric = numeric_columns(X) if numeric is None else np.asarray(numeric, bool)
    out = []
    for i in range(1, n):
        sign = 1.0 if i % 2 else -1.0
        step = noise * ((i + 1) // 2)
        out.append(X + (sign * step * numeric).astype(np.float32))
    return np.stack(out)


def make_variants(records: np.ndarray, n: int, fmt: RecordFormat) -> np.ndarray:
    """:func:`query_variants` of ``records`` in the format ``fmt`` (or the variants the
    records' kind makes, for text)."""
    if fmt.variants is not None:
        return fmt.variants(records, n)
    return query_variants(records, n, image=fmt.image, numeric=fmt.numeric)
