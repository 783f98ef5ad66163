"""Text records: each record a string (a review, a note, a message), perhaps beside
other columns of a DataFrame.

Position in the pipeline: ``config -> data -> splits -> ...``. A text data set holds
its records by handle (:mod:`miaudit.data.kinds.base`): the user's model reads the
user's texts exactly as given. For miaudit's own text recipes (``tfidf-lr``, ``boe``) the
same rows of ``Dataset.X`` carry hashed token ids after the handle:

* a token is a run of word characters (``\\w+``, Unicode), lower-cased;
* its id is ``1 + crc32(token) mod (TEXT_BUCKETS - 1)`` (the hashing trick: no
  vocabulary is fitted, so no record's words reach another's encoding); 0 pads;
* a record keeps its first ``length`` tokens, ``length`` being the longest record's
  count up to :data:`MAX_TOKENS` (``notes["texts_truncated"]`` counts the longer ones).

Query variants are documented word-level edits (variant ``k`` of a text of ``m``
words drops word ``(k - 1) // 2 mod m`` when ``k`` is odd and swaps it with the next
when ``k`` is even), fixed functions of the text, so target and reference models see
the same ones; perturbed copies drop each word with probability 0.1. Whether they
help on short texts is to be measured before they become a default (``PAPER.md``):
LiRA asks for them only with ``queries`` above 1.
"""

from __future__ import annotations

import functools
import re
import zlib
from typing import Any

import numpy as np
import pandas as pd

from miaudit.data.build import columns_text
from miaudit.data.dataset import Dataset
from miaudit.data.kinds.base import RecordKind, excerpt, hold
from miaudit.errors import DataError

__all__ = [
    "MAX_TEXT_CHARS",
    "MAX_TOKENS",
    "TEXT_BUCKETS",
    "TEXT_MODELS",
    "TextKind",
    "check_texts",
    "dropped_words",
    "encode_texts",
    "looks_like_text",
    "text_dataset",
    "token_ids",
    "token_length",
    "tokens",
    "word_variant",
]

#: Hashed vocabulary of the token ids (id 0 pads).
TEXT_BUCKETS = 2**15
#: Most tokens of a record miaudit's own text recipes read.
MAX_TOKENS = 256
#: Longest record accepted, in characters: a record past it is a file or a corpus
#: pasted into one cell, not a text a classifier reads.
MAX_TEXT_CHARS = 1_000_000
#: Buckets of the bag-of-words representation QMIA's regressor reads.
REPRESENTATION_WIDTH = 1024
#: Share of words a perturbed copy drops.
COPY_DROP = 0.1

_WORD = re.compile(r"\w+")


def check_texts(values: Any, what: str) -> np.ndarray:
    """``values`` as a 1-D object array of non-empty strings.

    Raises
    ------
    DataError
        A value that is missing, bytes, a number or another object, empty (or only
        white space), or longer than :data:`MAX_TEXT_CHARS`; the message names the row.
    """
    if hasattr(values, "to_numpy"):
        values = values.to_numpy(dtype=object)
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    for row, v in enumerate(array):
        if isinstance(v, str):
            if not v.strip():
                raise DataError(
                    f"{what}: the text of row {row} is empty; drop the rows without text"
                )
            if len(v) > MAX_TEXT_CHARS:
                raise DataError(
                    f"{what}: the text of row {row} has {len(v):,} characters (at most "
                    f"{MAX_TEXT_CHARS:,}); a record is one text, not a file: split or drop it"
                )
            continue
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
            raise DataError(f"{what}: the text of row {row} is missing; drop or fill those rows")
        if isinstance(v, bytes | bytearray):
            raise DataError(
                f"{what}: row {row} holds bytes, not text; decode them first "
                "(e.g. value.decode('utf-8'))"
            )
        kind = type(v).__name__
        raise DataError(
            f"{what}: row {row} holds a {kind} ({excerpt(repr(v), 40)}), not text; a text "
            "column holds strings: convert it (astype(str)) if the numbers are its text"
        )
    return array


#: Fewest rows from which a column is judged free text (:func:`looks_like_text`).
TEXT_LIKE_ROWS = 20


def looks_like_text(values: pd.Series) -> tuple[float, float] | None:
    """``(distinct share, mean words)`` when a column of strings reads as free text
    (nearly every value its own, most of them several words), else ``None``: such a
    column one-hot encoded would make every record a category of its own."""
    if len(values) < TEXT_LIKE_ROWS or pd.api.types.is_numeric_dtype(values.dtype):
        return None
    cells = values.dropna()
    if len(cells) < TEXT_LIKE_ROWS or not all(isinstance(v, str) for v in cells):
        return None
    distinct = cells.nunique() / len(cells)
    words = cells.str.split().str.len()
    if distinct >= 0.9 and (words >= 3).mean() >= 0.5:
        return float(distinct), float(words.mean())
    return None


