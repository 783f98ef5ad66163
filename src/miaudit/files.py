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

:func:`new_folder` and :func:`commit_folder` do the same for a folder of files (a run
folder, an experiment's, a comparison's): the files are written into a new temporary
folder beside the destination, synced, and the two folders are swapped in one step
(Linux's ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames, which a crash between
can leave with the old folder aside, put back by the next write). Entries of the old
folder that are not the writer's own files (kept shadow models, a file of the user's)
move into the new one first. A reader sees the old complete folder or the new complete
one. A temporary folder left by a process that was killed (its name carries the
process id) is cleaned up, its foreign entries put back, by the next write of the same
destination.

**One mode for everything miaudit writes**: files ``0600`` and folders ``0700``
(:data:`PRIVATE_FILE`, :data:`PRIVATE_DIR`), whatever the umask. A run folder, a saved
target, a cache entry and a page can each hold records or what a model learnt from
them; the user who wants to share one says so with ``chmod``.

:func:`load_npz` and :func:`load_npy` read NumPy files bounded: every array's shape and
dtype are read from its header first, and the file is refused (one line) when the
arrays it declares would pass half of this machine's memory, hold Python objects, or
do not fit the sizes the archive itself declares; nothing is expanded before that. A
4 MB archive that would decompress to gigabytes (a decompression bomb) is refused in
milliseconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.errors import MiauditError
from miaudit.resources import device_memory

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


#: The mode of every file miaudit writes (see the module notes).
PRIVATE_FILE = 0o600
#: The mode of every folder miaudit creates.
PRIVATE_DIR = 0o700
#: How an OS error that is a refused permission reads, wherever a file is read.
PERMISSION = (
    "permission denied: it belongs to another user or its mode forbids you; miaudit "
    "writes every file 0600 and folder 0700, readable by their owner only"
)


def os_reason(exc: OSError) -> str:
    """An OS error in a few words; a refused permission says what it means here."""
    if isinstance(exc, PermissionError):
        return PERMISSION
    return str(exc.strerror or exc)


def check_readable(folder: str | Path, error: type[MiauditError]) -> None:
    """Refuse, naming it, a folder (or a file in it) that this user may not read: a
    refused permission is said as one, never taken for a missing or damaged file (a
    file another user wrote, ``0600`` as miaudit writes them, reads as absent to
    ``Path.is_file``)."""
    folder = Path(folder)
    blocked = None
    if not os.path.lexists(folder):
        # A folder in one this user may not enter looks absent: say which blocks it
        # (from the root down; each one's own folder could be entered, so lexists tells).
        for parent in reversed(folder.absolute().parents):
            if os.path.lexists(parent) and not os.access(parent, os.X_OK):
                blocked = parent
                break
        if blocked is None:
            return  # really absent: the caller says so
    elif folder.is_dir():
        if not os.access(folder, os.R_OK | os.X_OK):
            blocked = folder
        else:
            with contextlib.suppress(OSError):
                for entry in folder.iterdir():
                    if not entry.is_symlink() and not os.access(entry, os.R_OK):
                        blocked = entry
                        break
    elif not os.access(folder, os.R_OK):
        blocked = folder
    if blocked is not None:
        raise error(
            f"cannot read {blocked}: {PERMISSION}; run as its owner, or have them share it "
            "(chmod) with you"
        )


def private_dir(path: str | Path) -> Path:
    """``path`` as a folder, each missing level of it created :data:`PRIVATE_DIR`
    whatever the umask; folders that exist are left as they are."""
    path = Path(path)
    missing, level = [], path
    while not level.is_dir() and level.parent != level:
        missing.append(level)
        level = level.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR)
        except FileExistsError:
            if not folder.is_dir():
                in_the_way = NotADirectoryError(errno.ENOTDIR, "a file is in the way", str(folder))
                raise in_the_way from None
            continue  # made by another process meanwhile: left as it is
        os.chmod(folder, PRIVATE_DIR)
    return path


#: The end of a temporary folder's name: ``.<destination>.<pid>.<random>.tmp``.
_TMP = ".tmp"


def _tmp_prefix(dest: Path) -> str:
    return f".{dest.name}.{os.getpid()}."


def new_folder(dest: str | Path, owned: Iterable[str] = ()) -> Path:
    """A new, empty, ``0700`` temporary folder beside ``dest``, for :func:`commit_folder`
    (created exclusively under a random name: nothing planted is followed). Temporary
    folders that killed writers left beside ``dest`` are cleaned up first
    (:func:`clean_stale`, ``owned`` as :func:`commit_folder` takes it)."""
    dest = Path(dest).absolute()
    private_dir(dest.parent)
    clean_stale(dest, owned)
    return Path(tempfile.mkdtemp(prefix=_tmp_prefix(dest), suffix=_TMP, dir=dest.parent))


