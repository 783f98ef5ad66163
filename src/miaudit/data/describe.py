"""Records as people read them, for the report's "whose privacy is at stake".

Position in the pipeline: ``data -> ... -> report``. The pipeline calls
:func:`describe_records` on the few records an audit finds most exposed, and
``results.json`` keeps what it returns, so the page (and ``miaudit report`` later)
shows the user's own values: the categories and numbers of their file or DataFrame
rather than the one-hot encoding, or a thumbnail of an image.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from typing import Any

import numpy as np
import pandas as pd

from miaudit.data.dataset import Dataset
from miaudit.data.encode import TabularEncoder


def describe_records(data: Dataset, index: np.ndarray) -> list[dict[str, Any]]:
    """For each record ``index`` of ``data``: ``{"values": {column: value}}`` for a
    table (the user's own values when they handed them over, else decoded from the
    encoding to the precision it keeps), ``{"image": "data:image/png;base64,…"}`` for
    an image."""
    index = np.asarray(index, dtype=np.int64)
    if data.kind == "image":
        return [{"image": png_data_uri(data.X[i])} for i in index]
    raw = data.raw
    if raw is not None and isinstance(getattr(raw, "features", None), pd.DataFrame):
        frame = raw.features.iloc[index]
    elif data.encoder is not None:
        frame = TabularEncoder.from_dict(data.encoder).readable(
            data.X[index].reshape(len(index), -1)
        )
    else:
        names = data.encoded_feature_names or [f"x{j}" for j in range(data.n_features)]
        frame = pd.DataFrame(data.X[index].reshape(len(index), -1), columns=names)
    return [{"values": {str(c): _plain(v) for c, v in row.items()}} for _, row in frame.iterrows()]


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
