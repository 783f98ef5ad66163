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
few reference models (Carlini et al. use it below 64). Everything is vectorised
over records, models and queries.
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
from miaudit.errors import ConfigError, key
from miaudit.signals import logit_confidence

__all__ = [
    "LiRA",
    "LiRAConfig",
    "LiRAOffline",
    "LiRAOnline",
    "LiRASettings",
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


def query_variants(X: np.ndarray, n: int, *, image: bool, noise: float = 0.1) -> np.ndarray:
    """``n - 1`` variants of each record for LiRA's extra queries: ``(n - 1, len(X), ...)``.

    Images: the mirror image, then shifts by one pixel (right, left, down, up),
    the augmentations Carlini et al. query. Tabular records have no natural
    augmentation; the variants add fixed, deterministic offsets of ``±noise``
    standard deviations to every numeric (standardised) feature (a one-hot block is
    left as it is), so that shadows and target see identical variants.
    """
    X = np.asarray(X, dtype=np.float32)
    out = []
    if image:
        moves = [
            lambda a: a[..., ::-1],
            lambda a: np.roll(a, 1, axis=-1),
            lambda a: np.roll(a, -1, axis=-1),
            lambda a: np.roll(a, 1, axis=-2),
            lambda a: np.roll(a, -1, axis=-2),
        ]
        if n - 1 > len(moves):
            raise ConfigError(f"lira_queries {n}: images have at most {len(moves) + 1} queries")
        return np.stack([moves[i](X) for i in range(n - 1)]) if n > 1 else X[None][:0]
    numeric = np.array([len(np.unique(X[:, j])) > 2 for j in range(X.shape[1])])
    for i in range(1, n):
        sign = 1.0 if i % 2 else -1.0
        step = noise * ((i + 1) // 2)
        out.append(X + (sign * step * numeric).astype(np.float32))
    return np.stack(out) if out else X[None][:0]


class LiRASettings(BaseModel):
    """LiRA's settings (``[attacks.lira]``, shared by ``lira`` and ``lira-offline``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variance: Literal["per-record", "global"] = Field(
        default="global",
        description="global pools every record's deviations (stable below ~64 models); "
        "per-record estimates each record's own",
    )
    queries: int = Field(
        default=1,
        ge=1,
        le=6,
        description="queries per record: 1, or more with augmentations (images: mirror, then "
        "1-pixel shifts; tables: small numeric offsets)",
    )


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

    def _kernel(self) -> LiRA:
        return LiRA(online=self.online, variance=self.config.variance)

    def needs(self) -> Needs:
        need_in, need_out = self._kernel().required_models()
        return Needs(
            reference="in-out" if self.online else "out",
            reference_models=(need_in, need_out),
            variants=self.config.queries - 1,
        )

    def check(self, context: PlanContext) -> None:
        need_in, need_out = self._kernel().required_models()
        # Online draws put every record IN for exactly half the shadows.
        need = 2 * max(need_in, need_out) if self.online else need_out
        if context.n_shadows < need:
            raise ConfigError(
                f"{self.name} with {self.config.variance} variance needs at least {need} "
                f"shadows ({need_in} IN and {need_out} OUT per record); got "
                f"{context.n_shadows}: raise {key('shadows')}"
                + (
                    f" or use {key('attacks.lira.variance', 'global')}"
                    if self.config.variance == "per-record"
                    else ""
                )
            )

    def queries(self, records: np.ndarray, fmt: RecordFormat, rng: np.random.Generator):
        return query_variants(records, self.config.queries, image=fmt.image)

    def score(self, inputs: AttackInputs) -> np.ndarray:
        ref, y = inputs.reference, inputs.labels
        ev = ref.subset(np.arange(inputs.n_eval))
        phi_ref = logit_confidence(ev.probs, ev.labels)
        phi_target = logit_confidence(inputs.target_probs, y)
        if len(inputs.variants):
            # Extra queries per record: (K, n, A) and (n, A).
            extra = [logit_confidence(ref.probs[:, v], ev.labels) for v in inputs.variants]
            phi_ref = np.stack([phi_ref, *extra], axis=-1)
            phi_target = np.stack(
                [phi_target, *(logit_confidence(t, y) for t in inputs.target_variants)], axis=-1
            )
        self.notes_ = {
            "variance": self.config.variance,
            "reference_models": ref.n_models,
            "queries_per_record": 1 + len(inputs.variants),
        }
        return self._kernel().score(phi_ref, ev.member, phi_target)

    @property
    def decision_threshold(self) -> float:
        return 0.0 if self.online else _OFFLINE_CUT


class LiRAOffline(LiRAOnline):
    name = "lira-offline"
    summary = "LiRA offline: a one-sided test against each record's OUT Gaussian"
    online = False
