"""Shadow training as jobs: batched, cached, resumable, and runnable on a Dask cluster.

Position in the pipeline: ``shadows (source -> train) -> signals``. A
:class:`ShadowJob` is a pure description — the records a model trains on, its
seed, the records whose outputs are wanted — and its result is only those
outputs. :func:`run_jobs` takes the jobs of one model family
(:class:`~miaudit.models.family.ModelFamily`: a built-in recipe or the user's own
training code) and:

* groups them, in order, into chunks of near-equal size, the unit of caching,
  resuming and parallel work (:func:`stack_limit`: at most :data:`CHUNK` models
  on a CPU, as many as half a GPU's memory holds on one); a built-in
  network's chunk trains as one stacked network (the chunks are fixed by the job
  list alone, so a job's numbers never depend on what happened to be cached or on
  how many workers ran);
* skips every chunk whose jobs are all in the :class:`JobCache`, and writes each
  trained chunk's outputs there as soon as it finishes (under a temporary name,
  then renamed, with a MAC under the user's cache key verified on every read), so an
  interrupted audit resumes where it stopped and gives the same bytes as an
  uninterrupted one;
* drops each chunk's models once their outputs are taken (unless
  ``keep_models`` saves them), so memory holds one chunk of models per worker at
  a time, whatever the number of shadows;
* runs chunks locally (``executor="local"``): on a GPU one stack at a time (one
  large stack keeps it busy; stacks on threads would contend for it); on a CPU,
  stacked PyTorch chunks on ``workers`` threads of this process, each running
  its chunk's operations on its own core (torch's intra-op pool set to one
  thread; the operations release the GIL), so the records are shared and nothing
  starts up; the models of other
  families (scikit-learn, the user's code) one per process on ``workers``
  processes. Or on a ``dask.distributed`` cluster (``executor="dask"``, an
  existing scheduler or a ``LocalCluster``), streaming results into the cache as
  they finish; Dask reschedules the chunk of a worker that dies. The user's code
  travels to the workers by value (cloudpickle), so it need not be installed there.

The cache key hashes everything that determines a job's outputs: the data's
content, the family's identity (a recipe and all its hyper-parameters, or the
user's code and settings: :func:`miaudit.models.identity.code_identity`), the
training and query index sets, the seed, the other jobs of its chunk when they
train stacked (stacked training shares the arithmetic), the extra records'
content, the device, and the versions of the libraries that change numerics.
Change any of them and the job runs again. A family whose identity cannot be
derived honestly is not cached at all.

Every entry is authenticated by an HMAC-SHA256 (:mod:`miaudit.cache_key`) of its key
and its bytes, under a key kept outside the cache folder: an entry that was damaged,
edited, moved to another key's name, or written by anyone without the key fails, is
never used, and is computed again (the run says how many). Entries are written and
verified in this process only, the Dask client included (workers send their outputs
back), so only this machine's key file is ever read.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import itertools
import json
import os
import shutil
import sys
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import miaudit.resources as resources
from miaudit.cache_key import (
    EntryMac,
    key_path,
    load_key,
    read_regular,
    write_private,
)
from miaudit.data.cache import claim_cache, user_cache_dir
from miaudit.data.kinds.base import content_digest
from miaudit.errors import ConfigError, DataError, MiauditError, ModelError, key
from miaudit.files import check_npy_sizes, private_dir
from miaudit.models.family import ModelFamily, as_family, take
from miaudit.models.recipe import Recipe
from miaudit.models.torch_batched import (
    ARITHMETIC,
    GPU_MAX_STACK,
    GPU_MEMORY_SHARE,
    GPU_OVERHEAD,
    stack_size,
    torch_threads,
)
from miaudit.version import __version__

#: Environment variable naming the job cache folder.
JOB_CACHE_ENV = "MIAUDIT_JOB_CACHE"
#: Most models per chunk: one stacked network, one unit of caching, resuming and
#: parallel work. Stacking pays from K = 4 on and the time per model-epoch is flat
#: from there to 16 (``bench/batched_training.py``), so chunks of 8 give a
#: 16-shadow audit two chunks for two cores at no cost per model. Smaller when a
#: stack of 8 would not fit in :data:`MEMORY_SHARE` of the machine's memory
#: (:func:`~miaudit.models.torch_batched.training_bytes`).
CHUNK = 8
#: Share of the machine's memory (of the GPU's, on one) one stack may take. It
#: depends on the machine only, not on ``workers``, so a job list always gets the
#: same chunks there; ``workers`` stacks train at once on the CPU.
MEMORY_SHARE = 0.2
_FORMAT = 1


@dataclass(frozen=True)
class ShadowJob:
    """Train one model on ``train`` with ``seed``; return its outputs on ``query``.

    ``name`` ("shadow 3") names the job in errors; it is not part of its cache key.
    """

    train: np.ndarray
    seed: int
    query: np.ndarray
    name: str = ""


@dataclass(frozen=True)
class Execution:
    """Where and how jobs run; none of it changes a result.

    ``job_cache``: a folder, ``None`` for the default (:func:`job_cache_root`), or
    ``False`` for none. ``executor``: ``"local"`` or ``"dask"``; ``scheduler``: a
    Dask scheduler address (``tcp://host:port``), or ``None`` to start a
    ``LocalCluster`` of ``workers`` processes. ``workers``: threads for PyTorch
    chunks, processes for scikit-learn chunks or the local Dask cluster (default:
    the cores available). ``keep_models``: a folder to save every job's trained
    model in (``NNN/`` by job index, as :func:`miaudit.models.save_model` writes),
    instead of dropping it once its outputs are taken; the job cache then keeps
    the models too, so a job counts as cached only with its model. ``max_stack``:
    most models trained as one stack (default: :func:`stack_limit`'s rule); lower
    it when a GPU runs out of memory. Models trained together agree with the same
    models trained apart up to float rounding.
    """

    job_cache: str | Path | bool | None = None
    executor: str = "local"
    scheduler: str | None = None
    workers: int | None = None
    keep_models: str | Path | None = None
    max_stack: int | None = None

    def __post_init__(self) -> None:
        if self.executor not in ("local", "dask"):
            raise ConfigError(f"--executor {self.executor}: use local or dask")
        if self.scheduler is not None and self.executor != "dask":
            raise ConfigError("--scheduler needs --executor dask")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: must be at least 1")
        if self.max_stack is not None and self.max_stack < 1:
            raise ConfigError(f"--max-stack {self.max_stack}: must be at least 1")

    @property
    def n_workers(self) -> int:
        return self.workers or len(os.sched_getaffinity(0))


def job_cache_root() -> Path:
    """``$MIAUDIT_JOB_CACHE``, else ``$XDG_CACHE_HOME/miaudit/jobs``, else ``~/.cache/...``."""
    return user_cache_dir("jobs", JOB_CACHE_ENV)


def array_digest(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes (for cache keys)."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(str((a.dtype.str, a.shape)).encode())
    # The array's own buffer, not a copy of it (tobytes()): the same bytes, and at 256
    # census shadows a gigabyte less and three times faster.
    h.update(a)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of everything whose change can change a trained model's numbers."""
    import sklearn
    import torch

    return {
        "miaudit": __version__,
        "miaudit-training-arithmetic": str(ARITHMETIC),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
    }


class JobCache:
    """Job outputs on disk, one ``.npz`` per job beside its MAC (``.sha256``, the name
    kept from when it held a plain checksum), and trained models as folders whose
    ``checksum`` file holds their MAC. An entry is used only when its MAC, under the
    user's cache key, verifies; ``corrupt`` counts the entries that failed (and were
    removed, to be computed again)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.corrupt = 0
        self._mac_key: bytes | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None
        self._lock = threading.Lock()

    @property
    def mac_key(self) -> bytes:
        """The cache key (:func:`~miaudit.cache_key.load_key`), read once."""
        if self._mac_key is None:
            self._mac_key = load_key()  # the same bytes whichever thread reads them
        return self._mac_key

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.npz", folder / f"{key}.sha256"

    def get(self, key: str) -> np.ndarray | None:
        """The stored outputs, or ``None`` if absent or failing its MAC."""
        arrays = self.get_arrays(key)
        return None if arrays is None else arrays.get("outputs")

    def put(self, key: str, outputs: np.ndarray) -> None:
        self.put_arrays(key, {"outputs": np.asarray(outputs, dtype=np.float32)})

    def get_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        """The stored arrays by name, or ``None`` if absent or failing its MAC."""
        data, check = self._paths(key)
        if not (data.is_file() and check.is_file()):
            return None
        mac_key = self.mac_key
        try:
            # Read once; verified and parsed from the same bytes.
            blob = bytes(read_regular(data))
            if not EntryMac("jobs", key, mac_key).add(blob).matches(read_regular(check)):
                raise ValueError("the MAC does not match")
            check_npy_sizes(blob, DataError, "it is dropped", str(data))
            with np.load(io.BytesIO(blob), allow_pickle=False) as f:
                return {name: f[name] for name in f.files}
        except (OSError, ValueError, KeyError, EOFError, DataError):
            # Never a result built from an entry that fails: drop it and compute again.
            self.corrupt += 1
            for path in (data, check):
                with contextlib.suppress(OSError):  # another user's, in a shared folder
                    path.unlink(missing_ok=True)
            return None

    def put_arrays(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        data, check = self._paths(key)
        tmp = data.parent / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
        tmp_check = tmp.with_suffix(".sha")
        try:
            mac_key = self.mac_key
            claim_cache(self.root, "jobs")
            private_dir(data.parent)
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            blob = buffer.getvalue()
            write_private(tmp, blob)
            os.replace(tmp, data)
            # The MAC is written last: an entry without it is never read.
            mac = EntryMac("jobs", key, mac_key).add(blob)
            write_private(tmp_check, (mac.hexdigest() + "\n").encode())
            os.replace(tmp_check, check)
        except BaseException as exc:
            # Interrupted too (Ctrl-C, SIGTERM): no temporary file is left behind.
            for path in (tmp, tmp_check):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            if not isinstance(exc, OSError):
                raise
            raise ConfigError(
                f"cannot write the job cache in {self.root} ({exc.strerror}): {_CACHE_ADVICE}"
            ) from None

    def model_folder(self, key: str) -> Path | None:
        """A private copy of the stored model's folder, made from the bytes its MAC
        verified (nothing written into the cache after the check is used), or ``None`` if
        absent or failing. The copy lives in a temporary folder of this object's, removed
        with it."""
        folder = self.root / "models" / key
        if not (folder / "checksum").is_file():
            return None
        mac_key = self.mac_key
        try:
            files = _read_folder(folder)
            stored = files.pop("checksum")
        except (OSError, KeyError):
            return None  # another writer of the key is replacing it: as if absent
        if not _folder_mac(files, key, mac_key).matches(stored):
            self.corrupt += 1
            shutil.rmtree(folder, ignore_errors=True)  # fails: train again
            return None
        with self._lock:  # one scratch folder, whichever thread reads first
            if self._scratch is None:
                self._scratch = tempfile.TemporaryDirectory(prefix="miaudit-models-")
        copy = Path(tempfile.mkdtemp(dir=self._scratch.name)) / key
        _write_folder(files, copy)
        return copy

    def put_model(self, key: str, model, family: ModelFamily) -> None:
        claim_cache(self.root, "jobs")
        save_model_folder(
            model, self.root / "models" / key, _CACHE_ADVICE, family, mac_key=self.mac_key
        )

    def info(self) -> dict[str, Any]:
        entries = list(self.root.glob("[0-9a-f][0-9a-f]/*.npz")) if self.root.is_dir() else []
        return {
            "folder": str(self.root),
            "entries": len(entries),
            "bytes": sum(p.stat().st_size for p in entries),
        }


def _read_folder(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder`` by its path there (``a/b``), each read once."""
    files = {}
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in names:
            path = Path(root) / name
            files[path.relative_to(folder).as_posix()] = bytes(read_regular(path))
    return files


def _write_folder(files: dict[str, bytes], folder: Path) -> None:
    """Write ``files`` (by path, as :func:`_read_folder` reads them) into the new folder."""
    for name, data in files.items():
        path = folder / name
        private_dir(path.parent)
        write_private(path, data)


def _folder_mac(files: dict[str, bytes], key: str, mac_key: bytes) -> EntryMac:
    """The MAC of a model folder stored under ``key``: every file's path and bytes."""
    mac = EntryMac("jobs-model", key, mac_key)
    for name in sorted(files):
        mac.add(name.encode()).add(files[name])
    return mac


def _tell(notify: Callable[[str], None] | None, text: str) -> None:
    """A one-line note to ``notify``, or a ``RuntimeWarning`` where there is none."""
    if notify is not None:
        notify(text)
    else:
        warnings.warn(text, RuntimeWarning, stacklevel=3)


def _failed_note(n: int, done: str) -> str:
    """The one line that says ``n`` entries failed their MAC and were ``done``."""
    entries = "entry" if n == 1 else "entries"
    return (
        f"{n} job-cache {entries} failed authentication (damaged, edited, or not written "
        f"with your cache key {key_path()}): not used, {done}"
    )


def cached_model(
    family: Recipe | ModelFamily,
    X: Any,
    y: np.ndarray,
    n_classes: int,
    train: np.ndarray,
    seed: int,
    *,
    device: str = "cpu",
    execution: Execution | None = None,
    data_fingerprint: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
):
    """One trained model (the target), from the job cache when it was trained before.

    Keyed like a job; stored with the family's :meth:`~ModelFamily.save` plus a MAC of
    its files, verified before loading. A family whose models cannot be saved, or whose
    identity cannot be derived, trains every time. An entry that fails its MAC is
    trained again, and ``notify`` (else a ``RuntimeWarning``) says so. Returns
    ``(model, from_cache)``.
    """
    family = as_family(family)
    execution = execution or Execution()
    cache = _cache(execution) if family.can_save else None
    parts = _training_parts(family, X, y, n_classes, device, data_fingerprint)
    key = None
    if cache is not None and parts is not None:
        key = _key({"kind": "model", **parts, "train": array_digest(train), "seed": int(seed)})
        if (folder := cache.model_folder(key)) is not None:
            return family.load(folder, device=device), True
        if cache.corrupt:
            _tell(notify, _failed_note(cache.corrupt, "the target is trained again"))
    # An absurd recipe is refused here, before the first model trains.
    check_memory(family, tuple(int(s) for s in X.shape[1:]), n_classes, device, len(train))
    with _naming("the target"), out_of_memory(family, device, 1):
        model = family.fit(X, y, n_classes, [train], [int(seed)], device=device, progress=progress)
    model = model[0]
    if key is not None:
        cache.put_model(key, model, family)
    return model, False


def cached_arrays(
    parts: dict[str, Any],
    compute: Callable[[], dict[str, np.ndarray]],
    execution: Execution | None = None,
    notify: Callable[[str], None] | None = None,
) -> tuple[dict[str, np.ndarray], bool]:
    """The arrays ``compute()`` returns, from the job cache when computed before.

    For work other than training a network that is still worth keeping (fitting
    Shokri's attack models): ``parts`` must name everything that determines the
    arrays (hash big arrays with :func:`array_digest`); the format and library
    versions are added. Arrays are stored with their own dtypes, bit for bit. An entry
    that fails its MAC is computed again, and ``notify`` (else a ``RuntimeWarning``) says
    so. Returns ``(arrays, from_cache)``.
    """
    cache = _cache(execution or Execution())
    key = None
    if cache is not None:
        key = _key(parts)
        if (found := cache.get_arrays(key)) is not None:
            return found, True
        if cache.corrupt:
            _tell(notify, _failed_note(cache.corrupt, "computed again"))
    arrays = compute()
    if cache is not None:
        cache.put_arrays(key, arrays)
    return arrays, False


def _key(parts: dict[str, Any]) -> str:
    """SHA-256 of ``parts`` with the cache format and the library versions added."""
    text = json.dumps({"format": _FORMAT, **parts, "versions": library_versions()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _training_parts(
    family: ModelFamily, X, y, n_classes, device, data_fingerprint
) -> dict[str, Any] | None:
    """The key ingredients every trained model shares: data, classes, family, device;
    ``None`` when the family's identity cannot be derived (nothing is cached)."""
    identity = family.identity()
    if identity is None:
        return None
    data = data_fingerprint
    if data is None:
        records, labels = records_digest(X), records_digest(y)
        if records is None or labels is None:
            return None  # objects that do not pickle: no honest key
        data = records + labels
    return {
        "data": data,
        "n_classes": int(n_classes),
        **identity,
        "device": device,
    }


def records_digest(records: Any) -> str | None:
    """SHA-256 of the records a model trains on or answers: numeric arrays by their
    bytes; a DataFrame or an array of objects (texts, labels, opaque records) by
    :func:`~miaudit.data.kinds.content_digest`: text as text, other objects by their
    pickles, never their ``str()`` or addresses. ``None`` when no honest digest exists
    (objects that do not pickle)."""
    if not hasattr(records, "iloc"):
        a = records if isinstance(records, np.ndarray) else None
        if a is None:
            try:
                a = np.asarray(records)
            except (ValueError, TypeError, RuntimeError):  # ragged lists, tensors
                a = np.empty(len(records), dtype=object)
                a[:] = list(records)
        if a.dtype != object:
            return array_digest(a)
        return content_digest(a)
    return content_digest(records)


def _cache(execution: Execution) -> JobCache | None:
    if execution.job_cache is False:
        return None
    root = job_cache_root() if execution.job_cache in (None, True) else execution.job_cache
    cache = JobCache(root)
    _ = cache.mac_key  # a key that cannot be made or is refused says so before training
    return cache


_CACHE_ADVICE = f"free some space, point {JOB_CACHE_ENV} elsewhere, or pass --no-job-cache"


def save_model_folder(
    model, folder: Path, advice: str, family: ModelFamily, *, mac_key: bytes | None = None
) -> None:
    """Save ``model`` (of ``family``) to ``folder`` with a ``checksum`` file, atomically
    (rename); files ``0600``, folders ``0700``.

    ``mac_key``: ``folder`` is a job-cache entry named by its key, and ``checksum`` holds
    its MAC under this cache key (else the SHA-256 of its files, which catches accidents
    in an output folder). The model is saved first into a private temporary folder and
    the MAC computed from the bytes read there, so what is signed is what this process
    wrote. Concurrent writers of one key are safe: a writer that finds a valid entry in
    place, or loses the race to rename, keeps the winner's entry (the same content) and
    drops its own. ``advice`` ends the one-line error if the disk refuses (full,
    read-only).
    """
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}"
    try:
        private_dir(folder.parent)
        with tempfile.TemporaryDirectory(prefix="miaudit-model-") as staging:
            family.save(model, Path(staging) / "model")
            files = _read_folder(Path(staging) / "model")
        files.pop("checksum", None)
        check = (
            _folder_mac(files, folder.name, mac_key).hexdigest()
            if mac_key is not None
            else _folder_digest(files)
        )
        private_dir(tmp)
        _write_folder({**files, "checksum": (check + "\n").encode()}, tmp)
        if mac_key is not None and _valid_folder(folder, mac_key):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        if folder.exists():
            # Moved aside in one step, then removed: never a half-deleted folder in place.
            old = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.old"
            with contextlib.suppress(FileNotFoundError):
                os.replace(folder, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError as exc:
            # Another writer of the key renamed its entry (the same content) into place
            # first. Its validity is not checked here: a third writer may be moving it
            # aside at this instant; every read verifies the MAC anyway.
            if mac_key is not None and exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                shutil.rmtree(tmp, ignore_errors=True)
                return
            raise
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # interrupted too: nothing left behind
        if not isinstance(exc, OSError):
            raise
        raise ConfigError(f"cannot write {folder} ({exc.strerror}): {advice}") from None


def _valid_folder(folder: Path, mac_key: bytes) -> bool:
    """Whether ``folder`` holds a complete model whose MAC verifies."""
    try:
        files = _read_folder(folder)
        stored = files.pop("checksum")
    except (OSError, KeyError):
        return False
    return _folder_mac(files, folder.name, mac_key).matches(stored)


def _folder_digest(files: dict[str, bytes]) -> str:
    """SHA-256 of a model folder's files (an output folder's ``checksum``)."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode())
        h.update(files[name])
    return h.hexdigest()


def _train_chunk(
    family: ModelFamily,
    X: Any,
    y: np.ndarray,
    n_classes: int,
    jobs: list[ShadowJob],
    extra: Any,
    device: str,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
    keep: bool = False,
) -> list[tuple[np.ndarray, Any]]:
    """Train one chunk; for each job its outputs (``query`` rows, then ``extra``) and,
    with ``keep``, its model (else ``None``)."""
    # A lone job's failure names its model (the models finished before it are kept).
    with _naming(jobs[0].name if len(jobs) == 1 else ""), out_of_memory(family, device, len(jobs)):
        models = family.fit(
            X, y, n_classes, [j.train for j in jobs], [j.seed for j in jobs], device=device,
            progress=progress,
        )  # fmt: skip
        return [
            _outputs(model, take(X, job.query), extra, n_classes, keep)
            for model, job in zip(models, jobs, strict=True)
        ]


def _fit_job(i, family, X_train, y_train, n_classes, job, query, extra, device, keep):
    """Chunk ``i``, of the one job ``job``, trained on its own records in a worker process."""
    with _naming(job.name):
        everything = np.arange(len(y_train))
        model = family.fit(X_train, y_train, n_classes, [everything], [job.seed], device=device)
        return i, [_outputs(model[0], query, extra, n_classes, keep)]


@contextlib.contextmanager
def _naming(name: str) -> Iterator[None]:
    """Prefix the one-line error of a model's training with the model's name."""
    try:
        yield
    except MiauditError as exc:
        if not name:
            raise
        raise type(exc)(f"{name}: {exc}") from exc


def _outputs(model, query, extra, n_classes: int, keep: bool) -> tuple[np.ndarray, Any]:
    """A trained model's outputs on its query records, then on ``extra``."""
    rows = [model.predict_proba(query)]
    if extra is not None:
        rows.append(model.predict_proba(extra))
    out = np.concatenate(rows).astype(np.float32)
    if out.shape[1:] != (n_classes,):
        raise ModelError(
            f"a trained model answered {out.shape[1:]} columns, not the {n_classes} classes: "
            "does its training set lack classes its predict_proba leaves out?"
        )
    return out, model if keep else None


def stack_limit(
    family: Recipe | ModelFamily,
    input_shape: tuple[int, ...],
    n_classes: int,
    device: str,
    n_train: int | None = None,
    max_stack: int | None = None,
    memory: int | None = None,
) -> int:
    """Most models per chunk (refused, by :func:`check_memory`, when not even one fits).

    On a CPU :data:`CHUNK`, fewer if a stack of 8 would not fit in
    :data:`MEMORY_SHARE` of the memory. On a GPU as many as
    :data:`~miaudit.models.torch_batched.GPU_MEMORY_SHARE` of its memory holds, up
    to :data:`~miaudit.models.torch_batched.GPU_MAX_STACK`: stacks train one at a
    time there, and larger stacks cost less per model (``bench/gpu.py``).
    ``max_stack`` (the user's ``--max-stack``) caps either. ``memory``: the bytes to
    size for, where the models train elsewhere (:func:`workers_memory`); default
    this machine's :func:`~miaudit.resources.device_memory`.
    """
    family = as_family(family)
    if not family.stacked:  # models trained alone: each its own unit of work and cache
        check_memory(family, input_shape, n_classes, device, n_train, memory)
        return 1
    per_model = check_memory(family, input_shape, n_classes, device, n_train, memory)
    gpu = device.startswith("cuda")
    cap = GPU_MAX_STACK if gpu else CHUNK
    if max_stack is not None:
        cap = min(cap, max_stack)
    if per_model is None:
        return cap
    memory = resources.device_memory(device) if memory is None else memory
    if gpu:
        need = int(GPU_OVERHEAD * per_model)
        return max(1, stack_size(need, memory, GPU_MEMORY_SHARE, cap))
    return max(1, stack_size(per_model, memory, MEMORY_SHARE, cap))


def check_memory(
    family: Recipe | ModelFamily,
    input_shape: tuple[int, ...],
    n_classes: int,
    device: str,
    n_train: int | None = None,
    memory: int | None = None,
) -> int | None:
    """The memory one model needs to train (an estimate; ``None`` when the family has
    none), refused before any work when it exceeds
    :data:`~miaudit.resources.MEMORY_LIMIT_SHARE` of the machine's, or of ``memory``
    bytes (an absurd ``hidden`` or ``filters``)."""
    family = as_family(family)
    need = family.training_bytes(input_shape, n_classes, n_train)
    if need is None:
        return None
    resources.refuse_past_memory(
        need,
        f"training one {family.describe()['model']} model of these settings",
        f"lower {key('target.hidden')}, filters or {key('target.batch_size')}",
        device=device,
        memory=memory,
    )
    return need


@contextlib.contextmanager
def out_of_memory(family: ModelFamily, device: str, n_models: int) -> Iterator[None]:
    """Turn a GPU's out-of-memory error while ``n_models`` train together into one
    line naming the memory measured and the setting to lower. The chunks finished
    before it are in the job cache already (:func:`run_jobs` writes each as it ends)."""
    import torch

    try:
        yield
    except torch.OutOfMemoryError:
        if not device.startswith("cuda"):
            raise
        free, total, peak = resources.gpu_memory_now(device)
        fix = (
            "lower --max-stack (the models trained together)"
            if n_models > 1
            else f"lower {key('target.batch_size')}, {key('target.hidden')} or filters"
        )
        raise ModelError(
            f"{device} ran out of memory training {n_models} {family.describe()['model']} "
            f"model{'s' if n_models > 1 else ''} at once (peak {peak / 2**30:,.1f} GiB "
            f"allocated; {free / 2**30:,.1f} of {total / 2**30:,.1f} GiB free now): {fix}; "
            "finished stacks are kept in the job cache"
        ) from None


def _chunks(n_jobs: int, limit: int = CHUNK, spread: int = 2) -> list[list[int]]:
    """Job indices in order, cut into chunks of near-equal size: ``ceil(n / limit)``
    of them, but ``spread`` from ``4 * spread`` jobs on, so that two cores have a
    stack each (stacks of 4 cost little more per model than stacks of 8; a GPU
    passes ``spread=1``: one stack at a time, as large as fits)."""
    n_chunks = max(-(-n_jobs // limit), min(n_jobs // 4, spread))
    bounds = [round(i * n_jobs / n_chunks) for i in range(n_chunks + 1)] if n_jobs else [0]
    return [list(range(a, b)) for a, b in itertools.pairwise(bounds)]


class _Stopped(Exception):
    """Raised inside a training thread to end it early (the audit was interrupted)."""


def _run_threads(
    family, X, y, n_classes, jobs, todo, extra, device, workers, finished, units, keep
):
    """Train the chunks ``todo`` on ``workers`` threads; ``finished(i, outputs)`` runs
    in this thread as chunk ``i`` ends.

    ``units(chunk_index, n)`` reports ``n`` units of progress done so far in a chunk.
    If this thread is interrupted (Ctrl-C) or a chunk fails, the other threads stop
    at their next epoch, so nothing trains on after the audit has ended.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    stop = threading.Event()

    def work(i: int) -> list[tuple[np.ndarray, Any]]:
        def within(n: int, _total: int) -> None:
            if stop.is_set():
                raise _Stopped
            units(i, n)

        chunk_jobs = [jobs[k] for k in todo[i]]
        return _train_chunk(
            family, X, y, n_classes, chunk_jobs, extra, device, 1, within, keep=keep
        )

    # One intra-op thread, set once here: the threads then never change it under
    # each other (torch's thread count is global to the process).
    with torch_threads(1):
        pool = ThreadPoolExecutor(min(workers, len(todo)), thread_name_prefix="miaudit-train")
        try:
            pending = {pool.submit(work, i): i for i in range(len(todo))}
            while pending:
                ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in ready:
                    i = pending.pop(future)
                    finished(i, future.result())
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)


def _run_processes(family, X, y, n_classes, jobs, todo, extra, device, workers, finished, keep):
    """Train the one-job chunks ``todo`` in ``workers`` processes, each sent only its own
    records; ``finished(i, outputs)`` runs here as chunk ``i`` ends, so every model
    finished before a failure or an interrupt is kept."""
    from joblib import Parallel, delayed

    def tasks():
        for i, chunk in enumerate(todo):
            (k,) = chunk
            job = jobs[k]
            yield delayed(_fit_job)(
                i, family, take(X, job.train), y[job.train], n_classes, job,
                take(X, job.query), extra, device, keep,
            )  # fmt: skip

    ship_by_value(family)
    pool = Parallel(n_jobs=min(workers, len(todo)), return_as="generator_unordered")
    for i, outputs in pool(tasks()):
        finished(i, outputs)


def _job_keys(
    family, X, y, n_classes, jobs, chunks, extra, device, data_fingerprint
) -> list[str] | None:
    """Each job's cache key: everything that determines its outputs (module docstring);
    ``None`` when the family's identity cannot be derived."""
    parts = _training_parts(family, X, y, n_classes, device, data_fingerprint)
    if parts is None:
        return None
    extra_digest = None if extra is None else records_digest(extra)
    if extra is not None and extra_digest is None:
        return None
    common = {**parts, "extra": extra_digest}
    signature = [(array_digest(j.train), int(j.seed), array_digest(j.query)) for j in jobs]
    keys = []
    for chunk in chunks:
        if not family.stacked:  # each model alone: its own signature says everything
            keys += [_key({**common, "job": signature[k]}) for k in chunk]
            continue
        partners = [signature[k] for k in chunk]
        keys += [
            _key({**common, "chunk": partners, "position": position})
            for position in range(len(chunk))
        ]
    return keys


def run_jobs(
    family: Recipe | ModelFamily,
    X: Any,
    y: np.ndarray,
    n_classes: int,
    jobs: list[ShadowJob],
    *,
    extra: Any = None,
    device: str = "cpu",
    execution: Execution | None = None,
    data_fingerprint: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Every job's outputs (``len(query) + len(extra)`` rows each), in job order.

    ``family`` trains the models (a :class:`~miaudit.models.Recipe` means the built-in
    family); ``X`` (and ``extra``) are the records in the form its models read.
    Returns the outputs and facts for the report: jobs trained, jobs answered from
    the cache, corrupt entries found.
    """
    family = as_family(family)
    execution = execution or Execution()
    cache = _cache(execution)
    keep = None if execution.keep_models is None else Path(execution.keep_models)
    if keep is not None and not family.can_save:
        raise ConfigError(
            f"--keep-models: {family.describe()['model']} models cannot be saved; drop it"
        )
    shape = tuple(int(s) for s in X.shape[1:])
    n_train = max((len(j.train) for j in jobs), default=None)
    # Stacks for a cluster's GPUs are sized to the smallest of them, not to this machine's.
    memory = None
    if execution.scheduler is not None and device.startswith("cuda") and family.stacked:
        memory = workers_memory(execution.scheduler, device)
        if notify is not None:
            notify(f"dask: stacks sized to the workers' smallest GPU, {memory / 2**30:,.1f} GiB")
    limit = stack_limit(family, shape, n_classes, device, n_train, execution.max_stack, memory)
    chunks = _chunks(len(jobs), limit, spread=1 if device.startswith("cuda") else 2)
    keys = []
    if cache is not None:  # hashing the records is work: only for a cache
        found = _job_keys(family, X, y, n_classes, jobs, chunks, extra, device, data_fingerprint)
        if found is None:
            cache = None
            if notify is not None:
                why = (
                    family.uncached_reason()
                    if family.identity() is None
                    else "the records do not pickle, so no honest key can be derived from "
                    "them; their models are trained every time"
                )
                notify(f"not cached: {why}")
        else:
            keys = found
    results: list[np.ndarray | None] = [None] * len(jobs)
    if cache is not None:
        for k, key in enumerate(keys):
            results[k] = cache.get(key)
            if keep is not None and results[k] is not None:
                # Kept models come from the cache too, or the job trains again.
                if (folder := cache.model_folder(key)) is None:
                    results[k] = None
                else:
                    _copy_model(folder, keep / f"{k:03d}")
    todo = [c for c in chunks if any(results[k] is None for k in c)]
    done = len(jobs) - sum(len(c) for c in todo)
    facts = {"trained": sum(len(c) for c in todo), "from_cache": done, "corrupt": 0}
    # Progress in the family's units (one epoch of one network, or one fitted
    # model), so a long chunk moves the bar as it trains.
    per_job = family.units
    total = len(jobs) * per_job
    in_flight: dict[int, int] = {}  # units done so far in chunks still training
    lock = threading.Lock()

    def report() -> None:
        if progress is not None:
            progress(done * per_job + sum(in_flight.values()), total)

    def units(i: int, n: int) -> None:
        with lock:
            in_flight[i] = n
            report()

    report()

    def finished(chunk: list[int], outputs: list[tuple[np.ndarray, Any]]) -> None:
        nonlocal done
        for k, (out, model) in zip(chunk, outputs, strict=True):
            results[k] = out
            if cache is not None:
                if model is not None:  # the model first: outputs alone don't count
                    cache.put_model(keys[k], model, family)
                cache.put(keys[k], out)
            if model is not None:
                save_model_folder(
                    model, keep / f"{k:03d}", "free some space or drop --keep-models", family
                )
        with lock:
            in_flight.pop(todo.index(chunk), None)
            done += len(chunk)
            report()

    if todo and execution.executor == "dask":
        _run_dask(family, X, y, n_classes, jobs, todo, extra, device, execution, finished, notify)
    elif (
        family.parallel == "threads"
        and device == "cpu"
        and execution.n_workers > 1
        and len(todo) > 1
    ):
        _run_threads(
            family, X, y, n_classes, jobs, todo, extra, device, execution.n_workers,
            lambda i, outputs: finished(todo[i], outputs), units, keep is not None,
        )  # fmt: skip
    elif (
        family.parallel == "processes"
        and device == "cpu"
        and execution.n_workers > 1
        and len(todo) > 1
    ):
        _run_processes(
            family, X, y, n_classes, jobs, todo, extra, device, execution.n_workers,
            lambda i, outputs: finished(todo[i], outputs), keep is not None,
        )  # fmt: skip
    else:
        for i, chunk in enumerate(todo):
            outputs = _train_chunk(
                family, X, y, n_classes, [jobs[k] for k in chunk], extra, device,
                execution.n_workers, lambda n, _total, i=i: units(i, n), keep=keep is not None,
            )  # fmt: skip
            finished(chunk, outputs)
    if cache is not None:
        facts["corrupt"] = cache.corrupt
        if cache.corrupt:
            _tell(notify, _failed_note(cache.corrupt, "their models were trained again"))
    return [r for r in results if r is not None], facts


def _copy_model(folder: Path, dest: Path) -> None:
    """Copy a verified model (:meth:`JobCache.model_folder`) to the output folder ``dest``,
    with the ``checksum`` of its files that :func:`save_model_folder` writes there."""
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}"
    try:
        files = _read_folder(folder)
        private_dir(dest.parent)
        private_dir(tmp)
        _write_folder({**files, "checksum": (_folder_digest(files) + "\n").encode()}, tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # interrupted too: nothing left behind
        if not isinstance(exc, OSError):
            raise
        raise ConfigError(
            f"cannot write {dest} ({exc.strerror}): free some space or drop --keep-models"
        ) from None


def ship_by_value(family: ModelFamily) -> None:
    """Make the user's code travel to other processes by value (cloudpickle), so workers
    need not be able to import it; refuse, naming it, a family that cannot travel."""
    import cloudpickle

    for name in family.code_modules():
        module = sys.modules.get(name)
        if module is not None and name != "__main__":
            cloudpickle.register_pickle_by_value(module)
    try:
        cloudpickle.dumps(family)
    except Exception as exc:
        raise ConfigError(
            f"{family.describe()['model']} cannot be sent to other processes "
            f"({type(exc).__name__}: {exc}): keep what it refers to picklable (no open files, "
            "locks or connections), or run with --workers 1 and without --executor dask"
        ) from None


def _connect(scheduler: str):
    """A Dask client of the scheduler at ``scheduler``; one line when it is not there."""
    from dask.distributed import Client

    try:
        return Client(scheduler, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {scheduler} ({exc}): is it running, and is "
            "the address right? (--executor dask without --scheduler starts a local cluster)"
        ) from None


def workers_memory(scheduler: str, device: str) -> int:
    """The smallest :func:`~miaudit.resources.device_memory` of ``device`` among the
    workers of the Dask cluster at ``scheduler``, each measured on its own machine (its GPU, where
    ``CUDA_VISIBLE_DEVICES`` points), so that a stack sized to it fits on any of them.
    A cluster without workers, or a worker without the device, is one line."""
    client = _connect(scheduler)
    try:
        answers = client.run(resources.device_memory, device, on_error="return")
    finally:
        client.close()
    if not answers:
        raise ConfigError(
            f"the Dask scheduler at {scheduler} has no workers: start them with "
            f"`dask worker {scheduler}`"
        )
    for worker, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):
            reason = answer if isinstance(answer, MiauditError) else repr(answer)
            raise ConfigError(
                f"Dask worker {worker} cannot train on --device {device}: {reason}"
            ) from None
    return min(int(a) for a in answers.values())


def _run_dask(family, X, y, n_classes, jobs, todo, extra, device, execution, finished, notify):
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - a dependency of miaudit
        raise ConfigError(
            "--executor dask needs dask.distributed: pip install distributed"
        ) from None
    ship_by_value(family)  # before any cluster starts: a trainer that cannot travel stops here
    cluster = None
    try:
        if execution.scheduler is not None:
            client = _connect(execution.scheduler)
        else:
            # On a GPU one worker: its stacks are sized to the GPU's memory, and several
            # workers would share the one device ("cuda" is the first GPU of each).
            cluster = LocalCluster(
                n_workers=1 if device.startswith("cuda") else execution.n_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
            client = Client(cluster)
        if notify is not None:
            notify(f"dask: {len(client.scheduler_info()['workers'])} workers")
        data = client.scatter([X, y, extra], broadcast=True)
        futures = {}
        for chunk in todo:
            future = client.submit(
                _train_chunk, family, data[0], data[1], n_classes,
                [jobs[k] for k in chunk], data[2], device, 1,
                keep=execution.keep_models is not None, retries=3, pure=False,
            )  # fmt: skip
            futures[future] = chunk
        for future in as_completed(futures):
            finished(futures[future], future.result())
        client.close()
    finally:
        if cluster is not None:
            cluster.close()
