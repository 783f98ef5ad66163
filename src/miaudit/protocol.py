"""The prediction protocol spoken by ``miaudit serve`` and the HTTP target.

Position in the pipeline: ``target``. A remote target receives records as JSON
rows of *raw* feature values, in the data set's own columns (for text, the record's
text), and answers one probability vector (or one label) per record. This module is
the one place that knows how a record crosses that boundary:

- :class:`InputSchema` describes the records a service accepts (``GET /v1/info``
  publishes it) and converts between encoded arrays (what models and attacks see)
  and raw JSON rows (what travels), in both directions, with validation that
  names the bad record and field.
- :func:`parse_answer` checks what a service answered before any number of it
  reaches an attack.

Wire format (version 1), documented for people who put an adapter in front of
their own API in the README's "Prediction API" section::

    POST /v1/predict   {"records": [{"age": 39, "sex": "Female", ...}, ...]}
                       {"records": [{"text": "Free entry in 2 a wkly comp..."}, ...]}
                   ->  {"probabilities": [[0.1, 0.9], ...]}      or, label only,
                   ->  {"labels": ["<=50K", ...]}
    GET  /v1/info  ->  {"protocol": 1, "classes": [...], "input": {...},
                        "output": "probabilities" | "labels", "policy": [...], ...}
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from miaudit.data.encode import TabularEncoder
from miaudit.data.kinds.table import id_like_categories
from miaudit.data.kinds.text import MAX_TEXT_CHARS, MAX_TOKENS, TextKind, encode_texts
from miaudit.errors import DataError, TargetError

PROTOCOL_VERSION = 1
#: Field holding an image record's pixel values (flattened, channel-major).
PIXELS = "pixels"
#: Field holding a text record's text (one JSON string).
TEXT = "text"
#: What a text service's model reads: the texts themselves (a user's own Pipeline), or
#: the hashed token ids of :mod:`miaudit.data.kinds.text` (miaudit's ``tfidf-lr``).
TEXT_READS = ("texts", "tokens")
#: Answers whose rows sum to 1 within this tolerance are probability vectors.
SUM_TOLERANCE = 1e-3
# Exact types JSON decoding produces (``bool`` is not a number here).
_NUMBER_TYPES = {int, float}
_CATEGORY_TYPES = {str, type(None)}


class RecordError(ValueError):
    """A record does not fit the schema; ``field`` is ``records[i].column``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class InputSchema:
    """The records a model accepts, as raw values.

    Tabular data: one field per raw column, numeric (a JSON number) or categorical
    (one of the column's categories as a string, or ``null`` for none: the category
    of empty cells where the data had some, else all zeros, as the
    :class:`~miaudit.data.encode.TabularEncoder` encodes a block with no category; a
    string that is no category is refused, naming it). ``withheld`` names the
    categorical columns whose categories name records (an identifier in every row,
    :func:`~miaudit.data.kinds.table.id_like_categories`): ``/v1/info`` gives their
    count, never the values, which are still encoded when sent. Images: one field,
    ``"pixels"``, a flat list of ``prod(shape)`` numbers in ``[0, 1]``. Text: one
    field, ``"text"``, a non-empty string of at most
    :data:`~miaudit.data.kinds.text.MAX_TEXT_CHARS` characters.

    Text only: ``reads`` says what the served model takes from :meth:`encode` (the
    texts, or ``(n, 1 + tokens)`` rows of hashed token ids, the handle column 0);
    ``decode`` (the client's side, set by :meth:`for_dataset`) turns the audit's rows
    of ``Dataset.X`` back into their texts.
    """

    kind: str
    shape: tuple[int, ...] = ()
    encoder: dict | None = None
    reads: str = "texts"
    tokens: int = 0
    withheld: tuple[str, ...] = ()
    decode: Callable[[np.ndarray], list[str]] | None = field(
        default=None, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.kind not in ("tabular", "image", "text"):
            raise DataError(
                f"a prediction API takes tabular, image or text records, not {self.kind} records"
            )
        if self.kind == "text":
            if self.reads not in TEXT_READS:
                raise DataError(
                    f"a text service's model reads {' or '.join(TEXT_READS)}, not {self.reads!r}"
                )
            if self.reads == "tokens" and not (
                isinstance(self.tokens, int) and 1 <= self.tokens <= MAX_TOKENS
            ):
                raise DataError(
                    f"a model reading token ids reads 1 to {MAX_TOKENS} of them per text, not "
                    f"{self.tokens!r}"
                )

    @classmethod
    def for_dataset(cls, data) -> InputSchema:
        """The schema of a :class:`~miaudit.data.Dataset`'s records.

        Raises
        ------
        DataError
            Records that cannot travel as the protocol's records: objects or a table
            held as given (no encoder names their columns' values), or text records
            beside other feature columns (a service takes one text per record).
        """
        if data.kind == "text":
            return cls._text_schema(data)
        if data.kind not in ("tabular", "image") or (
            data.kind == "tabular" and data.encoder is None
        ):
            because = data.notes.get("held_because", "they are held as given")
            raise DataError(
                f"a prediction API takes tables miaudit encodes, images or texts; these "
                f"{data.kind} records cannot travel as its records ({because}): audit the "
                "model in Python (target=your model)"
            )
        schema = cls(kind=data.kind, shape=data.input_shape, encoder=data.encoder)
        return schema.withholding(data.n_records) if data.kind == "tabular" else schema

    def withholding(self, n_records: int) -> InputSchema:
        """This tabular schema with the categorical columns whose categories name records
        withheld, its encoder having been fitted on ``n_records`` records."""
        naming = id_like_categories(self._encoder().categories_, n_records)
        return dataclasses.replace(self, withheld=tuple(naming))

    @classmethod
    def _text_schema(cls, data) -> InputSchema:
        column = data.notes.get("text_column")
        others = [c for c in data.feature_names if c != column] if column is not None else []
        if others:
            shown = ", ".join(map(str, others[:5])) + (", ..." if len(others) > 5 else "")
            raise DataError(
                f"a prediction API takes one text per record, and the data has other feature "
                f"columns besides its text column {column!r} ({shown}): drop the other columns"
            )
        if getattr(data, "raw", None) is None:
            raise DataError(
                f"data set '{data.name}' keeps no texts beside its token ids, and a prediction "
                "API takes the texts: load it with miaudit.data (or pass data=(texts, labels))"
            )
        tokens = int(data.notes.get("text_tokens") or data.input_shape[0] - 1)
        return cls(
            kind="text", shape=data.input_shape, tokens=tokens,
            decode=functools.partial(TextKind().texts, data),
        )  # fmt: skip

    # ------------------------------------------------------------------ description
    def to_json(self) -> dict[str, Any]:
        """The ``input`` block of ``/v1/info``: the fields and what each accepts.

        Raw values travel, so the description says nothing of how the model
        standardises them.
        """
        if self.kind == "image":
            return {"kind": "image", "shape": list(self.shape), "field": PIXELS}
        if self.kind == "text":
            return {"kind": "text", "field": TEXT, "max_chars": MAX_TEXT_CHARS}
        enc = self._encoder()
        columns = []
        for name in enc.columns_:
            if name not in enc.categories_:
                columns.append({"name": name, "type": "numeric"})
            elif name in self.withheld:
                columns.append({
                    "name": name, "type": "categorical",
                    "n_categories": len(enc.categories_[name]),
                    "withheld": "its values name records (a different one in every record of "
                    "the data set), so they are not listed",
                })  # fmt: skip
            else:
                columns.append(
                    {"name": name, "type": "categorical", "categories": enc.categories_[name]}
                )
        return {"kind": "tabular", "shape": list(self.shape), "columns": columns}

    def differences(self, spec: Any) -> str | None:
        """``None`` when a service's ``input`` block accepts these records, else what differs."""
        if not isinstance(spec, dict):
            return "the service describes no input schema"
        mine = self.to_json()
        if spec.get("kind") != mine["kind"]:
            return f"the service takes {spec.get('kind')} records, not {mine['kind']}"
        if self.kind == "image":
            if list(spec.get("shape") or []) != mine["shape"]:
                return f"the service takes images of shape {spec.get('shape')}, not {mine['shape']}"
            return None
        if self.kind == "text":
            # How the service's model reads a text (its own tokens, a vocabulary) is its
            # business: the client sends the texts as they are.
            if spec.get("field", TEXT) != TEXT:
                return f"the service takes texts in field {spec.get('field')!r}, not {TEXT!r}"
            return None
        theirs = spec.get("columns")
        if not isinstance(theirs, list) or not all(isinstance(c, dict) for c in theirs):
            return "the service's column list is malformed"
        names = [c.get("name") for c in theirs]
        if names != [c["name"] for c in mine["columns"]]:
            return f"the service's columns are {names}, not {[c['name'] for c in mine['columns']]}"
        categories = self._encoder().categories_
        for column in theirs:
            name = column["name"]
            if name not in categories:
                if column.get("type") != "numeric":
                    return f"column {name!r} differs (type or categories)"
            elif column.get("type") != "categorical":
                return f"column {name!r} differs (type or categories)"
            elif "categories" in column:
                if column["categories"] != categories[name]:
                    return f"column {name!r} differs (type or categories)"
            # Categories that name records are withheld: only their count can be compared
            # here, and a value the service does not know is refused when it is sent.
            elif column.get("n_categories") != len(categories[name]):
                return (
                    f"column {name!r} differs (the service has {column.get('n_categories')!r} "
                    f"categories, withheld as they name records; the data has "
                    f"{len(categories[name])})"
                )
        return None

    def _encoder(self) -> TabularEncoder:
        # Cached on the frozen instance: building an encoder per request would dominate.
        cached = self.__dict__.get("_enc")
        if cached is None:
            cached = TabularEncoder.from_dict(self.encoder)
            object.__setattr__(self, "_enc", cached)
        return cached

    def _known(self, column: str) -> frozenset:
        """The values of a categorical column that name a category (``None`` always
        does: no category)."""
        known = self.__dict__.setdefault("_known_values", {})
        if column not in known:
            known[column] = frozenset(self._encoder().categories_[column]) | {None}
        return known[column]

    @property
    def fields(self) -> list[str]:
        if self.kind in ("image", "text"):
            return [PIXELS if self.kind == "image" else TEXT]
        return list(self._encoder().columns_)

    # ------------------------------------------------------------------ conversion
    def to_records(self, X: np.ndarray) -> list[dict[str, Any]]:
        """Encoded records -> raw JSON rows (the client's side of the wire)."""
        X = np.asarray(X)
        if self.kind == "image":
            flat = X.reshape(len(X), -1).astype(np.float64)
            return [{PIXELS: row} for row in flat.tolist()]
        if self.kind == "text":
            if self.decode is None:
                raise DataError(
                    "text records travel as their texts, and this schema cannot read them "
                    "from the rows: build it with InputSchema.for_dataset(data)"
                )
            return [{TEXT: text} for text in self.decode(X)]
        frame = self._encoder().inverse_transform(X.reshape(len(X), -1))
        # Column lists zipped into dicts: five times faster than DataFrame.to_dict.
        names = list(frame.columns)
        columns = [frame[c].tolist() for c in names]
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]

    def encode(self, records: Any) -> np.ndarray:
        """Raw JSON rows -> the encoded ``float32`` array models take (the server's side).

        Text: what the model reads (:attr:`reads`), a 1-D ``object`` array of the texts
        or ``float32`` rows of a zero handle and :attr:`tokens` hashed token ids.

        Raises
        ------
        RecordError
            Naming the first bad record and field: a missing or unknown field, a
            numeric field that is not a finite number, a categorical field that is
            not a string or is none of the column's categories, pixels of the wrong
            count or range, or a text that is not a string, is empty or is too long.
        """
        if not isinstance(records, list):
            raise RecordError("records", "must be a list of records")
        fields = self.fields
        wanted = set(fields)
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise RecordError(f"records[{i}]", "must be an object of field: value")
            if record.keys() != wanted:
                missing = [f for f in fields if f not in record]
                if missing:
                    raise RecordError(f"records[{i}].{missing[0]}", "is missing")
                extra = sorted(set(record) - wanted)
                raise RecordError(f"records[{i}].{extra[0]}", f"is not a field; fields: {fields}")
        if self.kind == "image":
            return self._encode_images(records)
        if self.kind == "text":
            return self._encode_texts(records)
        enc = self._encoder()
        columns = {}
        for name in enc.columns_:
            values = [r[name] for r in records]
            # Checking the set of types first keeps the common, valid case vectorised;
            # the element loop runs only to name the first bad record.
            types = set(map(type, values))
            if name in enc.categories_:
                if not types <= _CATEGORY_TYPES:
                    i, v = next(
                        (i, v) for i, v in enumerate(values) if type(v) not in _CATEGORY_TYPES
                    )
                    raise RecordError(
                        f"records[{i}].{name}", f"must be a category (a string), not {_short(v)}"
                    )
                known = self._known(name)
                if not known.issuperset(values):
                    i, v = next((i, v) for i, v in enumerate(values) if v not in known)
                    raise RecordError(f"records[{i}].{name}", self._unknown(name, v))
            elif not types <= _NUMBER_TYPES or not _all_finite(values):
                i, v = next(
                    (i, v)
                    for i, v in enumerate(values)
                    if type(v) not in _NUMBER_TYPES or not _all_finite([v])
                )
                raise RecordError(
                    f"records[{i}].{name}", f"must be a finite number, not {_short(v)}"
                )
            columns[name] = values
        frame = pd.DataFrame(columns, columns=enc.columns_)
        return enc.transform(frame).reshape(len(records), *self.shape)

    def _unknown(self, column: str, value: str) -> str:
        """Why ``value`` is refused: none of ``column``'s categories (not listed where they
        are withheld)."""
        n = len(self._encoder().categories_[column])
        where = "listed in /v1/info"
        if column in self.withheld:
            where = "withheld from /v1/info: they name records"
        return (
            f"{_short(value)} is none of the column's {n:,} categories ({where}): send one of "
            "them, or null for a record with none"
        )

    def _encode_images(self, records: list[dict]) -> np.ndarray:
        size = int(np.prod(self.shape))
        for i, record in enumerate(records):
            pixels = record[PIXELS]
            if not isinstance(pixels, list) or len(pixels) != size:
                got = len(pixels) if isinstance(pixels, list) else type(pixels).__name__
                raise RecordError(f"records[{i}].{PIXELS}", f"must be {size} numbers, got {got}")
        # JSON numbers only, as for tabular fields: no strings ("0.5"), booleans or lists,
        # which NumPy would convert. Checked by type sets, so the valid case stays fast.
        for i, record in enumerate(records):
            if not set(map(type, record[PIXELS])) <= _NUMBER_TYPES:
                bad = next(v for v in record[PIXELS] if type(v) not in _NUMBER_TYPES)
                raise RecordError(
                    f"records[{i}].{PIXELS}", f"must hold only numbers, not {_short(bad)}"
                )
        # One conversion for the whole batch; the record is named only on failure.
        try:
            rows = np.asarray([r[PIXELS] for r in records], dtype=np.float64).reshape(-1, size)
        except (TypeError, ValueError):
            for i, record in enumerate(records):
                try:
                    np.asarray(record[PIXELS], dtype=np.float64)
                except (TypeError, ValueError):
                    raise RecordError(f"records[{i}].{PIXELS}", "must hold only numbers") from None
            raise  # pragma: no cover - every row converted on its own
        bad = ~(np.isfinite(rows) & (rows >= 0) & (rows <= 1)).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RecordError(f"records[{i}].{PIXELS}", "values must be finite and in [0, 1]")
        return rows.astype(np.float32).reshape(len(records), *self.shape)

    def _encode_texts(self, records: list[dict]) -> np.ndarray:
        texts = [r[TEXT] for r in records]
        for i, text in enumerate(texts):
            if type(text) is not str:
                raise RecordError(
                    f"records[{i}].{TEXT}", f"must be a text (a JSON string), not {_short(text)}"
                )
            if len(text) > MAX_TEXT_CHARS:
                raise RecordError(
                    f"records[{i}].{TEXT}",
                    f"has {len(text):,} characters, more than {MAX_TEXT_CHARS:,}: a record is "
                    "one text, not a file",
                )
            if not text or text.isspace():
                raise RecordError(f"records[{i}].{TEXT}", "is empty: send the record's text")
        if self.reads == "tokens":
            X, _ = encode_texts(texts, np.zeros(len(texts), np.float32), self.tokens)
            return X
        out = np.empty(len(texts), dtype=object)
        out[:] = texts
        return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _all_finite(values: list) -> bool:
    try:
        return bool(np.isfinite(np.asarray(values, dtype=np.float64)).all())
    except OverflowError:  # an integer beyond float range
        return False


