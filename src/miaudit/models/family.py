"""A model family: the one contract for how targets, shadows and reference models are made.

Position in the pipeline: ``splits -> target / shadows (training) -> signals``. The
splits stage hands over index sets of the records; a :class:`ModelFamily` turns
them into trained models, each a *predictor* with ``predict_proba(records) ->
(n, C)`` probabilities whose columns are the data set's classes in label order.
Nothing downstream asks how a model was made: the job runner
(:mod:`miaudit.jobs`) caches, parallelises and ships families by this contract
alone, and the attacks see only the probabilities.

Implementations:

* :class:`RecipeFamily` — miaudit's built-in recipes (:class:`~miaudit.models.Recipe`):
  the paper's MLP and CNN trained K at a time as one stacked network (the fast
  path), and the scikit-learn recipes.
* :mod:`miaudit.models.user` — the user's own code: a scikit-learn estimator or
  Pipeline cloned per model, :class:`~miaudit.models.user.TorchTrainer` (a module
  factory and the user's training loop), or any ``fit(X, y, seed) -> predictor``.

A family declares what its models read (:attr:`ModelFamily.takes`): miaudit's
encoded arrays (``Dataset.X``) or the user's own records (their DataFrame rows
or arrays), and which labels it trains on (:attr:`ModelFamily.labels`). The
pipeline hands each family its records in that form.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from miaudit.errors import ModelError
from miaudit.models.recipe import Recipe


@runtime_checkable
class Predictor(Protocol):
    """A trained model: records in its family's form -> ``(n, C)`` class probabilities."""

    def predict_proba(self, X: Any) -> np.ndarray: ...


def check_probabilities(P: np.ndarray, n: int, n_classes: int, *, source: str) -> None:
    """Refuse answers that are not ``n`` probability vectors of width ``n_classes``
    (what every :class:`Predictor` answers; ``source`` names who answered)."""
    if P.shape != (n, n_classes):
        raise ModelError(
            f"{source} answered an array of shape {P.shape} for {n} records; expected "
            f"({n}, {n_classes}): does it predict the data set's {n_classes} classes?"
        )
    if not np.isfinite(P).all():
        raise ModelError(f"{source} answered NaN or infinite probabilities")
    if (P < -1e-6).any() or not np.allclose(P.sum(axis=1), 1.0, atol=1e-3):
        raise ModelError(f"{source} answered rows that are not probability vectors (sum != 1)")


class ModelFamily(ABC):
    """Trains models on index sets of the records.

    Subclasses implement :meth:`fit` (or :meth:`fit_one`, for models trained one at
    a time) and say how they are keyed in the job cache (:meth:`identity`).
    """

    #: What the models read: ``"encoded"`` (miaudit's float32 arrays), ``"raw"`` (the
    #: user's own records: DataFrame rows or arrays, as given), or ``"arrays"`` (the
    #: user's arrays; miaudit's encoded arrays for a built-in data set).
    takes: ClassVar[Literal["encoded", "raw", "arrays"]] = "encoded"
    #: Labels the models train on: class codes ``0 .. C-1`` or the user's own values.
    labels: ClassVar[Literal["codes", "values"]] = "codes"
    #: How local workers run chunks: ``"threads"`` (operations release the GIL and
    #: share the records) or ``"processes"`` (one model per process).
    parallel: ClassVar[Literal["threads", "processes"]] = "processes"

    @property
    def stacked(self) -> bool:
        """Whether the models of one chunk train as one computation, so that a model's
        numbers depend (up to float rounding) on its chunk partners."""
        return False

    @property
    def units(self) -> int:
        """Progress units one model's training reports (an epoch, or the whole fit)."""
        return 1

    @abstractmethod
    def identity(self) -> dict[str, Any] | None:
        """What determines this family's models beyond the records, the index sets and
        the seeds, as JSON for the job cache's keys; ``None`` when nothing honest can be
        said (then its models are never cached)."""

    def code_modules(self) -> set[str]:
        """The user's own modules this family's code lives in (shipped to workers by value)."""
        return set()

    def uncached_reason(self) -> str:
        """Why :meth:`identity` is ``None``, for the one message the audit prints."""
        return f"{self.describe()['model']} has no cache identity"

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """``{"model": name, ...}`` for ``results.json`` and the report."""

    def privacy(self, n_train: int) -> Any:
        """The :class:`~miaudit.models.dp.DPPlan` its models train under on ``n_train``
        records (DP-SGD), or ``None``: what the target claims, in ``results.json``."""
        return None

    def training_bytes(
        self, input_shape: tuple[int, ...], n_classes: int, n_train: int | None = None
    ) -> int | None:
        """Memory one model takes while its chunk trains (on ``n_train`` records), where
        that bounds the chunk (stacked training); ``None`` when it does not."""
        return None

    def fit(
        self,
        X: Any,
        y: np.ndarray,
        n_classes: int,
        train_sets: Sequence[np.ndarray],
        seeds: Sequence[int],
        *,
        device: str = "cpu",
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Predictor]:
        """One model per training set: model ``k`` trained on ``train_sets[k]`` (indices
        into ``X``/``y``) with ``seeds[k]``, its result depending on nothing else.

        ``progress(done, total)`` counts :attr:`units`. The default trains one model at
        a time with :meth:`fit_one`.
        """
        models = []
        for k, (train, seed) in enumerate(zip(train_sets, seeds, strict=True)):
            models.append(
                self.fit_one(take(X, train), y[train], n_classes, int(seed), device=device)
            )
            if progress is not None:
                progress((k + 1) * self.units, len(train_sets) * self.units)
        return models

    def fit_one(
        self, X: Any, y: np.ndarray, n_classes: int, seed: int, *, device: str = "cpu"
    ) -> Predictor:
        """Train one model on the records ``X`` with labels ``y``."""
        raise NotImplementedError(f"{type(self).__name__} trains models together: use fit()")

    @property
    def can_save(self) -> bool:
        """Whether :meth:`save` can keep a trained model (the job cache, ``--keep-models``)."""
        return False

    def save(self, model: Predictor, folder: Path) -> None:
        """Write ``model`` into the new folder ``folder``."""
        raise ModelError(f"{self.describe()['model']} models cannot be saved")

    def load(self, folder: Path, device: str = "cpu") -> Predictor:
        """Read a model :meth:`save` wrote."""
        raise ModelError(f"{self.describe()['model']} models cannot be loaded")


