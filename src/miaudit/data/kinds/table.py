"""Tables: rows of named columns, numbers and categories.

Position in the pipeline: ``config -> data -> splits -> ...``. A table is encoded by
the one :class:`~miaudit.data.encode.TabularEncoder` (one-hot categories,
standardised numbers), and miaudit's attacks perturb that encoding (numeric offsets
for LiRA's queries, noise for the robustness attack). When the encoder refuses the
cells (missing values, free text, a column of objects) and the user's model reads
the user's own rows, the table is held as given instead (``Dataset.X`` holds
handles), and what needs the encoding is refused, naming the column that stopped it.

Builders: :func:`table_dataset` (a raw table through the encoder: numbers checked,
duplicates dropped, identifiers and free text caught before they become one category
per record) and :func:`held_table` (the same rows held as given).
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from miaudit.data.build import (
    MAX_CATEGORIES,
    UnencodableError,
    check_ids,
    check_size,
    columns_text,
    encode_labels,
)
from miaudit.data.dataset import Dataset
from miaudit.data.encode import TabularEncoder, check_numeric
from miaudit.data.kinds.base import RecordKind, hold
from miaudit.data.kinds.text import TEXT_MODELS, looks_like_text
from miaudit.errors import DataError, key

__all__ = [
    "ID_LIKE_ROWS",
    "TableKind",
    "held_table",
    "id_like_categories",
    "table_categoricals",
    "table_dataset",
]


#: Fewest rows from which a column holding a different value in every row is taken
#: for an identifier (and reported) rather than for a feature.
ID_LIKE_ROWS = 20


class TableKind(RecordKind):
    name = "tabular"
    records = "table rows"

    def cannot_train(self, data: Any, model: str) -> str | None:
        if self.held(data):
            return (
                f"miaudit's model {model!r} trains on its own encoding of the table, and "
                f"{data.notes.get('held_because', 'the table cannot be encoded')}: audit your "
                "own model (target=, trainer=), or fix those cells"
            )
        if model in TEXT_MODELS:
            return (
                f"{model!r} is a text recipe and the data is a table: name its text column "
                "(text_column=, --text-column)"
            )
        return None

    def show(self, data: Any, index: np.ndarray) -> list[dict[str, Any]]:
        index = np.asarray(index, dtype=np.int64)
        raw = data.raw
        if raw is not None and isinstance(getattr(raw, "features", None), pd.DataFrame):
            frame = raw.features.iloc[index]
        elif raw is not None and getattr(raw, "held", False):
            frame = pd.DataFrame(np.asarray(raw.features)[index].reshape(len(index), -1))
            frame.columns = data.feature_names[: frame.shape[1]] or frame.columns
        elif data.encoder is not None:
            frame = TabularEncoder.from_dict(data.encoder).readable(
                data.X[index].reshape(len(index), -1)
            )
        else:
            names = data.encoded_feature_names or [f"x{j}" for j in range(data.n_features)]
            frame = pd.DataFrame(data.X[index].reshape(len(index), -1), columns=names)
        return [{"values": {str(c): v for c, v in row.items()}} for _, row in frame.iterrows()]


def _id_like(df: pd.DataFrame, one_hot: set[str]) -> list[str]:
    """Feature columns that hold a different text or integer value in every row."""
    if len(df) < ID_LIKE_ROWS:
        return []
    found = []
    for column in df.columns:
        values = df[column]
        text = column in one_hot
        try:
            unique = values.is_unique
        except TypeError:  # cells that do not hash (dicts, lists): no identifier
            continue
        if (text or pd.api.types.is_integer_dtype(values.dtype)) and unique:
            found.append(str(column))
    return found


#: Share of the records a categorical column's levels reach from which its values are
#: taken to name records (names, e-mail addresses, ids with a few repeats).
NAMING_SHARE = 0.5


def id_like_categories(categories: dict[str, list[str]], n_records: int) -> list[str]:
    """The categorical columns whose values name records, told from an encoder fitted on
    ``n_records`` records (its ``categories_``) once the column itself is gone (``miaudit
    serve`` reads a saved target's ``dataset.json``): levels for at least
    :data:`NAMING_SHARE` of the records. Wider than :func:`_id_like` (a different value in
    every row), which a name repeated once would escape: what is published is judged
    more strictly than what is warned of."""
    if n_records < ID_LIKE_ROWS:
        return []
    return [str(c) for c, levels in categories.items() if len(levels) >= NAMING_SHARE * n_records]


#: Types of a cell that holds one value (a number, a category, a date, or nothing).
_ONE_VALUE = (str, bytes, bool, int, float, complex, np.generic, decimal.Decimal,
              datetime.date, datetime.time, datetime.timedelta)  # fmt: skip


#: What :func:`pandas.api.types.infer_dtype` calls a column of one plain kind of value.
_PLAIN = frozenset({"string", "empty", "integer", "floating", "mixed-integer-float",
                    "boolean", "bytes", "datetime", "datetime64", "date", "time",
                    "timedelta", "timedelta64", "decimal", "complex"})  # fmt: skip


def _one_value(cell: Any) -> bool:
    return isinstance(cell, _ONE_VALUE) or cell is None or cell is pd.NA or cell is pd.NaT


def _refuse_nested(features: pd.DataFrame, what: str) -> None:
    """Refuse cells that are not one value (lists, dicts, arrays, tensors): compared as
    text, two different arrays that print alike would become one category, and a
    record the user's model reads would be another's."""
    for column in features.columns:
        values = features[column]
        if values.dtype != object or pd.api.types.infer_dtype(values) in _PLAIN:
            continue  # one kind of value throughout (pandas tells in C): nothing nested
        nested = ~values.map(_one_value).to_numpy(dtype=bool)
        if nested.any():
            at = int(np.flatnonzero(nested)[0])
            raise UnencodableError(
                f"{what}: column {str(column)!r} holds {type(values.iloc[at]).__name__} "
                f"objects (row {at}), not one number or category per cell: miaudit's encoder "
                "cannot read them; flatten them into columns of their own, or audit your own "
                "model of them"
            )


#: A text column whose present cells are at least this share numbers is a numeric
#: column with typos ("4o", "n/a", "thirty"), not a category: refused, naming the
#: cells, unless declared categorical. Real categories (codes such as "V45" among
#: numbers, "4+" beside "0".."3") are far more than 5 % of their cells, or declared.
NUMERIC_SHARE = 0.95
#: Fewest numbers in such a column (one cell that is not a number among ten is
#: refused; a column of one text cell and nothing else holds no numbers).
MIN_NUMBERS = 10
#: Cells that are not numbers a message shows.
SHOWN_CELLS = 3


def table_categoricals(
    df: pd.DataFrame,
    label: str,
    declared: Sequence[str] | None,
    id_column: str | None = None,
    *,
    what: str = "data",
) -> list[str]:
    """Columns to one-hot: non-number columns, plus the ones the user declared.

    Raises
    ------
    UnencodableError
        A column not declared categorical that holds numbers but for a few cells
        (:data:`NUMERIC_SHARE`): it would silently become one category per number.
        The records can still be held as given for the user's own model.
    """
    named = {str(c) for c in declared or ()}
    chosen = [
        str(c)
        for c in df.columns
        if c not in (label, id_column)
        and (
            not pd.api.types.is_numeric_dtype(df[c].dtype)
            or pd.api.types.is_bool_dtype(df[c].dtype)
        )
    ]
    if label in df.columns and df.columns.is_unique:  # else table_dataset says what is wrong
        for column in chosen:
            if column not in named:
                _refuse_numbers_with_typos(df[column], column, what)
    return chosen + [str(c) for c in declared or () if str(c) not in chosen]


def _refuse_numbers_with_typos(values: pd.Series, column: str, what: str) -> None:
    """Refuse a column of numbers but for a few cells that are not (see
    :data:`NUMERIC_SHARE`); a column all of whose cells are numbers stays categorical
    (numeric codes kept as text, say "02139"), and so does one of booleans or of a
    pandas category dtype, which the user chose."""
    if pd.api.types.is_bool_dtype(values.dtype) or isinstance(values.dtype, pd.CategoricalDtype):
        return
    present = ~values.isna().to_numpy()
    n_present = int(present.sum())
    if n_present == 0:
        return
    cells = values[present]
    if pd.api.types.infer_dtype(cells, skipna=True) == "boolean":
        return
    try:  # each distinct cell once: a column of 300k cells has a few hundred
        codes, uniques = pd.factorize(cells)
        numbers = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce")
    except (TypeError, ValueError):  # cells that do not hash or parse (nested, say)
        return
    bad = numbers.isna().to_numpy()[codes]
    n_bad = int(bad.sum())
    few = max(1.0, (1 - NUMERIC_SHARE) * n_present)
    if n_bad == 0 or n_bad > few or n_present - n_bad < MIN_NUMBERS:
        return
    rows = np.flatnonzero(present)[bad][:SHOWN_CELLS]
    shown = ", ".join(f"row {int(r)}: {_cell(values.iloc[r])}" for r in rows)
    more = ", …" if n_bad > SHOWN_CELLS else ""
    raise UnencodableError(
        f"{what}: column {column!r} holds numbers, but {n_bad:,} of its {n_present:,} cells "
        f"{'is' if n_bad == 1 else 'are'} not ({shown}{more}): read as text it would become a "
        "category per number; "
        f"fix those cells, or, if it really is a category, declare it categorical (add "
        f"{column!r} to {key('categorical')})"
    )


def _cell(value: Any) -> str:
    """A cell as a message shows it: its repr, cut to 30 characters."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 30 else f"{text[:29]}…"


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
                f"{columns_text(df.columns)}"
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
            f"{what}: no label column {label!r}; columns are: {columns_text(df.columns)}; "
            "pass one of them as label"
        )
    if df.shape[1] < 2:
        raise DataError(f"{what}: the table has no feature columns besides the label {label!r}")
    if len(df) == 0:
        raise DataError(f"{what}: the table has no rows; supply records")
    unknown = [c for c in categorical if c not in df.columns or c == label]
    if unknown:
        raise DataError(
            f"{what}: categorical column(s) {unknown} are not feature columns; "
            f"features are: {columns_text(c for c in df.columns if c != label)}"
        )
    one_hot = set(categorical)
    notes = {**(notes or {}), "label_column": label, "rows_read": len(df)}
    n_read = len(df)
    # Problems with the values come first: they are what the user must fix.
    encode_labels(df[label], what=f"{what} (label {label!r})")
    _refuse_nested(df.drop(columns=[label]), what)
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
    check_size(len(df), what, dropped)

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
    dataset = hold(
        features.reset_index(drop=True), labels.reset_index(drop=True), kind="tabular",
        name=name, source=source, what=what,
        feature_names=[str(c) for c in features.columns], drop_duplicates=drop_duplicates,
        ids=ids, notes={"held_because": because, "label_column": str(labels.name)},
    )  # fmt: skip
    if id_like:
        dataset.notes["id_like_columns"] = id_like
    return dataset
