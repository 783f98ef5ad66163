"""On-disk cache of parsed data sets, so that loading a data set the second time is fast.

Position in the pipeline: ``config -> data -> splits -> ...``; it sits between
:func:`miaudit.data.load_dataset` and the loaders. Parsing Census-Income takes
seconds on every run of an audit; reading back its arrays takes a fraction of that.

An entry is a folder ``<loader>-<identity>-<state>`` holding ``X.npy``, ``y.npy``,
``row.npy`` (and ``ids.npy`` when the records have ids) and ``meta.json`` (every
other :class:`Dataset` field but the user's raw records, which are never cached).
``identity`` hashes what was asked for (loader, options, source paths); ``state``
hashes the cache format, the loader's version and the source files' sizes and
modification times, so a changed source file or loader is a miss, and the stale
entry beside it is removed.

Entries are written to a temporary folder renamed into place, so an interrupted
write is never read back. ``meta.json``, written last, holds the SHA-256 of every
array file, and an entry is used only when each file matches it: an entry that
cannot be read, or whose arrays were changed behind our back (labels shuffled in
place, same shape and dtype), is ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
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

from miaudit.data.dataset import Dataset

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
CACHE_FORMAT = 3
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
    root.mkdir(parents=True, exist_ok=True)
    if not existed or not any(root.iterdir()):
        (root / CACHE_MARKER).write_text(f"miaudit {kind} cache\n", encoding="utf-8")


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
        The files the loader reads; their sizes, modification and change times and
        inode numbers are part of the key. An edit that keeps a file's size and sets
        its modification time back still moves its change time (``st_ctime``), which
        no user can set (only the system clock can): the entry is rebuilt.

    Raises
    ------
    OSError
        If a source file cannot be examined.
    """
    paths = [str(Path(p).resolve()) for p in sources]
    identity = _digest({"loader": loader, "options": dict(options), "paths": paths})
    stats = [
        (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        for st in (os.stat(p) for p in paths)
    ]
    state = _digest({"format": CACHE_FORMAT, "version": version, "files": stats})
    return cache_dir() / f"{_slug(loader)}-{identity}-{state}"


def read_entry(entry: Path) -> Dataset | None:
    """The data set stored in ``entry``, or ``None`` if it is absent or unreadable."""
    if not entry.is_dir():
        return None
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT:
            return None
        digests = meta["sha256"]
        files = ["X", "y", "row", *(["ids"] if meta.get("ids") else [])]
        for name in files:
            if _file_sha256(entry / f"{name}.npy") != digests[name]:
                return None  # changed behind our back: rebuild
        X = np.load(entry / "X.npy", allow_pickle=False)
        y = np.load(entry / "y.npy", allow_pickle=False)
        if list(X.shape) != meta["x_shape"] or y.shape != (X.shape[0],):
            return None
        if X.dtype != np.float32 or y.dtype != np.int64:
            return None
        row = np.load(entry / "row.npy", allow_pickle=False)
        if row.shape != y.shape or row.dtype != np.int64:
            return None
        ids = np.load(entry / "ids.npy", allow_pickle=False) if meta.get("ids") else None
        if ids is not None and ids.shape != y.shape:
            return None
        return Dataset(X=X, y=y, row=row, ids=ids, **meta["fields"])
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        # Truncated arrays, bad JSON (a ValueError) or fields the Dataset no longer
        # has: all mean "rebuild", never "fail".
        return None


def _save_array(path: Path, array: np.ndarray) -> str:
    """Write ``array`` as ``.npy`` and return the file's SHA-256."""
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    return _file_sha256(path)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


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
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name}-", dir=root))
    try:
        arrays = {"X": dataset.X, "y": dataset.y, "row": dataset.rows}
        if dataset.ids is not None:
            arrays["ids"] = dataset.ids
        meta["sha256"] = {name: _save_array(tmp / f"{name}.npy", a) for name, a in arrays.items()}
        text = json.dumps(meta)
        # meta.json last: a folder with meta.json holds complete arrays, and their digests.
        (tmp / "meta.json").write_text(text, encoding="utf-8")
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

    A cache that cannot be written (read-only home, full disk) costs speed, not
    the audit: the data set is returned with a warning.
    """
    if not use_cache:
        return build()
    entry = entry_path(loader, version, options, sources)
    dataset = read_entry(entry)
    if dataset is not None:
        return dataset
    dataset = build()
    try:
        write_entry(entry, dataset)
    except (OSError, TypeError) as exc:
        warnings.warn(
            f"could not write the data cache in {entry.parent} ({exc}); set {CACHE_ENV} "
            "to a writable folder to make later loads fast",
            RuntimeWarning,
            stacklevel=2,
        )
    return dataset
