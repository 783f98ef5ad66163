"""LiRA, the likelihood-ratio attack of Carlini et al. (S&P 2022).

Position in the pipeline: ``signals -> attack -> scores``. LiRA works per
record: reference (shadow) models trained with and without the record give the
distribution of the logit-scaled confidence ``φ`` (:func:`~miaudit.signals.logit_confidence`)
when the record is IN and when it is OUT, each modelled as a Gaussian; the
target's ``φ`` on the record is then scored by

* **online**: ``log N(φ; μ_in, σ_in²) - log N(φ; μ_out, σ_out²)``, the log likelihood
  ratio; needs reference models that trained on each scored record;
* **offline**: ``log Φ((φ - μ_out) / σ_out)``, a one-sided test against the OUT
  distribution only (members have higher confidence); needs no model that saw
  the record, so it works with the paper's disjoint shadows.

With ``A`` queries per record (augmentations), ``φ`` has a trailing axis of
length ``A`` and the Gaussians are independent per query (LiRA's diagonal
approximation): the scores add up.

Variances: ``per-record`` estimates ``σ`` from each record's own IN (OUT) models;
``global`` pools the deviations of all records, which is far more stable with
few reference models (Carlini et al. use it below 64). Which one is stronger
depends on the model (per-record on a random forest by 5–10× in TPR at 1 % FPR,
global on MLPs), so by default (``auto``) LiRA chooses it from what the attacker
has, as RMIA chooses its ``a``: it attacks up to four reference models in turn with
the others under each mode, on records whose membership it knows, and keeps the mode
with the higher mean TPR at a low, well-resolved FPR (then AUC; then ``global``)
(:func:`choose_variance`). Everything is vectorised over records, models and queries.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import log_ndtr

from miaudit.attacks.base import (
    Attack,
    AttackInputs,
    Needs,
    PlanContext,
    RecordFormat,
    build_config,
)
from miaudit.attacks.variants import make_variants, queries_field, query_variants
from miaudit.errors import ConfigError, key
from miaudit.metrics import auc, tpr_at_fpr
from miaudit.signals import logit_confidence

__all__ = [
    "LiRA",
    "LiRAConfig",
    "LiRAOffline",
    "LiRAOnline",
    "LiRASettings",
    "choose_variance",
    "gaussian_logpdf",
    "query_variants",
]

# Floor of a standard deviation: a record whose reference models all agree to the
# last digit would otherwise give an infinite score.
_MIN_STD = 1e-6


class LiRAConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    online: bool = True
    variance: Literal["per-record", "global"] = "global"


def gaussian_logpdf(x: np.ndarray, mu: np.ndarray, std: np.ndarray) -> np.ndarray:
    z = (x - mu) / std
    return -0.5 * z * z - np.log(std) - 0.5 * np.log(2 * np.pi)


def _masked_moments(
    phi: np.ndarray, mask: np.ndarray, variance: str
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over models (axis 0) of the entries in ``mask``.

    ``phi`` is ``(K, n, A)``, ``mask`` ``(K, n)``. Returns ``(n, A)`` arrays.
    """
    w = mask[..., None].astype(np.float64)
    count = w.sum(axis=0)
    mu = (phi * w).sum(axis=0) / np.maximum(count, 1)
    dev2 = ((phi - mu) ** 2) * w
    if variance == "global":
        var = dev2.sum(axis=(0, 1)) / np.maximum(w.sum(axis=(0, 1)), 1)
        var = np.broadcast_to(var, mu.shape)
    else:
        var = dev2.sum(axis=0) / np.maximum(count, 1)
    return mu, np.maximum(np.sqrt(var), _MIN_STD)


