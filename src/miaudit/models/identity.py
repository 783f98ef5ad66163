"""What a user's training code is, as JSON: the honest part of a job-cache key.

Position in the pipeline: ``shadows (train, cached)``. A job of the user's own
training code may be answered from the job cache only if the code that would
train it now is the code that trained it then. :func:`code_identity` describes
the objects that make up a trainer — functions by their source text, default
arguments, closures and the globals they use; classes by their source; scikit-learn
estimators by their class and parameters; arrays and tensors by their bytes;
library code by its module, name and package version — recursively, so that a
changed line anywhere in the user's code (a helper the training loop calls, a
layer class the model factory builds, a constant it reads) changes the key.

Library code (anything installed under this Python's prefix, and miaudit itself)
is identified by name and version rather than by its source: its versions are in
every key already (:func:`miaudit.jobs.library_versions`) or are added here.

When something cannot be described honestly — source that is not on disk (a
function typed at an interactive prompt or run with ``python -c``), an object
with no stable description — :func:`code_identity` says so instead of guessing,
and the caller does not cache (unless the user names a ``cache_key``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import inspect
import json
import math
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Unknowable",
    "callable_record",
    "code_digest",
    "code_identity",
    "is_library_module",
    "user_modules",
]

#: How deep the walk goes through objects referring to objects.
_MAX_DEPTH = 24


class Unknowable(Exception):
    """Raised inside the walk when an object has no honest description."""


@functools.cache
def _library_roots() -> tuple[str, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(path)
    return tuple(str(Path(r).resolve()) for r in roots if r)


def is_library_module(name: str | None) -> bool:
    """Whether module ``name`` is installed code (or miaudit) rather than the user's own
    (code run by ``exec`` has no module: it is the user's)."""
    if name is None:
        return False
    if name.split(".")[0] == "miaudit":
        return True
    module = sys.modules.get(name)
    if module is None:
        return True  # builtins and anything not imported from a file
    file = getattr(module, "__file__", None)
    if file is None:
        return True
    path = str(Path(file).resolve())
    return any(path.startswith(root + "/") or path == root for root in _library_roots())


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _package_version(module_name: str) -> str | None:
    top = module_name.split(".")[0]
    for dist in _distributions().get(top, []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return getattr(sys.modules.get(top), "__version__", None)


def _digest_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError) as exc:
        name = getattr(obj, "__qualname__", type(obj).__name__)
        raise Unknowable(
            f"the source of {name} is not in a file ({exc}): define it in a module or script"
        ) from None


def _names_used(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_used(const)
    return names


class _Walker:
    def __init__(self) -> None:
        self.seen: dict[int, str] = {}
        # Every object seen, held for the walk: an id names an object only while it
        # lives, and the walk makes temporaries (closure variables, attribute dicts)
        # whose ids a later object could otherwise take, and be described as a "ref"
        # to something it is not (a key that changed from run to run).
        self.held: list[Any] = []
        self.modules: set[str] = set()

    def describe(self, obj: Any, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise Unknowable("the trainer's objects nest too deeply to describe")
        if obj is None or isinstance(obj, bool | int | str):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else repr(obj)
        if isinstance(obj, bytes | bytearray):
            return {"bytes": hashlib.sha256(bytes(obj)).hexdigest()}
        if isinstance(obj, np.generic):
            return self.describe(obj.item(), depth)
        if isinstance(obj, np.ndarray):
            return {"array": _array_digest(obj)}
        key = id(obj)
        if key in self.seen:
            return {"ref": self.seen[key]}
        self.seen[key] = f"{type(obj).__qualname__}#{len(self.seen)}"
        self.held.append(obj)
        return self._describe_object(obj, depth + 1)

    def _describe_object(self, obj: Any, depth: int) -> Any:
        if isinstance(obj, tuple | list):
            return [self.describe(v, depth) for v in obj]
        if isinstance(obj, set | frozenset):
            return sorted((self.describe(v, depth) for v in obj), key=repr)
        if isinstance(obj, dict):
            return {str(k): self.describe(v, depth) for k, v in sorted(obj.items(), key=_key)}
        if isinstance(obj, types.ModuleType):
            return self._module(obj)
        if isinstance(obj, type):
            return self._class(obj, depth)
        if isinstance(obj, functools.partial):
            return {
                "partial": self.describe(obj.func, depth),
                "args": self.describe(list(obj.args), depth),
                "keywords": self.describe(dict(obj.keywords), depth),
            }
        if isinstance(obj, types.MethodType):
            return {
                "method": self.describe(obj.__func__, depth),
                "of": self.describe(obj.__self__, depth),
            }
        if isinstance(obj, types.FunctionType):
            return self._function(obj, depth)
        if isinstance(obj, types.BuiltinFunctionType | types.BuiltinMethodType):
            return {"builtin": f"{getattr(obj, '__module__', None)}.{obj.__qualname__}"}
        return self._instance(obj, depth)

    def _module(self, module: types.ModuleType) -> dict[str, Any]:
        name = module.__name__
        if is_library_module(name):
            return {"module": name, "version": _package_version(name)}
        self.modules.add(name)
        return {"module": name, "source": _digest_text(_source(module))}

    def _class(self, cls: type, depth: int) -> dict[str, Any]:
        name = f"{cls.__module__}.{cls.__qualname__}"
        if is_library_module(cls.__module__):
            return {"class": name, "version": _package_version(cls.__module__)}
        self.modules.add(cls.__module__)
        used: dict[str, Any] = {}
        for attribute in vars(cls).values():
            function = getattr(attribute, "__func__", attribute)
            if isinstance(function, types.FunctionType):
                used.update(self._globals(function, depth))
        return {
            "class": name,
            "source": _digest_text(_source(cls)),
            "bases": [self.describe(b, depth) for b in cls.__bases__ if b is not object],
            "globals": used,
        }

    def _function(self, fn: types.FunctionType, depth: int) -> dict[str, Any]:
        name = f"{fn.__module__}.{fn.__qualname__}"
        if is_library_module(fn.__module__):
            return {"function": name, "version": _package_version(fn.__module__)}
        if fn.__module__ is not None:
            self.modules.add(fn.__module__)
        cells = [c.cell_contents for c in fn.__closure__ or () if _filled(c)]
        return {
            "function": name,
            "source": _digest_text(_source(fn)),
            "defaults": self.describe(list(fn.__defaults__ or ()), depth),
            "kwdefaults": self.describe(dict(fn.__kwdefaults__ or {}), depth),
            "closure": self.describe(cells, depth),
            "globals": self._globals(fn, depth),
        }

    def _globals(self, fn: types.FunctionType, depth: int) -> dict[str, Any]:
        scope = fn.__globals__
        return {
            name: self.describe(scope[name], depth)
            for name in sorted(_names_used(fn.__code__))
            if name in scope
        }

    def _instance(self, obj: Any, depth: int) -> dict[str, Any]:
        cls = type(obj)
        kind = self.describe(cls, depth)
        get_params = getattr(obj, "get_params", None)
        if callable(get_params) and hasattr(obj, "fit"):  # a scikit-learn estimator
            return {"estimator": kind, "params": self.describe(get_params(deep=False), depth)}
        state_dict = getattr(obj, "state_dict", None)
        if callable(state_dict) and hasattr(obj, "parameters"):  # a torch module
            state = {k: _array_digest(v.detach().cpu().numpy()) for k, v in state_dict().items()}
            return {"torch_module": kind, "state": state}
        if hasattr(obj, "detach") and hasattr(obj, "cpu"):  # a tensor
            return {"tensor": _array_digest(obj.detach().cpu().numpy())}
        if hasattr(obj, "iloc") and hasattr(obj, "dtypes"):  # a pandas table
            import pandas as pd

            values = pd.util.hash_pandas_object(obj, index=True).to_numpy()
            return {"table": kind, "columns": [str(c) for c in getattr(obj, "columns", [])],
                    "hash": _array_digest(values)}  # fmt: skip
        if hasattr(obj, "__dict__"):
            return {"object": kind, "state": self.describe(dict(vars(obj)), depth)}
        text = repr(obj)
        if " at 0x" in text:
            raise Unknowable(f"a {cls.__qualname__} object has no stable description")
        return {"object": kind, "repr": text}


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _key(item: tuple[Any, Any]) -> str:
    return str(item[0])


def _array_digest(array: np.ndarray) -> str:
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(str((a.dtype.str, a.shape)).encode())
    h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())
    return h.hexdigest()


def code_identity(*objects: Any) -> tuple[Any | None, str]:
    """A JSON description of ``objects`` (a trainer's parts), or ``None`` and why not.

    Returns
    -------
    identity, reason
        ``identity`` changes whenever any of the user's code the objects reach, their
        parameters or their data change; ``reason`` says why there is none.
    """
    walker = _Walker()
    try:
        return [walker.describe(obj) for obj in objects], ""
    except Unknowable as exc:
        return None, str(exc)
    except RecursionError:
        return None, "the trainer's objects nest too deeply to describe"


def code_digest(*objects: Any) -> str | None:
    """SHA-256 of :func:`code_identity` of ``objects``: it changes whenever what the job
    cache keys that code on does (its source, helpers, globals, closures, defaults);
    ``None`` when the code cannot be described."""
    identity, _ = code_identity(*objects)
    if identity is None:
        return None
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def callable_record(fn: Any) -> dict[str, Any]:
    """What ran, for ``results.json``: a function's (or callable object's) module,
    qualified name and :func:`code_digest` (``None`` where its source is not on disk)."""
    # A partial names the function it wraps; a callable object its class.
    named = fn.func if isinstance(fn, functools.partial) else fn
    qualname = getattr(named, "__qualname__", None) or type(named).__qualname__
    module = getattr(named, "__module__", None) or type(named).__module__
    return {"module": module, "qualname": qualname, "code": code_digest(fn)}


def user_modules(*objects: Any) -> set[str]:
    """Names of the user's own modules that ``objects`` reach (to ship them by value)."""
    walker = _Walker()
    for obj in objects:
        with contextlib.suppress(Unknowable, RecursionError):
            walker.describe(obj)
    return {name for name in walker.modules if name in sys.modules}
