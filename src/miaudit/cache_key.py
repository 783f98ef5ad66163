"""The secret key that authenticates every entry of miaudit's on-disk caches.

Position: beside :mod:`miaudit.errors` and :mod:`miaudit.files`, below every stage. The
job cache (:mod:`miaudit.jobs`), the query cache (:mod:`miaudit.remote`) and the data
cache (:mod:`miaudit.data.cache`) sign what they write with :class:`EntryMac` and use an
entry only when its MAC verifies.

Why a key: a checksum stored beside the data catches accidents (a full disk, a killed
process), not a person who can write the cache folder, who edits an entry and
recomputes its checksum. An HMAC-SHA256 under a key kept outside every cache folder, that
only its owner can read, can be made only by someone who can read the key: an entry
written by anyone else fails and is recomputed, never used. A MAC covers the entry's
cache and name (its content-addressed key) as well as its bytes, so a genuine entry
moved to another name fails too.

The key: 32 random bytes in ``$MIAUDIT_CACHE_KEY`` (a file's path), else
``$XDG_CONFIG_HOME/miaudit/cache.key``, else ``~/.config/miaudit/cache.key``. It is
created on first use, exclusively (``O_CREAT | O_EXCL``), ``0600`` in a folder created
``0700``; two processes racing to create it both end up with the one that won. As
OpenSSH refuses a loose private key, a key file that group or others may read or write,
that is not a regular file (a symbolic link included) or that is not the user's own is
refused with one line naming the fix.

The key is read by the process that writes or verifies an entry. With Dask that is the
client: workers only train and send their outputs back (:func:`miaudit.jobs.run_jobs`
writes them), so the key never travels to a worker.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import os
import secrets
import stat
import time
from pathlib import Path

from miaudit.errors import ConfigError
from miaudit.files import NPY_MEMORY_SHARE, PRIVATE_FILE, private_dir
from miaudit.resources import device_memory

#: Environment variable naming the key file.
KEY_ENV = "MIAUDIT_CACHE_KEY"
#: Bytes of a key.
KEY_BYTES = 32
# Names what is signed, so that a MAC of miaudit's caches is never one of anything else.
_DOMAIN = b"miaudit cache entry v1"
# How long a process that lost the race to create the key waits for the winner's bytes.
_RACE_SECONDS = 2.0


class CacheKeyError(ConfigError):
    """The cache key cannot be created, or its file is refused."""


def key_path() -> Path:
    """``$MIAUDIT_CACHE_KEY``, else ``$XDG_CONFIG_HOME/miaudit/cache.key``, else
    ``~/.config/miaudit/cache.key``."""
    explicit = os.environ.get(KEY_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base).expanduser() / "miaudit" / "cache.key"


def load_key(path: Path | None = None) -> bytes:
    """The cache key in ``path`` (default :func:`key_path`), created there on first use.

    Raises
    ------
    CacheKeyError
        The file is refused (loose mode, another owner, not a regular file, not a key),
        or it cannot be created; the message names the file and the fix.
    """
    path = key_path() if path is None else Path(path)
    deadline = time.monotonic() + _RACE_SECONDS
    tried = False
    while True:
        key = _read_key(path)
        if key is None and not tried:
            _create_key(path)  # or another process did first
            tried = True
            continue
        if key is not None and len(key) == KEY_BYTES:
            return key
        if time.monotonic() > deadline:
            size = 0 if key is None else len(key)
            raise CacheKeyError(
                f"{path} holds {size} bytes, not a {KEY_BYTES}-byte cache key: delete it (a "
                "new key is made; every cache entry is then recomputed once), or point "
                f"{KEY_ENV} at your key file"
            )
        time.sleep(0.01)  # another process created the file and is writing its bytes


def _read_key(path: Path) -> bytes | None:
    """The bytes of the key file (``None`` when there is none), refused unless private."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return None  # made next (where a folder on the way is a file, that says so)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CacheKeyError(
                f"{path} is a symbolic link; a cache key must be a file of its own: copy the "
                f"key there, or point {KEY_ENV} at the file itself"
            ) from None
        raise CacheKeyError(
            f"cannot read the cache key {path} ({exc.strerror or exc}): point {KEY_ENV} at a "
            "key file of your own"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CacheKeyError(
                f"{path} is not a regular file: point {KEY_ENV} at a cache key file"
            )
        if info.st_uid != os.geteuid():
            raise CacheKeyError(
                f"{path} belongs to user id {info.st_uid}, not to you: a cache key must be "
                f"your own; copy it and `chmod 600` the copy, or point {KEY_ENV} elsewhere"
            )
        if info.st_mode & 0o077:
            raise CacheKeyError(
                f"{path} has mode {stat.S_IMODE(info.st_mode):04o}: a cache key readable or "
                f"writable by others lets them forge cache entries; run `chmod 600 {path}`"
            )
        return os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)


