"""From raw records to a :class:`Dataset`: the one path every loader ends in.

Position in the pipeline: ``config -> data -> splits -> ...``. The loaders
(:mod:`miaudit.data.builtin` for the built-in sets, :mod:`miaudit.data.files` for
users' files) only read records; the policies that every data set shares live
here, once:

* labels of any type become ``0 .. C-1``, class names being the sorted values;
* exact duplicate records (same features and label) are dropped, first kept,
  because a record that is both a member and a non-member of a model is
  unidentifiable and would blur every attack's ground truth;
* too few records or a single class is an error;
* tables go through the one :class:`~miaudit.data.encode.TabularEncoder`;
  images become ``float32`` ``(n, c, h, w)`` in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from miaudit.data.dataset import Dataset
from miaudit.data.encode import TabularEncoder, check_numeric
from miaudit.errors import DataError

__all__ = ["MAX_CATEGORIES", "MIN_RECORDS", "encode_labels", "image_dataset", "table_dataset"]

#: Fewest records a data set may have: below this no split into target members,
#: non-members and shadow data is meaningful. The split stage checks real needs.
MIN_RECORDS = 10
#: Most categories one column may one-hot into. Real categorical attributes have
#: tens (Census-Income's largest has 52); thousands means an identifier or free
#: text, whose one-hot matrix would not fit in memory and would only let a model
#: memorise records.
MAX_CATEGORIES = 1000


def _columns_text(columns: Sequence[Any], limit: int = 30) -> str:
    names = [str(c) for c in columns]
    more = f" … ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def encode_labels(values: pd.Series | np.ndarray, *, what: str) -> tuple[np.ndarray, list[str]]:
    """Map labels of any type to ``int64`` codes ``0 .. C-1``.

    Parameters
    ----------
    values:
        One label per record.
    what:
        Names the data for error messages (a file path, ``"census"``).

    Returns
    -------
    codes, class_names
        ``class_names[k]`` is the string form of the ``k``-th smallest label value
        (numbers sort as numbers, ``1.0`` reads ``"1"`` when all labels are whole).

    Raises
    ------
    DataError
        If a label is missing or there is only one class.
    """
    labels = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if isinstance(labels.dtype, pd.CategoricalDtype):
        labels = labels.astype(labels.cat.categories.dtype)
    missing = labels.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{what}: the label has {int(missing.sum())} missing (NaN) value(s); "
            "drop those rows or fill them in"
        )
    if pd.api.types.is_float_dtype(labels.dtype):
        as_float = labels.to_numpy(dtype=np.float64)
        if np.all(as_float == np.round(as_float)):
            labels = pd.Series(as_float.astype(np.int64))
    try:
        codes, uniques = pd.factorize(labels, sort=True)
    except TypeError:  # mixed types (e.g. ints and strings) do not sort together
        codes, uniques = pd.factorize(labels.astype(str), sort=True)
    class_names = [str(u) for u in uniques]
    if len(class_names) < 2:
        raise DataError(
            f"{what}: the label has a single class ({class_names[0]!r}); "
            "membership inference needs a classifier, so supply at least 2 classes"
        )
    return codes.astype(np.int64), class_names


def _check_size(n: int, what: str, dropped: int) -> None:
    if n < MIN_RECORDS:
        after = f" after dropping {dropped} duplicate(s)" if dropped else ""
        raise DataError(
            f"{what}: only {n} record(s){after}; an audit needs at least {MIN_RECORDS}, "
            "so supply more data"
        )


def table_dataset(
    df: pd.DataFrame,
    label: str,
    *,
    categorical: Sequence[str],
    name: str,
    source: str,
    what: str,
    drop_duplicates: bool = True,
    notes: dict[str, Any] | None = None,
) -> Dataset:
    """Encode a raw table (features plus a label column) into a tabular :class:`Dataset`.

    Parameters
    ----------
    df:
        Raw records; every column other than ``label`` is a feature.
    label:
        The label column.
    categorical:
        Feature columns to one-hot encode; the others are standardised numerics.
    name, source:
        Copied to the :class:`Dataset`.
    what:
        Names the data for error messages.
    drop_duplicates:
        Drop exact duplicate records (features and label), keeping the first.
    notes:
        Extra facts for :attr:`Dataset.notes`; row counts are added.

    Raises
    ------
    DataError
        Missing label column, unknown categorical column, missing or non-numeric
        numeric values, missing labels, a single class, or too few records.
    """
    if label not in df.columns:
        raise DataError(
            f"{what}: no label column {label!r}; columns are: {_columns_text(df.columns)}; "
            "pass one of them as label"
        )
    if df.shape[1] < 2:
        raise DataError(f"{what}: the table has no feature columns besides the label {label!r}")
    unknown = [c for c in categorical if c not in df.columns or c == label]
    if unknown:
        raise DataError(
            f"{what}: categorical column(s) {unknown} are not feature columns; "
            f"features are: {_columns_text(c for c in df.columns if c != label)}"
        )
    one_hot = set(categorical)
    notes = {**(notes or {}), "label_column": label, "rows_read": len(df)}
    n_read = len(df)
    # Problems with the values come first: they are what the user must fix.
    encode_labels(df[label], what=f"{what} (label {label!r})")
    try:
        check_numeric(df, [c for c in df.columns if c != label and c not in one_hot])
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from None
    if drop_duplicates:
        # Equal raw rows are equal encoded rows and, as the encoder is injective on
        # the values it is fitted on (categories compared as strings), vice versa.
        df = df.loc[~df.duplicated(keep="first").to_numpy()]
    dropped = n_read - len(df)
    notes["duplicates_dropped"] = int(dropped)
    _check_size(len(df), what, dropped)

    y, class_names = encode_labels(df[label], what=f"{what} (label {label!r})")
    features = df.drop(columns=[label])
    encoder = TabularEncoder(categorical=[c for c in features.columns if c in one_hot])
    try:
        encoder.fit(features)
        wide = {c: len(v) for c, v in encoder.categories_.items() if len(v) > MAX_CATEGORIES}
        if wide:
            col, count = max(wide.items(), key=lambda kv: kv[1])
            raise DataError(
                f"categorical column {col!r} has {count:,} distinct values (at most "
                f"{MAX_CATEGORIES:,} can be one-hot encoded); it looks like an identifier "
                "or free text: drop it, or make every cell a number if it is numeric"
            )
        X = encoder.transform(features)
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from None
    return Dataset(
        name=name,
        X=X,
        y=y,
        class_names=class_names,
        feature_names=[str(c) for c in features.columns],
        categorical=list(encoder.categorical),
        encoded_feature_names=encoder.encoded_feature_names,
        kind="tabular",
        source=source,
        encoder=encoder.to_dict(),
        notes=notes,
    )


def _first_occurrences(rows: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask keeping the first of each group of identical (row, label) records."""
    n = len(rows)
    raw = np.concatenate(
        [
            np.ascontiguousarray(rows.reshape(n, -1)).view(np.uint8).reshape(n, -1),
            np.ascontiguousarray(y.astype("<i8")).view(np.uint8).reshape(n, -1),
        ],
        axis=1,
    )
    keyed = np.ascontiguousarray(raw).view(np.dtype((np.void, raw.shape[1]))).ravel()
    _, first = np.unique(keyed, return_index=True)
    keep = np.zeros(n, dtype=bool)
    keep[first] = True
    return keep


