"""On-disk cache of parsed data sets, so that loading a data set the second time is fast.

Position in the pipeline: ``config -> data -> splits -> ...``; it sits between
:func:`miaudit.data.load_dataset` and the loaders. Parsing Census-Income takes
seconds on every run of an audit; reading back its arrays takes a fraction of that.

An entry is a folder ``<loader>-<identity>-<state>`` holding ``X.npy``, ``y.npy``,
``row.npy`` (and ``ids.npy`` when the records have ids), ``meta.json`` (every other
:class:`Dataset` field but the user's raw records, which are never cached) and ``mac``.
``identity`` hashes what was asked for (loader, options, source paths); ``state``
hashes the cache format, the loader's version and the SHA-256 of each source file's
bytes, so a source file whose content changed, however its times were set, or a changed
loader is a miss, and the stale entry beside it is removed. Hashing the sources costs a
few percent of parsing them (``bench/data_cache_key.py``: 0.11 s against 2.4 s for
Census-Income's 156 MB).

Entries are written to a private temporary folder renamed into place, so an
interrupted write is never read back. ``mac``, written last, is an HMAC-SHA256 under
the user's cache key (:mod:`miaudit.cache_key`) of the entry's name, ``meta.json`` and
the SHA-256 of every array file as it was written; an entry is read only when the bytes
read back give the same MAC. An entry that cannot be read, that was damaged, edited
(labels shuffled in place, same shape and dtype) or written by someone without the key
is never used: a warning says so and the data set is read again from its source. Files
are written ``0600``, folders created ``0700``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.cache_key import (
    CacheKeyError,
    EntryMac,
    key_path,
    load_key,
    read_regular,
    write_private,
)
from miaudit.data.dataset import Dataset
from miaudit.files import PRIVATE_FILE, file_sha256, npy_header, private_dir

__all__ = [
    "CACHE_ENV",
    "CACHE_MARKER",
    "cache_dir",
    "cached",
    "claim_cache",
    "entry_path",
    "read_entry",
    "write_entry",
]

#: Environment variable naming the cache folder.
CACHE_ENV = "MIAUDIT_DATA_CACHE"
#: Bump when the entry layout changes; older entries then miss and are replaced.
CACHE_FORMAT = 4
# A temporary folder this old was left by a write that died; its space is reclaimed.
_STALE_TMP_SECONDS = 24 * 3600
_ARRAYS = ("X", "y", "row", "ids")
_NOT_CACHED = ("raw",)


def user_cache_dir(subfolder: str, env: str) -> Path:
    """``$env`` if set, else ``$XDG_CACHE_HOME/miaudit/<subfolder>``, else ``~/.cache/...``.

    The one rule for every cache miaudit keeps (parsed data sets, answered queries).
    """
    explicit = os.environ.get(env)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "miaudit" / subfolder


#: File miaudit writes in a cache folder it created (or found empty): ``miaudit cache
#: clear`` empties only folders that hold it, so a variable pointing at another folder
#: can never make it delete what is not miaudit's.
CACHE_MARKER = ".miaudit-cache"


def claim_cache(root: Path, kind: str) -> None:
    """Create the cache folder ``root`` if need be, and mark it miaudit's when miaudit
    created it or found it empty (a folder with other files in it is used, never
    marked: ``cache clear`` then refuses it)."""
    root = Path(root)
    if (root / CACHE_MARKER).is_file():
        return
    existed = root.exists()
    private_dir(root)
    if not existed or not any(root.iterdir()):
        with contextlib.suppress(FileExistsError):  # another process marked it meanwhile
            write_private(root / CACHE_MARKER, f"miaudit {kind} cache\n".encode())


def cache_dir() -> Path:
    """The cache folder: ``$MIAUDIT_DATA_CACHE``, else ``$XDG_CACHE_HOME/miaudit/datasets``,
    else ``~/.cache/miaudit/datasets``."""
    return user_cache_dir("datasets", CACHE_ENV)


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60] or "data"


def entry_path(
    loader: str,
    version: int,
    options: Mapping[str, Any],
    sources: Sequence[Path],
) -> Path:
    """The entry folder for a load request in the current :func:`cache_dir`.

    Parameters
    ----------
    loader:
        The loader's name (``"census-occupation"``, ``"file"``).
    version:
        The loader's output format version.
    options:
        Everything else that changes the result (label, categorical columns, …);
        JSON-serialisable.
    sources:
        The files the loader reads; the SHA-256 of their bytes is part of the key, so an
        edit is a miss whatever it does to the files' sizes and times.

    Raises
    ------
    OSError
        If a source file cannot be read.
    """
    paths = [str(Path(p).resolve()) for p in sources]
    identity = _digest({"loader": loader, "options": dict(options), "paths": paths})
    contents = [file_sha256(Path(p)) for p in paths]
    state = _digest({"format": CACHE_FORMAT, "version": version, "files": contents})
    return cache_dir() / f"{_slug(loader)}-{identity}-{state}"


def read_entry(entry: Path) -> Dataset | None:
    """The data set stored in ``entry``, or ``None`` if it is absent, incomplete, or fails
    its MAC (then a ``RuntimeWarning`` says so: the entry is never used).

    Raises
    ------
    miaudit.cache_key.CacheKeyError
        The cache key cannot be read or created.
    """
    if not (entry / "mac").is_file():
        return None  # absent, still being written, or of an older format
    key = load_key()
    try:
        dataset = _read_verified(entry, key)
    except (OSError, ValueError, KeyError, TypeError, EOFError, RecursionError):
        dataset = None
    if dataset is None:
        warnings.warn(
            f"the data cache entry {entry} failed authentication (damaged, edited, or not "
            f"written with your cache key {key_path()}): it is not used, and the data set is "
            "read again from its source",
            RuntimeWarning,
            stacklevel=2,
        )
    return dataset


def _read_verified(entry: Path, key: bytes) -> Dataset | None:
    """``entry``'s data set when its MAC verifies, else ``None``. Every file is read once
    and the arrays are made from the very bytes verified, so nothing written after the
    check is used."""
    stored = read_regular(entry / "mac")
    meta_bytes = read_regular(entry / "meta.json")
    mac = EntryMac("datasets", entry.name, key).add(meta_bytes)
    raw = {}
    for name in _ARRAYS:
        if os.path.lexists(entry / f"{name}.npy"):
            raw[name] = read_regular(entry / f"{name}.npy")
            mac.add(name.encode()).add(hashlib.sha256(raw[name]).digest())
    if not mac.matches(stored):
        return None
    meta = json.loads(meta_bytes)
    if meta.get("format") != CACHE_FORMAT or set(raw) != {"X", "y", "row", *(
        ["ids"] if meta.get("ids") else []
    )}:  # fmt: skip
        return None
    X, y, row = (_npy_from_bytes(raw[n]) for n in ("X", "y", "row"))
    if list(X.shape) != meta["x_shape"] or y.shape != (X.shape[0],):
        return None
    if X.dtype != np.float32 or y.dtype != np.int64:
        return None
    if row.shape != y.shape or row.dtype != np.int64:
        return None
    ids = _npy_from_bytes(raw["ids"]) if meta.get("ids") else None
    if ids is not None and ids.shape != y.shape:
        return None
    return Dataset(X=X, y=y, row=row, ids=ids, **meta["fields"])


def _npy_from_bytes(data: bytearray) -> np.ndarray:
    """The array of an ``.npy`` file's bytes, as a writable view of them (no copy)."""
    head = io.BytesIO(bytes(memoryview(data)[: 1 << 16]))
    shape, fortran, dtype = npy_header(head, "a data cache array")
    if dtype.hasobject:
        raise ValueError("an array of Python objects")
    flat = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=head.tell())
    return flat.reshape(shape, order="F" if fortran else "C")


