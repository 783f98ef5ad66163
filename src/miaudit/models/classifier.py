"""Trained models as the rest of the audit sees them: class probabilities, nothing more.

Position in the pipeline: ``splits -> target/shadows (training) -> signals``.
:func:`train_models` turns K training sets (index arrays from the splits stage)
into a :class:`ModelSet`, whose ``predict_proba`` gives the ``(K, n, C)`` array the
signals stage starts from. :class:`Classifier` is one such model, the local kind
of target: it can be saved, loaded and queried on its own. Each kind of
:class:`Classifier` writes itself into a model folder (:meth:`Classifier.save`);
:mod:`miaudit.models.io` reads the folder back and says its layout.
"""

from __future__ import annotations

import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
import torch
from safetensors.torch import save_file
from sklearn.base import ClassifierMixin

from miaudit.data.dataset import Dataset
from miaudit.errors import ModelError
from miaudit.files import PRIVATE_FILE, private_dir
from miaudit.models.recipe import Recipe
from miaudit.models.sklearn_models import aligned_proba, dump_estimator, fit_estimator
from miaudit.models.torch_batched import (
    GPU_MAX_STACK,
    GPU_MEMORY_SHARE,
    GPU_OVERHEAD,
    MAX_STACK,
    StackedNet,
    resolve_device,
    stack_size,
    train_stack,
    training_bytes,
)

#: A model folder's files (:mod:`miaudit.models.io` describes the layout and reads it).
MODEL_FORMAT = "miaudit-model"
MODEL_VERSION = 1
MODEL_JSON = "model.json"
TORCH_WEIGHTS = "weights.safetensors"
SKLEARN_WEIGHTS = "model.skops"


class _HasInputs(Protocol):
    input_shape: tuple[int, ...]
    n_classes: int


def _shape_message(expected: tuple[int, ...], got: tuple[int, ...]) -> str:
    if len(expected) == 1:
        shape = "" if len(got) == 1 else f" (records of shape {got})"
        what = f"model expects {expected[0]} features, data has {math.prod(got)}{shape}"
    else:
        what = f"model expects records of shape {expected}, data has {got}"
    return f"{what}: was it trained on another data set or label?"


def check_input(model: _HasInputs, data: Dataset | tuple[int, ...]) -> None:
    """Raise :class:`ModelError` unless ``model`` fits ``data``.

    Parameters
    ----------
    model:
        A :class:`Classifier` or :class:`ModelSet`.
    data:
        A :class:`~miaudit.data.dataset.Dataset` (record shape and class count are
        checked) or the shape of one record (only the shape is checked).

    Raises
    ------
    ModelError
        ``"model expects 512 features, data has 64: was it trained on another data
        set or label?"``, or the same for the number of classes.
    """
    shape = data.input_shape if isinstance(data, Dataset) else tuple(int(s) for s in data)
    if tuple(model.input_shape) != shape:
        raise ModelError(_shape_message(tuple(model.input_shape), shape))
    if isinstance(data, Dataset) and data.n_classes != model.n_classes:
        raise ModelError(
            f"model predicts {model.n_classes} classes, data has {data.n_classes}: "
            f"was it trained on another data set or label?"
        )


