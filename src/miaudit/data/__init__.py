"""The data stage: built-in data sets and users' files as a :class:`Dataset`.

Position in the pipeline: ``config -> data -> splits -> ...``. Everything after
this stage sees arrays plus metadata and never reads a file.

>>> from miaudit.data import load_dataset
>>> ds = load_dataset("digits")
>>> ds.n_records, ds.n_classes
(1797, 10)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from miaudit.data import cache
from miaudit.data.builtin import (
    BUILTIN_DATASETS,
    DatasetInfo,
    builtin_infos,
    is_builtin,
    resolve_builtin,
)
from miaudit.data.dataset import Dataset
from miaudit.data.encode import TabularEncoder
from miaudit.data.files import FILE_FORMATS, file_format, load_file, load_text_file
from miaudit.errors import DataError

__all__ = [
    "BUILTIN_DATASETS",
    "Dataset",
    "DatasetInfo",
    "TabularEncoder",
    "list_datasets",
    "load_dataset",
    "load_frame",
]

#: Names :func:`miaudit.data.records.memory_dataset` gives data held in memory.
MEMORY_NAMES = ("dataframe", "arrays")
# Bump when the user-file loaders' output changes, so cached copies are rebuilt.
_FILE_LOADER_VERSION = 2


def list_datasets() -> list[DatasetInfo]:
    """The built-in data sets: known sizes, and whether their files are installed here.

    Instant: sizes are the known ones, only the files' presence is checked.
    """
    return builtin_infos()


def load_dataset(
    name_or_path: str | Path,
    label: str | None = None,
    *,
    categorical: Sequence[str] | None = None,
    use_cache: bool = True,
    drop_duplicates: bool = True,
    id_column: str | None = None,
    pixel_scale: float | None = None,
    text_column: str | None = None,
) -> Dataset:
    """Load a built-in data set by name, or a user's CSV, Parquet or ``.npz`` file.

    Parameters
    ----------
    name_or_path:
        A built-in name (see :data:`BUILTIN_DATASETS`; ``"census"`` picks its
        variant from ``label``) or a path to a file.
    label:
        Label column. Built-in sets have a default; ``census`` accepts
        ``occupation`` (default), ``major-occupation``, ``industry``, ``income``
        or the raw column names. Required for CSV and Parquet files.
    categorical:
        For tables in user files: columns to one-hot encode in addition to the
        non-numeric ones (numeric codes such as zip codes).
    use_cache:
        Read from and write to the on-disk cache (:mod:`miaudit.data.cache`). Text
        data sets (``sms-spam``, ``text_column=``) are never cached.
    drop_duplicates:
        Drop exact duplicate records (same features and label), keeping the first;
        their count is in ``Dataset.notes["duplicates_dropped"]``.
    id_column:
        For tables in user files: a column naming each record, kept as
        ``Dataset.ids`` rather than used as a feature.
    pixel_scale:
        For images in ``.npz`` files that are not ``uint8``: the value of white.
    text_column:
        For tables in user files: the column of texts; the records are then text
        records (:mod:`miaudit.data.kinds.text`), held as given and never cached.

    Returns
    -------
    Dataset
        Named after the built-in set (``"census-occupation"``) or the file's stem.

    Raises
    ------
    DataError
        Unknown name, missing data files (with how to install them), or any
        problem with a user's file; the message names the input and the fix.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, str) and is_builtin(text):
        refused = ((categorical, "categorical="), (id_column, "id_column="),
                   (pixel_scale, "pixel_scale="), (text_column, "text_column="))  # fmt: skip
        for given, what in refused:
            if given:
                raise DataError(
                    f"{what} applies to user files; built-in data set {text!r} already knows "
                    "its columns"
                )
        builtin = resolve_builtin(text, label)
        files = builtin.source_files()
        if builtin.kind == "text":
            # Text is held as given and tokenised in one pass: nothing worth caching.
            return builtin.load(files, drop_duplicates)
        return cache.cached(
            builtin.name,
            builtin.version,
            {"drop_duplicates": drop_duplicates},
            files,
            lambda: builtin.load(files, drop_duplicates),
            use_cache=use_cache,
        )

    path = Path(text).expanduser()
    if text in MEMORY_NAMES and not path.is_file():
        raise DataError(
            f"data set {text!r} is what miaudit calls data handed over in memory "
            "(audit(data=...)): pass the data again with data=, or name a file"
        )
    if not path.is_file():
        looks_like_path = file_format(path) is not None or "/" in text or "\\" in text
        if looks_like_path:
            raise DataError(f"{path}: file not found; check the path")
        raise DataError(
            f"unknown data set {text!r}; built-in data sets are census, "
            f"{', '.join(BUILTIN_DATASETS)}, or give a path to a "
            f"{', '.join(FILE_FORMATS)} file"
        )
    if text_column is not None:
        # Text is held as given and tokenised in one pass: nothing worth caching.
        return load_text_file(
            path, label, text_column, drop_duplicates=drop_duplicates, id_column=id_column,
            categorical=categorical, pixel_scale=pixel_scale,
        )  # fmt: skip
    cats = sorted(set(categorical)) if categorical else []
    options = {
        "label": label,
        "categorical": cats,
        "drop_duplicates": drop_duplicates,
        "id_column": id_column,
        "pixel_scale": pixel_scale,
    }
    return cache.cached(
        f"file-{path.name}",
        _FILE_LOADER_VERSION,
        options,
        [path],
        lambda: load_file(
            path,
            label,
            categorical=categorical,
            drop_duplicates=drop_duplicates,
            id_column=id_column,
            pixel_scale=pixel_scale,
        ),
        use_cache=use_cache,
    )


def load_frame(name: str, label: str | None = None) -> pd.DataFrame:
    """A built-in tabular or text data set's raw table: its feature columns and its label
    column, as read (before encoding and before duplicates are dropped). A text set's
    table has the columns ``text`` and ``label`` (``load_frame("sms-spam")``: 5,574 rows).

    This is the table to train your own model on and to hand back to
    :func:`miaudit.audit` as ``data=``; the records of an audit of the built-in set
    (``scores.csv``'s ``record``) are rows of this table.

    >>> frame = load_frame("adult")
    >>> frame.shape
    (48842, 14)

    Raises
    ------
    DataError
        Unknown name, an image data set (its records are ``load_dataset(name).X``), or
        missing files (with how to install them).
    """
    return resolve_builtin(name, label).frame().frame.copy()


def builtin_table(name: str, label: str | None = None):
    """The built-in table behind ``name``: :class:`miaudit.data.builtin.Table`."""
    return resolve_builtin(name, label).frame()
