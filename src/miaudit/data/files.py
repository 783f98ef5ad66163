"""Users' own data files: CSV, Parquet and NumPy ``.npz``.

Position in the pipeline: ``config -> data -> splits -> ...``. These loaders
read a file into a raw table or image array and hand it to
:mod:`miaudit.data.build`, so a user's table is encoded exactly like the
built-in tabular sets. Every problem a user can cause is a one-line
:class:`~miaudit.errors.DataError` naming the file and the fix.

* Tables (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``) need a label column.
  Text, boolean and category columns are categorical, number columns numeric;
  ``categorical=[...]`` declares more (e.g. numeric codes such as a zip code). A
  column of numbers but for a few cells that are not (``4o``, ``n/a``: see
  :func:`miaudit.data.kinds.table_categoricals`) is refused, naming those cells,
  unless declared categorical; so is a header that names a column twice (pandas
  would read the second ``y`` as a feature ``y.1``) and a header without rows.
* ``.npz`` files hold arrays ``X`` and ``y``. A 2-D ``X`` is a numeric table
  (columns ``x0, x1, …``, or the names in an optional ``feature_names`` array);
  ``(n, h, w)`` or ``(n, c, h, w)`` are images.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.data.build import check_ids, columns_text
from miaudit.data.dataset import Dataset
from miaudit.data.kinds import arrays_dataset, table_categoricals, table_dataset, text_dataset
from miaudit.errors import DataError
from miaudit.files import check_npy_sizes

__all__ = [
    "FILE_FORMATS",
    "file_format",
    "file_stem",
    "load_file",
    "load_text_file",
    "read_npz",
    "read_table",
]

#: File name endings the loaders read, and the format each means.
FILE_FORMATS = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".npz": "npz",
}


def file_format(path: Path) -> str | None:
    """``"csv"``, ``"parquet"`` or ``"npz"`` from the file name, ``None`` if unknown."""
    name = path.name.lower()
    for ending, fmt in sorted(FILE_FORMATS.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(ending):
            return fmt
    return None


def file_stem(path: Path) -> str:
    """A data file's name without its ending (``patients.csv.gz`` -> ``patients``)."""
    name = path.name
    for ending in sorted(FILE_FORMATS, key=len, reverse=True):
        if name.lower().endswith(ending):
            return name[: -len(ending)] or name
    return path.stem


def _first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an error, cut to ``limit`` characters (a parser may quote a
    whole, huge line of the file)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else f"{line[:limit]}… (cut)"


def _read_table(path: Path, fmt: str) -> pd.DataFrame:
    try:
        if fmt == "csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; supply a table with a header row") from None
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        # pyarrow's ArrowInvalid is a ValueError; pandas' ParserError too.
        hint = (
            "check it is comma-separated UTF-8 text with a header row"
            if fmt == "csv"
            else "check it is a Parquet file (e.g. written by DataFrame.to_parquet)"
        )
        raise DataError(
            f"{path}: cannot parse as {fmt.upper()} ({_first_line(exc)}); {hint}"
        ) from None


def _load_table(
    path: Path,
    fmt: str,
    label: str | None,
    categorical: Sequence[str] | None,
    drop_duplicates: bool,
    id_column: str | None,
) -> Dataset:
    df = read_table(path, fmt, label)
    return table_dataset(
        df,
        label,
        categorical=table_categoricals(df, label, categorical, id_column, what=str(path)),
        name=file_stem(path),
        source=str(path),
        what=str(path),
        drop_duplicates=drop_duplicates,
        id_column=id_column,
    )


def _check_scalar_cells(df: pd.DataFrame, path: Path) -> None:
    """Refuse columns whose cells are lists, arrays or structs (Parquet can hold them):
    a record is one number or category per column."""
    for column in df.columns:
        values = df[column]
        if values.dtype != object:
            continue
        nested = values.map(lambda v: isinstance(v, list | tuple | dict | set | np.ndarray))
        if nested.any():
            example = values[nested].iloc[0]
            kind = "structs" if isinstance(example, dict) else "lists"
            raise DataError(
                f"{path}: column {column!r} holds {kind} (row {int(np.flatnonzero(nested)[0])}); "
                "miaudit takes one number or category per cell: flatten it into columns of "
                "their own, or drop it"
            )


