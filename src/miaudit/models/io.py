"""Save and load one trained model as a directory, without pickle.

Position in the pipeline: a saved model is a ``target`` (attack a deployed
model) or a cached shadow; ``splits -> target/shadows (training) -> signals``.

Layout of a model directory::

    model.json           {"format": "miaudit-model", "version": 1,
                          "framework": "torch" | "sklearn", "recipe": {...},
                          "input_shape": [...], "n_classes": C,
                          "class_names": [...] | null, "dataset_fingerprint": "..." | null}
    weights.safetensors  PyTorch: one tensor per parameter in torch.nn layout
                         (see miaudit.models.torch_batched.PARAMETER_NAMES)
    model.skops          scikit-learn: the estimator, via skops.io

Nothing is unpickled: safetensors holds only tensors, and skops files are loaded
with an explicit allowlist of the types our estimators contain. ``model.json`` is
written last, so an interrupted save leaves a directory that fails to load with
a clear message instead of a half-written model.

Writing is the classifier's own (:meth:`miaudit.models.Classifier.save`, each kind
writing its weights; :func:`save_model` asks it), so that the classifiers, which this
module reads back into, know nothing of it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file

from miaudit.errors import ModelError
from miaudit.files import check_readable, read_json_object
from miaudit.models.classifier import (
    MODEL_FORMAT,
    MODEL_JSON,
    MODEL_VERSION,
    SKLEARN_WEIGHTS,
    TORCH_WEIGHTS,
    Classifier,
    SklearnClassifier,
    TorchClassifier,
)
from miaudit.models.recipe import Recipe
from miaudit.models.sklearn_models import check_predicts, load_estimator
from miaudit.models.torch_batched import StackedNet, parameter_shapes, resolve_device

FORMAT = MODEL_FORMAT
VERSION = MODEL_VERSION
_RESAVE = "save it again with miaudit.models.save_model"


def save_model(
    clf: Classifier,
    path: str | Path,
    *,
    class_names: list[str] | None = None,
    dataset_fingerprint: str | None = None,
) -> Path:
    """Write ``clf`` to the directory ``path`` (created if missing, files replaced):
    :meth:`Classifier.save <miaudit.models.Classifier.save>`, each kind of classifier
    writing its own weights.

    Parameters
    ----------
    clf:
        The model.
    path:
        Directory to write.
    class_names, dataset_fingerprint:
        Metadata for ``model.json``; default to the classifier's own attributes.

    Returns
    -------
    pathlib.Path
        The directory.
    """
    if not isinstance(clf, Classifier):
        raise TypeError(f"cannot save a {type(clf).__name__}")
    return clf.save(path, class_names=class_names, dataset_fingerprint=dataset_fingerprint)


def _read_meta(path: Path) -> dict[str, Any]:
    check_readable(path, ModelError)
    if not path.exists():
        raise ModelError(
            f"model directory {path} does not exist: pass the directory written by save_model"
        )
    if not path.is_dir():
        raise ModelError(
            f"{path} is a file, not a model directory: pass the directory that holds "
            f"{MODEL_JSON} and the weights"
        )
    meta_path = path / MODEL_JSON
    if not meta_path.is_file():
        raise ModelError(f"{meta_path} is missing: is {path} a miaudit model? {_RESAVE}")
    meta = read_json_object(meta_path, ModelError, _RESAVE)
    if meta.get("format") != FORMAT:
        found = meta.get("format")
        raise ModelError(
            f"{meta_path} has format {found!r}, expected {FORMAT!r}: it was not written by "
            f"miaudit; {_RESAVE}"
        )
    version = meta.get("version")
    if version != VERSION:
        fix = "upgrade miaudit" if isinstance(version, int) and version > VERSION else _RESAVE
        raise ModelError(
            f"{meta_path} is format version {version!r}; this miaudit reads version "
            f"{VERSION}: {fix}"
        )
    return meta


def _parse_meta(meta: dict[str, Any], meta_path: Path) -> tuple[Recipe, tuple[int, ...], int]:
    try:
        recipe = Recipe.model_validate(meta["recipe"])
    except KeyError as exc:
        raise ModelError(f"{meta_path} lacks the field {exc}: {_RESAVE}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ModelError(f"{meta_path} has an invalid recipe ({first['msg']}): {_RESAVE}") from exc
    framework = meta.get("framework")
    if framework != recipe.framework:
        raise ModelError(
            f"{meta_path} says framework {framework!r}, but its recipe {recipe.model!r} is a "
            f"{recipe.framework} model: {_RESAVE}"
        )
    shape, n_classes = meta.get("input_shape"), meta.get("n_classes")
    sizes_ok = isinstance(shape, list) and all(isinstance(s, int) and s > 0 for s in shape)
    if not (sizes_ok and shape) or not isinstance(n_classes, int) or n_classes < 2:
        raise ModelError(
            f"{meta_path} has input_shape {shape!r} and n_classes {n_classes!r}; expected a "
            f"list of positive sizes and an integer of at least 2: {_RESAVE}"
        )
    return recipe, tuple(shape), n_classes


def _load_torch(
    path: Path,
    recipe: Recipe,
    input_shape: tuple[int, ...],
    n_classes: int,
    device: torch.device,
) -> StackedNet:
    weights_path = path / TORCH_WEIGHTS
    if not weights_path.is_file():
        raise ModelError(f"{weights_path} is missing: {_RESAVE}")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(
            f"{weights_path} is not a readable safetensors file ({exc}): the file is "
            f"damaged; {_RESAVE}"
        ) from exc
    try:
        expected = parameter_shapes(recipe, input_shape, n_classes)
    except ModelError as exc:
        raise ModelError(f"{path / MODEL_JSON}: {exc}") from exc
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ModelError(
            f"{weights_path} does not hold a {recipe.model} (missing {missing}, unexpected "
            f"{extra}): the weights and {MODEL_JSON} come from different models; {_RESAVE}"
        )
    for name, shape in expected.items():
        got = tuple(tensors[name].shape)
        if got != shape:
            raise ModelError(
                f"{weights_path}: tensor {name!r} has shape {got} but {MODEL_JSON} "
                f"(hidden={recipe.hidden}, input_shape={input_shape}, n_classes={n_classes}) "
                f"needs {shape}: the weights and {MODEL_JSON} come from different models"
            )
        if not tensors[name].is_floating_point() or not bool(tensors[name].isfinite().all()):
            raise ModelError(
                f"{weights_path}: tensor {name!r} is not finite floating point: {_RESAVE}"
            )
    return StackedNet.from_state_dicts(recipe, input_shape, n_classes, [tensors], device)


def load_model(path: str | Path, *, device: str = "cpu") -> Classifier:
    """Read a model directory written by :func:`save_model`.

    Parameters
    ----------
    path:
        The model directory.
    device:
        Where a PyTorch model runs (``"cpu"`` or ``"cuda"``).

    Returns
    -------
    Classifier

    Raises
    ------
    ModelError
        A one-line message naming the file and the fix: missing directory or
        files, another format or version, damaged weights, weights that disagree
        with ``model.json``, or a skops file with untrusted types.
    """
    path = Path(path)
    meta = _read_meta(path)
    recipe, input_shape, n_classes = _parse_meta(meta, path / MODEL_JSON)
    names = meta.get("class_names")
    if names is not None and (not isinstance(names, list) or len(names) != n_classes):
        raise ModelError(
            f"{path / MODEL_JSON} has class_names that are not a list of {n_classes} names: "
            f"fix or remove the field"
        )
    metadata = {"class_names": names, "dataset_fingerprint": meta.get("dataset_fingerprint")}
    if recipe.framework == "torch":
        net = _load_torch(path, recipe, input_shape, n_classes, resolve_device(device))
        return TorchClassifier(net, **metadata)
    skops_path = path / SKLEARN_WEIGHTS
    if not skops_path.is_file():
        raise ModelError(f"{skops_path} is missing: {_RESAVE}")
    estimator = load_estimator(skops_path, recipe.model)
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features != math.prod(input_shape):
        raise ModelError(
            f"{skops_path} takes {n_features} features but {MODEL_JSON} says input_shape "
            f"{input_shape}: the files come from different models; {_RESAVE}"
        )
    classes = np.asarray(estimator.classes_)
    if classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() >= n_classes:
        raise ModelError(
            f"{skops_path} predicts classes {classes.tolist()} but {MODEL_JSON} says "
            f"n_classes={n_classes}: the files come from different models; {_RESAVE}"
        )
    check_predicts(estimator, skops_path, n_features)
    return SklearnClassifier(estimator, recipe, input_shape, n_classes, **metadata)