def _create_key(path: Path) -> None:
    """Write a new key at ``path`` unless a file is there already."""
    try:
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    except FileExistsError:
        return  # another process won the race: its key is read
    except OSError as exc:
        raise CacheKeyError(
            f"cannot create the cache key {path} ({exc.strerror or exc}): set {KEY_ENV} to "
            "a file in a folder you can write (it is created there), or run without caches"
        ) from None
    try:
        os.fchmod(fd, PRIVATE_FILE)  # whatever the umask
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise CacheKeyError(
            f"cannot write the cache key {path} ({exc.strerror or exc}): set {KEY_ENV} to "
            "a file in a folder you can write"
        ) from None
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to the new file ``path`` (:data:`PRIVATE_FILE`, created exclusively:
    nothing planted at the name is followed or overwritten)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def read_regular(path: Path) -> bytearray:
    """The bytes of the regular file ``path``, read once (verify these bytes, then parse
    these bytes: the file may change in between). A symbolic link, a pipe or a device
    planted at the name, or a file larger than :data:`~miaudit.files.NPY_MEMORY_SHARE` of
    this machine's memory, is an ``OSError``, never followed, waited on or read."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        size = info.st_size
        memory = device_memory("cpu")
        if size > NPY_MEMORY_SHARE * memory:
            raise OSError(errno.EFBIG, "larger than any cache entry this machine holds", str(path))
        data = bytearray(size)
        view, done = memoryview(data), 0
        while done < size:
            n = os.readv(fd, [view[done:]])
            if n == 0:
                raise OSError(errno.EIO, "the file shrank while it was read", str(path))
            done += n
        return data
    finally:
        os.close(fd)


class EntryMac:
    """The HMAC-SHA256 of one cache entry: its cache (``kind``), its ``name``, then its
    parts, each followed by its length, so no two different entries read the same.

    ``update`` adds bytes to the part being written (it may come in pieces, as a file is
    written); ``end_part`` closes it. ``add`` is a whole part at once.
    """

    def __init__(self, kind: str, name: str, key: bytes | None = None) -> None:
        self._mac = hmac.new(load_key() if key is None else key, digestmod=hashlib.sha256)
        self._part = 0
        for text in (_DOMAIN, kind.encode(), name.encode()):
            self.add(text)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._mac.update(data)
        self._part += memoryview(data).nbytes

    def end_part(self) -> None:
        self._mac.update(self._part.to_bytes(8, "big"))
        self._part = 0

    def add(self, data: bytes | bytearray | memoryview) -> EntryMac:
        self.update(data)
        self.end_part()
        return self

    def hexdigest(self) -> str:
        return self._mac.hexdigest()

    def matches(self, stored: str | bytes) -> bool:
        """Whether ``stored`` (a MAC file's text) is this entry's MAC, in constant time."""
        if isinstance(stored, str):
            stored = stored.encode("utf-8", "replace")
        # Bytes, not text: a damaged file's non-ASCII bytes compare unequal, never raise.
        return hmac.compare_digest(self.hexdigest().encode(), bytes(stored).strip())
