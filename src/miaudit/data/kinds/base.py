"""The record-kind contract: what miaudit knows about one kind of record.

Position in the pipeline: ``config -> data -> splits -> ...``. Beside model families
(:mod:`miaudit.models.family`) and attacks (:mod:`miaudit.attacks.base`), the kind
of record is the third extension point. A kind says how its records are held in a
:class:`~miaudit.data.Dataset`, how two of them are the same, how a person sees one,
which query variants it can make, and what miaudit can do with it itself:

=========  ==========================  ===========================  ====================
kind       ``Dataset.X`` holds         query variants / copies      miaudit's own models
=========  ==========================  ===========================  ====================
tabular    the tabular encoding        numeric offsets, noise       mlp, sklearn recipes
image      pixels in ``[0, 1]``        flips and shifts, noise      mlp, cnn
text       handle + hashed token ids   word drops and swaps         tfidf-lr
opaque     handle only                 none                         none
=========  ==========================  ===========================  ====================

The rule: **when the user's code trains and predicts, miaudit never encodes.** A
record of a kind miaudit does not encode is held by a *handle*: column 0 of
``Dataset.X`` is the record's index in the user's records (exact in ``float32`` up
to :data:`MAX_HANDLES`), which :class:`~miaudit.data.records.RawRecords` turns back
into the record exactly as the user gave it. Records miaudit makes (a text's word
drops for LiRA's queries) are appended to the same store and get handles past the
data set's own. A table whose cells miaudit's encoder refuses (missing values, free
text) is held the same way when the user's model reads it.

Adding a kind is one file and one line in :data:`miaudit.data.kinds.KINDS`: the kind's
class and the builder of its data sets (:func:`hold` builds those held as given).
"""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from miaudit.data.build import check_ids, check_size, encode_labels
from miaudit.data.dataset import Dataset
from miaudit.data.records import MAX_HANDLES, RawRecords, check_handles, handles_of
from miaudit.errors import DataError

__all__ = ["MAX_HANDLES", "RecordKind", "content_digest", "excerpt", "handles_of", "hold"]

#: Characters of a record the page shows; ``results.json`` keeps the whole record.
EXCERPT_CHARS = 300