_BUCKET: dict[str, int] = {}


def _bucket(token: str) -> int:
    found = _BUCKET.get(token)
    if found is None:
        found = 1 + zlib.crc32(token.encode("utf-8", "surrogatepass")) % (TEXT_BUCKETS - 1)
        if len(_BUCKET) < 1_000_000:  # a memo, bounded
            _BUCKET[token] = found
    return found


def tokens(text: str) -> list[str]:
    """The tokens of ``text``: runs of word characters, lower-cased."""
    return _WORD.findall(text.lower())


def token_ids(texts: Any, length: int) -> tuple[np.ndarray, int]:
    """Hashed token ids ``(n, length)`` ``int32`` of ``texts`` (0 pads), and how many
    texts had more than ``length`` tokens."""
    out = np.zeros((len(texts), length), dtype=np.int32)
    cut = 0
    for i, text in enumerate(texts):
        ids = [_bucket(t) for t in tokens(text)]
        if len(ids) > length:
            cut += 1
            ids = ids[:length]
        out[i, : len(ids)] = ids
    return out, cut


def token_length(texts: Any) -> int:
    """The token length a data set's records are kept to: the longest record's, up to
    :data:`MAX_TOKENS`, and at least 1."""
    longest = max((len(tokens(t)) for t in texts), default=1)
    return int(min(MAX_TOKENS, max(1, longest)))