def _header_names(path: Path, fmt: str, df: pd.DataFrame) -> list[str]:
    """The column names as the file writes them: pandas renames a CSV header's repeated
    name (the second ``y`` reads as ``y.1``), so the header row is read again as text."""
    if fmt != "csv":
        return [str(c) for c in df.columns]
    try:
        row = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError):
        return [str(c) for c in df.columns]  # read once already: nothing more to learn
    names = [str(v) for v in row.iloc[0].tolist()] if len(row) else []
    return names if len(names) == df.shape[1] else [str(c) for c in df.columns]


def _check_header(path: Path, fmt: str, df: pd.DataFrame, label: str | None) -> None:
    """Refuse a header that names a column twice (pandas would have renamed one, and a
    second label column would have become a feature) and a table without rows."""
    names = _header_names(path, fmt, df)
    seen: dict[str, int] = {}
    for position, name in enumerate(names):
        if name == "":
            continue  # pandas names an empty header cell "Unnamed: <position>"
        if name in seen:
            role = "the label column " if name == label else "column "
            renamed = str(df.columns[position])
            aside = f"; pandas would read the second as {renamed!r}" if renamed != name else ""
            raise DataError(
                f"{path}: the header names {role}{name!r} twice (columns {seen[name] + 1} and "
                f"{position + 1}{aside}): give every column its own name, or drop the copy"
            )
        seen[name] = position
    if len(df) == 0:
        raise DataError(
            f"{path}: the table has a header ({columns_text(df.columns, limit=10)}) but no "
            "rows; supply the records under it"
        )