def record_texts(records: list[dict[str, Any]]) -> list[bytes]:
    """Each record as the JSON text sent for it (fields in the schema's order)."""
    dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    return [dumps(r).encode() for r in records]


def record_keys(texts: list[bytes]) -> list[bytes]:
    """A digest of exactly what is sent per record: the key of the query cache."""
    return [hashlib.sha256(t).digest() for t in texts]


def request_body(texts: list[bytes]) -> bytes:
    """The ``/v1/predict`` body for records already turned into JSON text."""
    return b'{"records":[' + b",".join(texts) + b"]}"


def parse_answer(
    body: bytes, n: int, classes: list[str], *, label_only: bool, source: str
) -> np.ndarray:
    """A service's answer to ``n`` records as an ``(n, C)`` array of probability rows.

    Labels (label-only services) become one-hot rows, which is what
    :class:`~miaudit.policies.LabelOnly` gives for a local target.

    Raises
    ------
    TargetError
        Naming what was wrong: not JSON, the wrong key, the wrong number of rows,
        rows of the wrong width, NaN or infinite values, negative values, rows that
        do not sum to 1, or labels that are not classes.
    """
    try:
        answer = json.loads(body)
    except RecursionError:
        raise TargetError(f"{source} answered JSON nested too deeply to be an answer") from None
    except (ValueError, UnicodeDecodeError) as exc:
        # JSONDecodeError, and integers beyond Python's digit limit.
        raise TargetError(f"{source} answered malformed JSON ({str(exc)[:200]})") from None
    key = "labels" if label_only else "probabilities"
    if not isinstance(answer, dict) or key not in answer:
        raise TargetError(f"{source} answered without the {key!r} field the protocol requires")
    rows = answer[key]
    if not isinstance(rows, list) or len(rows) != n:
        got = len(rows) if isinstance(rows, list) else type(rows).__name__
        raise TargetError(f"{source} answered {got} {key} for {n} records")
    C = len(classes)
    if label_only:
        index = {c: k for k, c in enumerate(classes)}
        P = np.zeros((n, C))
        for i, label in enumerate(rows):
            k = index.get(label if isinstance(label, str) else str(label))
            if k is None:
                raise TargetError(f"{source} answered label {label!r}, which is not a class")
            P[i, k] = 1.0
        return P
    return probability_rows(rows, n, C, source)