class LiRA:
    """Score records from reference models' ``φ`` and the target's ``φ``.

    Parameters
    ----------
    online:
        Use IN and OUT Gaussians (online) or the OUT one only (offline).
    variance:
        ``"per-record"`` or ``"global"``.
    """

    def __init__(self, **options) -> None:
        self.config = build_config(LiRAConfig, "LiRA", **options)

    @property
    def name(self) -> str:
        return "lira" if self.config.online else "lira-offline"

    def required_models(self) -> tuple[int, int]:
        """Reference models needed per record: ``(IN, OUT)``."""
        per = 2 if self.config.variance == "per-record" else 1
        return (per if self.config.online else 0, per)

    def check_counts(self, member: np.ndarray) -> None:
        """Refuse reference models that cannot support the Gaussians (before scoring)."""
        need_in, need_out = self.required_models()
        n_in = member.sum(axis=0)
        n_out = member.shape[0] - n_in
        short_in = int((n_in < need_in).sum())
        short_out = int((n_out < need_out).sum())
        if short_in or short_out:
            what = (
                f"{short_in} records have fewer than {need_in} IN models"
                if short_in
                else f"{short_out} records have fewer than {need_out} OUT models"
            )
            raise ConfigError(
                f"{self.name} with {self.config.variance} variance: {what}; raise "
                f"{key('shadows')}"
                + (
                    f" or use {key('attacks.lira.variance', 'global')}"
                    if self.config.variance == "per-record"
                    else ""
                )
            )

    def score(self, phi_ref: np.ndarray, member: np.ndarray, phi_target: np.ndarray) -> np.ndarray:
        """One score per record.

        Parameters
        ----------
        phi_ref:
            ``(K, n)`` or ``(K, n, A)`` reference models' ``φ``.
        member:
            ``(K, n)`` whether each reference model trained on each record.
        phi_target:
            ``(n,)`` or ``(n, A)`` the target's ``φ``.
        """
        phi_ref = np.asarray(phi_ref, dtype=np.float64)
        phi_target = np.asarray(phi_target, dtype=np.float64)
        if phi_ref.ndim == 2:
            phi_ref, phi_target = phi_ref[..., None], phi_target[..., None]
        member = np.asarray(member, dtype=bool)
        self.check_counts(member)
        v = self.config.variance
        mu_out, std_out = _masked_moments(phi_ref, ~member, v)
        if not self.config.online:
            return log_ndtr((phi_target - mu_out) / std_out).sum(axis=-1)
        mu_in, std_in = _masked_moments(phi_ref, member, v)
        ratio = gaussian_logpdf(phi_target, mu_in, std_in) - gaussian_logpdf(
            phi_target, mu_out, std_out
        )
        return ratio.sum(axis=-1)


#: Reference models attacked in turn to choose the variance mode.
PSEUDO_TARGETS = 4
#: The FPR at which the variance modes are compared: 1 %, or the rate at which the
#: records attacked hold this many false positives when that is higher.
_CHOICE_FPR, _CHOICE_FALSE_POSITIVES = 0.01, 10
VARIANCES = ("global", "per-record")


def choose_variance(
    phi: np.ndarray, member: np.ndarray, *, online: bool
) -> tuple[str, dict[str, object]]:
    """LiRA's variance mode, chosen as an attacker can: attack reference model ``k``
    with the others under each mode, for up to :data:`PSEUDO_TARGETS` models.

    ``phi`` is ``(K, n)`` or ``(K, n, A)`` the reference models' ``φ`` on records whose
    membership ``member`` ``(K, n)`` is known. Each mode scores the same records: those
    on which the other models support per-record Gaussians. Returns the mode with the
    higher mean TPR at the comparison FPR (then the higher mean AUC; ``global`` when
    both tie), and the facts: each mode's mean TPR and AUC, the FPR, the models
    attacked and the records scored. When no model can be attacked so (too few
    models, or records of one membership only) the mode is ``global`` and the facts
    say why.
    """
    phi = np.asarray(phi, dtype=np.float64)
    member = np.asarray(member, dtype=bool)
    K = member.shape[0]
    need_in = 2 if online else 0
    runs: list[tuple[int, np.ndarray]] = []
    for k in range(K):
        others = np.arange(K) != k
        n_in = member[others].sum(axis=0)
        usable = (n_in >= need_in) & (others.sum() - n_in >= 2)
        truth = member[k, usable]
        if min(int(truth.sum()), int((~truth).sum())) >= _CHOICE_FALSE_POSITIVES:
            runs.append((k, usable))
        if len(runs) == PSEUDO_TARGETS:
            break
    if not runs:
        return "global", {
            "why": "no reference model could be attacked with the others under per-record "
            "variance (too few models, or records of one membership only)"
        }
    scores: dict[str, dict[str, list[float]]] = {v: {"tpr": [], "auc": []} for v in VARIANCES}
    fpr = _CHOICE_FPR
    for k, usable in runs:
        others = np.arange(K) != k
        truth = member[k, usable]
        fpr = max(_CHOICE_FPR, _CHOICE_FALSE_POSITIVES / int((~truth).sum()))
        for v in VARIANCES:
            s = LiRA(online=online, variance=v).score(
                phi[others][:, usable], member[others][:, usable], phi[k, usable]
            )
            scores[v]["tpr"].append(tpr_at_fpr(s, truth, fpr))
            scores[v]["auc"].append(auc(s, truth))
    mean = {v: (float(np.mean(d["tpr"])), float(np.mean(d["auc"]))) for v, d in scores.items()}
    chosen = "per-record" if mean["per-record"] > mean["global"] else "global"
    facts: dict[str, object] = {
        "candidates": {v: {"tpr": t, "auc": a} for v, (t, a) in mean.items()},
        "fpr": fpr,
        "models_attacked": [k for k, _ in runs],
        "records": int(np.mean([u.sum() for _, u in runs])),
    }
    return chosen, facts


