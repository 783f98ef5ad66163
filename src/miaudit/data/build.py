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
from miaudit.data.kinds.text import looks_like_text
from miaudit.errors import DataError, key

__all__ = [
    "MAX_CATEGORIES",
    "MIN_RECORDS",
    "UnencodableError",
    "arrays_dataset",
    "check_ids",
    "encode_labels",
    "image_dataset",
    "table_categoricals",
    "table_dataset",
]

#: Fewest records a data set may have: below this no split into target members,
#: non-members and shadow data is meaningful. The split stage checks real needs.
MIN_RECORDS = 10
#: Most categories one column may one-hot into. Real categorical attributes have
#: tens (Census-Income's largest has 52); thousands means an identifier or free
#: text, whose one-hot matrix would not fit in memory and would only let a model
#: memorise records.
MAX_CATEGORIES = 1000
#: Fewest rows from which a column holding a different value in every row is taken
#: for an identifier (and reported) rather than for a feature.
ID_LIKE_ROWS = 20


class UnencodableError(DataError):
    """miaudit's tabular encoder refuses the cells (missing or non-numeric numbers, too
    many categories): the records can still be held as given for the user's own model
    (:mod:`miaudit.data.held`)."""


def check_ids(values: Any, n: int, what: str) -> np.ndarray:
    """The user's record identifiers as ``int64`` or text, one per row and unique.

    Raises
    ------
    DataError
        If there are not ``n`` of them, one is missing, or one repeats.
    """
    ids = pd.Series(np.asarray(values) if not isinstance(values, pd.Series) else values)
    if len(ids) != n:
        raise DataError(f"{what}: {len(ids)} ids for {n} rows; supply one id per row")
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise DataError(f"{what}: the id of row {row} is missing; every record needs an id")
    repeated = ids.duplicated(keep=False).to_numpy()
    if repeated.any():
        rows = np.flatnonzero(repeated)
        first = ids.iloc[rows[0]]
        twice = rows[ids.iloc[rows].to_numpy() == first][:2]
        raise DataError(
            f"{what}: ids are not unique: {first!r} names rows {int(twice[0])} and "
            f"{int(twice[1])} ({len(rows)} rows share an id); give each record its own id"
        )
    if pd.api.types.is_integer_dtype(ids.dtype):
        return ids.to_numpy(dtype=np.int64)
    return ids.astype(str).to_numpy(dtype=str)


def _id_like(df: pd.DataFrame, one_hot: set[str]) -> list[str]:
    """Feature columns that hold a different text or integer value in every row."""
    if len(df) < ID_LIKE_ROWS:
        return []
    found = []
    for column in df.columns:
        values = df[column]
        text = column in one_hot
        if (text or pd.api.types.is_integer_dtype(values.dtype)) and values.is_unique:
            found.append(str(column))
    return found


def table_categoricals(
    df: pd.DataFrame, label: str, declared: Sequence[str] | None, id_column: str | None = None
) -> list[str]:
    """Columns to one-hot: non-number columns, plus the ones the user declared."""
    chosen = [
        str(c)
        for c in df.columns
        if c not in (label, id_column)
        and (
            not pd.api.types.is_numeric_dtype(df[c].dtype)
            or pd.api.types.is_bool_dtype(df[c].dtype)
        )
    ]
    return chosen + [str(c) for c in declared or () if str(c) not in chosen]


def _columns_text(columns: Sequence[Any], limit: int = 30, width: int = 40) -> str:
    """The first ``limit`` column names, each cut to ``width`` characters: a one-line
    message stays one line however long a header is."""
    names = [str(c) for c in columns]
    cut = [n if len(n) <= width else f"{n[: width - 1]}…({len(n):,} characters)" for n in names]
    more = f" … ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(cut[:limit]) + more