def take(records: Any, index: np.ndarray) -> Any:
    """Rows ``index`` of records that are an array, a list or a pandas DataFrame."""
    if hasattr(records, "iloc"):
        return records.iloc[np.asarray(index)].reset_index(drop=True)
    if isinstance(records, list | tuple):
        return [records[int(i)] for i in np.asarray(index)]
    return records[index]


class RecipeFamily(ModelFamily):
    """miaudit's built-in recipes: networks trained K at a time as one stacked network
    (:mod:`miaudit.models.torch_batched`), scikit-learn recipes one by one."""

    takes = "encoded"
    labels = "codes"

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe

    @property
    def parallel(self) -> Literal["threads", "processes"]:  # type: ignore[override]
        # Stacked PyTorch operations release the GIL; scikit-learn fits mostly hold it.
        return "threads" if self.recipe.framework == "torch" else "processes"

    @property
    def stacked(self) -> bool:
        return self.recipe.framework == "torch"

    @property
    def units(self) -> int:
        return self.recipe.epochs if self.recipe.framework == "torch" else 1

    def identity(self) -> dict[str, Any]:
        return {"recipe": self.recipe.settings()}

    def describe(self) -> dict[str, Any]:
        return {"model": self.recipe.model, "recipe": self.recipe.settings()}

    def privacy(self, n_train: int) -> Any:
        from miaudit.models import dp

        return dp.plan(self.recipe, n_train)

    def training_bytes(self, input_shape, n_classes, n_train=None):
        if self.recipe.framework != "torch":
            return None
        from miaudit.models.torch_batched import training_bytes

        return training_bytes(self.recipe, input_shape, n_classes, n_train)

    def fit(self, X, y, n_classes, train_sets, seeds, *, device="cpu", progress=None):
        from miaudit.models.classifier import train_models

        models = train_models(
            self.recipe, X, y, n_classes, train_sets, seeds, device=device, progress=progress
        )
        return [models.model(k) for k in range(len(models))]

    @property
    def can_save(self) -> bool:
        return True

    def save(self, model, folder: Path) -> None:
        from miaudit.models.io import save_model

        save_model(model, folder)

    def load(self, folder: Path, device: str = "cpu"):
        from miaudit.models.io import load_model

        return load_model(folder, device=device)

    def __repr__(self) -> str:
        return f"RecipeFamily({self.recipe.model!r})"


def as_family(model: Recipe | ModelFamily) -> ModelFamily:
    """A :class:`ModelFamily` for a recipe (the built-in family) or a family itself."""
    if isinstance(model, ModelFamily):
        return model
    if isinstance(model, Recipe):
        return RecipeFamily(model)
    raise TypeError(f"expected a Recipe or a ModelFamily, got {type(model).__name__}")
