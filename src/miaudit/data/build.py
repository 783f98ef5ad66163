"""The policies every data set shares, whatever its kind of record.

Position in the pipeline: ``config -> data -> splits -> ...``. Each kind of record
builds its data sets in its own file (:mod:`miaudit.data.kinds`: tables, images,
text, opaque objects); the rules they all follow live here, once:

* labels of any type become ``0 .. C-1``, class names being the sorted values;
* identifiers are one per row, present and unique;
* too few records, or a single class, is an error;
* what miaudit's tabular encoder refuses is an :class:`UnencodableError`, which a
  loader may answer by holding the records as given for the user's own model.

Exact duplicate records (same features and label) are dropped by every kind, first
kept, because a record that is both a member and a non-member of a model is
unidentifiable and would blur every attack's ground truth; each kind says what makes
two of its records the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from miaudit.errors import DataError

__all__ = [
    "MAX_CATEGORIES",
    "MIN_RECORDS",
    "UnencodableError",
    "check_ids",
    "check_size",
    "columns_text",
    "encode_labels",
]

#: Fewest records a data set may have: below this no split into target members,
#: non-members and shadow data is meaningful. The split stage checks real needs.
MIN_RECORDS = 10
#: Most categories one column may one-hot into. Real categorical attributes have
#: tens (Census-Income's largest has 52); thousands means an identifier or free
#: text, whose one-hot matrix would not fit in memory and would only let a model
#: memorise records.
MAX_CATEGORIES = 1000


class UnencodableError(DataError):
    """miaudit's tabular encoder refuses the cells (missing or non-numeric numbers, too
    many categories): the records can still be held as given for the user's own model
    (:func:`miaudit.data.kinds.held_table`)."""


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


def columns_text(columns: Sequence[Any], limit: int = 30, width: int = 40) -> str:
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
    if len(labels) == 0:
        raise DataError(f"{what}: no records, so no labels; supply records with their labels")
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


def check_size(n: int, what: str, dropped: int) -> None:
    if n < MIN_RECORDS:
        after = f" after dropping {dropped} duplicate(s)" if dropped else ""
        raise DataError(
            f"{what}: only {n} record(s){after}; an audit needs at least {MIN_RECORDS}, "
            "so supply more data"
        )
