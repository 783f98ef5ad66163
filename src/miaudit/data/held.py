"""Data sets whose records miaudit holds as given: text, opaque objects, and tables
its encoder refuses when the user's own model reads them.

Position in the pipeline: ``config -> data -> splits -> ...``. Each builder here
ends, like :mod:`miaudit.data.build`'s, in one :class:`~miaudit.data.Dataset`, with
the shared policies (labels to codes, duplicates dropped first kept, too few records
refused), and attaches the user's records as :class:`~miaudit.data.records.RawRecords`
with ``held=True``: ``Dataset.X`` column 0 is each record's handle
(:mod:`miaudit.data.kinds.base`), and text rows carry their hashed token ids after it
(:mod:`miaudit.data.kinds.text`).
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd

from miaudit.data.build import _check_size, _columns_text, _id_like, check_ids, encode_labels
from miaudit.data.dataset import Dataset
from miaudit.data.kinds.base import content_digest
from miaudit.data.kinds.text import (
    check_handles,
    check_texts,
    encode_texts,
    looks_like_text,
    token_length,
)
from miaudit.data.records import RawRecords
from miaudit.errors import DataError

__all__ = ["held_table", "opaque_dataset", "text_dataset"]


def _group_keys(features: pd.DataFrame | np.ndarray, codes: np.ndarray) -> np.ndarray | None:
    """One integer per row, equal exactly when two rows are the same record (values and
    label); ``None`` when the records cannot be compared (objects that do not pickle)."""
    if isinstance(features, pd.DataFrame):
        try:
            columns = [pd.factorize(features[c], use_na_sentinel=False)[0] for c in features]
        except TypeError:  # cells pandas cannot hash (lists, dicts): compare pickles
            return _pickle_keys(list(features.itertuples(index=False)), codes)
        keys = np.column_stack([*columns, codes]) if columns else codes[:, None]
        return np.unique(keys, axis=0, return_inverse=True)[1].ravel()
    values = np.asarray(features, dtype=object)
    if all(isinstance(v, str) for v in values):
        keys = np.column_stack([pd.factorize(values)[0], codes])
        return np.unique(keys, axis=0, return_inverse=True)[1].ravel()
    return _pickle_keys(list(values), codes)


def _pickle_keys(items: list[Any], codes: np.ndarray) -> np.ndarray | None:
    try:
        blobs = [pickle.dumps(v, protocol=5) for v in items]
    except Exception:
        return None
    keys = np.column_stack([pd.factorize(np.array(blobs, dtype=object))[0], codes])
    return np.unique(keys, axis=0, return_inverse=True)[1].ravel()


def _hold(
    features: pd.DataFrame | np.ndarray,
    labels: Any,
    *,
    kind: str,
    name: str,
    source: str,
    what: str,
    feature_names: list[str],
    drop_duplicates: bool,
    ids: Any,
    notes: dict[str, Any],
    text_column: str | None = None,
) -> Dataset:
    n_read = len(features)
    check_handles(n_read, what)
    codes, values = encode_labels(labels, what=f"{what} (label)", with_values=True)
    names = [str(v) for v in values]
    if ids is not None:
        ids = check_ids(ids, n_read, what)
    notes = {**notes, "rows_read": n_read}
    groups = _group_keys(features, codes)
    if groups is None:
        notes["duplicates_unchecked"] = "the records do not pickle, so equal ones cannot be found"
    first = np.arange(n_read)
    if groups is not None:
        _, first_of_group = np.unique(groups, return_index=True)
        first = first_of_group[groups]
    keep = first == np.arange(n_read) if drop_duplicates else np.ones(n_read, bool)
    row = np.flatnonzero(keep).astype(np.int64)
    dropped = n_read - len(row)
    notes["duplicates_dropped"] = int(dropped)
    _check_size(len(row), what, dropped)
    y = codes[row]
    present = np.unique(y)
    if len(present) < 2:
        raise DataError(
            f"{what}: after dropping duplicates a single class is left; supply at least 2"
        )
    kept = features.iloc[row].reset_index(drop=True) if hasattr(features, "iloc") else features[row]
    handles = np.arange(len(row), dtype=np.float32)
    if kind == "text":
        texts = kept[text_column] if isinstance(kept, pd.DataFrame) else kept
        length = token_length(texts)
        X, cut = encode_texts(texts, handles, length)
        notes.update(text_tokens=length, texts_truncated=int(cut))
        if text_column is not None:
            notes["text_column"] = text_column
    else:
        X = handles[:, None]
    digest = content_digest(kept)
    if digest is not None:
        notes["content_sha256"] = digest
    record_of_row = np.full(n_read, -1, dtype=np.int64)
    record_of_row[row] = np.arange(len(row))
    source_rows = record_of_row[first] if drop_duplicates else np.arange(n_read, dtype=np.int64)
    dataset = Dataset(
        name=name, X=X, y=y, class_names=names, feature_names=feature_names, kind=kind,
        source=source, encoder=None, notes=notes, row=row,
        ids=None if ids is None else ids[row],
    )  # fmt: skip
    raw = RawRecords(
        features=kept, label_values=values, encoded=X, source_rows=source_rows, held=True
    )
    dataset = _with_raw(dataset, raw)
    return dataset


def _with_raw(dataset: Dataset, raw: RawRecords) -> Dataset:
    import dataclasses

    return dataclasses.replace(dataset, raw=raw)


def text_dataset(
    texts: Any,
    labels: Any,
    *,
    name: str,
    source: str,
    what: str,
    text_column: str | None = None,
    drop_duplicates: bool = True,
    ids: Any = None,
    notes: dict[str, Any] | None = None,
) -> Dataset:
    """A text :class:`Dataset`: ``texts`` a sequence of strings, or a DataFrame of feature
    columns one of which, ``text_column``, holds the texts.

    Raises
    ------
    DataError
        A text that is missing, empty, bytes, a number or too long (naming the row),
        labels that do not fit, too few records.
    """
    labels = labels if isinstance(labels, pd.Series) else pd.Series(np.asarray(labels))
    if isinstance(texts, pd.DataFrame):
        if text_column not in texts.columns:
            raise DataError(
                f"{what}: no text column {text_column!r}; columns are: "
                f"{_columns_text(texts.columns)}"
            )
        frame = texts.reset_index(drop=True).copy()
        frame[text_column] = check_texts(
            frame[text_column], f"{what} (text column {text_column!r})"
        )
        features: pd.DataFrame | np.ndarray = frame
        feature_names = [str(c) for c in frame.columns]
    else:
        if isinstance(texts, str):
            raise DataError(f"{what}: one string is not a data set; pass a list of texts")
        features = check_texts(texts, f"{what} (texts)")
        feature_names = [text_column or "text"]
        text_column = None
    if len(labels) != len(features):
        raise DataError(
            f"{what}: {len(features)} texts but {len(labels)} labels; supply one label per text"
        )
    return _hold(
        features, labels.reset_index(drop=True), kind="text", name=name, source=source,
        what=what, feature_names=feature_names, drop_duplicates=drop_duplicates, ids=ids,
        notes=dict(notes or {}), text_column=text_column,
    )  # fmt: skip


def opaque_dataset(
    records: Any,
    labels: Any,
    *,
    name: str,
    source: str,
    what: str,
    drop_duplicates: bool = True,
    ids: Any = None,
) -> Dataset:
    """A data set of opaque records: any Python objects, one per label."""
    values = np.empty(len(records), dtype=object)
    values[:] = list(records)
    labels = labels if isinstance(labels, pd.Series) else pd.Series(np.asarray(labels))
    if len(labels) != len(values):
        raise DataError(
            f"{what}: {len(values)} records but {len(labels)} labels; supply one label per record"
        )
    missing = [i for i, v in enumerate(values) if v is None]
    if missing:
        raise DataError(f"{what}: record {missing[0]} is None; drop the rows without a record")
    return _hold(
        values, labels.reset_index(drop=True), kind="opaque", name=name, source=source,
        what=what, feature_names=["record"], drop_duplicates=drop_duplicates, ids=ids,
        notes={},
    )  # fmt: skip


def held_table(
    features: pd.DataFrame,
    labels: pd.Series,
    *,
    because: str,
    name: str,
    source: str,
    what: str,
    drop_duplicates: bool = True,
    ids: Any = None,
) -> Dataset:
    """A table held as given (``because`` says why miaudit's encoder refused it): the
    user's model reads its rows exactly as they are. Columns holding a different text
    or integer in every row are noted (``id_like_columns``), as for encoded tables: an
    identifier lets a model memorise records."""
    text = {c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c].dtype)}
    free = [c for c in text if looks_like_text(features[c]) is not None]
    id_like = [c for c in _id_like(features, text) if c not in free]
    dataset = _hold(
        features.reset_index(drop=True), labels.reset_index(drop=True), kind="tabular",
        name=name, source=source, what=what,
        feature_names=[str(c) for c in features.columns], drop_duplicates=drop_duplicates,
        ids=ids, notes={"held_because": because, "label_column": str(labels.name)},
    )  # fmt: skip
    if id_like:
        dataset.notes["id_like_columns"] = id_like
    return dataset
