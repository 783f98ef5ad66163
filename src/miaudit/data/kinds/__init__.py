"""Kinds of record: the third extension point (:mod:`miaudit.data.kinds.base`).

Adding a kind is one file beside these and one line in :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from miaudit.data.dataset import Dataset
from miaudit.data.kinds.base import MAX_HANDLES, RecordKind, content_digest, excerpt
from miaudit.data.kinds.image import ImageKind, image_dataset
from miaudit.data.kinds.opaque import OpaqueKind, opaque_dataset
from miaudit.data.kinds.table import TableKind, held_table, table_categoricals, table_dataset
from miaudit.data.kinds.text import TextKind, text_dataset
from miaudit.errors import DataError

__all__ = [
    "KINDS",
    "MAX_HANDLES",
    "RecordKind",
    "arrays_dataset",
    "content_digest",
    "excerpt",
    "held_table",
    "image_dataset",
    "kind_of",
    "opaque_dataset",
    "table_categoricals",
    "table_dataset",
    "text_dataset",
]

#: Every kind of record, by ``Dataset.kind``.
KINDS: dict[str, RecordKind] = {
    kind.name: kind for kind in (TableKind(), ImageKind(), TextKind(), OpaqueKind())
}


def kind_of(data: Any) -> RecordKind:
    """The kind of ``data``'s records."""
    return KINDS[data.kind]


def arrays_dataset(
    X: Any,
    y: Any,
    *,
    name: str,
    source: str,
    what: str,
    categorical: Sequence[str] | None = None,
    drop_duplicates: bool = True,
    feature_names: Sequence[str] | None = None,
    ids: Any = None,
    pixel_scale: float | None = None,
) -> Dataset:
    """A :class:`Dataset` from arrays: ``X`` ``(n, d)`` is a numeric table (columns
    ``x0, x1, …`` or ``feature_names``), ``(n, h, w)`` or ``(n, c, h, w)`` images.

    Raises
    ------
    DataError
        Arrays of other shapes or kinds, or lengths that differ (and what
        :func:`table_dataset` and :func:`image_dataset` refuse).
    """
    X, y = np.asarray(X), np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise DataError(
            f"{what}: X has {len(X)} rows but y has shape {y.shape}; supply one label per row of X"
        )
    if np.iscomplexobj(X) or np.iscomplexobj(y):
        raise DataError(
            f"{what}: {'X' if np.iscomplexobj(X) else 'y'} holds complex numbers; give real "
            "features and labels (complex parts would be silently lost)"
        )
    if X.ndim in (3, 4):
        if categorical:
            raise DataError(f"{what}: images have no categorical columns; leave categorical unset")
        return image_dataset(
            X, y, name=name, source=source, what=what, drop_duplicates=drop_duplicates,
            ids=ids, pixel_scale=pixel_scale,
        )  # fmt: skip
    if X.ndim != 2:
        raise DataError(
            f"{what}: X has shape {X.shape}; expected (n, d) features or (n, h, w) / (n, c, h, w) "
            "images"
        )
    if pixel_scale is not None:
        raise DataError(f"{what}: a table has no pixels; drop the pixel scale")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise DataError(f"{what}: X must hold numbers, not {X.dtype}")
    if feature_names is None or len(feature_names) != X.shape[1]:
        feature_names = [f"x{i}" for i in range(X.shape[1])]
    columns = [str(n) for n in feature_names]
    if "y" in columns:
        raise DataError(f"{what}: a feature is named 'y', which is the label; rename it")
    df = pd.DataFrame(X, columns=columns).assign(y=y)
    return table_dataset(
        df, "y", categorical=list(categorical or ()), name=name, source=source, what=what,
        drop_duplicates=drop_duplicates, ids=ids,
    )  # fmt: skip
