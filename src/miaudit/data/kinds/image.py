"""Images: ``(c, h, w)`` pixels in ``[0, 1]``.

Position in the pipeline: ``config -> data -> splits -> ...``. Images are their own
encoding; miaudit's attacks flip and shift them (LiRA's queries) and add noise (the
robustness attack), and the page shows each as a small PNG.

Builder: :func:`image_dataset` (``float32`` ``(n, c, h, w)`` in ``[0, 1]``, the scale
of white never guessed, identical images with one label dropped).
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from miaudit.data.build import check_ids, check_size, encode_labels
from miaudit.data.dataset import Dataset
from miaudit.data.kinds.base import RecordKind
from miaudit.data.kinds.text import TEXT_MODELS
from miaudit.errors import DataError, key

__all__ = ["ImageKind", "image_dataset", "png_data_uri"]


class ImageKind(RecordKind):
    name = "image"
    records = "images"

    def cannot_train(self, data: Any, model: str) -> str | None:
        if model in TEXT_MODELS:
            return f"{model!r} is a text recipe and the data are images: use mlp or cnn"
        return None

    def default_model(self, data: Any) -> str:
        return "cnn"

    def show(self, data: Any, index: np.ndarray) -> list[dict[str, Any]]:
        return [{"image": png_data_uri(data.X[i])} for i in np.asarray(index, dtype=np.int64)]


def png_data_uri(image: np.ndarray) -> str:
    """An image record (``(c, h, w)`` in ``[0, 1]``, one or three channels) as a PNG
    ``data:`` URI: a few hundred bytes the page shows without any file beside it."""
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    pixels = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    c, h, w = pixels.shape
    if c not in (1, 3):
        pixels, c = pixels[:1], 1
    colour = 0 if c == 1 else 2  # greyscale or truecolour, 8 bits per channel
    rows = np.ascontiguousarray(pixels.transpose(1, 2, 0)).reshape(h, w * c)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter 0 on every line

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )  # fmt: skip

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _first_occurrences(rows: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask keeping the first of each group of identical (row, label) records."""
    n = len(rows)
    raw = np.concatenate(
        [
            np.ascontiguousarray(rows.reshape(n, -1)).view(np.uint8).reshape(n, -1),
            np.ascontiguousarray(y.astype("<i8")).view(np.uint8).reshape(n, -1),
        ],
        axis=1,
    )
    keyed = np.ascontiguousarray(raw).view(np.dtype((np.void, raw.shape[1]))).ravel()
    _, first = np.unique(keyed, return_index=True)
    keep = np.zeros(n, dtype=bool)
    keep[first] = True
    return keep


def image_dataset(
    images: np.ndarray,
    labels: np.ndarray | pd.Series,
    *,
    name: str,
    source: str,
    what: str,
    class_names: Sequence[str] | None = None,
    drop_duplicates: bool = True,
    notes: dict[str, Any] | None = None,
    pixel_scale: float | None = None,
    ids: Any = None,
) -> Dataset:
    """Make an image :class:`Dataset`: ``float32`` ``(n, c, h, w)`` in ``[0, 1]``.

    Parameters
    ----------
    images:
        ``(n, h, w)`` (one channel) or ``(n, c, h, w)``, any real dtype, values
        ``>= 0``. ``uint8`` images with values above 1 are divided by 255; other
        images must already lie in ``[0, 1]`` unless ``pixel_scale`` says what value
        is white.
    pixel_scale:
        Divide the pixels by this (the value of white, e.g. 255 or 65535); the
        result must lie in ``[0, 1]``.
    ids:
        The records' identifiers, one per image (:attr:`Dataset.ids`).
    labels:
        One label per image; with ``class_names`` they must already be codes
        ``0 .. len(class_names) - 1``, otherwise they are mapped like table labels.
    name, source, what, drop_duplicates, notes:
        As for :func:`table_dataset`.

    Raises
    ------
    DataError
        Wrong shape, lengths that differ, non-finite or negative pixels, values above
        1 in an array that is not ``uint8`` without ``pixel_scale``, missing labels, a
        single class, or too few records.
    """
    X = np.asarray(images)
    if pixel_scale is not None and not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise DataError(f"{what}: pixel scale {pixel_scale!r} must be a positive number")
    given_dtype = str(X.dtype)
    if X.ndim == 3:
        X = X[:, None]
    if X.ndim != 4:
        raise DataError(
            f"{what}: images must be (n, h, w) or (n, c, h, w), got shape {X.shape}; reshape X"
        )
    if X.shape[1] > 4 and X.shape[3] <= 4:
        raise DataError(
            f"{what}: images of shape {X.shape} look channels-last; save them as (n, c, h, w), "
            "e.g. np.transpose(X, (0, 3, 1, 2))"
        )
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise DataError(f"{what}: images must be numbers, got dtype {X.dtype}")
    labels = np.asarray(labels)
    if len(labels) != len(X):
        raise DataError(
            f"{what}: {len(X)} images but {len(labels)} labels; supply one label per image"
        )
    if class_names is None:
        y, names = encode_labels(labels, what=f"{what} (labels)")
    else:
        y, names = labels.astype(np.int64), list(class_names)
        if len(y) and (y.min() < 0 or y.max() >= len(names)):
            raise DataError(f"{what}: label codes outside 0..{len(names) - 1}; the file is corrupt")

    if ids is not None:
        ids = check_ids(ids, len(X), what)
    notes = {**(notes or {}), "rows_read": len(X)}
    keep = _first_occurrences(X, y) if drop_duplicates else np.ones(len(X), dtype=bool)
    dropped = int(len(X) - keep.sum())
    notes["duplicates_dropped"] = dropped
    row = np.flatnonzero(keep).astype(np.int64)
    if dropped:
        X, y = X[keep], y[keep]
    check_size(len(X), what, dropped)

    X = X.astype(np.float32)
    if not np.isfinite(X).all():
        raise DataError(f"{what}: images contain NaN or infinite values; fix or drop them")
    low, high = float(X.min()), float(X.max())
    if low < 0:
        raise DataError(
            f"{what}: images have negative values (min {low:g}); save raw pixel values "
            "(0-255 or 0-1), not normalised ones"
        )
    if pixel_scale is not None:
        scale = float(pixel_scale)
    else:
        scale = 255.0 if given_dtype == "uint8" and high > 1 else 1.0
    if high / scale > 1:
        # Guessing a scale would silently change what every model sees.
        fix = (
            f"pixel scale {scale:g} leaves values above 1; pass the value of white"
            if pixel_scale is not None
            else f"pass {key('pixel_scale')} with the value of white, e.g. 255, or "
            "save the images as uint8"
        )
        raise DataError(f"{what}: {given_dtype} images with values up to {high:g}; {fix}")
    if scale != 1.0:
        X /= np.float32(scale)
    if pixel_scale is not None:
        notes["pixel_scale"] = scale
    return Dataset(
        name=name,
        X=X,
        y=y,
        class_names=[str(c) for c in names],
        feature_names=[],
        kind="image",
        source=source,
        encoder=None,
        notes=notes,
        row=row,
        ids=None if ids is None else ids[row],
    )
