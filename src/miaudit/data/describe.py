"""Records as people read them, for the report's "whose privacy is at stake".

Position in the pipeline: ``data -> ... -> report``. The pipeline calls
:func:`describe_records` on the few records an audit finds most exposed, and
``results.json`` keeps what it returns, so the page (and ``miaudit report`` later)
shows the user's own values: the categories and numbers of their file or DataFrame
rather than the one-hot encoding, or a thumbnail of an image.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from miaudit.data.dataset import Dataset
from miaudit.data.kinds import kind_of
from miaudit.data.kinds.image import png_data_uri

__all__ = ["describe_records", "png_data_uri"]


def describe_records(data: Dataset, index: np.ndarray) -> list[dict[str, Any]]:
    """For each record ``index`` of ``data``, what its kind shows a person
    (:meth:`miaudit.data.kinds.RecordKind.show`): ``{"values": {column: value}}`` for a
    table (the user's own values when they handed them over, else decoded from the
    encoding to the precision it keeps), ``{"image": "data:image/png;base64,…"}`` for
    an image, ``{"text": …}`` (whole) for a text, ``{"object": repr excerpt}`` for an
    opaque record. Values are made plain for JSON."""
    shown = kind_of(data).show(data, np.asarray(index, dtype=np.int64))
    for record in shown:
        if "values" in record:
            record["values"] = {str(c): _plain(v) for c, v in record["values"].items()}
    return shown


def _plain(value: Any) -> Any:
    """A cell as JSON writes it: numbers as numbers, missing as ``None``, else text."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)