def probability_rows(rows: list, n: int, C: int, source: str, fix: str = "") -> np.ndarray:
    """``rows``, ``n`` answers each a list of ``C`` JSON numbers, as an ``(n, C)`` array
    of probabilities; else a :class:`TargetError` naming ``source``, what is wrong and
    (``fix``) what to do. Shared by every protocol's client."""
    then = f": {fix}" if fix else ""
    bad = next((r for r in rows if not isinstance(r, list) or len(r) != C), None)
    if bad is not None:
        got = f"{len(bad)} values" if isinstance(bad, list) else type(bad).__name__
        raise TargetError(
            f"{source} answered a row of {got}; expected {C} probabilities per record, "
            f"one per class{then}"
        )
    # JSON numbers only: "0.5" or true would convert, and are not what the protocol says.
    if any(type(v) not in (int, float) for r in rows for v in r):
        raise TargetError(f"{source} answered probability rows that are not all numbers{then}")
    try:
        P = np.asarray(rows, dtype=np.float64).reshape(n, C)
    except (TypeError, ValueError, OverflowError):
        raise TargetError(
            f"{source} answered probability rows that are not all numbers{then}"
        ) from None
    if not np.isfinite(P).all():
        raise TargetError(f"{source} answered NaN or infinite probabilities{then}")
    if (P < 0).any():
        raise TargetError(f"{source} answered negative probabilities{then}")
    worst = float(np.abs(P.sum(axis=1) - 1).max()) if n else 0.0
    if worst > SUM_TOLERANCE:
        raise TargetError(
            f"{source} answered rows that do not sum to 1 (off by up to {worst:.3g}): "
            f"are they probabilities, not logits or scores?{then}"
        )
    return P