def image_dataset(
    images: np.ndarray,
    labels: np.ndarray | pd.Series,
    *,
    name: str,
    source: str,
    what: str,
    class_names: Sequence[str] | None = None,
    drop_duplicates: bool = True,
    notes: dict[str, Any] | None = None,
) -> Dataset:
    """Make an image :class:`Dataset`: ``float32`` ``(n, c, h, w)`` in ``[0, 1]``.

    Parameters
    ----------
    images:
        ``(n, h, w)`` (one channel) or ``(n, c, h, w)``, any real dtype, values
        ``>= 0``. If the largest value exceeds 1 the images are divided by 255
        (by the largest value if that exceeds 255).
    labels:
        One label per image; with ``class_names`` they must already be codes
        ``0 .. len(class_names) - 1``, otherwise they are mapped like table labels.
    name, source, what, drop_duplicates, notes:
        As for :func:`table_dataset`.

    Raises
    ------
    DataError
        Wrong shape, lengths that differ, non-finite or negative pixels, missing
        labels, a single class, or too few records.
    """
    X = np.asarray(images)
    if X.ndim == 3:
        X = X[:, None]
    if X.ndim != 4:
        raise DataError(
            f"{what}: images must be (n, h, w) or (n, c, h, w), got shape {X.shape}; reshape X"
        )
    if X.shape[1] > 4 and X.shape[3] <= 4:
        raise DataError(
            f"{what}: images of shape {X.shape} look channels-last; save them as (n, c, h, w), "
            "e.g. np.transpose(X, (0, 3, 1, 2))"
        )
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise DataError(f"{what}: images must be numbers, got dtype {X.dtype}")
    labels = np.asarray(labels)
    if len(labels) != len(X):
        raise DataError(
            f"{what}: {len(X)} images but {len(labels)} labels; supply one label per image"
        )
    if class_names is None:
        y, names = encode_labels(labels, what=f"{what} (labels)")
    else:
        y, names = labels.astype(np.int64), list(class_names)
        if len(y) and (y.min() < 0 or y.max() >= len(names)):
            raise DataError(f"{what}: label codes outside 0..{len(names) - 1}; the file is corrupt")

    notes = {**(notes or {}), "rows_read": len(X)}
    keep = _first_occurrences(X, y) if drop_duplicates else np.ones(len(X), dtype=bool)
    dropped = int(len(X) - keep.sum())
    notes["duplicates_dropped"] = dropped
    if dropped:
        X, y = X[keep], y[keep]
    _check_size(len(X), what, dropped)

    X = X.astype(np.float32)
    if not np.isfinite(X).all():
        raise DataError(f"{what}: images contain NaN or infinite values; fix or drop them")
    low, high = float(X.min()), float(X.max())
    if low < 0:
        raise DataError(
            f"{what}: images have negative values (min {low:g}); save raw pixel values "
            "(0-255 or 0-1), not normalised ones"
        )
    if high > 1:
        # 8-bit pixels are the common case; anything wider is scaled by its own maximum.
        X /= np.float32(255.0 if high <= 255 else high)
    return Dataset(
        name=name,
        X=X,
        y=y,
        class_names=[str(c) for c in names],
        feature_names=[],
        kind="image",
        source=source,
        encoder=None,
        notes=notes,
    )
