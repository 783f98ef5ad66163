"""The data set as plain arrays plus metadata: what every stage after loading sees.

Position in the pipeline: ``config -> data -> splits -> ...``. Loaders (built-in
sets and user files) return a :class:`Dataset`; nothing downstream reads files.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Dataset:
    """Encoded features, integer labels and what is known about them.

    Attributes
    ----------
    name:
        Short name (``"census-occupation"``, ``"adult"``, or the user file's stem).
    X:
        ``float32`` features. Tabular data: ``(n, d)`` after the tabular encoder
        (one-hot categoricals, standardised numerics). Images: ``(n, c, h, w)``
        scaled to ``[0, 1]``. Records held as given (:mod:`miaudit.data.kinds.base`):
        column 0 is each record's handle; text rows carry hashed token ids after it.
    y:
        ``int64`` labels in ``0 .. n_classes - 1``.
    class_names:
        Human-readable name of each label value, ``len == n_classes``.
    feature_names:
        Names of the raw input columns (before encoding).
    categorical:
        Which raw columns are categorical.
    encoded_feature_names:
        Name of each column of ``X`` for tabular data (``"sex=Female"``), empty for images.
    kind:
        ``"tabular"``, ``"image"``, ``"text"`` or ``"opaque"``: the kind of record
        (:mod:`miaudit.data.kinds`), which says what ``X`` holds.
    source:
        Where the data was read from (a file path or a package name), for reports.
    encoder:
        JSON-serialisable description of the tabular encoder (so raw rows can be
        encoded the same way later, e.g. by a prediction server); ``None`` for images.
    notes:
        JSON-serialisable facts about how the records were obtained, for reports:
        rows read, rows dropped and why (``"duplicates_dropped"``), the label column,
        the canonical source of a built-in set.
    row:
        ``int64`` position of each record in the table it was read from (the user's
        file or DataFrame, or :func:`miaudit.data.load_frame` for a built-in set),
        counting the rows dropped as duplicates, so results join back to the user's
        rows; ``None`` means ``0 .. n-1``.
    ids:
        The user's own identifier of each record (an id column, or ``ids=``), or
        ``None``.
    raw:
        The user's own records beside the encoded ones (:class:`RawRecords`), for
        models that read them; ``None`` when only miaudit's models are involved.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    class_names: list[str]
    feature_names: list[str]
    categorical: list[str] = field(default_factory=list)
    encoded_feature_names: list[str] = field(default_factory=list)
    kind: str = "tabular"
    source: str = ""
    encoder: dict | None = None
    notes: dict = field(default_factory=dict)
    row: np.ndarray | None = None
    ids: np.ndarray | None = None
    raw: Any = None

    @property
    def rows(self) -> np.ndarray:
        """:attr:`row`, or ``0 .. n-1`` when the records are the table's rows in order."""
        return np.arange(self.n_records, dtype=np.int64) if self.row is None else self.row

    @property
    def n_records(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Width of one encoded record (``c*h*w`` for images)."""
        return int(np.prod(self.X.shape[1:]))

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one record as models see it: ``(d,)`` or ``(c, h, w)``."""
        return tuple(int(s) for s in self.X.shape[1:])

    def fingerprint(self) -> str:
        """SHA-256 of the arrays and labels: identifies the content, not the name.

        Records held as given (text, opaque objects; ``X`` holds their handles) add the
        digest of the records themselves (``notes["content_sha256"]``); records with no
        honest digest (objects that do not pickle) get a fingerprint of their own that
        no other data set shares, so nothing is ever taken for them.

        Computed once per data set (the arrays of a frozen data set do not change).
        """
        cached = self.__dict__.get("_fingerprint")
        if cached is not None:
            return cached
        h = hashlib.sha256()
        h.update(str(self.X.shape).encode())
        h.update(np.ascontiguousarray(self.X).tobytes())
        h.update(np.ascontiguousarray(self.y).tobytes())
        if self.raw is not None and getattr(self.raw, "held", False):
            content = self.notes.get("content_sha256") or f"unverifiable {uuid.uuid4()}"
            h.update(f"held {self.kind} {content}".encode())
        # A frozen dataclass: store the cache beside the fields, not through __setattr__.
        object.__setattr__(self, "_fingerprint", h.hexdigest())
        return self.__dict__["_fingerprint"]

    def summary(self) -> dict:
        """The ``dataset`` block of ``results.json``."""
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "n_records": self.n_records,
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "class_names": list(self.class_names),
            "notes": dict(self.notes),
        }