def integer_labels(class_names: list[str]) -> str:
    """How :func:`label_rows` reads an integer label: ``"names"`` where a class is named
    by an integer (``7`` is the class ``"7"``), else ``"positions"`` (``1`` is the second
    class). Said in ``results.json`` by the targets that read labels."""
    return "names" if any(c.lstrip("-").isdigit() for c in class_names) else "positions"


def label_rows(labels: list, class_names: list[str], source: str, fix: str = "") -> np.ndarray:
    """``labels``, one per record, as one-hot rows over ``class_names``; else a
    :class:`TargetError` naming ``source``, the label and (``fix``) what to do.

    A label is a class's name (a string, or an integer naming it: ``7`` for ``"7"``). An
    integer ``k`` where no class is named by an integer is the ``k``-th class: a model
    trained on the classes' positions, as miaudit's data sets hold them. Shared by the
    clients of servers that know nothing of the data set (MLflow's, the v2 protocol's)."""
    then = f": {fix}" if fix else ""
    C = len(class_names)
    index = {c: k for k, c in enumerate(class_names)}
    by_position = integer_labels(class_names) == "positions"
    P = np.zeros((len(labels), C))
    for i, label in enumerate(labels):
        k = None
        if type(label) is str:
            k = index.get(label)
        elif type(label) is int:
            k = index.get(str(label))
            if k is None and by_position and 0 <= label < C:
                k = label
        if k is None:
            raise TargetError(
                f"{source} answered label {_short(label)}, which is none of the data set's "
                f"{C} classes {class_names[:5]}…{then}"
            )
        P[i, k] = 1.0
    return P
