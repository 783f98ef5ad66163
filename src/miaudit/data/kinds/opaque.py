"""Opaque records: any Python objects the user's model takes (dicts, file paths,
token lists, …), which miaudit only indexes.

Position in the pipeline: ``config -> data -> splits -> ...``. miaudit never looks
inside an opaque record: it holds each by handle (:mod:`miaudit.data.kinds.base`),
hands the user's own model and trainer the objects exactly as given, and scores the
attacks that read the model's outputs (Shokri's, the thresholds, LiRA and RMIA with
one query, gap). What needs to make or move records (query variants, perturbed
copies, the boundary search, QMIA's features, synthetic shadow data) and miaudit's
own recipes are refused, naming why. The page shows each record's ``repr``, cut.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from miaudit.data.dataset import Dataset
from miaudit.data.kinds.base import RecordKind, excerpt, hold
from miaudit.errors import DataError

__all__ = ["OpaqueKind", "opaque_dataset"]

_WHY = "miaudit does not look inside opaque records (objects only your code reads)"


class OpaqueKind(RecordKind):
    name = "opaque"
    records = "opaque records"

    def cannot_train(self, data: Any, model: str) -> str | None:
        return f"{_WHY}, so none of its models trains on them: audit your own (target=, trainer=)"

    def cannot_synthesise(self, data: Any) -> str | None:
        return _WHY

    def cannot_vary(self, data: Any) -> str | None:
        return _WHY

    def cannot_perturb(self, data: Any) -> str | None:
        return _WHY

    def cannot_move(self, data: Any) -> str | None:
        return _WHY

    def cannot_represent(self, data: Any) -> str | None:
        return _WHY

    def show(self, data: Any, index: np.ndarray) -> list[dict[str, Any]]:
        records = data.raw.features
        return [{"object": excerpt(repr(records[int(i)]))} for i in np.asarray(index, np.int64)]


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
    return hold(
        values, labels.reset_index(drop=True), kind="opaque", name=name, source=source,
        what=what, feature_names=["record"], drop_duplicates=drop_duplicates, ids=ids,
        notes={},
    )  # fmt: skip
