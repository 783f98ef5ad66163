"""Images: ``(c, h, w)`` pixels in ``[0, 1]``.

Position in the pipeline: ``config -> data -> splits -> ...``. Images are their own
encoding; miaudit's attacks flip and shift them (LiRA's queries) and add noise (the
robustness attack), and the page shows each as a small PNG.
"""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import numpy as np

from miaudit.data.kinds.base import RecordKind
from miaudit.data.kinds.text import TEXT_MODELS

__all__ = ["ImageKind", "png_data_uri"]


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