class LiRASettings(BaseModel):
    """LiRA's settings (``[attacks.lira]``, shared by ``lira`` and ``lira-offline``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variance: Literal["auto", "per-record", "global"] = Field(
        default="auto",
        description="global pools every record's deviations (stable below ~64 models); "
        "per-record estimates each record's own; auto chooses by attacking shadows with "
        "the others under each",
    )
    queries: int = queries_field("their Gaussians independent per query")


#: Decision thresholds: online calls a record a member when IN is the likelier
#: hypothesis; offline rejects OUT at 5 %.
_OFFLINE_CUT = float(np.log(0.95))


class LiRAOnline(Attack):
    """LiRA with IN and OUT Gaussians per record (the shadows train on halves of the
    evaluated records); :class:`LiRAOffline` with the OUT one only."""

    name = "lira"
    section = "lira"
    Config = LiRASettings
    summary = "Carlini et al.'s likelihood ratio, online: IN and OUT Gaussians per record"
    online = True
    # Its power grows with the reference models well beyond these (Carlini et al. train
    # 64 to 256); below them, per-record Gaussians rest on a handful of values each.
    full_strength_shadows = 16

    def _kernel(self, variance: str | None = None) -> LiRA:
        v = variance or self.config.variance
        return LiRA(online=self.online, variance="global" if v == "auto" else v)

    def needs(self) -> Needs:
        need_in, need_out = self._kernel().required_models()
        return Needs(
            reference="in-out" if self.online else "out",
            reference_models=(need_in, need_out),
            variants=self.config.queries - 1,
            # Offline, the variance is chosen on shadow 0's own records.
            calibration=not self.online and self.config.variance == "auto",
        )

    def check(self, context: PlanContext) -> None:
        need_in, need_out = self._kernel().required_models()
        # Online draws put every record IN for exactly half the shadows.
        need = 2 * max(need_in, need_out) if self.online else need_out
        if context.n_shadows < need:
            raise ConfigError(
                f"{self.name} with {self._kernel().config.variance} variance needs at least "
                f"{need} shadows ({need_in} IN and {need_out} OUT per record); got "
                f"{context.n_shadows}: raise {key('shadows')}"
                + (
                    f" or use {key('attacks.lira.variance', 'global')}"
                    if self.config.variance == "per-record"
                    else ""
                )
            )

    def queries(self, records: np.ndarray, fmt: RecordFormat, rng: np.random.Generator):
        return make_variants(records, self.config.queries, fmt)

    def _phi(self, inputs: AttackInputs, records: np.ndarray, q: int) -> np.ndarray:
        """The reference models' ``φ`` on ``records`` of the reference set and their first
        ``q - 1`` variants: ``(K, n, q)``."""
        return inputs.reference_signal(logit_confidence, records, q)

    def _variance(self, inputs: AttackInputs, q: int) -> tuple[str, dict]:
        """The variance mode to score with, and what the choice found."""
        if self.config.variance != "auto":
            return self.config.variance, {}
        ref = inputs.reference
        ev = np.arange(inputs.n_eval)
        # Per-record Gaussians need 2 IN (online) and 2 OUT models for every record.
        per_record = LiRA(online=self.online, variance="per-record")
        try:
            per_record.check_counts(ref.member[:, ev])
        except ConfigError as err:
            return "global", {"why": f"per-record is not possible here: {err}"}
        # Records whose membership some shadows know: shadow 0's own records when the
        # shadows never saw the evaluated records (offline), else the evaluated ones.
        records = inputs.calibration if len(inputs.calibration) else ev
        q_choice = min(q, inputs.n_queries(records))
        phi = self._phi(inputs, records, q_choice)
        chosen, facts = choose_variance(phi, ref.member[:, records], online=self.online)
        if q_choice < q:
            facts["queries_per_record"] = q_choice
        return chosen, facts

    def score(self, inputs: AttackInputs) -> np.ndarray:
        ev = np.arange(inputs.n_eval)
        q = min(self.config.queries, inputs.available_queries(ev))
        phi_ref = self._phi(inputs, ev, q)
        phi_target = logit_confidence(inputs.target_queries(q), inputs.labels[:, None])
        variance, choice = self._variance(inputs, q)
        self.notes_ = {
            "variance": variance,
            **({"variance_choice": choice} if self.config.variance == "auto" else {}),
            "reference_models": inputs.reference.n_models,
            "queries_per_record": q,
        }
        return self._kernel(variance).score(phi_ref, inputs.reference.member[:, ev], phi_target)

    @property
    def decision_threshold(self) -> float:
        return 0.0 if self.online else _OFFLINE_CUT


class LiRAOffline(LiRAOnline):
    name = "lira-offline"
    summary = "LiRA offline: a one-sided test against each record's OUT Gaussian"
    online = False
    full_strength_shadows = 8