class _Hashing:
    """A file that hashes what is written to it (``np.save`` writes through ``write``)."""

    def __init__(self, out) -> None:
        self.out, self.sha = out, hashlib.sha256()

    def write(self, data) -> int:
        self.sha.update(data)
        return self.out.write(data)


def _save_array(path: Path, array: np.ndarray) -> str:
    """Write ``array`` as ``.npy`` (a new file, :data:`~miaudit.files.PRIVATE_FILE`) and
    return the SHA-256 of the bytes written (not read back: what this process wrote is
    what it signs)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fd, PRIVATE_FILE)
        out = _Hashing(fh)
        np.save(out, np.ascontiguousarray(array), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    return out.sha.hexdigest()


def write_entry(entry: Path, dataset: Dataset) -> None:
    """Store ``dataset`` in ``entry`` atomically and remove stale siblings.

    Raises
    ------
    OSError
        If the cache folder is not writable.
    TypeError
        If a :class:`Dataset` field other than the arrays is not JSON-serialisable.
    """
    root = entry.parent
    claim_cache(root, "datasets")
    meta = {
        "format": CACHE_FORMAT,
        "x_shape": list(dataset.X.shape),
        "ids": dataset.ids is not None,
        "fields": {
            f.name: getattr(dataset, f.name)
            for f in fields(dataset)
            if f.name not in _ARRAYS + _NOT_CACHED
        },
    }
    text = json.dumps(meta)  # fails early on a field JSON cannot hold
    mac = EntryMac("datasets", entry.name, load_key()).add(text.encode())
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name}-", dir=root))
    try:
        arrays = {"X": dataset.X, "y": dataset.y, "row": dataset.rows}
        if dataset.ids is not None:
            arrays["ids"] = dataset.ids
        for name, array in arrays.items():
            digest = _save_array(tmp / f"{name}.npy", array)
            mac.add(name.encode()).add(bytes.fromhex(digest))
        write_private(tmp / "meta.json", text.encode())
        # The MAC last: a folder with one holds complete arrays.
        write_private(tmp / "mac", (mac.hexdigest() + "\n").encode())
        if entry.exists():  # an unreadable entry we are replacing
            shutil.rmtree(entry, ignore_errors=True)
        try:
            os.replace(tmp, entry)
        except OSError:
            # Another process renamed its identical copy into place first.
            if not entry.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _prune(entry)


def _prune(entry: Path) -> None:
    """Remove entries for the same request made from older source files, and dead temporaries."""
    prefix = entry.name.rsplit("-", 1)[0] + "-"
    now = time.time()
    for other in entry.parent.iterdir():
        if other.name.startswith(prefix) and other != entry:
            shutil.rmtree(other, ignore_errors=True)
        elif other.name.startswith(".tmp-"):
            try:
                if now - other.stat().st_mtime > _STALE_TMP_SECONDS:
                    shutil.rmtree(other, ignore_errors=True)
            except OSError:
                pass


def cached(
    loader: str,
    version: int,
    options: Mapping[str, Any],
    sources: Sequence[Path],
    build: Callable[[], Dataset],
    *,
    use_cache: bool = True,
) -> Dataset:
    """Return the cached data set for this request, or ``build()`` it and cache it.

    A cache that cannot be written (read-only home, full disk), or a cache key that
    cannot be made there, costs speed, not the audit: the data set is returned with a
    warning. A key file that is refused (another's, or readable by others) stops, as in
    every cache: it would let others forge entries.
    """
    if not use_cache:
        return build()
    entry = entry_path(loader, version, options, sources)
    try:
        dataset = read_entry(entry)
    except CacheKeyError as exc:
        if os.path.lexists(key_path()):
            raise
        warnings.warn(f"the data cache is not used: {exc}", RuntimeWarning, stacklevel=2)
        return build()
    if dataset is not None:
        return dataset
    dataset = build()
    try:
        write_entry(entry, dataset)
    except CacheKeyError as exc:
        if os.path.lexists(key_path()):
            raise
        warnings.warn(f"the data cache is not used: {exc}", RuntimeWarning, stacklevel=2)
    except (OSError, TypeError) as exc:
        warnings.warn(
            f"could not write the data cache in {entry.parent} ({exc}); set {CACHE_ENV} "
            "to a writable folder to make later loads fast",
            RuntimeWarning,
            stacklevel=2,
        )
    return dataset