def _pid(text: str) -> int | None:
    """A process id as a temporary folder's name holds it, else ``None``."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    return int(text)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OverflowError, ValueError):
        return False
    return True


def clean_stale(dest: str | Path, owned: Iterable[str] = ()) -> None:
    """Remove the temporary folders that writers of ``dest`` left beside it when they
    were killed, first putting back what of the old folder was in them: a folder set
    aside between two renames becomes ``dest`` again, and entries that are not the
    writer's own files (``owned``) return to ``dest``."""
    dest = Path(dest).absolute()
    start = f".{dest.name}."
    owned = set(owned)
    try:
        entries = list(dest.parent.iterdir())
    except OSError:
        return
    # An old folder set aside first: the others give back into it.
    entries.sort(key=lambda e: not e.name.endswith(f".old{_TMP}"))
    for entry in entries:
        parts = entry.name[len(start) :].split(".")
        if not (entry.name.startswith(start) and entry.name.endswith(_TMP) and len(parts) == 3):
            continue
        pid = _pid(parts[0])
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        if entry.is_symlink() or not entry.is_dir():
            continue
        with contextlib.suppress(OSError):
            if parts[1] == "old" and not os.path.lexists(dest):
                os.rename(entry, dest)  # the old folder, set aside by the fallback swap
                continue
            _give_back(entry, dest, owned)
            shutil.rmtree(entry)


def _give_back(tmp: Path, dest: Path, owned: set[str]) -> None:
    """Move ``tmp``'s entries that are not ``owned`` into ``dest`` (where it lacks them;
    a ``dest`` removed meanwhile is made again to hold them). Raises ``OSError`` when an
    entry cannot be moved, so that ``tmp`` is not removed with it."""
    foreign = [item for item in tmp.iterdir() if item.name not in owned]
    if not foreign:
        return
    if dest.is_symlink() or (os.path.lexists(dest) and not dest.is_dir()):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder to give entries back to", str(dest))
    private_dir(dest)
    for item in foreign:
        if not os.path.lexists(dest / item.name):
            os.rename(item, dest / item.name)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux's ``renameat2``); ``False`` where that cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _sync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _sync_dir(folder)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder
        pass
    finally:
        os.close(fd)


