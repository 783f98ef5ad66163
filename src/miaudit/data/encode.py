"""The one tabular encoder: raw table columns in, ``float32`` model inputs out.

Position in the pipeline: ``config -> data -> splits -> ...``. Every tabular data
set (built-in or a user's file) goes through :class:`TabularEncoder`, and its
:meth:`~TabularEncoder.to_dict` travels with the :class:`~miaudit.data.Dataset`
so that raw rows arriving later (a prediction server, a remote target) are
encoded exactly as the training records were.

Categorical columns become one-hot blocks; numeric columns are standardised.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from miaudit.errors import DataError

__all__ = ["MISSING_CATEGORY", "TabularEncoder", "check_numeric"]

#: Category given to an empty cell (``NaN``/``None``) of a categorical column.
#: Missing categoricals are information ("not answered"), not an error.
MISSING_CATEGORY = "<missing>"

_FORMAT = "miaudit.tabular-encoder"
_FORMAT_VERSION = 1


def _string_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Factorise a categorical column: ``codes`` into ``labels``, the values as strings.

    Values are compared as strings so that categories sort, survive JSON, and match
    raw rows sent later (``1`` and ``"1"`` are the same category). Only the distinct
    values are converted, which keeps this fast on columns of 300k rows.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy().astype(np.intp)
        uniques = values.cat.categories
    else:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        codes = codes.astype(np.intp)
    labels = [str(u) for u in uniques]
    missing = codes < 0
    if missing.any():
        codes[missing] = len(labels)
        labels.append(MISSING_CATEGORY)
    return codes, labels


def _as_numbers(values: pd.Series, column: str) -> np.ndarray:
    """A numeric column as finite ``float64``, or a :class:`DataError` saying what to fix."""
    if pd.api.types.is_bool_dtype(values.dtype):
        numbers = values.to_numpy(dtype=np.float64)
    else:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(numbers)
    if bad.any():
        # Cells that were present but did not parse as numbers hold text.
        text = np.isnan(numbers) & ~values.isna().to_numpy()
        if text.any():
            example = values[text].iloc[0]
            raise DataError(
                f"numeric column {column!r} has {int(text.sum())} non-numeric value(s) "
                f"such as {example!r}; fix those cells or declare the column categorical"
            )
        raise DataError(
            f"numeric column {column!r} has {int(bad.sum())} missing (NaN) or infinite "
            "value(s); drop or impute those rows before loading"
        )
    return numbers


def check_numeric(df: pd.DataFrame, columns: Iterable[str]) -> None:
    """Raise the encoder's :class:`DataError` if a numeric column has gaps or text.

    Loaders call this before dropping duplicates, so a user hears about the gaps in
    their data rather than about what is left after de-duplicating it.
    """
    for column in columns:
        _as_numbers(df[column], str(column))


class TabularEncoder:
    """One-hot categoricals and standardised numerics, fitted on a raw table.

    Columns of the output follow the input's column order; each categorical
    column expands in place into one column per category (sorted as strings), each
    numeric column stays one column, ``(x - mean) / std`` (a constant column keeps
    ``std = 1``). A category never seen in :meth:`fit` encodes as all zeros for
    that column: a record the encoder cannot name, rather than an error, because a
    remote target's inputs may hold values the audit's data never contained.

    Parameters
    ----------
    categorical:
        Names of the columns to treat as categorical; every other column is numeric.

    Attributes
    ----------
    columns_:
        Raw column names in input order.
    categories_:
        Sorted category strings of each categorical column.
    mean_, scale_:
        Mean and standard deviation (population, ``ddof=0``) of each numeric column.
    """

    def __init__(self, categorical: Iterable[str] = ()) -> None:
        self.categorical = tuple(categorical)

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame) -> TabularEncoder:
        """Learn categories and numeric statistics from ``df``; returns ``self``.

        Raises
        ------
        DataError
            If ``df`` is empty, a declared categorical column is absent, or a numeric
            column holds missing, infinite or non-numeric values.
        """
        if len(df) == 0:
            raise DataError("cannot fit the tabular encoder on an empty table; supply records")
        columns = [str(c) for c in df.columns]
        absent = sorted(set(self.categorical) - set(columns))
        if absent:
            raise DataError(
                f"categorical column(s) {absent} are not in the table; columns are {columns}"
            )
        wanted = set(self.categorical)
        categories: dict[str, list[str]] = {}
        mean: dict[str, float] = {}
        scale: dict[str, float] = {}
        for name, column in zip(columns, df.columns, strict=True):
            if name in wanted:
                codes, labels = _string_codes(df[column])
                categories[name] = sorted({labels[k] for k in np.unique(codes)})
            else:
                numbers = _as_numbers(df[column], name)
                std = float(numbers.std())
                mean[name] = float(numbers.mean())
                scale[name] = std if std > 0 else 1.0
        self.columns_ = columns
        self.categories_ = categories
        self.mean_ = mean
        self.scale_ = scale
        return self

    def fit_transform(self, df: pd.DataFrame) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same table."""
        return self.fit(df).transform(df)

    def _check_fitted(self) -> None:
        if not hasattr(self, "columns_"):
            raise DataError("the tabular encoder is not fitted; call fit() or from_dict() first")

    # ------------------------------------------------------------------ layout
    @property
    def encoded_feature_names(self) -> list[str]:
        """Name of each output column: ``"sex=Female"`` for one-hot, the column for numerics."""
        self._check_fitted()
        names: list[str] = []
        for col in self.columns_:
            if col in self.categories_:
                names.extend(f"{col}={cat}" for cat in self.categories_[col])
            else:
                names.append(col)
        return names

    @property
    def n_encoded(self) -> int:
        """Width of an encoded record."""
        self._check_fitted()
        return sum(len(self.categories_.get(c, (None,))) for c in self.columns_)

    def _blocks(self) -> list[tuple[str, int, int]]:
        """``(column, first output column, width)`` for each raw column."""
        blocks, offset = [], 0
        for col in self.columns_:
            width = len(self.categories_[col]) if col in self.categories_ else 1
            blocks.append((col, offset, width))
            offset += width
        return blocks

    # ------------------------------------------------------------------ encoding
    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Encode a raw table into a ``float32`` array of shape ``(n, n_encoded)``.

        Columns are matched by name (extra columns are ignored); unseen categories
        encode as zeros.

        Raises
        ------
        DataError
            If a fitted column is absent or a numeric column holds missing,
            infinite or non-numeric values.
        """
        self._check_fitted()
        by_name = {str(c): c for c in df.columns}
        absent = [c for c in self.columns_ if c not in by_name]
        if absent:
            raise DataError(
                f"the table lacks column(s) {absent} that the encoder was fitted on; "
                f"supply every column of {self.columns_}"
            )
        n = len(df)
        out = np.zeros((n, self.n_encoded), dtype=np.float32)
        rows = np.arange(n)
        for col, offset, _width in self._blocks():
            values = df[by_name[col]]
            if col in self.categories_:
                codes, labels = _string_codes(values)
                position = {cat: k for k, cat in enumerate(self.categories_[col])}
                codes = np.array([position.get(v, -1) for v in labels], dtype=np.intp)[codes]
                seen = codes >= 0
                out[rows[seen], offset + codes[seen]] = 1.0
            else:
                numbers = _as_numbers(values, col)
                out[:, offset] = (numbers - self.mean_[col]) / self.scale_[col]
        return out

    def inverse_transform(self, X: np.ndarray) -> pd.DataFrame:
        """Decode encoded rows back to a raw table (categories as strings).

        A one-hot block with no active column (an unseen category) decodes to ``None``.
        Numerics come back to ``float32`` precision of the standardised value.
        """
        self._check_fitted()
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_encoded:
            raise DataError(f"expected encoded rows of width {self.n_encoded}, got shape {X.shape}")
        data: dict[str, Any] = {}
        for col, offset, width in self._blocks():
            block = X[:, offset : offset + width]
            if col in self.categories_:
                names = np.asarray(self.categories_[col], dtype=object)
                values = names[block.argmax(axis=1)]
                values[block.max(axis=1) <= 0.5] = None
                # Kept as objects: pandas would make a column of strings, its None a NaN.
                data[col] = pd.Series(values, dtype=object)
            else:
                data[col] = block[:, 0].astype(np.float64) * self.scale_[col] + self.mean_[col]
        return pd.DataFrame(data, columns=self.columns_)

    def readable(self, X: np.ndarray) -> pd.DataFrame:
        """:meth:`inverse_transform` for people: each number rounded to the decimals the
        ``float32`` encoding keeps exactly (``39`` rather than ``38.9999994``), whole
        numbers as integers.
        """
        table = self.inverse_transform(X)
        X = np.asarray(X)
        for col, offset, _ in self._blocks():
            if col in self.categories_:
                continue
            z = np.abs(X[:, offset].astype(np.float32))
            # The encoding's own error on each value, and the decimals it leaves exact.
            err = np.spacing(np.maximum(z, np.float32(1e-30))).astype(np.float64) * self.scale_[col]
            decimals = np.clip(np.floor(-np.log10(2 * err)), 0, 12).astype(int)
            values = table[col].to_numpy(np.float64)
            rounded = [round(float(v), int(d)) for v, d in zip(values, decimals, strict=True)]
            table[col] = pd.Series(
                [int(v) if float(v).is_integer() else v for v in rounded], dtype=object
            )
        return table

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description that :meth:`from_dict` turns back into an encoder."""
        self._check_fitted()
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "columns": list(self.columns_),
            "categorical": {c: list(cats) for c, cats in self.categories_.items()},
            "numeric": {c: {"mean": self.mean_[c], "std": self.scale_[c]} for c in self.mean_},
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> TabularEncoder:
        """Rebuild a fitted encoder from :meth:`to_dict`'s output.

        Raises
        ------
        DataError
            If ``spec`` is not an encoder description this version can read.
        """
        if not isinstance(spec, dict) or spec.get("format") != _FORMAT:
            raise DataError("not a miaudit tabular encoder description (missing 'format')")
        if spec.get("version") != _FORMAT_VERSION:
            raise DataError(
                f"tabular encoder format version {spec.get('version')!r} is not supported "
                f"(this miaudit reads version {_FORMAT_VERSION}); re-create the data set"
            )
        try:
            columns = [str(c) for c in spec["columns"]]
            categories = {str(c): [str(v) for v in v_] for c, v_ in spec["categorical"].items()}
            numeric = {
                str(c): (float(s["mean"]), float(s["std"])) for c, s in spec["numeric"].items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"malformed tabular encoder description: {exc!r}") from None
        if set(columns) != set(categories) | set(numeric):
            raise DataError("malformed tabular encoder description: columns do not match blocks")
        encoder = cls(categorical=categories)
        encoder.columns_ = columns
        encoder.categories_ = categories
        encoder.mean_ = {c: m for c, (m, _) in numeric.items()}
        encoder.scale_ = {c: s for c, (_, s) in numeric.items()}
        return encoder

    def __repr__(self) -> str:
        if not hasattr(self, "columns_"):
            return f"TabularEncoder(categorical={list(self.categorical)!r})"
        return (
            f"TabularEncoder({len(self.categories_)} categorical, {len(self.mean_)} numeric "
            f"-> {self.n_encoded} columns)"
        )
