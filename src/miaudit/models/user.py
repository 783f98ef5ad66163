"""The user's own models and training code: targets to audit, families to train shadows.

Position in the pipeline: ``splits -> target / shadows (training) -> signals``.

A *target* the user hands over is queried through :func:`as_predictor`:

* a fitted scikit-learn estimator or ``Pipeline`` (anything with ``predict_proba``):
  it receives the user's own records (their DataFrame rows or arrays) and its
  columns are matched to the data's classes through its ``classes_``;
* a PyTorch ``nn.Module``: evaluated in ``eval()`` mode under
  ``torch.inference_mode()``, in batches, on the device its parameters are on, and
  the softmax of its outputs taken (it returns logits; :class:`TorchModel` says
  otherwise);
* any callable ``records -> probabilities``.

Shadow and reference models are trained by a :class:`~miaudit.models.family.ModelFamily`
made from the user's ``trainer`` (:func:`make_family`):

* an unfitted scikit-learn estimator or ``Pipeline``: cloned per model
  (``sklearn.base.clone``), every ``random_state`` parameter seeded per model;
* :class:`TorchTrainer`: a module factory and the user's own training loop;
* any callable ``fit(X, y, seed) -> predictor``.

Each model is trained on its own, with the global random generators of Python,
NumPy and PyTorch seeded from the model's seed (and restored after), so a model's
result depends only on its records and its seed — not on which process or worker
trained it. The user's code reaches the job cache under a key derived from the
code itself (:mod:`miaudit.models.identity`).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from miaudit.errors import ConfigError, MiauditError, ModelError, flatten_validation_error, key
from miaudit.models._seeding import derive_seed
from miaudit.models.family import ModelFamily, check_probabilities, take
from miaudit.models.identity import callable_record, code_identity, user_modules
from miaudit.models.recipe import DP_FIELDS, Recipe

__all__ = [
    "EstimatorFamily",
    "FunctionTrainer",
    "TorchModel",
    "TorchTrainer",
    "as_predictor",
    "could_predict",
    "could_train",
    "make_family",
]

#: Records per forward pass when a module is evaluated.
PREDICT_BATCH = 1024
_OUTPUTS = ("logits", "probabilities", "log-probabilities")


def _short(obj: Any, limit: int = 60) -> str:
    text = " ".join(repr(obj).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__name__


# --------------------------------------------------------------------------- predictors


class ClassMap:
    """The data's classes: what a model's output columns are matched against.

    ``values`` are the user's label values in code order, ``names`` their text.
    """

    def __init__(self, values: np.ndarray, names: list[str]) -> None:
        self.values = np.asarray(values)
        self.names = [str(n) for n in names]
        self.n_classes = len(self.names)

    def codes_of(self, classes: Any, who: str) -> np.ndarray:
        """The class code of each of a model's ``classes_``."""
        by_value = {}
        for code, value in enumerate(self.values.tolist()):
            with contextlib.suppress(TypeError):
                by_value.setdefault(value, code)
        by_name = {name: code for code, name in enumerate(self.names)}
        codes = []
        for c in np.asarray(classes).tolist():
            code = None
            with contextlib.suppress(TypeError):
                code = by_value.get(c)
            if code is None:
                code = by_name.get(str(c))
            if code is None and isinstance(c, float) and c.is_integer():
                code = by_name.get(str(int(c)))
            if code is None:
                raise ModelError(
                    f"{who} predicts class {c!r}, which is not a label of the data "
                    f"({', '.join(self.names[:10])}{' …' if self.n_classes > 10 else ''}): was it "
                    "trained on other labels?"
                )
            codes.append(code)
        return np.asarray(codes, dtype=np.int64)


