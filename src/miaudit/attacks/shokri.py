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

Learners. ``"nn"``: the paper's small networks, all classes' models trained together
as one stacked network (:mod:`miaudit.attacks.attack_net`) on the audit's device, on
logit-scaled inputs (without them the network lost AUC, 0.8596 against 0.8869 at 10
census shadows: an overfitted model's members and non-members differ where the
probabilities crowd near 0 and 1). ``"gbdt"``: gradient boosting, fitted one model
after another (the tree learners are unaffected by the transform). Neither is the
stronger everywhere. Measured with ``bench/shokri_learner.py`` (2-core VM, seeds 0 and
1, 10 shadows, 10,000 members; AUC and TPR at 1 % FPR on the target, the attack's
seconds over the shadows' training seconds)::

    audit                      nn                     gbdt                   auto
    census (default)           0.887/0.204 0.882/0.210  0.885/0.180 0.882/0.195  nn, nn (tie)
      attack s / shadows s     0.65 0.58               1.94 1.80               0.77 0.66
    census, random forest      0.995/0.895 0.995/0.874  0.997/0.953 0.998/0.952  gbdt, gbdt
    Adult, MLP                 0.544/0.016 0.539/0.010  0.541/0.015 0.529/0.012  nn, nn (tie)
    Adult, random forest       0.654/0.015 0.649/0.018  0.660/0.019 0.656/0.016  gbdt, gbdt

So by default (``learner="auto"``) the attack chooses as an attacker can, as LiRA
chooses its variance:

* it attacks its last shadow with each of :data:`CANDIDATES` trained on the other shadows
  (``shadow`` says which rows are whose; :func:`shadow_rows` reads it from an audit's
  layout);
* the candidates are fitted for ``choice_classes`` (12) classes only, at evenly spaced
  ranks of the classes' sizes, and without a class-agnostic model, so the choice costs
  a bounded time whatever the classes and shadows. Not the 12 largest: which learner
  leads differs from class to class (on the census audit boosting led on the 12 largest
  at 1 % FPR, 0.225 against 0.180 on the target, the networks on the other 34 and over
  all). Where no class has records enough in the other shadows for a model of its own
  (a few small shadows), the class-agnostic models are judged, on every class;
* the TPR at the held-out records' lowest well-resolved FPR
  (:func:`miaudit.metrics.ranking_fpr`) decides where the 95 % interval of the
  candidates' difference excludes zero, else the AUC's, else :data:`FALLBACK_LEARNER`.
  The interval resamples the judged classes, then their members and non-members, and
  scores both candidates on each resample (:func:`_paired_differences`): a lead on
  some classes, or on a handful of records, is not strength. On the census audit the
  point figures picked boosting on both seeds when 8 spread or the 12 largest classes
  were judged, the networks when 12 spread ones were, while the networks were the
  stronger on the target both times (and boosting's fit alone takes longer than the
  shadows' training there);
* meanwhile the fallback's final models are fitted on a second core, so where it is
  chosen the choice adds about a second (census: 8.1 and 7.5 s against 6.5 and 7.0 s
  for ``nn`` alone, the shadows 11.4-12.5 s; ``miaudit audit``, empty job cache);
* ``learner_choice_`` (``learner_choice`` in ``results.json``) reports both candidates'
  figures, the intervals and what decided. With a single shadow there is nothing to
  hold out: the attack uses :data:`FALLBACK_LEARNER` (the networks) and says so.
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
from miaudit.metrics import (
    DEFAULT_FPRS,
    MIN_FALSE_POSITIVES,
    auc,
    false_positive_budget,
    fpr_key,
    ranking_fpr,
    tpr_at_fpr,
)
from miaudit.models.torch_batched import torch_threads

__all__ = [
    "CANDIDATES",
    "FALLBACK_LEARNER",
    "LEARNERS",
    "Shokri",
    "ShokriAttack",
    "ShokriConfig",
    "make_learner",
    "shadow_rows",
]

Learner = Literal["auto", "nn", "gbdt", "logreg", "rf"]
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
    if name == "auto":
        raise ConfigError("learner auto chooses nn or gbdt from the shadows: use ShokriAttack")
    raise ConfigError(f"unknown learner {name!r}; choose one of: {', '.join(LEARNERS)}.")


#: The attack-model learner names accepted by ``ShokriAttack(learner=...)``.
LEARNERS: tuple[str, ...] = get_args(Learner)
#: What ``learner="auto"`` chooses between: the paper's networks and gradient boosting.
CANDIDATES: tuple[str, str] = ("nn", "gbdt")
#: What ``auto`` takes where it cannot hold a shadow out (a single shadow, or rows whose
#: shadow is unknown) and where neither candidate is the stronger beyond the noise of the
#: held-out shadow: the paper's networks, as strong as boosting on the default census
#: audit and a third of its time there (``bench/shokri_learner.py``).
FALLBACK_LEARNER = "nn"

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

    learner: Learner = Field(
        default="auto",
        description="the attack models' learner; auto chooses nn or gbdt by attacking a "
        "held-out shadow with each, trained on the other shadows",
    )
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
    choice_classes: int = Field(
        default=12,
        ge=0,
        description="auto: how many classes, spread over their sizes, its candidates are "
        "fitted and compared on (0: all)",
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
        Attack-model learner: ``"auto"`` (the default: ``"nn"`` or ``"gbdt"``,
        whichever attacks a held-out shadow better; see the module's docstring and
        ``learner_choice_``), ``"nn"`` (the paper's small neural network, every
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
    choice_classes:
        With ``learner="auto"`` and per-class models: the candidates are fitted, and
        the held-out shadow scored, on the records of this many classes only, at evenly
        spaced ranks of their sizes (``0``: every class). The choice then costs a
        bounded time: at 12, on the default census audit (46 classes), its two
        candidates took 6.6 s beside the networks' 6.6 s fit on all of them, and
        judged 5,663 of the held-out shadow's 20,000 records.
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
    learner_:
        The learner the attack models were fitted with (``auto``'s choice).
    learner_choice_:
        With ``learner="auto"``, what the choice found: each candidate's ``tpr`` (at
        ``fpr``, a key like ``"0.01"``; ``None`` when the held-out shadow resolves no
        rate) and ``auc`` on the held-out shadow, the 95 % intervals of their
        ``difference`` and what ``decided_by`` (``"tpr"``, ``"auc"`` or ``"tie"``),
        which shadow was held out (``held_out_shadow`` of ``shadows``, in the order of
        their ids), and the ``classes``, ``records`` and ``models`` (``"per class"`` or
        ``"class-agnostic"``) it was judged on; or, where nothing could be held out,
        ``why`` and the ``fallback`` taken. Empty for any other learner.
    class_models_:
        ``{class: fitted model}`` for the classes with their own model.
    agnostic_model_:
        The class-agnostic model (always fitted; ``None`` only in ``auto``'s
        per-class candidates, which score their own classes alone).
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
        learner: Learner = "auto",
        per_class: bool = True,
        min_class_records: int = 50,
        transform: Transform = "logit",
        max_records: int = 50_000,
        choice_classes: int = 12,
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
            choice_classes=choice_classes,
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
        *,
        shadow: ArrayLike | None = None,
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
            Called as ``progress(done, total)`` as the attack models are fitted.
        shadow:
            ``(n,)`` which shadow model each row came from (any integer ids), for
            ``learner="auto"``, which holds the last one out to choose the learner;
            ``None`` (unknown) or a single id: ``auto`` takes :data:`FALLBACK_LEARNER`.
        """
        cfg = self.config
        # In its own float type: only the rows a model trains on are read, in float64.
        p, y = check_prediction_signals(signals, labels, float64=False)
        m = _as_membership(member, p.shape[0])
        if cfg.learner != "auto":
            self._fit_models(p, y, m, cfg.learner, progress)
            self.learner_, self.learner_choice_ = cfg.learner, {}
            return self
        shadow = _as_shadow(shadow, p.shape[0])
        # While the candidates are judged, the fallback's final models are fitted on a
        # second core: it is the choice wherever neither candidate leads beyond noise
        # (the census audit). They contend only for the GIL of their Python loops: on
        # the census audit's outputs the choice then added 1.5 s to the networks' 6.6 s
        # fit, against 6.6 s one after the other (2-core VM).
        spare = len(os.sched_getaffinity(0)) > 1 and shadow is not None
        # One thread count for both (torch's is process-wide: nested settings and
        # restores from two threads could leave it changed).
        with torch_threads(1), ThreadPoolExecutor(1) as pool:
            ahead = ShokriAttack.from_config(self.config, self.device)
            early = (
                pool.submit(ahead._fit_models, p, y, m, FALLBACK_LEARNER, None) if spare else None
            )
            learner, choice = _choose_learner(
                p, y, m, shadow, cfg, self.device, _phase(progress, 0.0, 0.5)
            )
            if early is not None:
                early.result()  # a fallback fitted in vain still finishes first: seconds
            if early is not None and learner == FALLBACK_LEARNER:
                self.__dict__.update({k: v for k, v in vars(ahead).items() if k.endswith("_")})
                if progress is not None:
                    progress(1000, 1000)
            else:
                self._fit_models(p, y, m, learner, _phase(progress, 0.5, 0.5))
        self.learner_, self.learner_choice_ = learner, choice
        return self

    def _fit_models(
        self,
        p: np.ndarray,
        y: np.ndarray,
        m: np.ndarray,
        learner: str,
        progress: Callable[[int, int], None] | None,
        *,
        agnostic: bool = True,
    ) -> None:
        """Fit every attack model with ``learner`` on checked arrays; ``agnostic=False``
        skips the class-agnostic model when per-class models are on (``auto``'s
        candidates, which score only classes with their own model)."""
        cfg = self.config
        n_classes = p.shape[1]
        counts = np.bincount(y, minlength=n_classes)
        n_members = np.bincount(y, weights=m, minlength=n_classes).astype(np.int64)
        # Each model's rows: (key, rows of p); key None is the class-agnostic model.
        groups: list[tuple[int | None, np.ndarray]] = []
        if agnostic or not cfg.per_class:
            groups.append((None, np.arange(len(m))))
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
        if learner == "nn":
            # All models as one stack; inputs padded to the class-agnostic model's width.
            nets = fit_attack_nets(
                [(X, target) for _, X, target in jobs], seeds, n_classes + 1,
                device=self.device, progress=progress,
            )  # fmt: skip
            fitted = [_NetModel(nets, k) for k in range(len(jobs))]
        else:
            fitted = self._fit_each(learner, jobs, seeds, progress)

        models = dict(zip((key for key, _, _ in jobs), fitted, strict=True))
        self.agnostic_model_ = models.pop(None, None)
        self.class_models_ = models
        self.fallback_classes_ = fallback
        self.n_classes_ = n_classes
        self.class_counts_ = counts

    def _fit_each(self, learner: str, jobs, seeds, progress) -> list[Any]:
        """Fit the scikit-learn learner's models one by one (or ``n_jobs`` at once)."""
        cfg = self.config
        with threadpool_limits(limits=_THREADS_PER_MODEL):
            # Processes, not threads: on 2 cores threads made gradient boosting
            # 2-3x slower than one worker (the GIL-bound parts of its boosting
            # loop contend); see bench/attack_learners.py.
            fitting = Parallel(n_jobs=cfg.n_jobs, prefer="processes", return_as="generator")(
                delayed(_fit_one)(learner, seed, X, target)
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

    def _shadow_rows(self, inputs: AttackInputs) -> np.ndarray | None:
        """Which shadow each of ``own_*``'s rows came from, where ``auto`` needs it."""
        if self.config.learner != "auto":
            return None
        n_models = None if inputs.reference is None else inputs.reference.n_models
        return shadow_rows(inputs.own_member, n_models)

    def fit(self, inputs: AttackInputs) -> Self:
        self.attack_ = ShokriAttack.from_config(self._settings(inputs), device=inputs.device)
        report = inputs.progress
        self.attack_.fit(
            inputs.own_probs, inputs.own_labels, inputs.own_member,
            progress=None if report is None else (lambda done, total: report(done / total)),
            shadow=self._shadow_rows(inputs),
        )  # fmt: skip
        return self

    def score(self, inputs: AttackInputs) -> np.ndarray:
        check_fitted(self, "attack_")
        scores = self.attack_.score(inputs.target_probs, inputs.labels)
        fallback = [inputs.class_names[int(c)] for c in sorted(self.attack_.fallback_classes_)]
        auto = self.config.learner == "auto"
        self.notes_ = {
            "learner": self.attack_.learner_,
            **({"learner_choice": self.attack_.learner_choice_} if auto else {}),
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

        # choice_classes matters to auto alone: other learners keep their cache entries.
        auto = self.config.learner == "auto"
        skip = {"n_jobs"} if auto else {"n_jobs", "choice_classes"}
        rows = self._shadow_rows(inputs)
        return {
            "attack": self._settings(inputs).model_dump(mode="json", exclude=skip),
            **{
                name: array_digest(getattr(inputs, name))
                for name in ("own_probs", "own_labels", "own_member", "target_probs", "labels")
            },
            # The held-out shadow is read from this layout, which own_member alone may not fix.
            **({"shadow_rows": None if rows is None else array_digest(rows)} if auto else {}),
        }


# --------------------------------------------------------------------------- helpers


def shadow_rows(member: ArrayLike, n_models: int | None = None) -> np.ndarray | None:
    """Which shadow each row of an audit's stacked shadow records came from (``0 ..
    K - 1``), read from how the audit stacks them, or ``None`` where the layout is not
    recognised; ``n_models`` is the number of shadows where known (the reference models).

    Both games stack the shadows one after another. In the paper's game each shadow's
    rows are its in-records, then its out-records, so a shadow starts wherever a member
    follows a non-member. In the recipe game every reference model answers the same
    pool, so the rows are ``n_models`` equal blocks (their membership interleaved).
    """
    m = np.asarray(member).astype(bool)
    n = m.size
    if n == 0:
        return None
    starts = np.r_[0, np.flatnonzero(m[1:] & ~m[:-1]) + 1]
    blocks = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, n]))
    in_then_out = bool(m[0]) and not bool(m[-1])
    if n_models is not None:
        if in_then_out and starts.size == n_models:
            return blocks
        if n_models >= 1 and n % n_models == 0:
            return np.repeat(np.arange(n_models), n // n_models)
        return None
    if not in_then_out:
        return None
    # Without the count, in-then-out blocks are believed only when each could be a
    # shadow's own records: enough of both sides to attack (an interleaved layout
    # splits into blocks of a record or two).
    ins = np.bincount(blocks, weights=m)
    outs = np.bincount(blocks) - ins
    if starts.size > 1 and min(ins.min(), outs.min()) < MIN_FALSE_POSITIVES:
        return None
    return blocks


def _as_shadow(shadow: ArrayLike | None, n: int) -> np.ndarray | None:
    if shadow is None:
        return None
    s = np.asarray(shadow)
    if s.ndim != 1 or s.shape[0] != n:
        raise ConfigError(
            f"shadow must have one entry per row of signals ({n}); got shape {s.shape}."
        )
    if s.size and not np.issubdtype(s.dtype, np.integer):
        raise ConfigError(f"shadow must hold integer shadow ids; got {s.dtype}.")
    return s


def _phase(
    progress: Callable[[int, int], None] | None, start: float, share: float
) -> Callable[[int, int], None] | None:
    """``progress`` for one phase of a fit that has several: its ``(done, total)`` mapped
    onto ``start .. start + share`` of the whole, in thousandths."""
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        progress(round(1000 * (start + share * done / max(total, 1))), 1000)

    return report


def _fallback(why: str) -> tuple[str, dict[str, Any]]:
    return FALLBACK_LEARNER, {"why": why, "fallback": FALLBACK_LEARNER}


def _spread_classes(rows: dict[int, np.ndarray], limit: int) -> np.ndarray:
    """At most ``limit`` (0: all) of the classes ``rows`` holds, at evenly spaced ranks
    of their record counts, the largest and the smallest included: the learners' order
    differs between large and small classes (on the census audit boosting led on the 12
    largest at 1 % FPR, the networks on the rest and overall), so a choice made on the
    largest alone would be made for them alone."""
    by_size = sorted(rows, key=lambda c: (-rows[c].size, c))
    if limit and len(by_size) > limit:
        ranks = np.unique(np.round(np.linspace(0, len(by_size) - 1, limit)).astype(int))
        by_size = [by_size[r] for r in ranks]
    return np.sort(np.array(by_size, dtype=np.int64))


def _candidate_scores(
    learner: str,
    cfg: ShokriConfig,
    device: str,
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    progress: Callable[[int, int], None] | None,
) -> np.ndarray:
    """One candidate's P(member) on the held-out rows ``test``, its models trained on
    ``train``: per class without the class-agnostic model, which no held-out row needs."""
    candidate = ShokriAttack.from_config(cfg.model_copy(update={"learner": learner}), device)
    candidate._fit_models(*train, learner, progress, agnostic=False)
    return candidate.score(*test)


def _choose_learner(
    p: np.ndarray,
    y: np.ndarray,
    m: np.ndarray,
    shadow: np.ndarray | None,
    cfg: ShokriConfig,
    device: str,
    progress: Callable[[int, int], None] | None,
) -> tuple[str, dict[str, Any]]:
    """``auto``'s learner and what the choice found (``learner_choice_``): the last
    shadow attacked by each of :data:`CANDIDATES`, trained on the other shadows."""
    if shadow is None:
        return _fallback("which shadow each attack record came from is unknown: none to hold out")
    ids, position = np.unique(shadow, return_inverse=True)
    if ids.size < 2:
        return _fallback("a single shadow: none to hold out")
    held = position == ids.size - 1
    n_classes = p.shape[1]
    # Per class that gets a model of its own, the rows its candidate trains on
    # (bounded as the final fit bounds them).
    rows: dict[int, np.ndarray] = {}
    for c, idx in enumerate(rows_by_class(y, n_classes) if cfg.per_class else []):
        idx = idx[~held[idx]]
        idx = idx[_balanced_subset(m[idx], cfg.max_records, cfg.seed, c)]
        if not _fallback_reason(idx.size, int(m[idx].sum()), cfg.min_class_records):
            rows[c] = idx
    if rows:
        classes = _spread_classes(rows, cfg.choice_classes)
        train = np.sort(np.concatenate([rows[c] for c in classes]))
        test = np.flatnonzero(held & np.isin(y, classes))
    else:
        # The class-agnostic model judged on every class: what per_class=False fits,
        # and what the other shadows alone would give every class where none has
        # records enough for a model of its own (a few small shadows).
        cfg = cfg.model_copy(update={"per_class": False})
        train = np.flatnonzero(~held)
        train = train[_balanced_subset(m[train], cfg.max_records, cfg.seed, None)]
        classes = np.arange(n_classes)
        test = np.flatnonzero(held)
    truth = m[test]
    if truth.all() or not truth.any() or m[train].all() or not m[train].any():
        return _fallback("the held-out shadow or the others have records of one membership only")
    key = ranking_fpr([fpr_key(f) for f in DEFAULT_FPRS], int((~truth).sum()))
    scores: dict[str, np.ndarray] = {}
    figures: dict[str, dict[str, float | None]] = {}
    for i, learner in enumerate(CANDIDATES):
        scores[learner] = _candidate_scores(
            learner, cfg, device, (p[train], y[train], m[train]), (p[test], y[test]),
            _phase(progress, i / len(CANDIDATES), 1 / len(CANDIDATES)),
        )  # fmt: skip
        figures[learner] = {
            "tpr": None if key is None else tpr_at_fpr(scores[learner], truth, float(key)),
            "auc": auc(scores[learner], truth),
        }
    first, second = CANDIDATES
    tpr_diff, auc_diff = _paired_differences(
        scores[first], scores[second], truth, y[test], None if key is None else float(key),
        cfg.seed,
    )  # fmt: skip
    # The TPR at the ranking rate decides where its difference lies beyond the noise
    # of one held-out shadow's records, else the AUC, else the fallback.
    chosen, decided_by = FALLBACK_LEARNER, "tie"
    for what, (low, high) in (("tpr", tpr_diff), ("auc", auc_diff)):
        if low > 0 or high < 0:
            chosen, decided_by = (second if low > 0 else first), what
            break
    return chosen, {
        "candidates": figures,
        "fpr": key,
        # 95 % intervals of second - first (gbdt - nn) over the held-out records.
        "difference": {"tpr": list(tpr_diff), "auc": list(auc_diff), "of": f"{second} - {first}"},
        "decided_by": decided_by,
        "held_out_shadow": int(ids.size - 1),
        "shadows": int(ids.size),
        "classes": int(classes.size),
        "records": int(test.size),
        "models": "per class" if cfg.per_class else "class-agnostic",
    }


#: Resamples behind ``auto``'s intervals of the candidates' difference (a 95 % interval's
#: ends move by about 0.003 AUC between 200 and 2000).
CHOICE_BOOTSTRAP = 200


def _paired_differences(
    a: np.ndarray,
    b: np.ndarray,
    truth: np.ndarray,
    classes: np.ndarray,
    fpr: float | None,
    seed: int,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """95 % percentile intervals of ``b``'s TPR at ``fpr`` minus ``a``'s (``(0, 0)``
    without a rate) and of their AUCs' difference.

    Both learners score the same resample, so their difference is far steadier than
    either. Each resample draws the judged classes with replacement, then each drawn
    class's members and non-members with replacement: the choice is made on some
    classes for all of them, and which learner leads differs from class to class (on
    the census audit the spread of 8 classes of one seed favoured boosting, of 12 the
    networks, which led over all 46), so that variation belongs in the interval as
    much as the records'."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4]))
    ids = np.unique(classes)
    groups = [
        (np.flatnonzero((classes == c) & truth), np.flatnonzero((classes == c) & ~truth))
        for c in ids
    ]
    d_tpr, d_auc = np.zeros(CHOICE_BOOTSTRAP), np.zeros(CHOICE_BOOTSTRAP)
    # A resample with members or non-members of no class compares nothing: it is left
    # out, not counted as a tie that would pull the intervals toward zero.
    used = np.zeros(CHOICE_BOOTSTRAP, dtype=bool)
    for r in range(CHOICE_BOOTSTRAP):
        drawn = rng.integers(0, ids.size, ids.size) if ids.size > 1 else [0]
        pos = np.concatenate([_redraw(groups[g][0], rng) for g in drawn])
        neg = np.concatenate([_redraw(groups[g][1], rng) for g in drawn])
        if not pos.size or not neg.size:
            continue  # classes of one side only: no comparison in this resample
        used[r] = True
        for sign, s in ((-1.0, a), (1.0, b)):
            sp, sn = s[pos], np.sort(s[neg])
            if fpr is not None:
                # tpr_at_fpr's statistic: members strictly above the (budget + 1)-th
                # highest non-member of the resample.
                k = min(false_positive_budget(fpr, sn.size), sn.size - 1)
                d_tpr[r] += sign * float((sp > sn[sn.size - 1 - k]).mean())
            below = np.searchsorted(sn, sp, side="left") + np.searchsorted(sn, sp, side="right")
            d_auc[r] += sign * float(below.sum()) / (2.0 * sp.size * sn.size)
    if not used.any():
        return (0.0, 0.0), (0.0, 0.0)
    return _interval(d_tpr[used]), _interval(d_auc[used])


def _redraw(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rows[rng.integers(0, rows.size, rows.size)] if rows.size else rows


def _interval(values: np.ndarray) -> tuple[float, float]:
    low, high = np.quantile(values, [0.025, 0.975])
    return float(low), float(high)


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
