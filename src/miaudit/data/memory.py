"""Data handed over in memory (``audit(data=...)``): which kind of record it holds,
and the :class:`~miaudit.data.Dataset` of it.

Position in the pipeline: ``config -> data -> splits -> ...``. The one rule of what
``data=`` means:

* a DataFrame: table rows (features and the ``label`` column); with
  ``text_column=``, text records whose other columns ride along;
* ``(X, y)`` with ``X`` a 2-D numeric array: a table; ``(n, h, w)`` or
  ``(n, c, h, w)``: images;
* ``(texts, y)`` with ``texts`` a sequence of strings: text records;
* ``(records, y)`` with ``records`` a sequence of any other Python objects (dicts,
  paths, token lists): opaque records.

Whatever the kind, a user's own model reads the records exactly as they were given.
A table whose cells miaudit's encoder refuses (missing values, free text) is held as
given when ``hold`` says the user's code trains and predicts
(:func:`miaudit.data.kinds.held_table`); miaudit refuses it only where it would have
to encode it itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from miaudit.data.build import UnencodableError, check_ids, columns_text
from miaudit.data.dataset import Dataset
from miaudit.data.kinds import (
    arrays_dataset,
    held_table,
    opaque_dataset,
    table_categoricals,
    table_dataset,
    text_dataset,
)
from miaudit.data.records import attach_arrays, attach_table
from miaudit.errors import DataError

__all__ = ["memory_dataset", "record_kind_of_pair"]


def record_kind_of_pair(X: Any) -> str:
    """What ``X`` of ``data=(X, y)`` holds: ``"text"``, ``"opaque"`` or ``"arrays"``
    (a numeric table or images)."""
    if isinstance(X, pd.Series):
        X = X.to_numpy(dtype=object)
    if isinstance(X, np.ndarray) and X.dtype != object:
        return "text" if X.dtype.kind == "U" and X.ndim == 1 else "arrays"
    items = list(X) if isinstance(X, list | tuple | np.ndarray) else None
    if items is None:
        return "arrays"
    present = [v for v in items if not _missing(v)]
    if present and all(isinstance(v, str) for v in present):
        return "text"  # a missing text is named by the text builder, not made an object
    if all(isinstance(v, int | float | np.number | bool) for v in items):
        return "arrays"  # 1-D numbers: arrays_dataset says what it expected
    try:
        as_array = np.asarray(items)
    except (ValueError, TypeError):  # ragged: token lists of different lengths
        return "opaque"
    numeric = np.issubdtype(as_array.dtype, np.number) or as_array.dtype == np.bool_
    return "arrays" if numeric and as_array.ndim >= 2 else "opaque"


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def memory_dataset(
    data: Any,
    label: str | None = None,
    *,
    ids: Any = None,
    id_column: str | None = None,
    categorical: list[str] | None = None,
    pixel_scale: float | None = None,
    drop_duplicates: bool = True,
    text_column: str | None = None,
    hold: bool = False,
) -> Dataset:
    """A :class:`Dataset` (with its :class:`~miaudit.data.records.RawRecords`) from
    records held in memory (see the module notes for what ``data`` may be).

    Parameters
    ----------
    data:
        A pandas DataFrame (features and the ``label`` column, perhaps an id column),
        or ``(X, y)``: a 2-D numeric table, ``(n, h, w)`` / ``(n, c, h, w)`` images, a
        sequence of texts or of other objects, and one label per row.
    label:
        The DataFrame's label column (not used with pairs).
    ids, id_column:
        The records' identifiers: an array (one per row), or a DataFrame column.
    categorical:
        DataFrame columns to one-hot encode besides the non-numeric ones.
    pixel_scale:
        Images that are not ``uint8``: the value of white.
    drop_duplicates:
        Drop exact duplicate records (features and label), keeping the first.
    text_column:
        The DataFrame's column of texts: its records are text records.
    hold:
        The user's code trains and predicts: a table the encoder refuses is held as
        given rather than refused.

    Raises
    ------
    DataError
        Data of another kind, a missing label, text or id column, ids that repeat, and
        whatever the builders refuse; each message names the input and the fix.
    """
    if isinstance(data, pd.DataFrame):
        return _frame_dataset(
            data, label, ids, id_column, categorical, drop_duplicates, text_column, hold
        )
    if isinstance(data, tuple | list) and len(data) == 2:
        if label is not None or id_column is not None:
            raise DataError(
                "data=(X, y) carries its labels in y and has no columns: drop label= and "
                "id_column= (pass ids= for identifiers)"
            )
        X, y = data
        if isinstance(X, pd.DataFrame):
            raise DataError(
                "data=(X, y) with a DataFrame X: pass the DataFrame with its label column "
                "instead, data=frame, label='column'"
            )
        if hasattr(X, "__len__") and len(X) == 0:
            raise DataError("data=(X, y): X holds no records; supply the records and their labels")
        kind = record_kind_of_pair(X)
        if kind != "arrays":
            if text_column is not None:
                raise DataError(
                    "text_column= names a DataFrame's column of texts; data=(texts, y) holds "
                    "the texts themselves: drop text_column="
                )
            for given, what in ((categorical, "categorical="), (pixel_scale, "pixel_scale=")):
                if given:
                    raise DataError(
                        f"{what} applies to tables and images; data=(records, y) holds "
                        f"{kind} records: drop it"
                    )
            build = text_dataset if kind == "text" else opaque_dataset
            name = "texts" if kind == "text" else "objects"
            return _in_memory(build(
                X, y, name=name, source=f"{kind} records in memory", what="data",
                drop_duplicates=drop_duplicates, ids=ids,
            ), ids)  # fmt: skip
        if text_column is not None:
            raise DataError("text_column= names a DataFrame column; data=(X, y) has none")
        X = np.asarray(X)
        y = np.asarray(y)
        dataset = arrays_dataset(
            X, y, name="arrays", source="arrays in memory", what="data", categorical=categorical,
            drop_duplicates=drop_duplicates, ids=ids, pixel_scale=pixel_scale,
        )  # fmt: skip
        return _in_memory(attach_arrays(dataset, X, y), ids)
    raise DataError(
        f"data: expected a pandas DataFrame (with label='column'), a pair (X, y) of arrays, "
        f"or a pair (texts, labels); got {type(data).__name__}"
    )


def _in_memory(dataset: Dataset, given_ids: Any) -> Dataset:
    dataset.raw.in_memory = True
    if given_ids is not None:
        dataset.raw.source_ids = check_ids(given_ids, len(dataset.raw.source_rows), "data")
    return dataset


def _frame_dataset(
    frame, label, ids, id_column, categorical, drop_duplicates, text_column, hold
) -> Dataset:
    if label is None:
        raise DataError(
            f"data: name the DataFrame's label column with label=...; columns are: "
            f"{', '.join(map(str, frame.columns[:30]))}"
        )
    _check_columns(frame)
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    label = str(label)
    if label not in frame.columns:
        raise DataError(
            f"data: no label column {label!r}; columns are: "
            f"{', '.join(map(str, frame.columns[:30]))}; pass one of them as label"
        )
    dropped = [label, *([id_column] if id_column else [])]
    if id_column is not None and (id_column not in frame.columns or id_column == label):
        raise DataError(
            f"data: no id column {id_column!r} besides the label; columns are: "
            f"{', '.join(map(str, frame.columns[:30]))}"
        )
    given = frame[id_column] if id_column is not None else ids
    features = frame.drop(columns=dropped)
    if text_column is not None and str(text_column) in dropped:
        role = "label" if str(text_column) == label else "id"
        raise DataError(
            f"data: the text column {text_column!r} is also the {role} column; name the "
            "column of texts"
        )
    if text_column is not None:
        if categorical:
            raise DataError(
                "categorical= encodes table columns for miaudit's models; text records are "
                "held as given: drop categorical="
            )
        dataset = text_dataset(
            features, frame[label], name="dataframe", source="DataFrame in memory",
            what="data", text_column=str(text_column), drop_duplicates=drop_duplicates,
            ids=given,
        )  # fmt: skip
        dataset.notes["label_column"] = label
        return _in_memory(dataset, given)
    try:
        dataset = table_dataset(
            frame, label,
            categorical=table_categoricals(frame, label, categorical, id_column, what="data"),
            name="dataframe", source="DataFrame in memory", what="data",
            drop_duplicates=drop_duplicates, id_column=id_column, ids=ids,
        )  # fmt: skip
    except UnencodableError as exc:
        if not hold:
            raise
        because = str(exc).removeprefix("data: ")
        dataset = held_table(
            features, frame[label], because=f"miaudit's encoder refuses it ({because})",
            name="dataframe", source="DataFrame in memory", what="data",
            drop_duplicates=drop_duplicates, ids=given,
        )  # fmt: skip
        return _in_memory(dataset, given)
    return _in_memory(attach_table(dataset, features, frame[label]), given)


def _check_columns(frame: pd.DataFrame) -> None:
    """Refuse a DataFrame whose columns cannot name its cells one way."""
    if frame.empty and len(frame.columns) == 0:
        raise DataError("data: the DataFrame is empty; supply records with a label column")
    names = [str(c) for c in frame.columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(
            f"data: column {repeated[0]!r} appears {names.count(repeated[0])} times; give "
            "every column its own name"
        )
    if len(frame) == 0:
        raise DataError(
            f"data: the DataFrame has columns ({columns_text(names, limit=10)}) but no rows; "
            "supply the records"
        )
