"""Shokri et al.'s shadow-model attack: one membership classifier per class.

Position in the pipeline: ``signals -> attack -> scores -> metrics -> report``.
The shadows stage supplies, for every shadow model, its prediction vectors on
its own in-records and on a disjoint out-set of the same size; this module
learns from those which prediction vectors look like training records, and then
scores the target's prediction vectors.

Design, following the paper (S&P 2017, Section IV):

* one binary attack model per class ``c``, trained on the shadow records whose
  TRUE label is ``c``, with the prediction vector as input and P(member) as
  output, because how a model's output looks on its training records depends
  strongly on the class;
* a class-agnostic model is always trained too. Its input must not depend on
  the order of the classes, so it is the prediction vector sorted in decreasing
  order plus the probability of the true class (the sorted vector says how
  confident the model is, the true-class probability whether it is confidently
  right). Classes whose shadow records are too few, or all of one membership
  value, use it (see ``fallback_classes_``), as do labels that had no shadow
  records at all; with ``per_class=False`` it scores every record;
* the decision threshold for precision/recall is 0.5 on P(member), the attack
  classifier's own decision; the shadow in- and out-sets have equal sizes, so
  the attack models are trained on balanced data and 0.5 is their natural cut.

Beyond the paper, the input may go through a monotone per-entry transform
(``transform="log"`` or ``"logit"``). The tree learners are unaffected by it;
for the neural network and logistic regression it spreads out the probabilities
near 0 and 1 where an overfitted model's members and non-members differ.

Defaults. ``learner="nn"``: the paper's small networks, all classes' models trained
together as one stacked network (:mod:`miaudit.attacks.attack_net`) on the audit's
device, with ``transform="logit"``. Measured on the default census audit's shadow
outputs (``bench/attack_scale.py --bounds 50000``, 2-core VM, side by side in one
run), against gradient boosting (``gbdt``, the previous default, fitted one model
after another) with the same 50,000-record bound:

=========  =======  =======  ======  =========  ========================
shadows    learner  fit s    AUC     TPR@1%     95 % interval
=========  =======  =======  ======  =========  ========================
10         gbdt     35.4     0.8850  0.1870     0.1579-0.2161
10         nn       13.1     0.8869  0.2111     0.1906-0.2417
64         gbdt     55.3     0.8963  0.2640     0.2394-0.2882
64         nn       33.4     0.8960  0.2437     0.2175-0.2706
=========  =======  =======  ======  =========  ========================

Without the logit transform the network lost AUC (0.8596 at 10 shadows): on raw
probabilities an overfitted model's members and non-members differ where the
probabilities crowd near 0 and 1. The tree learners are unaffected by the transform.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Literal, Self, get_args

import numpy as np
from joblib import Parallel, delayed
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from miaudit.attacks.attack_net import AttackNets, fit_attack_nets
from miaudit.attacks.base import (
    Attack,
    AttackInputs,
    Needs,
    build_config,
    check_fitted,
    check_prediction_signals,
    rows_by_class,
)
from miaudit.errors import ConfigError

__all__ = ["LEARNERS", "Shokri", "ShokriAttack", "ShokriConfig", "make_learner"]

Learner = Literal["nn", "gbdt", "logreg", "rf"]
Transform = Literal["none", "log", "logit"]


def make_learner(name: str, seed: int) -> ClassifierMixin:
    """A fresh, unfitted scikit-learn attack-model learner (``"nn"`` is no single
    estimator: its models train together, :func:`~miaudit.attacks.attack_net.fit_attack_nets`).

    Hyper-parameters are fixed here on purpose: the attack has one knob per idea,
    and these suit the few hundred to few thousand records one class model sees.
    """
    match name:
        case "gbdt":
            # No early stopping: its internal validation split would make results
            # depend on the data size and fail on classes with a single member.
            return HistGradientBoostingClassifier(
                max_iter=100, learning_rate=0.1, early_stopping=False, random_state=seed
            )
        case "logreg":
            return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        case "rf":
            # Leaves of at least 5 records so P(member) is graded, not mostly 0 or 1.
            return RandomForestClassifier(
                n_estimators=100, min_samples_leaf=5, n_jobs=1, random_state=seed
            )
    if name == "nn":
        raise ConfigError("the nn learner trains all attack models as one stack: use ShokriAttack")
    raise ConfigError(f"unknown learner {name!r}; choose one of: {', '.join(LEARNERS)}.")


#: The attack-model learner names accepted by ``ShokriAttack(learner=...)``.
LEARNERS: tuple[str, ...] = get_args(Learner)

# Each attack model runs its OpenMP/BLAS code on one thread and parallelism comes
# from ``n_jobs`` across the independent models. Attack
# models are small, so a model's own threads gain little, and on a busy machine
# OpenMP's spinning workers are ruinous: gradient boosting on 600 records took
# 2.1 s with 2 threads and 0.33 s with 1 on a 2-core host under load. The limit
# is process-wide while fit/score run (threadpoolctl cannot limit one thread).
_THREADS_PER_MODEL = 1

# Smallest probability the log and logit transforms distinguish; below it an
# entry is "zero" (float32 softmax outputs underflow well above 1e-45 anyway).
_EPS = 1e-30


class ShokriConfig(BaseModel):
    """Hyper-parameters of :class:`ShokriAttack` (see its docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    learner: Learner = Field(default="nn", description="the attack models' learner")
    per_class: bool = Field(
        default=True, description="one attack model per class (the paper), else one for all"
    )
    min_class_records: int = Field(
        default=50, ge=2, description="a class with fewer shadow records uses the shared model"
    )
    transform: Transform = Field(
        default="logit", description="monotone transform of each probability first"
    )
    max_records: int = Field(
        default=50_000,
        ge=0,
        description="most shadow records one attack model trains on, drawn balanced (0: all)",
    )
    n_jobs: int = Field(default=1, description="attack models fitted at once (-1: all cores)")
    seed: int = Field(default=0, ge=0, description="shifts the audit's seed for these models")

    @field_validator("n_jobs")
    @classmethod
    def _n_jobs(cls, v: int) -> int:
        if v < 1 and v != -1:
            raise ValueError("n_jobs must be a positive number of workers, or -1 for all cores")
        return v


class ShokriAttack:
    """Shadow-model attack with one attack classifier per true class.

    Parameters
    ----------
    learner:
        Attack-model learner: ``"nn"`` (the paper's small neural network, every
        model trained together as one stack on ``device``:
        :mod:`miaudit.attacks.attack_net`), ``"gbdt"`` (histogram gradient
        boosting), ``"logreg"`` or ``"rf"`` (random forest), fitted one by one
        (:func:`make_learner`).
    per_class:
        One attack model per class (the paper). ``False``: a single
        class-agnostic model on the sorted prediction vector plus the
        probability of the true class.
    min_class_records:
        A class with fewer shadow records than this (or with only members or
        only non-members among them) uses the class-agnostic model.
    transform:
        Monotone transform of each probability before the attack model:
        ``"none"`` (the paper), ``"log"``, or ``"logit"`` (``log p - log(1-p)``,
        with ``1 - p`` summed from the other entries so it stays accurate near 1).
    max_records:
        Most shadow records one attack model (a class's, or the class-agnostic
        one) trains on; ``0`` trains on all. A larger set is subsampled, half
        members and half non-members where both have enough (the rest from the
        other side), drawn from the model's own seed: the cost of fitting stops
        growing with the number of shadows. The default, 50,000, binds no class
        of the default census audit at 10 shadows (identical scores); at 64
        shadows gradient boosting fitted in 0.64 of the time, its TPR at 1 % FPR
        inside the all-records interval (``bench/attack_scale.py``).
    n_jobs:
        For the scikit-learn learners: attack models fitted at once (they are
        independent); ``-1`` for all cores (``"nn"`` trains them all as one stack
        anyway). Workers are processes unless a ``joblib.parallel_config`` says
        otherwise. On 2 shared cores no setting beat ``1`` (the default); it is
        for hosts with idle cores and many classes.
    seed:
        Seed of every attack model's randomness; the same seed and data give
        the same scores whatever ``n_jobs`` is.
    device:
        Where ``"nn"`` trains: ``"cpu"`` or ``"cuda"`` (not a setting of the attack:
        the audit passes its own device; the scores agree up to float rounding).

    Attributes
    ----------
    class_models_:
        ``{class: fitted model}`` for the classes with their own model.
    agnostic_model_:
        The class-agnostic model (always fitted).
    fallback_classes_:
        ``{class: reason}`` for classes that use the class-agnostic model
        although ``per_class`` is on; empty when ``per_class`` is off.
    n_classes_:
        Width of the prediction vectors seen at fit time.
    class_counts_:
        Shadow records per class, ``(n_classes_,)``.
    """

    Config: ClassVar[type[ShokriConfig]] = ShokriConfig

    def __init__(
        self,
        learner: Learner = "nn",
        per_class: bool = True,
        min_class_records: int = 50,
        transform: Transform = "logit",
        max_records: int = 50_000,
        n_jobs: int = 1,
        seed: int = 0,
        *,
        device: str = "cpu",
    ) -> None:
        self.device = device
        self.config = build_config(
            ShokriConfig,
            "shokri attack",
            learner=learner,
            per_class=per_class,
            min_class_records=min_class_records,
            transform=transform,
            max_records=max_records,
            n_jobs=n_jobs,
            seed=seed,
        )

    @classmethod
    def from_config(cls, config: ShokriConfig, device: str = "cpu") -> Self:
        """Build the attack from an already validated config."""
        return cls(**config.model_dump(), device=device)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"ShokriAttack({args})"

    @property
    def decision_threshold(self) -> float:
        """0.5 on P(member): the attack classifier's own decision."""
        return 0.5

    # ----------------------------------------------------------------- fit / score

    def fit(
        self,
        signals: ArrayLike,
        labels: ArrayLike,
        member: ArrayLike,
        progress: Callable[[int, int], None] | None = None,
    ) -> Self:
        """Train the attack models on shadow models' prediction vectors.

        Parameters
        ----------
        signals:
            ``(n, C)`` shadow prediction vectors on the shadows' in- and out-records.
        labels:
            ``(n,)`` true class of each record.
        member:
            ``(n,)`` whether the record was in its shadow model's training set.
        progress:
            Called as ``progress(fitted, total)`` as the attack models are fitted.
        """
        cfg = self.config
        # In its own float type: only the rows a model trains on are read, in float64.
        p, y = check_prediction_signals(signals, labels, float64=False)
        m = _as_membership(member, p.shape[0])
        n_classes = p.shape[1]

        counts = np.bincount(y, minlength=n_classes)
        n_members = np.bincount(y, weights=m, minlength=n_classes).astype(np.int64)
        # Each model's rows: (key, rows of p); key None is the class-agnostic model.
        groups: list[tuple[int | None, np.ndarray]] = [(None, np.arange(len(m)))]
        fallback: dict[int, str] = {}
        if cfg.per_class:
            for c, idx in enumerate(rows_by_class(y, n_classes)):
                reason = _fallback_reason(int(counts[c]), int(n_members[c]), cfg.min_class_records)
                if reason:
                    fallback[c] = reason
                else:
                    groups.append((c, idx))

        # The rows each model trains on (at most max_records), chosen before any feature
        # is computed: the transforms act row by row, so only those rows need one.
        def job(key: int | None, idx: np.ndarray) -> tuple[int | None, np.ndarray, np.ndarray]:
            rows = idx[_balanced_subset(m[idx], cfg.max_records, cfg.seed, key)]
            t = _transform(p[rows].astype(np.float64), cfg.transform)
            return key, (_agnostic_features(t, y[rows]) if key is None else t), m[rows]

        # On one thread per core: NumPy's array operations release the GIL, and each
        # model's features are its own (at 256 census shadows, 5 million rows to read).
        with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
            jobs = list(pool.map(lambda g: job(*g), groups))
        seeds = [_model_seed(cfg.seed, key) for key, _, _ in jobs]
        if cfg.learner == "nn":
            # All models as one stack; inputs padded to the class-agnostic model's width.
            nets = fit_attack_nets(
                [(X, target) for _, X, target in jobs], seeds, n_classes + 1,
                device=self.device, progress=progress,
            )  # fmt: skip
            fitted = [_NetModel(nets, k) for k in range(len(jobs))]
        else:
            fitted = self._fit_each(jobs, seeds, progress)

        self.agnostic_model_ = fitted[0]
        self.class_models_ = {
            key: model for (key, _, _), model in zip(jobs[1:], fitted[1:], strict=True)
        }
        self.fallback_classes_ = fallback
        self.n_classes_ = n_classes
        self.class_counts_ = counts
        return self

    def _fit_each(self, jobs, seeds, progress) -> list[Any]:
        """Fit the scikit-learn learner's models one by one (or ``n_jobs`` at once)."""
        cfg = self.config
        with threadpool_limits(limits=_THREADS_PER_MODEL):
            # Processes, not threads: on 2 cores threads made gradient boosting
            # 2-3x slower than one worker (the GIL-bound parts of its boosting
            # loop contend); see bench/attack_learners.py.
            fitting = Parallel(n_jobs=cfg.n_jobs, prefer="processes", return_as="generator")(
                delayed(_fit_one)(cfg.learner, seed, X, target)
                for (_, X, target), seed in zip(jobs, seeds, strict=True)
            )
            fitted = []
            for model in fitting:  # in order, as each is fitted
                fitted.append(model)
                if progress is not None:
                    progress(len(fitted), len(jobs))
        return fitted

    def score(self, signals: ArrayLike, labels: ArrayLike) -> np.ndarray:
        """P(member) for each target record, from the attack model of its true class.

        Records of a class without its own model (see ``fallback_classes_``) are
        scored by the class-agnostic model.

        Returns
        -------
        numpy.ndarray
            ``(n,)`` float64 in [0, 1].
        """
        check_fitted(self, "agnostic_model_")
        p, y = check_prediction_signals(signals, labels, self.n_classes_)
        t = _transform(p, self.config.transform)
        scores = np.empty(p.shape[0], dtype=np.float64)
        covered = np.zeros(p.shape[0], dtype=bool)
        with threadpool_limits(limits=_THREADS_PER_MODEL):
            self._score_into(scores, covered, t, y)
        return scores

    def _score_into(
        self, scores: np.ndarray, covered: np.ndarray, t: np.ndarray, y: np.ndarray
    ) -> None:
        if self.class_models_:
            groups = rows_by_class(y, self.n_classes_)
            for c, model in self.class_models_.items():
                idx = groups[c]
                if idx.size:
                    scores[idx] = _p_member(model, t[idx])
                    covered[idx] = True
        rest = ~covered
        if rest.any():
            scores[rest] = _p_member(self.agnostic_model_, _agnostic_features(t[rest], y[rest]))


class Shokri(Attack):
    """The paper's attack in an audit: :class:`ShokriAttack` fitted on the shadows'
    outputs on their own in/out records, scoring the target's outputs.

    Its randomness follows the audit's seed (``seed`` shifts it); its scores are kept
    in the job cache, since fitting one model per class is the slow part of a rerun.
    """

    name = "shokri"
    section = "shokri"
    Config = ShokriConfig
    summary = "Shokri et al.'s shadow-model attack: one membership classifier per class"

    def needs(self) -> Needs:
        # It learns from whatever the shadows answer, one-hot labels included.
        return Needs(shadows=True, probabilities=False)

    def _settings(self, inputs: AttackInputs) -> ShokriConfig:
        seed = (inputs.seed + self.config.seed) % 2**32
        return self.config.model_copy(update={"seed": seed})

    def fit(self, inputs: AttackInputs) -> Self:
        self.attack_ = ShokriAttack.from_config(self._settings(inputs), device=inputs.device)
        report = inputs.progress
        self.attack_.fit(
            inputs.own_probs, inputs.own_labels, inputs.own_member,
            progress=None if report is None else (lambda done, total: report(done / total)),
        )  # fmt: skip
        return self

    def score(self, inputs: AttackInputs) -> np.ndarray:
        check_fitted(self, "attack_")
        scores = self.attack_.score(inputs.target_probs, inputs.labels)
        fallback = [inputs.class_names[int(c)] for c in sorted(self.attack_.fallback_classes_)]
        self.notes_ = {
            "learner": self.config.learner,
            "per_class_models": self.config.per_class,
            "fallback_classes": fallback,
            "n_attack_records": len(inputs.own_member),
        }
        if fallback:
            self.messages_.append(
                f"{len(fallback)} classes had too few attack records and used the "
                f"class-agnostic attack model: {', '.join(fallback[:8])}"
                f"{' …' if len(fallback) > 8 else ''}"
            )
        return scores

    def cache_parts(self, inputs: AttackInputs) -> dict[str, Any]:
        from miaudit.jobs import array_digest

        return {
            "attack": self._settings(inputs).model_dump(mode="json", exclude={"n_jobs"}),
            **{
                name: array_digest(getattr(inputs, name))
                for name in ("own_probs", "own_labels", "own_member", "target_probs", "labels")
            },
        }


# --------------------------------------------------------------------------- helpers


def _as_membership(member: ArrayLike, n: int) -> np.ndarray:
    m = np.asarray(member)
    if m.ndim != 1 or m.shape[0] != n:
        raise ConfigError(
            f"member must have one entry per row of signals ({n}); got shape {m.shape}."
        )
    if m.dtype != bool:
        if not np.issubdtype(m.dtype, np.number) or not np.isin(m, (0, 1)).all():
            raise ConfigError("member must be boolean or 0/1.")
        m = m.astype(bool)
    n_in = int(m.sum())
    if n_in == 0 or n_in == n:
        which = "non-members" if n_in == n else "members"
        raise ConfigError(
            f"the shadow records contain no {which}; the attack needs each shadow's "
            "in-records and its out-records."
        )
    return m


def _transform(p: np.ndarray, kind: str) -> np.ndarray:
    if kind == "none":
        return p
    if kind == "log":
        return np.log(np.maximum(p, _EPS))
    # logit: 1 - p from the rest of the row. Computed as 1 - p it would be 0 for an
    # overfitted model's top entry (the very records the attack must tell apart),
    # so the top entry's complement is summed from the other entries instead.
    rows = np.arange(p.shape[0])
    top = p.argmax(axis=1)
    rest = p.sum(axis=1, keepdims=True) - p
    others = p.copy()
    others[rows, top] = 0.0
    rest[rows, top] = others.sum(axis=1)
    return np.log(np.maximum(p, _EPS)) - np.log(np.maximum(rest, _EPS))


def _agnostic_features(t: np.ndarray, y: np.ndarray) -> np.ndarray:
    # The transforms are increasing in each entry, so sorting transformed values
    # equals transforming the sorted probabilities.
    sorted_desc = -np.sort(-t, axis=1)
    return np.column_stack((sorted_desc, t[np.arange(t.shape[0]), y]))


def _fallback_reason(n: int, n_members: int, min_records: int) -> str:
    if n == 0:
        return "no shadow records"
    if n < min_records:
        return f"{n} shadow records (fewer than min_class_records={min_records})"
    if n_members == 0:
        return "no members among its shadow records"
    if n_members == n:
        return "no non-members among its shadow records"
    return ""


def _model_seed(seed: int, key: int | None) -> int:
    # Derived from (seed, class), not drawn in order, so a model's randomness does
    # not depend on which other classes exist or on the order workers run.
    entropy = [seed, 0] if key is None else [seed, 1, key]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _balanced_subset(member: np.ndarray, limit: int, seed: int, key: int | None) -> np.ndarray:
    """Positions of at most ``limit`` records (all when ``limit`` is 0 or not exceeded):
    half members and half non-members where both sides have enough, the shortfall of one
    side made up from the other, in their original order."""
    n = member.size
    if not limit or n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(
        np.random.SeedSequence([seed, 2] if key is None else [seed, 3, key])
    )
    ins, outs = np.flatnonzero(member), np.flatnonzero(~member.astype(bool))
    take_in = min(ins.size, max(limit // 2, limit - outs.size))
    take_out = limit - take_in
    chosen = np.concatenate(
        [rng.choice(ins, take_in, replace=False), rng.choice(outs, take_out, replace=False)]
    )
    return np.sort(chosen)


def _fit_one(learner: str, seed: int, X: np.ndarray, target: np.ndarray) -> Any:
    with warnings.catch_warnings():
        # Not converging in max_iter is routine for a small attack network and says
        # nothing the metrics do not. Set here so it holds in worker processes too.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_learner(learner, seed).fit(X, target.astype(np.int64))


class _NetModel:
    """One of the stacked attack networks, answering as a scikit-learn classifier."""

    def __init__(self, nets: AttackNets, k: int) -> None:
        self.nets, self.k = nets, k

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = self.nets.p_member(self.k, X)
        return np.column_stack((1.0 - p, p))


def _p_member(model: Any, X: np.ndarray) -> np.ndarray:
    # Both labels are present at fit time, so classes_ is [0, 1].
    return model.predict_proba(X)[:, 1]