def commit_folder(tmp: Path, dest: str | Path, owned: Iterable[str]) -> Path:
    """Put the folder ``tmp`` (from :func:`new_folder`, filled) at ``dest`` in one step.

    ``owned`` names the files the writer makes (``results.json``, ...): an old ``dest``'s
    other entries move into the new folder first, so nothing the user or an earlier step
    put there is lost; the old folder's own files are removed once the swap is done.
    Every file the writer made gets :data:`PRIVATE_FILE`, the folder :data:`PRIVATE_DIR`.
    An ``OSError`` is the caller's to word; on any failure the old folder is as it was
    and ``tmp`` is removed.
    """
    dest = Path(dest).absolute()
    tmp = Path(tmp)
    owned = set(owned)
    with _locked(dest.parent):  # one writer of a folder moves and swaps at a time
        return _commit_locked(tmp, dest, owned)


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive ``flock`` on ``folder`` itself (no lock file is left behind)."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _commit_locked(tmp: Path, dest: Path, owned: set[str]) -> Path:
    try:
        for name in owned:
            if (tmp / name).is_file():
                os.chmod(tmp / name, PRIVATE_FILE)
        os.chmod(tmp, PRIVATE_DIR)
        _sync_tree(tmp)
        if not os.path.lexists(dest):
            os.rename(tmp, dest)
            _sync_dir(dest.parent)
            return dest
        if dest.is_symlink() or not dest.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(dest))
        for entry in list(dest.iterdir()):
            if entry.name not in owned and not os.path.lexists(tmp / entry.name):
                os.rename(entry, tmp / entry.name)
        if not _exchange(tmp, dest):
            aside = dest.with_name(f".{dest.name}.{os.getpid()}.old{_TMP}")
            os.rename(dest, aside)
            try:
                os.rename(tmp, dest)
            except BaseException:
                os.rename(aside, dest)
                raise
            tmp = aside
        _sync_dir(dest.parent)
    except BaseException:
        if tmp.is_dir():
            with contextlib.suppress(OSError):  # else left for the next write to give back
                _give_back(tmp, dest, owned)
                shutil.rmtree(tmp, ignore_errors=True)
        raise
    # The old folder's own files; anything else in it (a writer racing this one, outside
    # the lock) goes back first.
    with contextlib.suppress(OSError):
        _give_back(tmp, dest, owned)
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def write_folder(
    dest: str | Path,
    fill: Callable[[Path], Any],
    owned: Iterable[str],
    error: type[MiauditError],
    fix: str,
) -> Path:
    """Write a folder whole or not at all: ``fill(tmp)`` writes its files (``owned``
    names every file it may write) into a new temporary folder; :func:`commit_folder`
    swaps it in. A ``dest`` that is a symbolic link is written where it points (the link
    stays). A ``dest`` that cannot be swapped — the current folder or one above it, or a
    mount point (a container's volume) — gets its files replaced one by one instead, each
    atomically (:func:`write_text_atomic`'s way), with everything else in it untouched.
    An OS error raises ``error`` naming ``dest`` and ``fix``."""
    owned = list(owned)
    dest = Path(dest)
    try:
        if dest.is_symlink():
            dest = dest.resolve()
        if os.path.lexists(dest) and not dest.is_dir():
            raise error(f"{dest} is a file, not a folder: {fix}")
        in_place = _cannot_swap(dest)
        tmp = _new_inside(dest) if in_place else new_folder(dest, owned)
    except OSError as exc:
        raise error(f"cannot write into {dest.parent} ({os_reason(exc)}): {fix}") from None
    try:
        fill(tmp)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise error(f"cannot write {dest} ({os_reason(exc)}): {fix}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        if in_place:
            _replace_files(tmp, dest, owned)
        else:
            commit_folder(tmp, dest, {*owned, *os.listdir(tmp)})
    except OSError as exc:
        raise error(f"cannot write {dest} ({os_reason(exc)}): {fix}") from None
    return dest


def _cannot_swap(dest: Path) -> bool:
    """Whether ``dest`` must be written in place: a folder this process stands in (or
    above it), or a mount point, which no rename can move."""
    if not dest.is_dir():
        return False
    where = dest.resolve()
    here = Path.cwd().resolve()
    if where == here or where in here.parents:
        return True
    return os.stat(where).st_dev != os.stat(where.parent).st_dev or where == where.parent


#: The prefix of a temporary folder made inside a folder written in place.
_INSIDE = ".miaudit-"


def _new_inside(dest: Path) -> Path:
    """A temporary folder inside ``dest`` (on its file system), after removing those
    that killed writers left there (they hold only the writer's own new files)."""
    for entry in dest.iterdir():
        if entry.name.startswith(_INSIDE) and entry.name.endswith(_TMP) and entry.is_dir():
            pid = _pid(entry.name[len(_INSIDE) :].split(".")[0])
            if pid is not None and pid != os.getpid() and not _alive(pid):
                shutil.rmtree(entry, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{_INSIDE}{os.getpid()}.", suffix=_TMP, dir=dest))


def _replace_files(tmp: Path, dest: Path, owned: list[str]) -> None:
    """Move each file of ``tmp`` over its namesake in ``dest`` (each rename atomic), and
    remove the writer's own files (``owned``) that this write did not make."""
    try:
        written = sorted(os.listdir(tmp))
        for name in written:
            if (tmp / name).is_file():
                os.chmod(tmp / name, PRIVATE_FILE)
        _sync_tree(tmp)
        with _locked(dest):
            for name in written:
                os.replace(tmp / name, dest / name)
            for name in set(owned) - set(written):
                if (dest / name).is_file() and not (dest / name).is_symlink():
                    os.unlink(dest / name)
        _sync_dir(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
        os.chmod(name, PRIVATE_FILE)  # what mkstemp made, said once for every file
        os.replace(name, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise error(f"cannot write {path} ({exc.strerror or exc}): {fix}") from None
    return path


#: Share of this machine's memory the arrays of one NumPy file may take.
NPY_MEMORY_SHARE = 0.5


def _memory_limit() -> int:
    return int(NPY_MEMORY_SHARE * device_memory("cpu"))


def npy_header(fp: Any, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """The shape, Fortran order and dtype an ``.npy`` stream declares (its data is not
    read; ``fp`` is left at the data's start). ``ValueError`` for another format."""
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise ValueError(f"{name}: .npy format version {version} is not one NumPy writes")
    return tuple(int(s) for s in shape), bool(fortran), np.dtype(dtype)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, in hex (read in blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


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
                        shape, _, dtype = npy_header(fp, info.filename)
                    need = _declared_bytes(shape, dtype, info.filename)
                    if need > info.file_size:
                        raise ValueError(
                            f"{info.filename} declares {need:,} bytes of data but the archive "
                            f"holds {info.file_size:,}"
                        )
                    total += need
        else:
            with open(raw, "rb") as fp:
                shape, _, dtype = npy_header(fp, Path(raw).name)
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
