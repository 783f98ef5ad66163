"""Tables: rows of named columns, numbers and categories.

Position in the pipeline: ``config -> data -> splits -> ...``. A table is encoded by
the one :class:`~miaudit.data.encode.TabularEncoder` (one-hot categories,
standardised numbers), and miaudit's attacks perturb that encoding (numeric offsets
for LiRA's queries, noise for the robustness attack). When the encoder refuses the
cells (missing values, free text, a column of objects) and the user's model reads
the user's own rows, the table is held as given instead (``Dataset.X`` holds
handles), and what needs the encoding is refused, naming the column that stopped it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from miaudit.data.encode import TabularEncoder
from miaudit.data.kinds.base import RecordKind
from miaudit.data.kinds.text import TEXT_MODELS

__all__ = ["TableKind"]


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
