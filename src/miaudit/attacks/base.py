"""The one contract every membership-inference attack follows.

Position in the pipeline: ``signals -> attack -> scores -> metrics -> report``.
An attack is a class with

* ``name`` (its registry name, :mod:`miaudit.attacks.registry`), ``section`` (the
  configuration table its settings live in, ``[attacks.<section>]``; an attack's
  online and offline variants share one) and ``Config``, a frozen pydantic model of
  those settings;
* :meth:`Attack.needs`, a :class:`Needs` declaring what the audit must provide:
  shadow signals, reference models that trained on the evaluated records or not,
  population records, extra target queries and how many, whether labels alone
  suffice. The planner (:mod:`miaudit.attacks.suite`) derives the shadow draws and
  target queries from these declarations and never from attack names;
* :meth:`Attack.fit` on the shadows' signals and membership and :meth:`Attack.score`
  on the target's, both reading one :class:`AttackInputs`; ``score`` returns one
  float per evaluated record, higher = more likely a member. What the attack wants
  reported beside its metrics goes into ``notes_``.

Everything here is NumPy: an attack knows nothing of how the models were trained.
The numeric kernels (:class:`~miaudit.attacks.shokri.ShokriAttack`,
:class:`~miaudit.attacks.lira.LiRA`, …) keep array-level ``fit``/``score`` methods
of their own, usable without an audit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self, TypeVar

import numpy as np
import pydantic
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict

from miaudit.errors import ConfigError, key
from miaudit.signals import ReferenceSignals, by_blocks

__all__ = [
    "Attack",
    "AttackInputs",
    "Needs",
    "NoSettings",
    "PlanContext",
    "RecordFormat",
    "build_config",
    "check_fitted",
    "check_prediction_signals",
    "rows_by_class",
]

T = TypeVar("T")

# float32 softmax outputs can exceed 1 by an ulp or so.
_PROB_TOL = 1e-6


class NoSettings(BaseModel):
    """The settings of an attack that has none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Needs:
    """What an attack needs from the audit; the planner reads nothing else.

    Attributes
    ----------
    shadows:
        The shadow models' outputs on their own in- and out-records (to learn from).
    reference:
        The reference (shadow) models' outputs on the evaluated records: ``"out"``
        when models that never saw a record suffice (offline), ``"in-out"`` when some
        must have trained on each evaluated record (online: the shadows then train on
        balanced halves of the evaluated records).
    reference_models:
        Reference models needed per evaluated record, ``(IN, OUT)``.
    population:
        Population records ``z`` asked of the target and of every reference model.
    calibration:
        Reference outputs on records some reference models trained on, when none
        trained on an evaluated record (offline RMIA's ``a``).
    public:
        Records the target never saw, asked of the target alone (QMIA's regression).
    features:
        The records themselves (the evaluated and the public ones), not only outputs.
    variants:
        Extra queries per record (augmentations), asked of the target and of every
        reference model about the evaluated, population and calibration records (made
        by :meth:`Attack.queries`).
    copies:
        Perturbed copies per evaluated record, asked of the target alone (made by
        :meth:`Attack.queries`).
    adaptive:
        Queries per evaluated record the attack sends to the target itself while
        scoring (:attr:`AttackInputs.oracle`); counted against the query budget.
    probabilities:
        ``False`` when predicted labels suffice (the attack works against a
        label-only target).
    """

    shadows: bool = False
    reference: Literal["out", "in-out"] | None = None
    reference_models: tuple[int, int] = (0, 0)
    population: int = 0
    calibration: bool = False
    public: int = 0
    features: bool = False
    variants: int = 0
    copies: int = 0
    adaptive: int = 0
    probabilities: bool = True

    def describe(self) -> list[str]:
        """The needs in words, for ``miaudit attacks``."""
        out = []
        if self.shadows:
            out.append("shadow models' outputs on their own in/out records")
        if self.reference == "in-out":
            need_in, need_out = self.reference_models
            # Only the counts the attack needs: "at least 0 IN" would read as a need.
            counts = " and ".join(
                f"{k} {side}" for k, side in ((need_in, "IN"), (need_out, "OUT")) if k
            )
            at_least = f" (at least {counts} per record)" if counts else ""
            if need_in:
                out.append(
                    "reference models that trained on each evaluated record and ones that "
                    f"did not{at_least}"
                )
            else:
                # IN models are used when the game has them, never required.
                out.append(
                    f"reference models' outputs on the evaluated records, trained on halves "
                    f"of them{at_least}"
                )
        elif self.reference == "out":
            out.append(
                f"reference models' outputs on the evaluated records (at least "
                f"{self.reference_models[1]} per record; none need have trained on them)"
            )
        if self.population:
            out.append(f"{self.population:,} population records, asked of target and references")
        if self.calibration:
            out.append("reference outputs on records some of them trained on (calibration)")
        if self.public:
            out.append(f"{self.public:,} records the target never saw, asked of the target")
        if self.features:
            out.append("the records themselves")
        if self.variants:
            out.append(f"{self.variants} extra queries per record (target and references)")
        if self.copies:
            out.append(f"{self.copies} perturbed copies per record asked of the target")
        if self.adaptive:
            out.append(f"up to {self.adaptive} adaptive target queries per record")
        out.append("predicted labels only" if not self.probabilities else "probabilities")
        return out