def encode_labels(
    values: pd.Series | np.ndarray, *, what: str, with_values: bool = False
) -> tuple[np.ndarray, Any]:
    """Map labels of any type to ``int64`` codes ``0 .. C-1``.

    Parameters
    ----------
    values:
        One label per record.
    what:
        Names the data for error messages (a file path, ``"census"``).
    with_values:
        Return the label values themselves (in code order, their own dtype) instead
        of their names.

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
        whole = as_float == np.round(as_float)
        if whole.all():
            labels = pd.Series(as_float.astype(np.int64))
        elif len(np.unique(as_float)) > MAX_FRACTIONAL_CLASSES:
            # A measurement, not a class: each value would become a class of its own.
            example = as_float[~whole][0]
            raise DataError(
                f"{what}: the label holds {len(np.unique(as_float)):,} distinct fractional "
                f"numbers (e.g. {example:g}), a measurement rather than classes: membership "
                "inference audits a classifier, so give class labels (whole numbers or names), "
                "or bin the values into classes"
            )
    try:
        codes, uniques = pd.factorize(labels, sort=True)
    except TypeError:  # mixed types (e.g. ints and strings) do not sort together
        codes, uniques = pd.factorize(labels.astype(str), sort=True)
    class_names = [str(u) for u in uniques]
    if with_values:
        # The user's own values in their own dtype (whole floats stay floats).
        originals = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
        class_names = originals[np.unique(codes, return_index=True)[1]]
    if len(class_names) < 2:
        raise DataError(
            f"{what}: the label has a single class ({class_names[0]!r}); "
            "membership inference needs a classifier, so supply at least 2 classes"
        )
    return codes.astype(np.int64), class_names


#: Most distinct fractional label values read as classes (0.5, 1.5, …); more is a
#: measurement, refused rather than turned into hundreds of classes.
MAX_FRACTIONAL_CLASSES = 50


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
    id_column: str | None = None,
    ids: Any = None,
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
        Extra facts for :attr:`Dataset.notes`; row counts are added, and
        ``"id_like_columns"``: features holding a different text or integer value
        in every row (identifiers, most likely, which let a model memorise records).
    id_column:
        A column naming each record (not a feature): its values become
        :attr:`Dataset.ids`.
    ids:
        The records' identifiers, one per row of ``df`` (instead of ``id_column``).

    Raises
    ------
    DataError
        Missing label or id column, ids that repeat, unknown categorical column,
        missing or non-numeric numeric values, missing labels, a single class, or too
        few records.
    """
    if id_column is not None:
        if id_column not in df.columns or id_column == label:
            raise DataError(
                f"{what}: no id column {id_column!r} besides the label; columns are: "
                f"{_columns_text(df.columns)}"
            )
        if ids is not None:
            raise DataError(f"{what}: pass the ids as id_column or as ids, not both")
        ids = df[id_column]
        df = df.drop(columns=[id_column])
        categorical = [c for c in categorical if c != id_column]
    if ids is not None:
        ids = check_ids(ids, len(df), what)
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
        raise UnencodableError(f"{what}: {exc}") from None
    row = np.arange(n_read, dtype=np.int64)
    if drop_duplicates:
        # Equal raw rows are equal encoded rows and, as the encoder is injective on
        # the values it is fitted on (categories compared as strings), vice versa.
        keep = ~df.duplicated(keep="first").to_numpy()
        df, row = df.loc[keep], row[keep]
    dropped = n_read - len(df)
    notes["duplicates_dropped"] = int(dropped)
    for column in one_hot:
        text = looks_like_text(df[column])
        if text is not None:
            raise UnencodableError(
                f"{what}: column {column!r} holds free text ({text[0]:.0%} distinct values, "
                f"{text[1]:.0f} words on average), which one-hot encoding would make a category "
                f"per record: name it as the text column ({key('text_column', column)}) to "
                "audit a text model, or drop it"
            )
    id_like = _id_like(df.drop(columns=[label]), one_hot)
    if id_like:
        notes["id_like_columns"] = id_like
    _check_size(len(df), what, dropped)

    y, class_names = encode_labels(df[label], what=f"{what} (label {label!r})")
    features = df.drop(columns=[label])
    encoder = TabularEncoder(categorical=[c for c in features.columns if c in one_hot])
    try:
        encoder.fit(features)
        wide = {c: len(v) for c, v in encoder.categories_.items() if len(v) > MAX_CATEGORIES}
        if wide:
            col, count = max(wide.items(), key=lambda kv: kv[1])
            raise UnencodableError(
                f"categorical column {col!r} has {count:,} distinct values (at most "
                f"{MAX_CATEGORIES:,} can be one-hot encoded); it looks like an identifier "
                f"or free text: name it as the id column ({key('id_column')}) if it "
                "names records, drop it, or make every cell a number if it is numeric"
            )
        X = encoder.transform(features)
    except DataError as exc:  # the encoder's refusals (and the width above)
        raise UnencodableError(f"{what}: {exc}") from None
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
        row=row,
        ids=None if ids is None else ids[row],
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
    pixel_scale: float | None = None,
    ids: Any = None,
) -> Dataset:
    """Make an image :class:`Dataset`: ``float32`` ``(n, c, h, w)`` in ``[0, 1]``.

    Parameters
    ----------
    images:
        ``(n, h, w)`` (one channel) or ``(n, c, h, w)``, any real dtype, values
        ``>= 0``. ``uint8`` images with values above 1 are divided by 255; other
        images must already lie in ``[0, 1]`` unless ``pixel_scale`` says what value
        is white.
    pixel_scale:
        Divide the pixels by this (the value of white, e.g. 255 or 65535); the
        result must lie in ``[0, 1]``.
    ids:
        The records' identifiers, one per image (:attr:`Dataset.ids`).
    labels:
        One label per image; with ``class_names`` they must already be codes
        ``0 .. len(class_names) - 1``, otherwise they are mapped like table labels.
    name, source, what, drop_duplicates, notes:
        As for :func:`table_dataset`.

    Raises
    ------
    DataError
        Wrong shape, lengths that differ, non-finite or negative pixels, values above
        1 in an array that is not ``uint8`` without ``pixel_scale``, missing labels, a
        single class, or too few records.
    """
    X = np.asarray(images)
    if pixel_scale is not None and not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise DataError(f"{what}: pixel scale {pixel_scale!r} must be a positive number")
    given_dtype = str(X.dtype)
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

    if ids is not None:
        ids = check_ids(ids, len(X), what)
    notes = {**(notes or {}), "rows_read": len(X)}
    keep = _first_occurrences(X, y) if drop_duplicates else np.ones(len(X), dtype=bool)
    dropped = int(len(X) - keep.sum())
    notes["duplicates_dropped"] = dropped
    row = np.flatnonzero(keep).astype(np.int64)
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
    if pixel_scale is not None:
        scale = float(pixel_scale)
    else:
        scale = 255.0 if given_dtype == "uint8" and high > 1 else 1.0
    if high / scale > 1:
        # Guessing a scale would silently change what every model sees.
        fix = (
            f"pixel scale {scale:g} leaves values above 1; pass the value of white"
            if pixel_scale is not None
            else f"pass {key('pixel_scale')} with the value of white, e.g. 255, or "
            "save the images as uint8"
        )
        raise DataError(f"{what}: {given_dtype} images with values up to {high:g}; {fix}")
    if scale != 1.0:
        X /= np.float32(scale)
    if pixel_scale is not None:
        notes["pixel_scale"] = scale
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
        row=row,
        ids=None if ids is None else ids[row],
    )


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