def _numbers(P: Any, who: str) -> np.ndarray:
    """A model's answer as ``float64``, or one line saying it answered something else
    (class names from ``predict``, text, objects)."""
    try:
        return np.asarray(P, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    try:
        flat = np.asarray(P, dtype=object).ravel()
    except (TypeError, ValueError):  # ragged rows
        flat = np.asarray([P], dtype=object)
    example = next((v for v in flat if not isinstance(v, int | float | np.number)), flat[:1])
    text = " ".join(repr(example).split())
    text = text if len(text) <= 40 else text[:39] + "…"
    raise ModelError(
        f"{who} answered {type(example).__name__} values such as {text}, not probabilities: "
        "it must return one row of class probabilities (numbers) per record; a scikit-learn "
        "model's predict_proba, not its predict (which answers class labels)"
    )


def _one_value_hint(P: np.ndarray, n: int) -> str:
    """What one value per record most likely is: class labels from ``predict``."""
    if P.ndim == 1 and len(P) == n:
        return " (one value per record: class labels? pass predict_proba, not predict)"
    return ""


def _checked(P: Any, n: int, classes: ClassMap, who: str) -> np.ndarray:
    P = _numbers(P, who)
    if P.ndim != 2 or len(P) != n:
        raise ModelError(
            f"{who} answered an array of shape {P.shape} for {n} records; expected "
            f"({n}, {classes.n_classes}): one row of class probabilities per record"
            f"{_one_value_hint(P, n)}"
        )
    if P.shape[1] != classes.n_classes:
        raise ModelError(
            f"{who} answered {P.shape[1]} columns but the data has {classes.n_classes} "
            "classes: does it predict every class of the data's label?"
        )
    check_probabilities(P, n, classes.n_classes, source=who)
    return P


class EstimatorModel:
    """A fitted estimator (``predict_proba`` and, usually, ``classes_``) on the user's records."""

    def __init__(self, estimator: Any, classes: ClassMap, who: str = "the target") -> None:
        self.estimator = estimator
        self.classes = classes
        self.who = who
        own = getattr(estimator, "classes_", None)
        self._codes = None if own is None else classes.codes_of(own, who)

    def predict_proba(self, X: Any) -> np.ndarray:
        self._check_width(X)
        try:
            answer = self.estimator.predict_proba(X)
        except MiauditError:
            raise
        except Exception as exc:
            raise ModelError(
                f"{self.who} ({type(self.estimator).__name__}) raised {type(exc).__name__} on "
                f"the data's records: {_first_line(exc)}"
            ) from exc
        raw = _numbers(answer, f"{self.who} ({type(self.estimator).__name__})")
        n = len(X)
        if hasattr(X, "columns") and raw.ndim == 2 and len(raw) == X.shape[1] != n:
            # A Pipeline fitted on a column (a Series of texts) iterates a DataFrame's
            # column names: it answers as many rows as there are columns.
            text = [str(c) for c in X.columns if X[c].dtype == object or X[c].dtype == "str"]
            column = text[0] if text else str(X.columns[0])
            raise ModelError(
                f"{self.who} answered {len(raw)} row(s) for {n} records given as DataFrame "
                "rows: a model fitted on one column (a sequence of texts) reads that sequence; "
                f"pass data=(frame[{column!r}], frame[label])"
            )
        if self._codes is None:
            return _checked(raw, n, self.classes, self.who)
        if raw.ndim != 2 or raw.shape != (n, len(self._codes)):
            raise ModelError(
                f"{self.who} answered an array of shape {raw.shape} for {n} records, but its "
                f"classes_ has {len(self._codes)} classes{_one_value_hint(raw, n)}"
            )
        # Columns in the data's class order; a class it never saw gets probability 0.
        P = np.zeros((n, self.classes.n_classes))
        P[:, self._codes] = raw
        return _checked(P, n, self.classes, self.who)

    def _check_width(self, X: Any) -> None:
        """Refuse records of another width than the estimator was fitted on (without
        feature names, scikit-learn would take a table of as many columns silently)."""
        expected = getattr(self.estimator, "n_features_in_", None)
        if expected is None or getattr(self.estimator, "feature_names_in_", None) is not None:
            return
        width = X.shape[1] if hasattr(X, "shape") and len(X.shape) == 2 else None
        if width is not None and width != expected:
            raise ModelError(
                f"{self.who} was fitted on {expected} features, but the data's records have "
                f"{width} columns: it was trained on other records (miaudit's encoded arrays?); "
                "pass the records it was trained on as data="
            )


class TorchModel:
    """A PyTorch module as a predictor: eval mode, no gradients, batched, on its device.

    Parameters
    ----------
    module:
        The network. Its inputs are the user's records as tensors (floating arrays
        as ``float32``, integer arrays in their own dtype).
    outputs:
        What it returns: ``"logits"`` (softmax is applied), ``"probabilities"`` or
        ``"log-probabilities"``.
    batch_size:
        Records per forward pass.
    threads:
        PyTorch intra-op threads for its forward passes on the CPU (default: as set).
    collate:
        ``collate(records) -> tensor``: the user's way from a batch of records as given
        (a list of texts, token lists, DataFrame rows …) to the module's input, e.g. a
        tokenizer that pads. Without it the records must be arrays.
    """

    def __init__(
        self,
        module: Any,
        *,
        outputs: Literal["logits", "probabilities", "log-probabilities"] = "logits",
        batch_size: int = PREDICT_BATCH,
        threads: int | None = None,
        collate: Callable[[Any], Any] | None = None,
    ) -> None:
        import torch

        if not isinstance(module, torch.nn.Module):
            raise ConfigError(f"TorchModel wraps a torch.nn.Module, not {type(module).__name__}")
        if outputs not in _OUTPUTS:
            raise ConfigError(f"TorchModel outputs={outputs!r}: use one of {', '.join(_OUTPUTS)}")
        if batch_size < 1:
            raise ConfigError(f"TorchModel batch_size={batch_size}: must be at least 1")
        if collate is not None and not callable(collate):
            raise ConfigError(f"TorchModel collate={collate!r}: pass a function records -> tensor")
        self.module, self.outputs, self.batch_size = module, outputs, batch_size
        self.threads, self.collate = threads, collate
        self.classes: ClassMap | None = None
        self.who = "the target"

    def bind(self, classes: ClassMap, who: str) -> TorchModel:
        self.classes, self.who = classes, who
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        import torch

        classes = self.classes
        if self.collate is None:
            X = _as_array(X, self.who)
        try:
            device = next(self.module.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
        was_training = self.module.training
        self.module.eval()
        parts = []
        threads = contextlib.nullcontext()
        if self.threads is not None:
            from miaudit.models.torch_batched import torch_threads

            threads = torch_threads(self.threads)
        try:
            with torch.inference_mode(), threads:
                for start in range(0, len(X), self.batch_size):
                    part = take(X, np.arange(start, min(len(X), start + self.batch_size)))
                    if self.collate is None:
                        batch = _tensor(part)
                    else:
                        batch = collated(self.collate, part, f"{self.who}'s collate")
                    parts.append(self.module(batch.to(device)).detach().float().cpu().numpy())
        except MiauditError:
            raise
        except Exception as exc:
            shape = f"of shape {X.shape[1:]} and dtype {X.dtype}" if hasattr(X, "dtype") else ""
            raise ModelError(
                f"{self.who} (a {type(self.module).__name__}) failed on records {shape}: "
                f"{type(exc).__name__}: {_first_line(exc)}"
            ) from exc
        finally:
            self.module.train(was_training)
        out = np.concatenate(parts) if parts else np.zeros((0, classes.n_classes))
        out = out.astype(np.float64)
        if out.ndim != 2 or out.shape[1] != classes.n_classes:
            raise ModelError(
                f"{self.who} returned outputs of shape {out.shape[1:]} per batch; the data has "
                f"{classes.n_classes} classes: one output per class is needed"
            )
        if self.outputs == "logits":
            rows_are_probabilities = (
                len(out) > 0 and (out >= 0).all() and np.allclose(out.sum(1), 1.0, atol=1e-4)
            )
            if rows_are_probabilities:
                raise ModelError(
                    f"{self.who} returns probabilities (every row is non-negative and sums to "
                    "1), but miaudit takes a module's outputs for logits: wrap it as "
                    "miaudit.TorchModel(module, outputs='probabilities')"
                )
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        elif self.outputs == "log-probabilities":
            out = np.exp(out)
        return _checked(out, len(X), classes, self.who)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _as_array(X: Any, who: str) -> np.ndarray:
    if hasattr(X, "iloc"):
        raise ConfigError(
            f"{who} is a torch module, which reads arrays, but the data is a DataFrame: pass "
            "data=(X, y) with the arrays the module was trained on, or a collate function "
            "that turns rows into tensors (TorchModel(module, collate=...))"
        )
    X = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if X.dtype == object or X.dtype.kind in "USV":
        raise ConfigError(
            f"{who} is a torch module, which reads tensors, but the records are text or "
            "other objects: pass the function that turns a batch of them into the "
            "module's input as collate= (TorchModel(module, collate=tokenize), "
            "TorchTrainer(..., collate=tokenize))"
        )
    return X


def collated(collate: Callable[[Any], Any], records: Any, who: str):
    """``collate(records)`` as a tensor with one row per record.

    Raises
    ------
    ModelError
        The hook raised (naming the first record it fails on) or returned something
        that is not a tensor or array with one row per record.
    """
    import torch

    if isinstance(records, np.ndarray) and records.dtype == object and records.ndim == 1:
        records = list(records)  # a list of texts, as tokenizers take them
    try:
        out = collate(records)
    except MiauditError:
        raise
    except Exception as exc:
        raise ModelError(
            f"{who} ({_name(collate)}) raised {type(exc).__name__} on "
            f"{_failing_record(collate, records)}: {_first_line(exc)}"
        ) from exc
    if isinstance(out, np.ndarray):
        out = _tensor(out)
    if not isinstance(out, torch.Tensor):
        raise ModelError(
            f"{who} ({_name(collate)}) returned a {type(out).__name__}; it must return a "
            "torch tensor (or NumPy array) with one row per record"
        )
    if out.ndim == 0 or out.shape[0] != len(records):
        raise ModelError(
            f"{who} ({_name(collate)}) returned shape {tuple(out.shape)} for {len(records)} "
            "records; it must return one row per record, in their order"
        )
    return out


def _failing_record(collate: Callable[[Any], Any], records: Any) -> str:
    """The first record ``collate`` fails on alone, as a message names it."""
    for i in range(min(len(records), 10_000)):
        one = take(records, np.array([i]))
        try:
            collate(one)
        except Exception:
            value = one.iloc[0].to_dict() if hasattr(one, "iloc") else one[0]
            return f"record {i} of the batch ({_short(value)})"
    return f"a batch of {len(records)} records (each alone passes)"


def _tensor(X: np.ndarray):
    import torch

    if np.issubdtype(X.dtype, np.floating) and X.dtype != np.float32:
        X = X.astype(np.float32)
    X = np.ascontiguousarray(X)
    if not X.flags.writeable:  # a worker's memory-mapped records: torch wants its own copy
        X = X.copy()
    return torch.from_numpy(X)


class FunctionModel:
    """A callable ``records -> probabilities`` as a predictor."""

    def __init__(self, fn: Callable[[Any], Any], classes: ClassMap, who: str = "the target"):
        self.fn, self.classes, self.who = fn, classes, who

    def predict_proba(self, X: Any) -> np.ndarray:
        try:
            P = self.fn(X)
        except MiauditError:
            raise
        except Exception as exc:
            raise ModelError(
                f"{self.who} ({_name(self.fn)}) raised {type(exc).__name__}: {_first_line(exc)}"
            ) from exc
        return _checked(P, len(X), self.classes, self.who)


def _torch_module(obj: Any) -> bool:
    """Whether ``obj`` is a torch module (torch is imported only if it already is: a
    module's class imported it)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def could_predict(obj: Any) -> bool:
    """Whether :func:`as_predictor` takes ``obj`` for a model (before it knows the data):
    a torch module, something with ``predict_proba``, or a function. ``None``, a class,
    text, a number and the like are no model."""
    if obj is None or isinstance(obj, type | str | bytes | int | float | complex):
        return False
    return (
        isinstance(obj, TorchModel)
        or _torch_module(obj)
        or hasattr(obj, "predict_proba")
        or (callable(obj) and not hasattr(obj, "fit"))
    )


def could_train(obj: Any) -> bool:
    """Whether :func:`make_family` takes ``obj`` for a trainer (a torch module is left to
    it, which says what to pass instead)."""
    if obj is None or isinstance(obj, type | str | bytes | int | float | complex):
        return False
    return (
        isinstance(obj, TorchTrainer | ModelFamily)
        or (hasattr(obj, "fit") and hasattr(obj, "get_params"))
        or callable(obj)
    )


def as_predictor(obj: Any, classes: ClassMap, who: str = "the target") -> Any:
    """The user's model as a predictor of the data's classes on the user's records.

    Raises
    ------
    ConfigError
        If ``obj`` is neither an estimator with ``predict_proba``, a torch module,
        nor a callable; or an estimator that is not fitted.
    """
    import torch

    if isinstance(obj, TorchModel):
        return obj.bind(classes, who)
    if isinstance(obj, torch.nn.Module):
        return TorchModel(obj).bind(classes, who)
    if isinstance(obj, type):
        raise ConfigError(f"{who}: got the class {obj.__name__}; pass a fitted instance of it")
    if hasattr(obj, "predict_proba"):
        if hasattr(obj, "fit") and hasattr(obj, "get_params"):
            from sklearn.exceptions import NotFittedError
            from sklearn.utils.validation import check_is_fitted

            try:
                check_is_fitted(obj)
            except NotFittedError:
                raise ConfigError(
                    f"{who}: {type(obj).__name__} is not fitted; fit it first, or pass it as "
                    f"trainer= to audit its training recipe ({key('game', 'recipe')})"
                ) from None
        return EstimatorModel(obj, classes, who)
    if callable(obj) and not hasattr(obj, "fit"):
        return FunctionModel(obj, classes, who)
    raise ConfigError(
        f"{who}: a {type(obj).__name__} is not a model miaudit can query; pass a fitted "
        "estimator (with predict_proba), a torch.nn.Module, a callable records -> "
        "probabilities, a recipe name, a saved model's folder or a prediction API's URL"
    )


class RecordAdapter:
    """A predictor on the user's records, queried with miaudit's encoded records."""

    def __init__(self, predictor: Any, convert: Callable[[np.ndarray], Any]) -> None:
        self.predictor, self.convert = predictor, convert

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.predictor.predict_proba(self.convert(X))


# --------------------------------------------------------------------------- families


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Python's, NumPy's and PyTorch's global generators seeded from ``seed``, and
    restored afterwards (the user's code may draw from them)."""
    import torch

    # The legacy global NumPy generator on purpose: it is what the user's code draws from.
    state = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())  # noqa: NPY002
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    random.seed(derive_seed(seed))
    np.random.seed(derive_seed(seed, bits=32))  # noqa: NPY002
    torch.manual_seed(derive_seed(seed))
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])  # noqa: NPY002
        torch.random.set_rng_state(state[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


class UserFamily(ModelFamily):
    """A family of the user's code: one model at a time, keyed by the code itself."""

    parallel = "processes"

    def __init__(self, cache_key: str | None = None) -> None:
        self.cache_key = cache_key
        self._identity: tuple[Any, str] | None = None

    def _parts(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def identity(self) -> dict[str, Any] | None:
        if self._identity is None:
            self._identity = code_identity(*self._parts())
        code, _ = self._identity
        if code is None and self.cache_key is None:
            return None
        return {"trainer": {"kind": type(self).__name__, "code": code, "key": self.cache_key}}

    def uncached_reason(self) -> str:
        if self._identity is None:
            self._identity = code_identity(*self._parts())
        return (
            f"no honest cache key can be derived for {self.describe()['model']} "
            f"({self._identity[1]}); its models are trained every time (pass cache_key= to "
            "cache them under a name you change when the code changes)"
        )

    def code_modules(self) -> set[str]:
        return user_modules(*self._parts())

    def run_user_code(self, what: str, call: Callable[[], Any]) -> Any:
        """Call the user's code, turning what it raises into one line that names it."""
        try:
            return call()
        except MiauditError:
            raise
        except Exception as exc:
            raise ModelError(
                f"{what}: {self.describe()['model']} raised {type(exc).__name__}: "
                f"{_first_line(exc)}"
            ) from exc


class EstimatorFamily(UserFamily):
    """Clones of a scikit-learn estimator or Pipeline, each fitted on the user's records."""

    takes = "raw"
    labels = "values"

    def __init__(self, estimator: Any, classes: ClassMap, cache_key: str | None = None) -> None:
        super().__init__(cache_key)
        from sklearn.base import clone

        try:
            clone(estimator)
        except Exception as exc:
            raise ConfigError(
                f"trainer: {type(estimator).__name__} cannot be cloned by sklearn.base.clone "
                f"({_first_line(exc)}); pass an estimator whose parameters are set in __init__"
            ) from None
        self.estimator, self.classes = estimator, classes

    def _parts(self) -> tuple[Any, ...]:
        return (self.estimator,)

    def describe(self) -> dict[str, Any]:
        from sklearn.base import clone

        # The clone each model fits, every parameter in full (a repr shortens), and its
        # random_state parameters as fit_one sets them: the user's value never reaches it.
        fitted = clone(self.estimator)
        seeded_names = _seed_parameters(fitted)
        if seeded_names:
            fitted.set_params(**dict.fromkeys(seeded_names, SEEDED_PER_MODEL))
        return {"model": f"clone of {type(self.estimator).__name__}",
                "trainer": _estimator_record(fitted)}  # fmt: skip

    def fit_one(self, X, y, n_classes, seed, *, device="cpu"):
        from sklearn.base import clone

        estimator = clone(self.estimator)
        states = dict.fromkeys(_seed_parameters(estimator), derive_seed(seed, bits=32))
        if states:
            estimator.set_params(**states)
        with seeded(seed):
            self.run_user_code("fitting a clone", lambda: estimator.fit(X, y))
        return EstimatorModel(estimator, self.classes, who=f"a clone of {type(estimator).__name__}")

    def __repr__(self) -> str:
        return f"EstimatorFamily({_short(self.estimator)})"


#: What ``results.json`` records for a ``random_state`` that :class:`EstimatorFamily`
#: sets from each model's seed.
SEEDED_PER_MODEL = "seeded per model"


def _seed_parameters(estimator: Any) -> list[str]:
    """The ``random_state`` parameters of ``estimator`` and of the estimators in it."""
    return [
        name
        for name in estimator.get_params(deep=True)
        if name == "random_state" or name.endswith("__random_state")
    ]


def _estimator_record(estimator: Any) -> dict[str, Any]:
    """An estimator as JSON: its class and every parameter, estimators in it likewise."""
    cls = type(estimator)
    params = estimator.get_params(deep=False)
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "params": {str(k): _param_record(v) for k, v in sorted(params.items())},
    }


def _param_record(value: Any) -> Any:
    """A parameter's value as JSON (nested estimators, steps and lists followed)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else repr(value)
    if hasattr(value, "get_params") and not isinstance(value, type):
        return _estimator_record(value)
    if isinstance(value, list | tuple):
        return [_param_record(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _param_record(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        # Small arrays (categories, class weights) in full; a large one by its shape.
        if value.size <= 100:
            return _param_record(value.tolist())
        return f"array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, type) or callable(value):
        named = getattr(value, "__qualname__", None) or type(value).__qualname__
        return f"{getattr(value, '__module__', None) or type(value).__module__}.{named}"
    return repr(value)


class FunctionTrainer(UserFamily):
    """A callable ``fit(X, y, seed) -> predictor`` (a fitted estimator, a module or a
    callable ``records -> probabilities``)."""

    takes = "raw"
    labels = "values"

    def __init__(
        self, fit: Callable[..., Any], classes: ClassMap, cache_key: str | None = None
    ) -> None:
        super().__init__(cache_key)
        _check_signature(fit, ("X", "y", "seed"), "trainer", "fit(X, y, seed) -> model")
        self.fn, self.classes = fit, classes

    def _parts(self) -> tuple[Any, ...]:
        return (self.fn,)

    def describe(self) -> dict[str, Any]:
        return {
            "model": f"{_name(self.fn)}(X, y, seed)",
            "trainer": {"fit": callable_record(self.fn)},
        }

    def fit_one(self, X, y, n_classes, seed, *, device="cpu"):
        with seeded(seed):
            model = self.run_user_code(f"{_name(self.fn)}", lambda: self.fn(X, y, int(seed)))
        return as_predictor(model, self.classes, who=f"a model of {_name(self.fn)}")


def _check_signature(fn: Any, args: tuple[str, ...], what: str, expected: str) -> None:
    if not callable(fn):
        raise ConfigError(f"{what}: {type(fn).__name__} is not callable; pass {expected}")
    try:
        inspect.signature(fn).bind(*args)
    except TypeError:
        raise ConfigError(
            f"{what}: {_name(fn)}{inspect.signature(fn)} cannot be called as {expected}"
        ) from None
    except ValueError:  # no signature (a builtin): let the call say
        pass


class TorchTrainer(UserFamily):
    """Train the user's own PyTorch module with the user's own loop, one model at a time.

    Parameters
    ----------
    model_fn:
        ``model_fn() -> nn.Module``: a fresh, untrained network.
    train_fn:
        ``train_fn(model, X, y, generator)``: the user's training loop. ``X`` is a
        tensor of the records (floating arrays as ``float32``, integer arrays in their
        own dtype), ``y`` an ``int64`` tensor of class indices ``0 .. C-1`` (the data's
        labels in sorted order), ``generator`` a ``torch.Generator`` seeded for this
        model (use it to shuffle). It trains ``model`` in place. When omitted, the
        plain loop of :meth:`default_loop` runs with the settings below.
    epochs, lr, batch_size, optimizer, weight_decay:
        The default loop's settings (``optimizer``: ``"adam"`` or ``"sgd"``, with
        momentum 0.9). Not with a ``train_fn`` of your own, which never sees them: set
        them inside it.
    device:
        Where to train (``"cpu"``, ``"cuda"``); batches are moved there.
    outputs:
        What the module returns: ``"logits"`` (default), ``"probabilities"``,
        ``"log-probabilities"``.
    collate:
        ``collate(records) -> tensor``: the user's way from records as given (texts,
        token lists, objects, DataFrame rows) to the module's input, such as a tokenizer
        that pads. The training records pass through it once, as one batch, before the
        loop (``train_fn`` gets its tensor as ``X``); predictions call it per batch.
        Without it the records must be arrays.
    dp_epsilon, dp_delta, max_grad_norm, dp_accountant:
        Train with DP-SGD (:mod:`miaudit.models.dp`): the default loop becomes Opacus's
        ``PrivacyEngine.make_private`` of the module, its optimiser and a Poisson-sampled
        loader (rate ``batch_size / n``), with the noise Opacus's accountant sets for
        ``epochs`` at (``dp_epsilon``, ``dp_delta``; default ``1 / (2 n)``) and each
        record's gradient clipped to ``max_grad_norm``. The module must be one Opacus
        can take (``opacus.validators.ModuleValidator``: no batch norm). Not with a
        ``train_fn`` of your own: call ``make_private`` in it instead.
    cache_key:
        A name to cache under when no honest key can be derived from the code.

    Each model's global random generators are seeded from its seed before
    ``model_fn()`` runs, so its initial weights depend on that seed alone; on the CPU it
    trains and answers on one PyTorch thread, so its numbers do not depend on which
    process or worker ran it (``--workers`` processes train models side by side).
    """

    takes = "arrays"
    labels = "codes"

    def __init__(
        self,
        model_fn: Callable[[], Any],
        train_fn: Callable[..., Any] | None = None,
        *,
        epochs: int = 10,
        lr: float = 1e-3,
        batch_size: int = 64,
        optimizer: Literal["adam", "sgd"] = "adam",
        weight_decay: float = 0.0,
        device: str = "cpu",
        outputs: Literal["logits", "probabilities", "log-probabilities"] = "logits",
        dp_epsilon: float | None = None,
        dp_delta: float | None = None,
        max_grad_norm: float = 1.0,
        dp_accountant: Literal["rdp", "prv"] = "rdp",
        cache_key: str | None = None,
        collate: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(cache_key)
        _check_signature(model_fn, (), "TorchTrainer model_fn", "model_fn() -> nn.Module")
        if collate is not None:
            _check_signature(collate, ("records",), "TorchTrainer collate", "collate(records)")
            self.takes = "raw"  # the records as given: collate turns them into tensors
        self.collate = collate
        if train_fn is not None:
            _check_signature(
                train_fn, ("model", "X", "y", "generator"), "TorchTrainer train_fn",
                "train_fn(model, X, y, generator)",
            )  # fmt: skip
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"TorchTrainer {name}={value!r}: must be a positive integer")
        if not (isinstance(lr, int | float) and lr > 0):
            raise ConfigError(f"TorchTrainer lr={lr!r}: must be a positive number such as 1e-3")
        if optimizer not in ("adam", "sgd"):
            raise ConfigError(f"TorchTrainer optimizer={optimizer!r}: use 'adam' or 'sgd'")
        if outputs not in _OUTPUTS:
            raise ConfigError(f"TorchTrainer outputs={outputs!r}: use one of {', '.join(_OUTPUTS)}")
        self.model_fn, self.train_fn = model_fn, train_fn
        self.epochs, self.lr, self.batch_size = epochs, float(lr), batch_size
        self.optimizer, self.weight_decay = optimizer, float(weight_decay)
        self.device, self.outputs = device, outputs
        self.classes: ClassMap | None = None
        self.dp: Recipe | None = None
        dp_given = (dp_epsilon, dp_delta, max_grad_norm, dp_accountant) != (None, None, 1.0, "rdp")
        if dp_given:
            if train_fn is not None:
                raise ConfigError(
                    "TorchTrainer dp_epsilon: DP-SGD runs in the default loop; with a train_fn "
                    "of your own, make it private there (opacus.PrivacyEngine.make_private)"
                )
            # The same validation, plan and accountant as the built-in recipes.
            try:
                self.dp = Recipe(
                    model="mlp", epochs=epochs, batch_size=batch_size, dp_epsilon=dp_epsilon,
                    dp_delta=dp_delta, max_grad_norm=max_grad_norm, dp_accountant=dp_accountant,
                )  # fmt: skip
            except ValidationError as err:
                raise ConfigError(flatten_validation_error(err, prefix="TorchTrainer.")) from None
        if train_fn is not None:
            self._refuse_loop_settings(
                epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
                weight_decay=weight_decay,
            )  # fmt: skip

    @staticmethod
    def _refuse_loop_settings(**given: Any) -> None:
        """Refuse a default-loop setting given with the user's own ``train_fn``: it would
        be ignored, and a record of it would claim a training that never happened."""
        defaults = inspect.signature(TorchTrainer.__init__).parameters
        for name, value in given.items():
            if value != defaults[name].default:
                raise ConfigError(
                    f"TorchTrainer {name}={value!r} sets the default loop, which your "
                    "train_fn replaces: set it inside train_fn, or drop train_fn"
                )

    def bind(self, classes: ClassMap) -> TorchTrainer:
        self.classes = classes
        return self

    def _settings(self) -> dict[str, Any]:
        """Every setting, for the cache key (unchanged since keys were first derived, so
        models cached before stay cached; with a ``train_fn`` the loop's are defaults)."""
        settings = {
            "epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size,
            "optimizer": self.optimizer, "weight_decay": self.weight_decay,
            "device": self.device, "outputs": self.outputs,
        }  # fmt: skip
        if self.dp is not None:
            settings.update({k: getattr(self.dp, k) for k in sorted(DP_FIELDS)})
        return settings

    def privacy(self, n_train: int) -> Any:
        from miaudit.models import dp

        return None if self.dp is None else dp.plan(self.dp, n_train)

    def _parts(self) -> tuple[Any, ...]:
        parts = (self.model_fn, self.train_fn, self._settings())
        # Keys of trainers without a collate stay as they were before it existed.
        return parts if self.collate is None else (*parts, self.collate)

    def describe(self) -> dict[str, Any]:
        """The model's name and, as ``trainer``, what trained it: the user's functions
        (module, name, code digest) and only the settings that reached the training."""
        trainer: dict[str, Any] = {"model_fn": callable_record(self.model_fn)}
        if self.train_fn is not None:
            # The user's loop gets the module, the records and a generator: nothing else.
            trainer["train_fn"] = callable_record(self.train_fn)
        else:
            trainer["train_fn"] = "the default loop"
            trainer.update(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                           optimizer=self.optimizer, weight_decay=self.weight_decay)  # fmt: skip
            if self.optimizer == "sgd":
                trainer["momentum"] = 0.9  # fixed in the default loop
            if self.dp is not None:
                trainer.update({k: getattr(self.dp, k) for k in sorted(DP_FIELDS)})
        if self.collate is not None:
            trainer["collate"] = callable_record(self.collate)
        # Both take effect either way: where the module trains, how its outputs are read.
        trainer.update(device=self.device, outputs=self.outputs)
        return {"model": f"TorchTrainer({_name(self.model_fn)})", "trainer": trainer}

    def default_loop(self, model: Any, X: Any, y: Any, generator: Any) -> None:
        """Minibatches of ``batch_size`` in an order drawn from ``generator``, cross-entropy
        on the module's outputs (logits), ``epochs`` passes, Adam or SGD (momentum 0.9)
        at ``lr`` with ``weight_decay``."""
        import torch
        import torch.nn.functional as F

        params = model.parameters()
        if self.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=self.lr, momentum=0.9, weight_decay=self.weight_decay)
        device = next(model.parameters()).device
        model.train()

        def step(xb: Any, yb: Any) -> None:
            out = model(xb.to(device))
            if self.outputs == "probabilities":
                loss = F.nll_loss(out.clamp_min(1e-12).log(), yb.to(device))
            elif self.outputs == "log-probabilities":
                loss = F.nll_loss(out, yb.to(device))
            else:
                loss = F.cross_entropy(out, yb.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        if self.dp is not None:
            model, opt, loader = self._private(model, opt, X, y, generator)
            for _ in range(self.epochs):
                for xb, yb in loader:
                    if len(xb):  # Poisson sampling can draw an empty minibatch
                        step(xb, yb)
            model.remove_hooks()  # the module trained in place; it answers plainly now
            return
        for _ in range(self.epochs):
            order = torch.randperm(len(X), generator=generator)
            for start in range(0, len(X), self.batch_size):
                batch = order[start : start + self.batch_size]
                step(X[batch], y[batch])

    def _private(self, model: Any, opt: Any, X: Any, y: Any, generator: Any) -> tuple:
        """Opacus's private module, optimiser and Poisson-sampled loader, with the noise
        of :func:`miaudit.models.dp.plan` (the same accountant as the recipes')."""
        import torch
        from opacus import PrivacyEngine
        from opacus.validators import ModuleValidator
        from torch.utils.data import DataLoader, TensorDataset

        from miaudit.models import dp

        problems = ModuleValidator.validate(model, strict=False)
        if problems:
            raise ConfigError(
                f"TorchTrainer dp_epsilon: Opacus cannot train {_name(self.model_fn)}() "
                f"privately ({_first_line(problems[0])}): replace those layers (e.g. "
                "BatchNorm by GroupNorm; opacus.validators.ModuleValidator.fix)"
            )
        plan = dp.plan(self.dp, len(X))
        # make_private samples each record at 1 / len(loader): the plan's rate.
        loader = DataLoader(TensorDataset(X, y), batch_size=self.batch_size, generator=generator)
        noise = torch.Generator(device=next(model.parameters()).device)
        noise.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        with dp.quiet():
            private, opt, loader = PrivacyEngine(accountant=plan.accountant).make_private(
                module=model, optimizer=opt, data_loader=loader,
                noise_multiplier=plan.noise_multiplier, max_grad_norm=plan.max_grad_norm,
                poisson_sampling=True, noise_generator=noise,
            )  # fmt: skip
        return private, opt, loader

    def fit_one(self, X, y, n_classes, seed, *, device="cpu"):
        import torch

        from miaudit.models.torch_batched import torch_threads

        if self.collate is None:
            X = _as_array(X, "TorchTrainer")
        # One intra-op thread, wherever it runs: a model's numbers then do not depend on
        # the process, worker or machine load (parallelism comes from --workers).
        with seeded(seed), torch_threads(1):
            model = self.run_user_code(f"{_name(self.model_fn)}()", self.model_fn)
            if not isinstance(model, torch.nn.Module):
                raise ConfigError(
                    f"TorchTrainer model_fn {_name(self.model_fn)}() returned a "
                    f"{type(model).__name__}, not a torch.nn.Module"
                )
            model.to(self.device)
            generator = torch.Generator().manual_seed(derive_seed(seed))
            inputs = (
                _tensor(X)
                if self.collate is None
                else collated(self.collate, X, "TorchTrainer collate")
            )
            tensors = (inputs, torch.from_numpy(np.asarray(y, dtype=np.int64)))
            loop = self.train_fn or self.default_loop
            self.run_user_code(
                f"training with {_name(loop)}", lambda: loop(model, *tensors, generator)
            )
        return self._predictor(model)

    def _predictor(self, model: Any) -> TorchModel:
        classes = self.classes or ClassMap(np.arange(0), [])
        return TorchModel(model, outputs=self.outputs, threads=1, collate=self.collate).bind(
            classes, who=f"a model of {_name(self.model_fn)}"
        )

    @property
    def can_save(self) -> bool:
        return True

    def save(self, model: TorchModel, folder: Path) -> None:
        from safetensors.torch import save_file

        from miaudit.files import PRIVATE_FILE, private_dir

        private_dir(folder)
        state = {k: v.detach().cpu().contiguous() for k, v in model.module.state_dict().items()}
        save_file(state, str(folder / "weights.safetensors"))
        os.chmod(folder / "weights.safetensors", PRIVATE_FILE)

    def load(self, folder: Path, device: str = "cpu") -> TorchModel:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        with seeded(0):
            module = self.model_fn()
        try:
            module.load_state_dict(load_file(str(folder / "weights.safetensors")))
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise ModelError(
                f"{folder}: the saved weights do not fit {_name(self.model_fn)}() "
                f"({_first_line(exc)}): delete the folder to train again"
            ) from None
        return self._predictor(module.to(self.device))

    def __repr__(self) -> str:
        # Its name alone: describe() walks the user's code for the digests.
        return f"TorchTrainer({_name(self.model_fn)})"


def make_family(trainer: Any, classes: ClassMap, cache_key: str | None = None) -> ModelFamily:
    """The model family for a user's ``trainer``.

    Raises
    ------
    ConfigError
        A trainer that is none of the accepted kinds, or a callable of the wrong shape.
    """
    if isinstance(trainer, TorchTrainer):
        if cache_key is not None and trainer.cache_key is None:
            trainer.cache_key = cache_key
        return trainer.bind(classes)
    if isinstance(trainer, ModelFamily):
        return trainer
    if isinstance(trainer, type):
        raise ConfigError(f"trainer: got the class {trainer.__name__}; pass an instance of it")
    if hasattr(trainer, "fit") and hasattr(trainer, "get_params"):
        return EstimatorFamily(trainer, classes, cache_key)
    import torch

    if isinstance(trainer, torch.nn.Module):
        raise ConfigError(
            "trainer: a torch module says what to train but not how: pass "
            "miaudit.TorchTrainer(model_fn, train_fn) (model_fn builds a fresh module)"
        )
    if callable(trainer):
        return FunctionTrainer(trainer, classes, cache_key)
    raise ConfigError(
        f"trainer: a {type(trainer).__name__} cannot train models; pass an unfitted "
        "scikit-learn estimator or Pipeline, miaudit.TorchTrainer(model_fn, train_fn), or a "
        "function fit(X, y, seed) -> model"
    )