@dataclass(frozen=True)
class RecordFormat:
    """How records may be perturbed: a table's encoded column groups (a one-hot block
    is one group) or an image's pixels in [0, 1]; ``numeric`` marks the encoded columns
    of a table that hold more than two values in the whole data set (``None``: decide
    from the records at hand).

    Records of a kind that makes its own (text: word drops and swaps) come with the
    kind's makers instead: ``variants(records, n)`` gives ``n - 1`` fixed variants of
    each record, ``copies(records, n, rng)`` ``n`` random perturbed copies, in the
    records' own form; the attacks then never move the arrays themselves."""

    groups: list[np.ndarray]
    image: bool
    numeric: np.ndarray | None = None
    variants: Callable[[np.ndarray, int], np.ndarray] | None = None
    copies: Callable[[np.ndarray, int, np.random.Generator], np.ndarray] | None = None


@dataclass(frozen=True)
class PlanContext:
    """What an attack is checked against before any training."""

    n_shadows: int
    shadow_data: str
    game: str
    #: Whether some attack of the audit makes the shadows train on the evaluated records.
    online: bool
    label_only: bool


@dataclass
class AttackInputs:
    """The shared signals every attack of one audit scores from.

    ``own_*`` are the shadows' outputs on their own in/out records (stacked);
    ``target_probs`` the target's on the evaluated records; ``reference`` every
    shadow's outputs on the evaluated records followed by the population and
    calibration records (``population``/``calibration`` index into it);
    ``target_population`` the target's outputs on the population records;
    ``target_copies`` its outputs on perturbed copies (robustness);
    ``variants`` ``(A - 1, n_base)`` index the reference records holding the extra
    queries of each of the first ``n_base`` reference records (the evaluated, population
    and calibration records; ``-1`` where a record has none), ``target_variants``
    ``(A - 1, n_eval, C)`` are the target's answers to those of the evaluated records
    and ``target_population_variants`` ``(A - 1, m, C)`` to those of the population
    records (:meth:`reference_queries`, :meth:`target_queries`). ``public_*`` are the
    target's outputs on records it never saw, their classes and the records;
    ``features`` the evaluated records; ``oracle`` asks the target (adaptive attacks) and ``format``
    says how records may be perturbed. ``seed`` is the audit's attack seed.
    """

    own_probs: np.ndarray
    own_labels: np.ndarray
    own_member: np.ndarray
    target_probs: np.ndarray
    labels: np.ndarray
    reference: ReferenceSignals | None = None
    n_eval: int = 0
    population: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    calibration: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    target_population: np.ndarray | None = None
    target_copies: np.ndarray | None = None
    variants: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    target_variants: np.ndarray | None = None
    target_population_variants: np.ndarray | None = None
    public_outputs: np.ndarray | None = None
    public_labels: np.ndarray | None = None
    public_features: np.ndarray | None = None
    features: np.ndarray | None = None
    oracle: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    format: RecordFormat | None = field(default=None, repr=False)
    class_names: list[str] = field(default_factory=list)
    seed: int = 0
    #: Where an attack that trains networks trains them: the audit's device.
    device: str = "cpu"
    #: Called with the share (0 to 1) of the running attack's fitting done, by an
    #: attack whose fitting is long enough to report it (Shokri's per-class models).
    progress: Callable[[float], None] | None = field(default=None, repr=False)
    #: What :meth:`shared` computed, by key, with the arrays it was computed from.
    _shared: dict[Any, tuple[tuple[Any, ...], Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def shared(self, key: Any, compute: Callable[[], T], *reads: Any) -> T:
        """``compute()``, computed once for ``key`` while it ``reads`` the same objects:
        what two attacks of one audit both need (``loss`` and ``loss-class`` the same
        signal of every shadow row) is computed by the first and handed to the second.
        An input replaced since (a new array, not the one read) computes it afresh."""
        found = self._shared.get(key)
        if (
            found is not None
            and len(found[0]) == len(reads)
            and all(a is b for a, b in zip(found[0], reads, strict=True))
        ):
            return found[1]
        value = compute()
        self._shared[key] = (reads, value)
        return value

    def n_queries(self, records: np.ndarray) -> int:
        """Queries per record the reference models answered for every one of ``records``
        (reference rows): 1, plus the variants they all have."""
        records = np.asarray(records, dtype=np.int64)
        v = self.variants
        if not v.size or not len(records) or records.max() >= v.shape[1]:
            return 1
        have = (v[:, records] >= 0).all(axis=1)
        # Variants come in order: the first a missing one ends the queries.
        return 1 + int(np.cumprod(have).sum())

    def reference_queries(self, records: np.ndarray, q: int) -> np.ndarray:
        """``(K, r, q, C)``: the reference models' outputs on ``records`` (reference rows)
        and on their first ``q - 1`` variants."""
        ref = self.reference
        base = ref.probs[:, records]
        if q == 1:
            return base[:, :, None]
        extra = [ref.probs[:, self.variants[a, records]] for a in range(q - 1)]
        return np.stack([base, *extra], axis=2)

    def reference_signal(self, fn: Callable, records: np.ndarray, q: int):
        """``fn`` (a row-wise signal of outputs ``(r, C)`` and labels ``(r,)``, returning
        one array or a tuple) of every reference model on ``records`` (reference rows)
        and their first ``q - 1`` variants: ``(K, r, q)`` float64 each.

        The same numbers as ``fn`` of :meth:`reference_queries`, computed one model and
        one query at a time, so the ``(K, r, q, C)`` outputs are never copied: beyond
        the reference outputs themselves this holds ``(K, r, q)`` numbers.
        """
        ref = self.reference
        records = np.asarray(records, dtype=np.int64)
        labels = ref.labels[records]
        rows = [records, *(self.variants[a, records] for a in range(q - 1))]
        out: list[np.ndarray] = []
        single = True
        for k in range(ref.n_models):
            for a, r in enumerate(rows):
                parts = fn(ref.probs[k, r], labels)
                single = not isinstance(parts, tuple)
                parts = (parts,) if single else parts
                if not out:
                    out = [np.empty((ref.n_models, len(records), q)) for _ in parts]
                for o, part in zip(out, parts, strict=True):
                    o[k, :, a] = part
        return out[0] if single else tuple(out)

    def target_queries(self, q: int) -> np.ndarray:
        """``(n_eval, q, C)``: the target's outputs on the evaluated records and their
        first ``q - 1`` variants."""
        if q == 1:
            return self.target_probs[:, None]
        return np.stack([self.target_probs, *self.target_variants[: q - 1]], axis=1)

    def population_queries(self, q: int) -> np.ndarray:
        """``(m, q, C)``: the target's outputs on the population records and their first
        ``q - 1`` variants."""
        if q == 1:
            return self.target_population[:, None]
        return np.stack([self.target_population, *self.target_population_variants[: q - 1]], axis=1)

    def available_queries(self, records: np.ndarray, *, population: bool = False) -> int:
        """Queries per record both the reference models (on ``records`` and, with
        ``population``, the population records) and the target answered."""
        rows = np.concatenate([records, self.population]) if population else records
        q = self.n_queries(rows)
        target = 1 + (0 if self.target_variants is None else len(self.target_variants))
        if population:
            tp = self.target_population_variants
            target = min(target, 1 + (0 if tp is None else len(tp)))
        return min(q, target)


class Attack(ABC):
    """Base class of the attacks an audit runs.

    Subclasses set :attr:`name`, :attr:`section`, :attr:`Config` and
    :attr:`summary`, and implement :meth:`needs` and :meth:`score` (and :meth:`fit`
    when they learn from shadows).
    """

    #: Registry name.
    name: ClassVar[str] = ""
    #: Configuration table of its settings, ``[attacks.<section>]``; variants share one.
    section: ClassVar[str] = ""
    #: Its settings (a frozen pydantic model; :class:`NoSettings` when it has none).
    Config: ClassVar[type[BaseModel]] = NoSettings
    #: One line for ``miaudit attacks``.
    summary: ClassVar[str] = ""
    #: Shadows (reference models) below which the attack is weaker than it can be: an
    #: audit with fewer says so beside its verdict (0: no such number).
    full_strength_shadows: ClassVar[int] = 0
    #: An attack built on predicted labels alone (Choquette-Choo et al.): never the
    #: strongest where probabilities are at hand, so skipping it weakens no verdict.
    label_only_family: ClassVar[bool] = False

    def __init__(self, config: BaseModel | None = None, **options: Any) -> None:
        if config is not None and options:
            raise TypeError("pass a config or options, not both")
        if config is not None and not isinstance(config, self.Config):
            raise TypeError(f"{self.name} takes a {self.Config.__name__}")
        self.config = (
            config if config is not None else build_config(self.Config, self.name, **options)
        )
        self.notes_: dict[str, Any] = {}
        self.messages_: list[str] = []

    @abstractmethod
    def needs(self) -> Needs:
        """What this attack, with its settings, needs from the audit."""

    def check(self, context: PlanContext) -> None:
        """Refuse, before any training, what this attack cannot do in this audit.

        The default checks the reference models its :meth:`needs` asks for; an attack
        with other limits extends it.
        """
        need = self.needs()
        if need.reference is None:
            return
        need_in, need_out = need.reference_models
        # Online draws put every record IN for exactly half the shadows.
        want = 2 * max(need_in, need_out) if context.online else need_out
        if context.n_shadows < want:
            raise ConfigError(
                f"{self.name} needs at least {want} shadows ({need_in} IN and {need_out} OUT "
                f"per record); got {context.n_shadows}: raise {key('shadows')}"
            )

    def fit(self, inputs: AttackInputs) -> Self:
        """Learn from the shadows' signals (most attacks learn nothing)."""
        return self

    @abstractmethod
    def score(self, inputs: AttackInputs) -> np.ndarray:
        """One score per evaluated record, higher = more likely a member."""

    @property
    def decision_threshold(self) -> float:
        """Score at or above which the attack itself calls a record a member; NaN when it
        learnt none (it scored without shadows): the caller then says where one came from."""
        return 0.5

    def runs_without_shadows(self) -> bool:
        """Whether, though :meth:`needs` asks for shadows, it can score from the target's
        outputs alone when an evaluation has none (its ROC curve needs no threshold; its
        :attr:`decision_threshold` is then NaN)."""
        return False

    def queries(self, records: np.ndarray, fmt: RecordFormat, rng: np.random.Generator):
        """The records behind ``needs().variants`` or ``needs().copies``:
        ``(q, n, *record shape)``."""
        raise NotImplementedError(f"{self.name} makes no extra queries")

    def cache_parts(self, inputs: AttackInputs) -> dict[str, Any] | None:
        """What determines this attack's scores, to keep them in the job cache; ``None``
        (the default) for attacks quick enough to recompute."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"<attack {self.name}({args})>"


def check_fitted(estimator: object, attribute: str) -> None:
    """Refuse to score with an estimator that was never fitted."""
    if not hasattr(estimator, attribute):
        raise ConfigError(
            f"{type(estimator).__name__} is not fitted yet; call fit() on shadow signals "
            "before score()."
        )


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
    signals: ArrayLike,
    labels: ArrayLike,
    n_classes: int | None = None,
    *,
    float64: bool = True,
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
    float64:
        Return the signals as ``float64`` (the default). ``False`` returns floating
        signals as they are (other numbers as ``float64``), for a caller that reads
        them in float64 a block of rows at a time: at 256 census shadows a float64
        copy of the shadows' outputs is 1.9 GB.

    Returns
    -------
    signals, labels:
        As ``float64`` (or their own floating type) ``(n, C)`` and ``int64`` ``(n,)``
        arrays.

    The entries are checked :data:`~miaudit.signals.BLOCK_ROWS` rows at a time, each
    block in float64, so the check holds a few blocks' temporaries, never ``(n, C)``.
    """
    p = np.asarray(signals)
    if p.ndim != 2:
        raise ConfigError(
            f"signals must be a 2-D array of prediction vectors (records × classes); "
            f"got shape {p.shape}."
        )
    if not np.issubdtype(p.dtype, np.number):
        raise ConfigError(f"signals must be numeric probabilities; got dtype {p.dtype}.")
    if float64 or not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64, copy=False)
    n, c = p.shape
    if n_classes is not None and c != n_classes:
        raise ConfigError(
            f"signals have {c} columns but the attack was fitted on {n_classes} classes; "
            "query the target with the same label set as the shadow models."
        )
    if c < 2:
        raise ConfigError(f"signals need at least 2 classes (columns); got {c}.")
    bad_per_row = by_blocks(_bad_entries, p)
    if bad_per_row.any():
        r = int(np.flatnonzero(bad_per_row)[0])
        col = int(np.flatnonzero(_not_probabilities(p[r]))[0])
        raise ConfigError(
            f"signals must be probabilities in [0, 1]; {int(bad_per_row.sum())} entries are "
            f"not (first: row {r}, column {col}, value {float(p[r, col])!r}). Pass "
            "predict_proba outputs, not logits."
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


def _not_probabilities(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return ~np.isfinite(p) | (p < 0) | (p > 1 + _PROB_TOL)


def _bad_entries(rows: np.ndarray, _labels: None) -> np.ndarray:
    """How many entries of each row are not probabilities."""
    return _not_probabilities(rows).sum(axis=-1)


def rows_by_class(y: np.ndarray, n_classes: int) -> list[np.ndarray]:
    """The rows of each class ``0 .. n_classes - 1``, each in increasing order (those of
    ``y == c``), from one stable sort of the labels: a radix sort where they fit 16 bits,
    a tenth of the time of sorting them as int64 (0.09 s for 5 million rows)."""
    y = np.asarray(y)
    small = y.size > 0 and y.min() >= 0 and y.max() < 1 << 16
    order = np.argsort(y.astype(np.uint16) if small else y, kind="stable")
    bounds = np.cumsum(np.bincount(y, minlength=n_classes))
    groups = np.split(order, bounds[:-1])
    return groups[:n_classes]
