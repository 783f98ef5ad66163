"""Model stage: train, query, save and load the target and shadow models.

Position in the pipeline: ``splits -> target/shadows (training) -> signals``.
The splits stage hands over index arrays; :func:`train_models` turns them into a
:class:`ModelSet` whose ``predict_proba`` / ``predict_log_proba`` give the
``(K, n, C)`` arrays the signals stage starts from. A :class:`Recipe` says how
every model is trained; PyTorch networks (``mlp``, ``cnn``) are trained K at a
time as one stacked network, scikit-learn estimators one by one.
"""

from __future__ import annotations

from miaudit.models.classifier import (
    Classifier,
    ModelSet,
    SklearnClassifier,
    TorchClassifier,
    check_input,
    train_models,
)
from miaudit.models.io import load_model, save_model
from miaudit.models.recipe import Recipe

__all__ = [
    "Classifier",
    "ModelSet",
    "Recipe",
    "SklearnClassifier",
    "TorchClassifier",
    "check_input",
    "load_model",
    "save_model",
    "train_models",
]