def read_table(path: Path, fmt: str, label: str | None) -> pd.DataFrame:
    """A CSV or Parquet file as the raw table its records come from (columns as text).

    Raises
    ------
    DataError
        An unreadable file, a header that names a column twice, a table without rows,
        cells that are lists or structs, or no label named.
    """
    df = _read_table(path, fmt)
    _check_header(path, fmt, df, label)
    df.columns = [str(c) for c in df.columns]
    _check_scalar_cells(df, path)
    if label is None:
        raise DataError(
            f"{path}: name the label column with label=...; columns are: "
            f"{', '.join(df.columns[:30])}{' …' if len(df.columns) > 30 else ''}"
        )
    return df


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a ``.npz`` file: ``X``, ``y`` and, when present, ``feature_names`` and
    ``ids``. Nothing is unpickled."""
    check_npy_sizes(path, DataError, "save the arrays with numpy.savez", str(path))
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("X", "y") if k not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: no array {' or '.join(repr(m) for m in missing)} "
                    f"(found {', '.join(archive.files) or 'none'}); "
                    "save with np.savez(path, X=X, y=y)"
                )
            return {k: archive[k] for k in ("X", "y", "feature_names", "ids") if k in archive.files}
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        # Object arrays need pickle, which would run code from the file: refused.
        raise DataError(
            f"{path}: cannot read as .npz ({_first_line(exc)}); save numeric arrays with "
            "np.savez(path, X=X, y=y)"
        ) from None


def _load_npz(
    path: Path,
    label: str | None,
    categorical: Sequence[str] | None,
    drop_duplicates: bool,
    id_column: str | None,
    pixel_scale: float | None,
) -> Dataset:
    if label not in (None, "y"):
        raise DataError(f"{path}: .npz files hold their labels in array 'y'; leave label unset")
    if id_column not in (None, "ids"):
        raise DataError(f"{path}: .npz files hold record ids in array 'ids'; leave id_column unset")
    arrays = read_npz(path)
    if arrays["X"].ndim == 0 or len(arrays["X"]) == 0:
        raise DataError(
            f"{path}: array 'X' holds no records (shape {arrays['X'].shape}); save the records "
            "with np.savez(path, X=X, y=y)"
        )
    return arrays_dataset(
        arrays["X"],
        arrays["y"],
        name=file_stem(path),
        source=str(path),
        what=str(path),
        categorical=categorical,
        drop_duplicates=drop_duplicates,
        feature_names=arrays.get("feature_names"),
        ids=arrays.get("ids"),
        pixel_scale=pixel_scale,
    )


def load_file(
    path: str | Path,
    label: str | None = None,
    *,
    categorical: Sequence[str] | None = None,
    drop_duplicates: bool = True,
    id_column: str | None = None,
    pixel_scale: float | None = None,
) -> Dataset:
    """Load a user's CSV, Parquet or ``.npz`` file as a :class:`Dataset` named after its stem.

    Parameters
    ----------
    path:
        The file; its ending (``.csv``, ``.csv.gz``, ``.parquet``, ``.pq``, ``.npz``)
        says how to read it.
    label:
        The label column of a table (required); ``.npz`` files use array ``y``.
    categorical:
        Extra columns to treat as categorical besides the non-numeric ones.
    drop_duplicates:
        Drop exact duplicate records (features and label), keeping the first.
    id_column:
        A table's column naming each record (kept as :attr:`Dataset.ids`, not a
        feature). A ``.npz`` file holds ids in an optional array ``ids``.
    pixel_scale:
        For images that are not ``uint8``: the value of white (pixels are divided by it).

    Raises
    ------
    DataError
        For a missing or unreadable file, an unknown ending, a missing label
        column, missing values in a numeric feature or the label, a single class,
        too few records, or ``.npz`` arrays that are absent or do not match.
    """
    path = Path(path).expanduser()
    fmt = file_format(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path")
    if fmt is None:
        raise DataError(
            f"{path}: unknown file type {path.suffix or '(no ending)'!r}; "
            f"use one of {', '.join(FILE_FORMATS)}"
        )
    if fmt == "npz":
        return _load_npz(path, label, categorical, drop_duplicates, id_column, pixel_scale)
    if pixel_scale is not None:
        raise DataError(f"{path}: a table has no pixels; drop the pixel scale")
    return _load_table(path, fmt, label, categorical, drop_duplicates, id_column)


def load_text_file(
    path: str | Path,
    label: str | None,
    text_column: str,
    *,
    drop_duplicates: bool = True,
    id_column: str | None = None,
    categorical: Sequence[str] | None = None,
    pixel_scale: float | None = None,
) -> Dataset:
    """A CSV or Parquet table whose records are the texts of ``text_column``
    (:func:`miaudit.data.kinds.text_dataset`); its other columns ride along.

    Raises
    ------
    DataError
        What :func:`load_file` refuses, a file of arrays (``.npz``), a missing text
        column, text cells that are missing, empty, numbers or too long, and a file
        that is not UTF-8 (naming the byte where it stops being so).
    """
    path = Path(path).expanduser()
    fmt = file_format(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path")
    if fmt not in ("csv", "parquet"):
        raise DataError(f"{path}: text records come from a CSV or Parquet table; got {fmt}")
    for given, what in ((categorical, "categorical"), (pixel_scale, "pixel_scale")):
        if given:
            raise DataError(f"{path}: {what} does not apply to text records; drop it")
    df = read_table(path, fmt, label)
    missing = [c for c in (label, text_column, id_column) if c is not None and c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: no column {missing[0]!r}; columns are: {', '.join(df.columns[:30])}"
        )
    if text_column in (label, id_column):
        raise DataError(f"{path}: the text column {text_column!r} is also the label or id column")
    dropped = [label, *([id_column] if id_column else [])]
    dataset = text_dataset(
        df.drop(columns=dropped), df[label], name=file_stem(path), source=str(path),
        what=str(path), text_column=text_column, drop_duplicates=drop_duplicates,
        ids=df[id_column] if id_column else None, notes={"label_column": label},
    )  # fmt: skip
    if id_column is not None:
        dataset.raw.source_ids = check_ids(df[id_column], len(df), str(path))
    return dataset
