"""The user's own records beside miaudit's encoded ones, and who of them is a member.

Position in the pipeline: ``config -> data -> splits``. miaudit's attacks and its
built-in recipes read encoded arrays (``Dataset.X``: one-hot categoricals,
standardised numerics, images in ``[0, 1]``). A user's model reads the user's own
records: their DataFrame's rows or their arrays, exactly as they were given.
:class:`RawRecords` keeps those records beside the encoded ones and turns any
encoded array back into the user's form:

* a record of the data set comes back exactly as the user gave it (found by its
  encoded bytes), so a user's Pipeline sees its own rows, never miaudit's encoding;
* a record miaudit made (noisy or synthetic shadow data, LiRA's augmented queries,
  the robustness attack's perturbed copies) is decoded by the encoder into the
  user's columns and dtypes (categories back to their own values, integers rounded).

:func:`attach_table` and :func:`attach_arrays` attach the user's records to an
encoded :class:`~miaudit.data.Dataset` (:mod:`miaudit.data.memory` builds one from
data held in memory), and :func:`resolve_members` turns the user's ``members`` (a
mask, row positions or ids, told apart by the one rule of :func:`named_rows`) into the
records of that data set; :func:`membership_mask` reads a mask of members by the same
rule. Records held as given (text, opaque objects) are named by handle instead
(:mod:`miaudit.data.kinds.base`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from miaudit.data.build import encode_labels
from miaudit.data.dataset import Dataset
from miaudit.data.encode import MISSING_CATEGORY, TabularEncoder
from miaudit.errors import DataError, MiauditError, key

__all__ = [
    "MAX_HANDLES",
    "READINGS",
    "RawRecords",
    "attach_arrays",
    "attach_table",
    "check_handles",
    "handles_of",
    "membership_mask",
    "named_rows",
    "resolve_members",
]


#: Most records (the data set's and the ones miaudit makes) a handle column can name:
#: every integer up to 2**24 is exact in float32.
MAX_HANDLES = 2**24


def handles_of(X: np.ndarray, n_known: int) -> np.ndarray:
    """The record each row of held records ``X`` names (column 0), as ``int64``.

    Raises
    ------
    ValueError
        A handle that is not a whole number in ``0 .. n_known - 1`` (records of another
        data set, or arrays that were never handles).
    """
    X = np.asarray(X)
    flat = X.reshape(len(X), -1)[:, 0] if len(X) else np.zeros(0, np.float32)
    index = flat.astype(np.int64)
    if (index != flat).any() or (index < 0).any() or (index >= n_known).any():
        raise ValueError("records that are not handles of this data set's records")
    return index


def check_handles(n: int, what: str) -> None:
    """Refuse more records than handles can name."""
    if n >= MAX_HANDLES:
        raise DataError(
            f"{what}: {n:,} records; records held as given are named by handles, which "
            f"reach {MAX_HANDLES:,}: audit a sample of them"
        )


def _row_keys(X: np.ndarray) -> np.ndarray:
    """One fixed-width byte string per record: equal exactly when the encoded rows are."""
    flat = np.ascontiguousarray(X.reshape(len(X), -1))
    return flat.view(np.dtype((np.bytes_, flat.shape[1] * flat.itemsize))).ravel()


@dataclass(eq=False)
class RawRecords:
    """The user's records, one per record of a :class:`Dataset` and in its order.

    Attributes
    ----------
    features:
        A DataFrame of the feature columns (without the label and id columns), or an
        array of the records as the user gave them.
    label_values:
        The user's label value of each class code ``0 .. C-1``.
    encoded:
        The data set's encoded records (``Dataset.X``) the features encode to.
    encoder:
        Tables: the encoder that made ``encoded`` (it decodes records miaudit made).
    pixel_scale:
        Images: ``encoded = features / pixel_scale``.
    source_rows:
        How many rows the user gave, and for each the record it became (duplicates
        of a record become that record), for :func:`resolve_members`.
    source_ids:
        The id of every row the user gave (duplicates' too), when the data has ids.
    in_memory:
        Whether the user handed the records over in memory (rather than naming a
        built-in set or a file).
    held:
        Whether ``encoded`` holds handles (:mod:`miaudit.data.kinds.base`): text,
        opaque objects, or a table miaudit's encoder refuses. Records miaudit makes
        from them (:meth:`add_made`) get handles past the data set's own.
    """

    features: pd.DataFrame | np.ndarray
    label_values: np.ndarray
    encoded: np.ndarray
    encoder: TabularEncoder | None = None
    pixel_scale: float = 1.0
    source_rows: np.ndarray | None = None
    source_ids: np.ndarray | None = None
    in_memory: bool = False
    held: bool = False
    _order: np.ndarray | None = field(default=None, repr=False)
    _sorted_keys: np.ndarray | None = field(default=None, repr=False)
    _made: list[Any] = field(default_factory=list, repr=False)
    _store: Any = field(default=None, repr=False)

    @property
    def n_known(self) -> int:
        """Records a handle can name: the data set's, then the ones miaudit made."""
        return len(self.features) + sum(len(m) for m in self._made)

    def add_made(self, records: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Keep records miaudit made from held ones (in the features' form); their handles."""
        start = self.n_known
        check_handles(start + len(records), "records miaudit made")
        self._made.append(records)
        self._store = None
        return np.arange(start, start + len(records), dtype=np.float32)

    def _held_store(self) -> pd.DataFrame | np.ndarray:
        if not self._made:
            return self.features
        if self._store is None:
            if self.is_frame:
                self._store = pd.concat([self.features, *self._made], ignore_index=True)
            else:
                self._store = np.concatenate([np.asarray(self.features), *self._made])
        return self._store

    @property
    def is_frame(self) -> bool:
        return isinstance(self.features, pd.DataFrame)

    def labels(self, codes: np.ndarray) -> np.ndarray:
        """The user's label values of class codes."""
        return self.label_values[np.asarray(codes, dtype=np.int64)]

    def decode(self, X: np.ndarray) -> pd.DataFrame | np.ndarray:
        """Encoded records (rows of ``Dataset.X`` or records miaudit made) in the user's form."""
        X = np.asarray(X)
        if X is self.encoded:
            return self.features
        if self.held:
            try:
                index = handles_of(X, self.n_known)
            except ValueError:
                raise DataError(
                    "records that are not this data set's were given to a model of records "
                    "held as given; miaudit only names them by handle"
                ) from None
            return _take(self._held_store(), index)
        found = self._find(X)
        known = found >= 0
        if known.all():
            return _take(self.features, found)
        made = self._decode_made(X[~known])
        if not known.any():
            return made
        if self.is_frame:
            both = pd.concat([_take(self.features, found[known]), made], ignore_index=True)
            order = np.empty(len(X), dtype=np.int64)
            order[np.flatnonzero(known)] = np.arange(known.sum())
            order[np.flatnonzero(~known)] = known.sum() + np.arange((~known).sum())
            return both.iloc[order].reset_index(drop=True)
        out = np.empty((len(X), *self.features.shape[1:]), dtype=self.features.dtype)
        out[known] = self.features[found[known]]
        out[~known] = made
        return out

    def _find(self, X: np.ndarray) -> np.ndarray:
        """For each encoded row, the data set record with the same bytes, or -1."""
        if X.shape[1:] != self.encoded.shape[1:] or X.dtype != self.encoded.dtype:
            X = np.asarray(X, dtype=self.encoded.dtype).reshape(-1, *self.encoded.shape[1:])
        if self._order is None:  # sorted once: the data's records do not change
            keys = _row_keys(self.encoded)
            self._order = np.argsort(keys, kind="stable")
            self._sorted_keys = keys[self._order]
        wanted = _row_keys(X)
        sorted_keys = self._sorted_keys
        at = np.minimum(np.searchsorted(sorted_keys, wanted), len(sorted_keys) - 1)
        hit = sorted_keys[at] == wanted
        return np.where(hit, self._order[at], -1)

    def _decode_made(self, X: np.ndarray) -> pd.DataFrame | np.ndarray:
        if self.encoder is None:  # images: back to the user's scale, shape and dtype
            values = X.reshape(len(X), *self.features.shape[1:]).astype(np.float64)
            return _cast(values * self.pixel_scale, self.features.dtype)
        table = self.encoder.inverse_transform(X.reshape(len(X), -1))
        if not self.is_frame:
            return np.column_stack(
                [_cast(table[c].to_numpy(np.float64), self.features.dtype) for c in table.columns]
            )
        out = {}
        for column in self.features.columns:
            values, dtype = table[str(column)], self.features[column].dtype
            if str(column) in self.encoder.categories_:
                # Categories were compared as text: give each back its own value.
                own = {str(v): v for v in self.features[column].dropna().unique()}
                own[MISSING_CATEGORY] = None
                out[column] = values.astype(object).map(own)  # unseen or missing: NaN
                if not pd.api.types.is_object_dtype(dtype) and not out[column].isna().any():
                    out[column] = out[column].astype(dtype)
            else:
                out[column] = pd.Series(_cast(values.to_numpy(np.float64), dtype))
        return pd.DataFrame(out, columns=self.features.columns)


def _cast(values: np.ndarray, dtype: Any) -> np.ndarray:
    """Decoded numbers in the user's dtype: integers rounded and kept in range."""
    dtype = np.dtype(dtype) if not isinstance(dtype, pd.api.extensions.ExtensionDtype) else None
    if dtype is None:
        return values
    if dtype == np.bool_:
        return values > 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    return values


def _take(records: pd.DataFrame | np.ndarray, index: np.ndarray):
    if isinstance(records, pd.DataFrame):
        return records.iloc[index].reset_index(drop=True)
    return records[index]


def _source_rows(records: pd.DataFrame | np.ndarray, codes: np.ndarray, dataset: Dataset):
    """For every row the user gave (``records``, labels ``codes``), the record of
    ``dataset`` it became: itself, or the first row it duplicates."""
    kept = dataset.rows
    n = len(records)
    if len(kept) == n:
        return np.arange(n, dtype=np.int64)
    # Group rows the way the builders de-duplicated them: tables by their values
    # (as pandas compares them), images by their bytes; the label counts too.
    if isinstance(records, pd.DataFrame) or dataset.kind != "image":
        table = records if isinstance(records, pd.DataFrame) else pd.DataFrame(records)
        keys = np.column_stack(
            [pd.factorize(table[c], use_na_sentinel=False)[0] for c in table.columns] + [codes]
        )
        _, first, group = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    else:
        flat = np.ascontiguousarray(records.reshape(n, -1)).view(np.uint8).reshape(n, -1)
        both = np.ascontiguousarray(
            np.concatenate([flat, codes.astype("<i8").view(np.uint8).reshape(n, -1)], axis=1)
        )
        keys = both.view(np.dtype((np.void, both.shape[1]))).ravel()
        _, first, group = np.unique(keys, return_index=True, return_inverse=True)
    record_of_row = np.full(n, -1, dtype=np.int64)
    record_of_row[kept] = np.arange(len(kept))
    out = record_of_row[first[np.ravel(group)]]
    if (out < 0).any():  # the builders kept another row of a group than its first
        raise DataError(
            "data: duplicate rows could not be matched to the records kept; pass "
            "drop_duplicates=False"
        )
    return out


def _image_scale(X: np.ndarray, dataset: Dataset) -> float:
    if dataset.kind != "image":
        return 1.0
    return 255.0 if X.dtype == np.uint8 and X.max() > 1 else 1.0


def attach_table(dataset: Dataset, features: pd.DataFrame, labels: pd.Series) -> Dataset:
    """``dataset`` with the raw table it was encoded from (features and labels of every
    row the user gave, before de-duplication) as its :class:`RawRecords`."""
    if len(features) != len(labels) or dataset.rows.max(initial=-1) >= len(features):
        raise DataError(
            f"the raw table of {dataset.name!r} has {len(features)} rows, which do not match "
            "its records: clear the data cache (miaudit cache clear datasets)"
        )
    features = features.reset_index(drop=True)
    codes, values = encode_labels(labels, what=dataset.name, with_values=True)
    raw = RawRecords(
        features=features.iloc[dataset.rows].reset_index(drop=True),
        label_values=values,
        encoded=dataset.X,
        encoder=TabularEncoder.from_dict(dataset.encoder),
        source_rows=_source_rows(features, codes, dataset),
    )
    return dataclasses.replace(dataset, raw=raw)


def attach_arrays(dataset: Dataset, X: np.ndarray, y: np.ndarray) -> Dataset:
    """``dataset`` with the arrays it was built from (every row the user gave, before
    de-duplication) as its :class:`RawRecords`."""
    codes, values = encode_labels(y, what=dataset.name, with_values=True)
    raw = RawRecords(
        features=X[dataset.rows],
        label_values=values,
        encoded=dataset.X,
        encoder=None if dataset.encoder is None else TabularEncoder.from_dict(dataset.encoder),
        pixel_scale=float(dataset.notes.get("pixel_scale", _image_scale(X, dataset))),
        source_rows=_source_rows(X, codes, dataset),
    )
    return dataclasses.replace(dataset, raw=raw)


#: The ways ``members=`` (and ``non_members=``) can name rows; ``members_as=`` picks one.
READINGS = ("mask", "positions", "ids")
_SAYS = {"mask": "a 0/1 mask", "positions": "row positions", "ids": "ids"}
#: A reading's rows (``None`` when it does not fit) and why it does not.
_Reading = tuple[np.ndarray | None, str]


def _plain(given: Any, what: str, fix: str, error: type[MiauditError]) -> np.ndarray:
    """``given`` as an array of one kind (bool, int64, float64 or text), refusing missing
    entries and mixtures; ``fix`` says what to give instead."""
    if hasattr(given, "to_numpy"):  # a Series or Index: its values, by position
        given = given.to_numpy()
    # A list as objects: np.asarray would turn [1, "a"] into text without a word.
    values = np.asarray(given, dtype=object if isinstance(given, list | tuple) else None)
    kind = values.dtype.kind
    if kind == "O":
        return _plain_objects(values, what, fix, error)
    if kind == "f":
        nan = np.isnan(values)
        if nan.any():
            raise error(f"{what}: entry {_entry(np.argwhere(nan)[0])} is NaN; {fix}")
        return values.astype(np.float64)
    if kind in "iu":
        return values.astype(np.int64)
    if kind in "US":
        return values.astype(str)
    if kind == "b":
        return values
    raise error(f"{what}: {values.dtype} values name no rows; {fix}")


def _plain_objects(
    values: np.ndarray, what: str, fix: str, error: type[MiauditError]
) -> np.ndarray:
    """An object array (a list, a pandas column) as one kind of value."""
    missing = pd.isna(values)
    if missing.any():
        at = tuple(np.argwhere(missing)[0])
        raise error(f"{what}: entry {_entry(at)} is missing ({values[at]}); {fix}")
    inferred = pd.api.types.infer_dtype(values.ravel(), skipna=False)
    as_kind = {
        "boolean": bool, "integer": np.int64, "floating": np.float64,
        "mixed-integer-float": np.float64, "string": str, "empty": np.int64,
    }.get(inferred)  # fmt: skip
    if as_kind is None:
        kinds = sorted({type(v).__name__ for v in values.ravel()})
        if len(kinds) == 1:
            raise error(f"{what}: {kinds[0]} values name no rows; {fix}")
        raise error(f"{what}: mixes {' and '.join(kinds)} values; {fix}, all of one kind")
    try:
        return values.astype(as_kind)
    except OverflowError:
        raise error(f"{what}: integers beyond 64 bits name no rows; {fix}") from None


def _entry(index: Any) -> str:
    index = tuple(int(i) for i in np.atleast_1d(index))
    return str(index[0]) if len(index) == 1 else str(index)


def membership_mask(
    given: Any, what: str, shape: tuple[int, ...], *, error: type[MiauditError] = DataError
) -> np.ndarray:
    """``given`` as a boolean mask of ``shape``: booleans, or 0/1 integers or floats.

    Raises
    ------
    error
        The wrong shape, missing (NaN) entries, text, or values other than 0 and 1.
    """
    fix = "give 1 (or True) for members and 0 (False) for non-members"
    values = _plain(given, what, fix, error)
    if values.shape != shape:
        raise error(f"{what}: shape {values.shape}; expected {shape}, one entry per record")
    if values.dtype.kind == "U":
        raise error(f"{what}: text values; {fix}")
    bad = ~np.isin(values, (0, 1))
    if bad.any():
        at = tuple(np.argwhere(bad)[0])
        raise error(f"{what}: entry {_entry(at)} is {values[at].item()!r}; {fix}")
    return values.astype(bool)


def _as_mask(values: np.ndarray, n_rows: int, ids: np.ndarray | None) -> _Reading:
    """The rows a mask names, or why ``values`` is no mask."""
    if values.dtype.kind == "U":
        return None, "text is no mask"
    if len(values) != n_rows:
        return None, f"{len(values)} entries for {n_rows} rows"
    bad = ~np.isin(values, (0, 1))
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        return None, f"entry {at} is {values[at].item()!r}, neither 0 nor 1"
    return np.flatnonzero(values), ""


def _as_positions(values: np.ndarray, n_rows: int, ids: np.ndarray | None) -> _Reading:
    """The rows positions name, or why ``values`` are no positions."""
    if values.dtype.kind != "i":
        kind = {"b": "booleans", "f": "floats", "U": "text"}[values.dtype.kind]
        return None, f"{kind} are no row positions (give integers)"
    bad = (values < 0) | (values >= n_rows)
    if bad.any():
        return None, f"row {int(values[bad][0])} is not a row of data (it has {n_rows} rows)"
    unique, counts = np.unique(values, return_counts=True)
    if (counts > 1).any():
        return None, f"row {int(unique[counts > 1][0])} is {_times(counts[counts > 1][0])}"
    return values, ""


def _as_ids(values: np.ndarray, n_rows: int, ids: np.ndarray | None) -> _Reading:
    """Positions in ``ids`` of the ids ``values`` name, or why they are no ids."""
    if ids is None:
        return None, f"the data has none (pass {key('id_column')})"
    kind = values.dtype.kind
    if kind in "bf":
        return None, f"{'booleans' if kind == 'b' else 'floats'} are no ids"
    if ids.dtype.kind in "iu":
        if kind != "i":
            return None, f"{values[0].item()!r} is not an id: the ids are integers"
        wanted = values
    else:  # text ids: a number names the id written the same way
        wanted = values.astype(str)
    unique, counts = np.unique(wanted, return_counts=True)
    if (counts > 1).any():
        return None, f"id {unique[counts > 1][0].item()!r} is {_times(counts[counts > 1][0])}"
    order = np.argsort(ids, kind="stable")
    at = np.minimum(np.searchsorted(ids[order], wanted), len(ids) - 1)
    missing = ids[order][at] != wanted
    if missing.any():
        return None, (
            f"id {wanted[missing][0].item()!r} is not an id of data ({int(missing.sum())} are not)"
        )
    return order[at], ""


def _times(count: int) -> str:
    return "named twice" if count == 2 else f"named {int(count)} times"


_READ = {"mask": _as_mask, "positions": _as_positions, "ids": _as_ids}


def named_rows(
    given: Any,
    what: str,
    n_rows: int,
    ids: np.ndarray | None = None,
    read_as: str | None = None,
    *,
    error: type[MiauditError] = DataError,
) -> np.ndarray:
    """The rows (sorted, distinct) that ``given`` names among ``n_rows`` rows with ``ids``.

    The membership rule. ``given`` is read each way it can be: a mask (one entry per row,
    each True/False or 0/1, as booleans, integers or floats); row positions (integers
    ``0 .. n_rows-1``, each named once); ids (each value an id of the data, each named
    once; numbers name text ids written the same way). Booleans and floats are only ever
    a mask (floats holding positions are more often a column pandas widened over a gap
    than a choice), text only ids. When exactly one reading fits, it is used; when
    several fit (a 0/1 array over two rows; integer ids that are also row positions),
    the caller says which with ``members_as`` (``read_as``), which turns the others off.
    Never a guess: guessing wrong audits the wrong members without a word.

    Raises
    ------
    error
        A reading that was asked for and does not fit, several readings that fit, none
        that fits (saying why each fails), missing entries, or a mixture of kinds.
    """
    values = _plain(given, what, "give a 0/1 mask (one entry per row), row positions or ids", error)
    if values.ndim != 1:
        raise error(f"{what}: shape {values.shape}; give a 1-D mask, row positions or ids")
    if read_as is not None and read_as not in READINGS:
        raise error(f"{key('members_as', read_as)}: use mask, positions or ids")
    if len(values) == 0 and read_as is None:
        return np.empty(0, dtype=np.int64)  # every reading names no row
    fits: dict[str, np.ndarray] = {}
    why: dict[str, str] = {}
    for reading in READINGS:
        rows, why[reading] = _READ[reading](values, n_rows, ids)
        if rows is not None:
            fits[reading] = rows
    if read_as is not None:
        if read_as in fits:
            return np.unique(fits[read_as])
        other = next(iter(fits), None)
        hint = (
            f"; it reads as {_SAYS[other]}: pass {key('members_as', other)}"
            if other is not None
            else ""
        )
        raise error(
            f"{what}: as {_SAYS[read_as]} ({key('members_as', read_as)}), {why[read_as]}{hint}"
        )
    if len(fits) == 1:
        return np.unique(next(iter(fits.values())))
    if len(fits) > 1:
        names = list(fits)
        says = ("both " if len(names) == 2 else "") + " and ".join(f"as {_SAYS[r]}" for r in names)
        pick = " or ".join(key("members_as", r) for r in names)
        raise error(f"{what}: reads {says}; say which with {pick}")
    # No reading fits: booleans and floats can only be a mask, text only ids.
    kind = values.dtype.kind
    if kind == "b":  # booleans can only be wrong in length
        raise error(f"{what}: a mask of {why['mask']}; give one entry per row of data")
    if kind == "f":
        raise error(
            f"{what}: a float array is a 0/1 mask: {why['mask']}; give one 0 or 1 per row "
            "of data, or row positions or ids as integers"
        )
    if kind == "U":
        raise error(f"{what}: text names ids: {why['ids']}")
    reasons = "; ".join(f"as {_SAYS[r]}, {why[r]}" for r in READINGS)
    raise error(f"{what}: names no rows: {reasons}")


def _named_records(given: Any, name: str, dataset: Dataset, read_as: str | None) -> np.ndarray:
    """The records of ``dataset`` that ``given`` names among the rows the user gave."""
    raw = dataset.raw
    record_of = None if raw is None else raw.source_rows
    if record_of is None:  # the records are the rows
        return named_rows(given, key(name), dataset.n_records, dataset.ids, read_as)
    ids = raw.source_ids
    if ids is None and dataset.ids is not None:
        # Ids known only of the records (an .npz's): each row has its record's id.
        ids = dataset.ids[record_of]
    return np.unique(record_of[named_rows(given, key(name), len(record_of), ids, read_as)])


def resolve_members(
    dataset: Dataset,
    members: Any,
    non_members: Any,
    rng: np.random.Generator,
    members_as: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Which records of ``dataset`` the target trained on, and which it did not.

    ``members`` (and ``non_members``) name the user's rows by the membership rule of
    :func:`named_rows`: a mask over the rows given, row positions, or ids, whichever
    reading alone fits (``members_as`` says which when several do). Rows that are
    duplicates of one another are one record: it is a member if any of its rows is.
    Without ``non_members``, as many of the other records as there are members are
    drawn (at most half of them, so that the attacker keeps a pool), and the members
    are drawn down to their number if there are fewer: the evaluation is balanced.

    Returns
    -------
    all_members, evaluated_members, evaluated_non_members, facts
        Record indices (sorted): every member (none of them may be in the attacker's
        pool), the members evaluated, the non-members evaluated; and facts for the
        report (members given, evaluated, non-members dropped as duplicates of members).

    Raises
    ------
    DataError
        Members or non-members that no reading (or several) of the rule fits, no
        members, or no records left to be non-members.
    """
    member = _named_records(members, "members", dataset, members_as)
    if len(member) == 0:
        raise DataError("members: no record is named; name the rows the target was trained on")
    facts: dict[str, Any] = {"members_given": len(member)}
    if non_members is not None:
        non = _named_records(non_members, "non_members", dataset, members_as)
        clash = np.intersect1d(non, member)
        if len(clash):
            # A record's twin was trained on: the model has seen those very values.
            facts["non_members_dropped_as_duplicates_of_members"] = len(clash)
            non = np.setdiff1d(non, clash)
        if len(non) == 0:
            raise DataError("non_members: every row named is also a member; name other rows")
        return member, member, non, facts
    others = np.setdiff1d(np.arange(dataset.n_records), member)
    n = min(len(member), len(others) // 2)
    if n < 1:
        raise DataError(
            f"data: {len(others)} record(s) besides the {len(member)} members; an audit "
            "needs non-members too: pass data that holds records the target never saw"
        )
    non = np.sort(rng.choice(others, n, replace=False))
    evaluated = member if n == len(member) else np.sort(rng.choice(member, n, replace=False))
    facts["members_evaluated"] = int(n)
    return member, evaluated, non, facts