def encode_texts(texts: Any, handles: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """Rows of a text data set's ``X``: handle, then ``length`` token ids (``float32``)."""
    ids, cut = token_ids(texts, length)
    X = np.empty((len(ids), 1 + length), dtype=np.float32)
    X[:, 0] = handles
    X[:, 1:] = ids
    return X, cut


def word_variant(text: str, k: int) -> str:
    """Variant ``k`` (``1, 2, …``) of ``text``: drop (odd ``k``) or swap with the next
    (even ``k``) word ``(k - 1) // 2 mod m`` of its ``m`` white-space separated words;
    a one-word text is its own variant."""
    words = text.split()
    m = len(words)
    if m < 2:
        return text
    j = ((k - 1) // 2) % m
    if k % 2:
        return " ".join(words[:j] + words[j + 1 :])
    if j == m - 1:
        j -= 1
    words[j], words[j + 1] = words[j + 1], words[j]
    return " ".join(words)


def dropped_words(text: str, rng: np.random.Generator, rate: float = COPY_DROP) -> str:
    """``text`` with each word dropped with probability ``rate`` (one word always kept)."""
    words = text.split()
    keep = rng.random(len(words)) >= rate
    if not keep.any():
        keep[rng.integers(len(words))] = True
    return " ".join(w for w, k in zip(words, keep, strict=True) if k)


class TextKind(RecordKind):
    """Strings, alone (``data=(texts, labels)``) or as the text column of a DataFrame."""

    name = "text"
    records = "text records"

    def cannot_train(self, data: Any, model: str) -> str | None:
        if model not in TEXT_MODELS:
            return (
                f"miaudit's model {model!r} reads tables or images; text trains the text "
                f"recipe ({', '.join(TEXT_MODELS)}) or your own model (target=, trainer=)"
            )
        column = data.notes.get("text_column")
        others = [c for c in data.feature_names if c != column] if column is not None else []
        if others:
            return (
                f"the built-in text recipe reads the text column alone, and the data has "
                f"other feature columns ({', '.join(others[:5])}): drop them, or audit your "
                "own model of all the columns"
            )
        return None

    def default_model(self, data: Any) -> str:
        return TEXT_MODELS[0]

    def cannot_synthesise(self, data: Any) -> str | None:
        return "miaudit makes no synthetic or noisy text (use real shadow data)"

    def cannot_vary(self, data: Any) -> str | None:
        return None

    def cannot_perturb(self, data: Any) -> str | None:
        return None

    def cannot_move(self, data: Any) -> str | None:
        return "texts are not points of a continuous space that a search could move along"

    def cannot_represent(self, data: Any) -> str | None:
        return None

    def texts(self, data: Any, X: np.ndarray) -> list[str]:
        """The texts of records ``X`` (rows of ``data.X``, or records miaudit made)."""
        records = data.raw.decode(X)
        column = data.notes.get("text_column")
        if isinstance(records, pd.DataFrame):
            return [str(t) for t in records[column]]
        return [str(t) for t in records]

    def _made(self, data: Any, X: np.ndarray, texts: list[str]) -> np.ndarray:
        """Register new texts (edits of the records ``X``) and return their rows of X."""
        raw = data.raw
        records = raw.decode(X)
        if isinstance(records, pd.DataFrame):
            records = records.copy()
            records[data.notes["text_column"]] = texts
        else:
            records = np.array(texts, dtype=object)
        handles = raw.add_made(records)
        rows, _ = encode_texts(texts, handles, int(data.notes["text_tokens"]))
        return rows

    def variants(self, data: Any, X: np.ndarray, n: int) -> np.ndarray:
        texts = self.texts(data, X)
        out = [self._made(data, X, [word_variant(t, k) for t in texts]) for k in range(1, n)]
        return np.stack(out) if out else np.zeros((0, *X.shape), np.float32)

    def copies(self, data: Any, X: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        texts = self.texts(data, X)
        out = [self._made(data, X, [dropped_words(t, rng) for t in texts]) for _ in range(n)]
        return np.stack(out) if out else np.zeros((0, *X.shape), np.float32)

    def representation(self, data: Any, X: np.ndarray) -> np.ndarray:
        """A bag of words: token counts in :data:`REPRESENTATION_WIDTH` buckets, log-scaled
        and of unit length."""
        ids = np.asarray(X)[:, 1:].astype(np.int64)
        n = len(ids)
        rows = np.repeat(np.arange(n), ids.shape[1])
        cols = ids.ravel() % REPRESENTATION_WIDTH
        used = ids.ravel() > 0
        counts = np.zeros((n, REPRESENTATION_WIDTH), dtype=np.float64)
        np.add.at(counts, (rows[used], cols[used]), 1.0)
        counts = np.log1p(counts)
        norm = np.linalg.norm(counts, axis=1, keepdims=True)
        return (counts / np.where(norm > 0, norm, 1.0)).astype(np.float32)

    def show(self, data: Any, index: np.ndarray) -> list[dict[str, Any]]:
        records = data.raw.features
        column = data.notes.get("text_column")
        out = []
        for i in np.asarray(index, dtype=np.int64):
            if isinstance(records, pd.DataFrame):
                row = records.iloc[int(i)]
                values = {str(c): row[c] for c in records.columns if c != column}
                out.append({"text": str(row[column]), "values": values})
            else:
                out.append({"text": str(records[int(i)])})
        return out


#: miaudit's own text recipes (:mod:`miaudit.models.recipe`).
TEXT_MODELS: tuple[str, ...] = ("tfidf-lr", "boe")


def text_dataset(
    texts: Any,
    labels: Any,
    *,
    name: str,
    source: str,
    what: str,
    text_column: str | None = None,
    drop_duplicates: bool = True,
    ids: Any = None,
    notes: dict[str, Any] | None = None,
) -> Dataset:
    """A text :class:`Dataset`: ``texts`` a sequence of strings, or a DataFrame of feature
    columns one of which, ``text_column``, holds the texts.

    Raises
    ------
    DataError
        A text that is missing, empty, bytes, a number or too long (naming the row),
        labels that do not fit, too few records.
    """
    labels = labels if isinstance(labels, pd.Series) else pd.Series(np.asarray(labels))
    if isinstance(texts, pd.DataFrame):
        if text_column not in texts.columns:
            raise DataError(
                f"{what}: no text column {text_column!r}; columns are: "
                f"{columns_text(texts.columns)}"
            )
        frame = texts.reset_index(drop=True).copy()
        frame[text_column] = check_texts(
            frame[text_column], f"{what} (text column {text_column!r})"
        )
        features: pd.DataFrame | np.ndarray = frame
        feature_names = [str(c) for c in frame.columns]
    else:
        if isinstance(texts, str):
            raise DataError(f"{what}: one string is not a data set; pass a list of texts")
        features = check_texts(texts, f"{what} (texts)")
        feature_names = [text_column or "text"]
        text_column = None
    if len(labels) != len(features):
        raise DataError(
            f"{what}: {len(features)} texts but {len(labels)} labels; supply one label per text"
        )
    return hold(
        features, labels.reset_index(drop=True), kind="text", name=name, source=source,
        what=what, feature_names=feature_names, drop_duplicates=drop_duplicates, ids=ids,
        notes=dict(notes or {}), rows=functools.partial(_text_rows, text_column),
    )  # fmt: skip


def _text_rows(column: str | None, kept: Any, handles: np.ndarray):
    """A text data set's ``X`` (handle, then token ids) and what to note of it."""
    texts = kept[column] if isinstance(kept, pd.DataFrame) else kept
    length = token_length(texts)
    X, cut = encode_texts(texts, handles, length)
    notes = {"text_tokens": length, "texts_truncated": int(cut)}
    if column is not None:
        notes["text_column"] = column
    return X, notes