def _as_records(model: _HasInputs, X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim < 2 or tuple(X.shape[1:]) != tuple(model.input_shape):
        got = tuple(X.shape[1:]) if X.ndim >= 2 else tuple(X.shape)
        raise ModelError(_shape_message(tuple(model.input_shape), got))
    return X.astype(np.float32, copy=False)


class Classifier(ABC):
    """One trained model: ``predict_proba(X) -> (n, C)`` with rows summing to 1.

    Attributes
    ----------
    recipe:
        How it was trained.
    input_shape:
        Shape of one record it accepts.
    n_classes:
        Number of classes it predicts.
    class_names:
        Names of the classes, when known (written to ``model.json``).
    dataset_fingerprint:
        :meth:`Dataset.fingerprint` of the data it was trained from, when known.
    """

    framework: ClassVar[str]

    def __init__(
        self,
        recipe: Recipe,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        class_names: Sequence[str] | None = None,
        dataset_fingerprint: str | None = None,
    ) -> None:
        self.recipe = recipe
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_classes = int(n_classes)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.dataset_fingerprint = dataset_fingerprint

    @abstractmethod
    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        """Log class probabilities ``(n, n_classes)`` ``float32``, all finite."""

    @abstractmethod
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` ``float32``; rows sum to 1."""

    def save(
        self,
        path: str | Path,
        *,
        class_names: Sequence[str] | None = None,
        dataset_fingerprint: str | None = None,
    ) -> Path:
        """Write this model to the directory ``path`` (created if missing, files
        replaced), as :func:`miaudit.models.load_model` reads it back; returns the
        directory. ``class_names`` and ``dataset_fingerprint`` go into ``model.json``
        and default to the model's own (:func:`miaudit.models.save_model`)."""
        path = Path(path)
        names = class_names if class_names is not None else self.class_names
        if names is not None and len(names) != self.n_classes:
            raise ModelError(
                f"{len(names)} class names given for a model of {self.n_classes} classes: "
                f"pass one name per class"
            )
        private_dir(path)
        self._write_weights(path)
        meta = {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "framework": self.framework,
            "recipe": self.recipe.settings(),
            "input_shape": list(self.input_shape),
            "n_classes": self.n_classes,
            "class_names": None if names is None else [str(n) for n in names],
            "dataset_fingerprint": dataset_fingerprint or self.dataset_fingerprint,
        }
        # Last: an interrupted save leaves a folder that fails to load, with a message.
        (path / MODEL_JSON).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        for name in (MODEL_JSON, TORCH_WEIGHTS, SKLEARN_WEIGHTS):
            if (path / name).is_file():
                os.chmod(path / name, PRIVATE_FILE)  # weights can hold what the model memorised
        return path

    def _write_weights(self, folder: Path) -> None:
        """Write the weights into the model folder ``folder`` (each kind its own file)."""
        raise TypeError(f"cannot save a {type(self).__name__}")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.recipe.model!r}, "
            f"input_shape={self.input_shape}, n_classes={self.n_classes})"
        )


class TorchClassifier(Classifier):
    """One ``mlp``/``cnn`` network (a stack of one)."""

    framework = "torch"

    def __init__(
        self,
        net: StackedNet,
        *,
        class_names: Sequence[str] | None = None,
        dataset_fingerprint: str | None = None,
    ) -> None:
        if net.n_models != 1:
            raise ValueError("a TorchClassifier holds exactly one network")
        super().__init__(
            net.recipe,
            net.input_shape,
            net.n_classes,
            class_names=class_names,
            dataset_fingerprint=dataset_fingerprint,
        )
        self.net = net

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        return self.net.predict_log_proba(_as_records(self, X))[0]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.net.predict_proba(_as_records(self, X))[0]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network's tensors in ``torch.nn.Linear``/``Conv2d`` layout, on the CPU."""
        return self.net.state_dict(0)

    def _write_weights(self, folder: Path) -> None:
        save_file(self.state_dict(), str(folder / TORCH_WEIGHTS))


class SklearnClassifier(Classifier):
    """One fitted scikit-learn estimator with class-aligned, floored probabilities."""

    framework = "sklearn"

    def __init__(
        self,
        estimator: ClassifierMixin,
        recipe: Recipe,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        class_names: Sequence[str] | None = None,
        dataset_fingerprint: str | None = None,
    ) -> None:
        super().__init__(
            recipe,
            input_shape,
            n_classes,
            class_names=class_names,
            dataset_fingerprint=dataset_fingerprint,
        )
        self.estimator = estimator

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return aligned_proba(self.estimator, _as_records(self, X), self.n_classes).astype(
            np.float32
        )

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        p = aligned_proba(self.estimator, _as_records(self, X), self.n_classes)
        return np.log(p).astype(np.float32)

    def _write_weights(self, folder: Path) -> None:
        dump_estimator(self.estimator, folder / SKLEARN_WEIGHTS)


class ModelSet:
    """K trained models of one recipe, queried together.

    Returned by :func:`train_models`; model ``k`` was trained on ``train_sets[k]``
    with ``seeds[k]``.
    """

    def __init__(
        self,
        recipe: Recipe,
        input_shape: tuple[int, ...],
        n_classes: int,
        parts: Sequence[tuple[Sequence[int], StackedNet | Sequence[ClassifierMixin]]],
    ) -> None:
        self.recipe = recipe
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_classes = int(n_classes)
        self._parts = [(list(models), part) for models, part in parts]
        # model k -> (part, position within the part)
        self._where = {
            k: (p, j) for p, (models, _) in enumerate(self._parts) for j, k in enumerate(models)
        }

    @property
    def n_models(self) -> int:
        return len(self._where)

    def __len__(self) -> int:
        return self.n_models

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        """Log class probabilities of every model, ``(K, n, C)`` ``float32``, finite."""
        return self._predict(X, log=True)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of every model, ``(K, n, C)`` ``float32``; rows sum to 1."""
        return self._predict(X, log=False)

    def _predict(self, X: np.ndarray, *, log: bool) -> np.ndarray:
        X = _as_records(self, X)
        out = np.empty((self.n_models, len(X), self.n_classes), dtype=np.float32)
        for models, part in self._parts:
            if isinstance(part, StackedNet):
                out[models] = part.predict_log_proba(X) if log else part.predict_proba(X)
            else:
                for k, estimator in zip(models, part, strict=True):
                    p = aligned_proba(estimator, X, self.n_classes)
                    out[k] = np.log(p) if log else p
        return out

    def model(self, k: int) -> Classifier:
        """Model ``k`` on its own (its weights are copied out of the stack)."""
        if not 0 <= k < self.n_models:
            raise IndexError(f"model {k} of a set of {self.n_models}")
        p, j = self._where[k]
        part = self._parts[p][1]
        if isinstance(part, StackedNet):
            return TorchClassifier(part.select([j]))
        return SklearnClassifier(part[j], self.recipe, self.input_shape, self.n_classes)

    def __repr__(self) -> str:
        return (
            f"ModelSet(n_models={self.n_models}, model={self.recipe.model!r}, "
            f"input_shape={self.input_shape}, n_classes={self.n_classes})"
        )


def _check_training_inputs(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    train_sets: Sequence[np.ndarray],
    seeds: Sequence[int],
) -> list[np.ndarray]:
    if X.ndim < 2 or len(X) != len(y):
        raise ValueError(f"X must be (n, ...) with n = len(y); got {X.shape} and {y.shape}")
    if np.issubdtype(X.dtype, np.floating) and not np.isfinite(X).all():
        raise ModelError(
            "the records contain NaN or infinite values: encode or impute them before training"
        )
    if n_classes < 2:
        raise ModelError(f"n_classes is {n_classes}: a classifier needs at least 2 classes")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ModelError(
            f"labels range over {int(y.min())}..{int(y.max())} but n_classes is {n_classes}: "
            f"labels must be 0 .. n_classes - 1"
        )
    if len(train_sets) != len(seeds):
        raise ValueError(f"{len(train_sets)} training sets but {len(seeds)} seeds")
    sets = []
    for k, t in enumerate(train_sets):
        t = np.asarray(t)
        if t.ndim != 1 or t.size == 0 or not np.issubdtype(t.dtype, np.integer):
            raise ValueError(f"training set {k} must be a non-empty 1-d integer index array")
        if t.min() < 0 or t.max() >= len(X):
            raise ValueError(f"training set {k} indexes outside the {len(X)} records")
        sets.append(t.astype(np.int64, copy=False))
    return sets


def max_stack(
    recipe: Recipe, input_shape: tuple[int, ...], n_classes: int, device: torch.device, n_train: int
) -> int:
    """Most models of one stack: :data:`~miaudit.models.torch_batched.MAX_STACK` on a
    CPU; on a GPU as many as half its memory holds
    (:func:`~miaudit.models.torch_batched.stack_size`), at least one."""
    if device.type != "cuda":
        return MAX_STACK
    from miaudit.resources import device_memory

    per_model = int(GPU_OVERHEAD * training_bytes(recipe, input_shape, n_classes, n_train))
    memory = device_memory(str(device))
    return max(1, stack_size(per_model, memory, GPU_MEMORY_SHARE, GPU_MAX_STACK))


def train_models(
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    train_sets: Sequence[np.ndarray],
    seeds: Sequence[int],
    *,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    threads: int = 1,
) -> ModelSet:
    """Train one model of ``recipe`` per training set.

    PyTorch recipes are trained in stacks of models of equal training-set size
    (jobs are grouped by size), at most :func:`max_stack` per stack; scikit-learn
    recipes one after another.

    Parameters
    ----------
    recipe:
        How to train each model.
    X:
        All records, ``(n, d)`` or ``(n, c, h, w)`` (converted to ``float32``).
    y:
        Labels ``(n,)`` in ``0 .. n_classes - 1``.
    n_classes:
        Number of classes of the data set; every model predicts all of them.
    train_sets:
        Index arrays into ``X``, one per model.
    seeds:
        One non-negative integer per model; its result depends on nothing else
        (not on the other models trained with it).
    device:
        ``"cpu"`` or ``"cuda"`` (PyTorch recipes; ignored by scikit-learn).
    progress:
        Called as ``progress(done, total)`` as work completes; a unit is one epoch
        of one network, or one fitted scikit-learn model.
    threads:
        PyTorch intra-op threads on the CPU for this call and the set's
        predictions. The default 1 is deliberate (on a busy 2-core machine two
        threads ran 12x slower; see :func:`~miaudit.models.torch_batched.torch_threads`):
        run several trainings in worker processes to use more cores.

    Returns
    -------
    ModelSet
        Model ``k`` trained on ``train_sets[k]`` with ``seeds[k]``.

    Raises
    ------
    ModelError
        If the recipe cannot take the data (a CNN on tabular records, labels
        beyond ``n_classes``, a single-class training set for scikit-learn, a
        missing GPU) or training diverged.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    sets = _check_training_inputs(X, y, n_classes, train_sets, seeds)
    input_shape = tuple(int(s) for s in X.shape[1:])
    n_models = len(sets)
    done = 0

    if recipe.framework == "sklearn":
        estimators = []
        for k, (t, seed) in enumerate(zip(sets, seeds, strict=True)):
            estimators.append(fit_estimator(recipe, X[t], y[t], int(seed), model_index=k))
            done += 1
            if progress is not None:
                progress(done, n_models)
        return ModelSet(recipe, input_shape, n_classes, [(range(n_models), estimators)])

    dev = resolve_device(device)
    total = n_models * recipe.epochs

    def advance(units: int) -> None:
        nonlocal done
        done += units
        if progress is not None:
            progress(done, total)

    X_t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(dev)
    y_t = torch.from_numpy(y.astype(np.int64, copy=False)).to(dev)
    by_size: dict[int, list[int]] = {}
    for k, t in enumerate(sets):
        by_size.setdefault(len(t), []).append(k)
    parts: list[tuple[Sequence[int], StackedNet]] = []
    for members in by_size.values():
        most = max_stack(recipe, input_shape, n_classes, dev, len(sets[members[0]]))
        for start in range(0, len(members), most):
            group = members[start : start + most]
            net = train_stack(
                recipe,
                X_t,
                y_t,
                n_classes,
                [sets[k] for k in group],
                [int(seeds[k]) for k in group],
                progress=advance,
                threads=threads,
            )
            parts.append((group, net))
    return ModelSet(recipe, input_shape, n_classes, parts)
