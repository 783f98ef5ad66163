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
from pydantic import BaseModel, ConfigDict
from scipy.special import log_ndtr

from miaudit.attacks.base import build_config
from miaudit.errors import ConfigError

__all__ = ["LiRA", "LiRAConfig", "gaussian_logpdf", "query_variants"]

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
                f"{self.name} with {self.config.variance} variance: {what}; raise --shadows"
                + (" or use --lira-variance global" if self.config.variance == "per-record" else "")
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
