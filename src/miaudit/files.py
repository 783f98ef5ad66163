"""Reading the small JSON files miaudit writes, which a user may have edited or damaged,
and writing a file whole or not at all.

``model.json``, ``dataset.json`` and a results folder's ``config.json`` are read
back by later commands. Whatever they hold (invalid JSON, a list, nesting deep
enough to exhaust the parser, a 5,000-digit integer, gigabytes), reading them
ends in one line naming the file and the fix, never in a traceback.

:func:`write_text_atomic` writes a file as a database would: to a temporary file
created exclusively, under a random name, in the destination's folder (so a file or
symlink planted at a predictable name is never followed or overwritten), synced,
then renamed over the destination. A reader sees the old file or the new one, never
half of one.

:func:`load_npz` and :func:`load_npy` read NumPy files bounded: every array's shape and
dtype are read from its header first, and the file is refused (one line) when the
arrays it declares would pass half of this machine's memory, hold Python objects, or
do not fit the sizes the archive itself declares; nothing is expanded before that. A
4 MB archive that would decompress to gigabytes (a decompression bomb) is refused in
milliseconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.errors import MiauditError

#: Larger than any file of settings or metadata miaudit writes.
MAX_JSON_BYTES = 64 * 2**20


def read_json_object(path: Path, error: type[MiauditError], fix: str) -> dict[str, Any]:
    """The JSON object in ``path``; anything else raises ``error`` naming ``path`` and ``fix``."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise error(
                f"{path} is {size / 2**20:,.0f} MiB, larger than any file miaudit writes "
                f"there: {fix}"
            )
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path} cannot be read ({exc.strerror or exc}): {fix}") from None
    except RecursionError:
        raise error(f"{path} is nested too deeply to be a file miaudit wrote: {fix}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        # JSONDecodeError, and integers of more digits than Python converts.
        raise error(f"{path} is not valid JSON ({str(exc)[:200]}): {fix}") from None
    if not isinstance(data, dict):
        raise error(f"{path} holds a JSON {type(data).__name__}, not an object: {fix}")
    return data


def write_text_atomic(path: Path, text: str, error: type[MiauditError], fix: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all (see the module notes).

    Raises
    ------
    error
        The folder cannot be written, naming ``path`` and ``fix``.
    """
    path = Path(path)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise error(f"cannot write {path} ({exc.strerror or exc}): {fix}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes the file 0600; the page follows the umask, as any file written.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)
        os.replace(name, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise error(f"cannot write {path} ({exc.strerror or exc}): {fix}") from None
    return path


#: Share of this machine's memory the arrays of one NumPy file may take.
NPY_MEMORY_SHARE = 0.5


def _memory_limit() -> int:
    return int(NPY_MEMORY_SHARE * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _npy_header(fp: Any, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an ``.npy`` stream declares (its data is not read)."""
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise ValueError(f"{name}: .npy format version {version} is not one NumPy writes")
    return tuple(int(s) for s in shape), np.dtype(dtype)


def _declared_bytes(shape: tuple[int, ...], dtype: np.dtype, name: str) -> int:
    if dtype.hasobject:
        raise ValueError(f"{name} holds Python objects, which miaudit never unpickles")
    return math.prod(shape) * dtype.itemsize


def check_npy_sizes(source: Any, error: type[MiauditError], fix: str, what: str) -> None:
    """Refuse, before anything is expanded, a ``.npz`` (a path or bytes) or ``.npy`` whose
    arrays hold objects, contradict the archive's declared sizes, or would take more than
    :data:`NPY_MEMORY_SHARE` of this machine's memory."""
    limit = _memory_limit()
    total = 0
    try:
        raw = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
        if zipfile.is_zipfile(raw):
            if isinstance(raw, io.BytesIO):
                raw.seek(0)
            with zipfile.ZipFile(raw) as archive:
                for info in archive.infolist():
                    with archive.open(info) as fp:
                        shape, dtype = _npy_header(fp, info.filename)
                    need = _declared_bytes(shape, dtype, info.filename)
                    if need > info.file_size:
                        raise ValueError(
                            f"{info.filename} declares {need:,} bytes of data but the archive "
                            f"holds {info.file_size:,}"
                        )
                    total += need
        else:
            with open(raw, "rb") as fp:
                shape, dtype = _npy_header(fp, Path(raw).name)
            need = _declared_bytes(shape, dtype, Path(raw).name)
            if need > Path(raw).stat().st_size:
                raise ValueError(f"it declares {need:,} bytes of data but the file is shorter")
            total = need
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise error(f"{what}: cannot read it as NumPy arrays ({str(exc)[:200]}): {fix}") from None
    if total > limit:
        raise error(
            f"{what}: its arrays would take {total / 2**30:,.1f} GiB once expanded, more than "
            f"half of this machine's memory ({2 * limit / 2**30:,.1f} GiB): {fix}"
        )
