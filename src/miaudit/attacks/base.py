"""The contract every membership-inference attack follows, and the registry of attacks.

Position in the pipeline: ``signals -> attack -> scores -> metrics -> report``.
An attack learns from shadow models' signals, where membership is known, and
then gives one score per target record (higher = more likely a member). It is
NumPy in and NumPy out: it knows nothing of how the models were trained.

The contract is the scikit-learn estimator's, kept small because attacks differ
in what their signals are (Shokri's attack takes one prediction vector per
record; LiRA and RMIA will take model × record arrays):

* hyper-parameters are keyword arguments of ``__init__``, validated at once into
  a frozen pydantic config (``self.config``) so a bad option fails before any
  work is done;
* ``fit(signals, labels, member)`` learns from shadow outputs and returns ``self``;
* ``score(signals, labels)`` returns a float array with one score per record;
* learned state is in attributes ending with ``_``.

Attacks are found by name through :func:`get_attack`; registering is the only
module-level state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
import pydantic
from numpy.typing import ArrayLike

from miaudit.errors import ConfigError

__all__ = [
    "Attack",
    "available_attacks",
    "build_config",
    "check_prediction_signals",
    "get_attack",
    "register",
]

# float32 softmax outputs can exceed 1 by an ulp or so.
_PROB_TOL = 1e-6


class Attack(ABC):
    """Base class of membership-inference attacks.

    Subclasses set :attr:`name` (via :func:`register`) and implement
    :meth:`fit` and :meth:`score`.
    """

    #: Registry name, set by :func:`register`.
    name: ClassVar[str] = ""

    @abstractmethod
    def fit(self, signals: ArrayLike, labels: ArrayLike, member: ArrayLike) -> Self:
        """Learn the attack from shadow models' signals.

        Parameters
        ----------
        signals:
            Shadow models' outputs on their in- and out-records; the shape is
            the attack's own (``(n, C)`` prediction vectors for Shokri's attack).
        labels:
            True class of each record, ``(n,)`` integers.
        member:
            Whether each record was in its shadow model's training set, ``(n,)``.
        """

    @abstractmethod
    def score(self, signals: ArrayLike, labels: ArrayLike) -> np.ndarray:
        """One membership score per target record, higher = more likely a member."""

    @property
    def decision_threshold(self) -> float | None:
        """Score at or above which the attack itself declares a record a member.

        ``None`` when the attack has no natural threshold (then only
        threshold-free metrics such as AUC and TPR at low FPR apply).
        """
        return None

    def _check_fitted(self, attribute: str) -> None:
        if not hasattr(self, attribute):
            raise ConfigError(
                f"{type(self).__name__} is not fitted yet; call fit() on shadow signals "
                "before score()."
            )


_REGISTRY: dict[str, type[Attack]] = {}

A = TypeVar("A", bound=type[Attack])


def register(name: str) -> Callable[[A], A]:
    """Class decorator: make an attack available as ``get_attack(name)``."""

    def decorator(cls: A) -> A:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            # A programming error (two modules claim one name), not a user error.
            raise ValueError(f"attack name {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def get_attack(name: str) -> type[Attack]:
    """The attack class registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown attack {name!r}; choose one of: {', '.join(available_attacks())}."
        ) from None


def available_attacks() -> list[str]:
    """Registered attack names, sorted."""
    return sorted(_REGISTRY)


M = TypeVar("M", bound=pydantic.BaseModel)


def build_config(model: type[M], owner: str, **values: Any) -> M:
    """Validate hyper-parameters into ``model``, raising :class:`ConfigError` on failure.

    The message names each bad option and pydantic's reason in one line, so the
    CLI can print it as it is.
    """
    try:
        return model(**values)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']} "
            f"(got {err.get('input')!r})"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid {owner} option(s): {problems}.") from None


def check_prediction_signals(
    signals: ArrayLike, labels: ArrayLike, n_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``(n, C)`` prediction vectors and their ``(n,)`` true labels.

    Parameters
    ----------
    signals:
        Class probabilities per record. Each entry must lie in [0, 1]; rows should
        sum to 1 but that is not enforced, because an output policy that rounds
        probabilities (the paper's d = 1 mitigation) leaves rows summing only to
        about 1 and the attack must still run against it.
    labels:
        Integer class of each record, in ``0 .. C - 1``.
    n_classes:
        If given, the number of columns ``signals`` must have (the number the
        attack was fitted on).

    Returns
    -------
    signals, labels:
        As ``float64`` ``(n, C)`` and ``int64`` ``(n,)`` arrays.
    """
    p = np.asarray(signals)
    if p.ndim != 2:
        raise ConfigError(
            f"signals must be a 2-D array of prediction vectors (records × classes); "
            f"got shape {p.shape}."
        )
    if not np.issubdtype(p.dtype, np.number):
        raise ConfigError(f"signals must be numeric probabilities; got dtype {p.dtype}.")
    p = p.astype(np.float64, copy=False)
    n, c = p.shape
    if n_classes is not None and c != n_classes:
        raise ConfigError(
            f"signals have {c} columns but the attack was fitted on {n_classes} classes; "
            "query the target with the same label set as the shadow models."
        )
    if c < 2:
        raise ConfigError(f"signals need at least 2 classes (columns); got {c}.")
    bad = ~np.isfinite(p) | (p < 0) | (p > 1 + _PROB_TOL)
    if bad.any():
        r, col = np.argwhere(bad)[0]
        raise ConfigError(
            f"signals must be probabilities in [0, 1]; {int(bad.sum())} entries are not "
            f"(first: row {r}, column {col}, value {p[r, col]!r}). Pass predict_proba "
            "outputs, not logits."
        )

    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ConfigError(
            f"labels must have one entry per row of signals ({n}); got shape {y.shape}."
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"labels must be integer class indices; got dtype {y.dtype}.")
    y = y.astype(np.int64, copy=False)
    if n and (y.min() < 0 or y.max() >= c):
        raise ConfigError(
            f"labels must lie in 0 .. {c - 1} (one per column of signals); "
            f"got values from {y.min()} to {y.max()}."
        )
    return p, y