class RecordKind:
    """One kind of record. Subclasses set the class attributes and override what
    differs; every method takes the :class:`~miaudit.data.Dataset` it is about.

    A ``cannot_*`` method returns ``None`` when the kind can do the thing, else the
    reason it cannot, written to follow "because" in a message naming what asked.
    """

    #: ``Dataset.kind`` of this kind's data sets.
    name: ClassVar[str] = ""
    #: How messages name its records ("text records").
    records: ClassVar[str] = ""

    def held(self, data: Any) -> bool:
        """Whether ``data.X`` holds handles (column 0) rather than an encoding that
        miaudit's attacks may move records in."""
        raw = data.raw
        return bool(raw is not None and getattr(raw, "held", False))

    def cannot_train(self, data: Any, model: str) -> str | None:
        """Why miaudit's built-in ``model`` cannot train on ``data``'s records."""
        return None

    def default_model(self, data: Any) -> str:
        """The built-in recipe an audit of ``data`` trains when none is named."""
        return "mlp"

    def cannot_synthesise(self, data: Any) -> str | None:
        """Why miaudit cannot make noisy, marginal or synthetic records of this kind."""
        if self.held(data):
            return f"{data.notes.get('held_because', 'the records are held as given')}"
        return None

    def cannot_vary(self, data: Any) -> str | None:
        """Why there are no query variants (LiRA's extra queries) of these records."""
        return self.cannot_synthesise(data)

    def cannot_perturb(self, data: Any) -> str | None:
        """Why there are no randomly perturbed copies (the label-only robustness attack)."""
        return self.cannot_synthesise(data)

    def cannot_move(self, data: Any) -> str | None:
        """Why records cannot be moved along directions in their space (the boundary
        attack walks from a record towards the decision boundary)."""
        return self.cannot_synthesise(data)

    def cannot_represent(self, data: Any) -> str | None:
        """Why there are no numeric features of a record (QMIA's quantile regressor)."""
        return self.cannot_synthesise(data)

    # Kinds that make their own records (text) override these; the others leave the
    # attacks to perturb the encoded arrays themselves.
    def variants(self, data: Any, X: np.ndarray, n: int) -> np.ndarray | None:
        """``n - 1`` fixed variants of each record ``X``: ``(n - 1, len(X), ...)``, or
        ``None`` when the attacks' own perturbations of ``X`` apply."""
        return None

    def copies(
        self, data: Any, X: np.ndarray, n: int, rng: np.random.Generator
    ) -> np.ndarray | None:
        """``n`` randomly perturbed copies of each record, or ``None`` (as :meth:`variants`)."""
        return None

    def representation(self, data: Any, X: np.ndarray) -> np.ndarray:
        """Numeric features of records ``X`` for attacks that learn from features."""
        return np.asarray(X, dtype=np.float32).reshape(len(X), -1)

    def show(self, data: Any, index: np.ndarray) -> list[dict[str, Any]]:
        """Records ``index`` as a person reads them, for ``results.json`` and the page."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<record kind {self.name}>"


def content_digest(records: Any) -> str | None:
    """SHA-256 of records as the user gave them: a DataFrame by its columns, dtypes and
    every cell; an array by its dtype, shape and values. Text cells are hashed as text
    (a missing cell apart from the text "None"), any other object by its pickled bytes,
    never by its ``str()`` (two objects that print alike are not the same record).
    ``None`` when no honest digest exists (objects that do not pickle)."""
    h = hashlib.sha256()
    if isinstance(records, pd.DataFrame):
        h.update(repr([(str(c), str(t)) for c, t in records.dtypes.items()]).encode())
        for column in range(records.shape[1]):
            part = _column_digest(records.iloc[:, column])
            if part is None:
                return None
            h.update(part)
        return h.hexdigest()
    if isinstance(records, np.ndarray) and records.dtype != object:
        h.update(str((records.dtype.str, records.shape)).encode())
        h.update(np.ascontiguousarray(records).tobytes())
        return h.hexdigest()
    values = np.empty(len(records), dtype=object)
    values[:] = list(records) if not isinstance(records, np.ndarray) else records.ravel()
    h.update(str(("objects", len(values))).encode())
    part = _objects_digest(values)
    if part is None:
        return None
    h.update(part)
    return h.hexdigest()


def _column_digest(column: pd.Series) -> bytes | None:
    values = column.to_numpy()
    if values.dtype != object:
        return pd.util.hash_array(values).tobytes()
    return _objects_digest(values)


def _objects_digest(values: np.ndarray) -> bytes | None:
    """Digest bytes of a 1-D object array: text exactly (with its missing cells marked),
    anything else by its pickles; ``None`` when an object does not pickle."""
    try:
        missing = np.asarray(pd.isna(values), dtype=bool)
    except Exception:  # an object pandas cannot test for missing: its pickle says
        missing = np.zeros(len(values), dtype=bool)
    if all(isinstance(v, str) for v in values[~missing]):
        filled = values.copy()
        filled[missing] = ""
        return missing.tobytes() + pd.util.hash_array(filled, categorize=False).tobytes()
    h = hashlib.sha256()
    for v in values:
        try:
            b = pickle.dumps(v, protocol=5)
        except Exception:
            return None
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.digest()


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` cut to ``limit`` characters on one line, saying how long it was."""
    one_line = " ".join(str(text).split())
    if len(one_line) <= limit:
        return one_line
    return f"{one_line[: limit - 1]}… ({len(one_line):,} characters)"


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


def hold(
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
    rows: Callable[[Any, np.ndarray], tuple[np.ndarray, dict[str, Any]]] | None = None,
) -> Dataset:
    """A :class:`~miaudit.data.Dataset` of records held as given (``features``: a
    DataFrame or a 1-D array of records), with the shared policies (labels to codes,
    equal records dropped first kept, too few refused) and the records attached as
    :class:`~miaudit.data.records.RawRecords` (``held=True``).

    ``rows(kept, handles)`` makes ``Dataset.X`` and notes from the records kept (text:
    the handle, then token ids); by default ``X`` is the handle column alone.
    """
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
    check_size(len(row), what, dropped)
    y = codes[row]
    present = np.unique(y)
    if len(present) < 2:
        raise DataError(
            f"{what}: after dropping duplicates a single class is left; supply at least 2"
        )
    kept = features.iloc[row].reset_index(drop=True) if hasattr(features, "iloc") else features[row]
    handles = np.arange(len(row), dtype=np.float32)
    if rows is None:
        X = handles[:, None]
    else:
        X, more = rows(kept, handles)
        notes.update(more)
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
    return dataclasses.replace(dataset, raw=raw)
