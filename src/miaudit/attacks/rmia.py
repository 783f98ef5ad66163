"""RMIA, the relative membership inference attack of Zarifzadeh et al. (ICML 2024).

Position in the pipeline: ``signals -> attack -> scores``. RMIA compares the
likelihood ratio of a record ``x`` with those of population records ``z``::

    LR(x, z) = [Pr(x | θ) / Pr(x)] / [Pr(z | θ) / Pr(z)]
    score(x) = fraction of z with LR(x, z) > γ

where ``Pr(x | θ)`` is the target's probability of ``x``'s true class and ``Pr(x)``
the average of the same over reference models. **Online**, the reference models
include ones that trained on ``x`` (about half), so the average is over IN and
OUT models. **Offline**, only OUT models exist and the IN half is approximated
linearly: ``Pr(x) = ((1 + a)·Pr_OUT(x) + (1 - a)) / 2``, with ``a`` chosen as the
paper does: attack one reference model with the others for each ``a`` on a grid
and keep the ``a`` with the highest AUC (:meth:`RMIA.choose_a`).

The fraction saturates: a record that dominates every population record scores 1,
and with a strong leak hundreds of members (and a few non-members) do, so that the
lowest false-positive rates could not be resolved. Ties are broken by a continuous
statistic, the mean log likelihood ratio against the population (:meth:`RMIA.score`):
the score still counts the population records a record dominates, and within a count
it rises with ``Pr(x | θ) / Pr(x)``. Everything is computed in logarithms from
probabilities and their complements, so that probabilities which round to 1 keep their
order (:func:`~miaudit.signals.true_class_parts`).

The score is vectorised: the population's ratios are sorted once and each
record's count is one binary search.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from miaudit.attacks.base import (
    Attack,
    AttackInputs,
    Needs,
    PlanContext,
    RecordFormat,
    build_config,
)
from miaudit.attacks.variants import make_variants, queries_field
from miaudit.errors import ConfigError, key
from miaudit.metrics import auc
from miaudit.signals import LOG_TINY, TINY, true_class_parts

__all__ = ["RMIA", "RMIAConfig", "RMIAOffline", "RMIAOnline", "RMIASettings"]

A_GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


class RMIAConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    online: bool = True
    gamma: float = Field(default=1.0, gt=0)
    a: float | None = Field(default=None, ge=0, le=1)


class RMIA:
    """Score records by their likelihood ratio relative to population records."""

    def __init__(self, **options) -> None:
        self.config = build_config(RMIAConfig, "RMIA", **options)
        self.a_ = self.config.a

    @property
    def name(self) -> str:
        return "rmia" if self.config.online else "rmia-offline"

    def _log_marginal(self, p_ref: np.ndarray, q_ref: np.ndarray, member: np.ndarray):
        """``log Pr(x)`` from reference models' true-class probabilities ``(K, n)`` (or
        ``(K, n, A)`` with ``A`` queries per record) and their complements ``q = 1 - p``
        (averaged as such, so that probabilities near 1 keep their differences)."""
        if self.config.online:
            p, q = p_ref.mean(axis=0), q_ref.mean(axis=0)
        else:
            out = ~member
            n_out = out.sum(axis=0)
            if (n_out == 0).any():
                raise ConfigError(
                    f"rmia-offline: {int((n_out == 0).sum())} records have no OUT reference "
                    f"model; raise {key('shadows')}"
                )
            if p_ref.ndim == 3:
                out, n_out = out[..., None], n_out[..., None]
            a = 1.0 if self.a_ is None else self.a_
            p = 0.5 * ((1 + a) * (p_ref * out).sum(axis=0) / n_out + (1 - a))
            q = 0.5 * (1 + a) * (q_ref * out).sum(axis=0) / n_out
        return _log_of(p, q)

    def log_ratios(self, p_target, p_ref, member, q_target=None, q_ref=None) -> np.ndarray:
        """``log [Pr(x | θ) / Pr(x)]`` of each record (see :meth:`score`); with a trailing
        axis of ``A`` queries per record (``p_target`` ``(n, A)``, ``p_ref`` ``(K, n, A)``)
        the mean over the queries."""
        p_target, q_target = _pair(p_target, q_target)
        p_ref, q_ref = _pair(p_ref, q_ref)
        member = np.asarray(member, bool)
        ratio = _log_of(p_target, q_target) - self._log_marginal(p_ref, q_ref, member)
        return ratio.mean(axis=-1) if ratio.ndim == 2 else ratio

    def score(
        self,
        p_target_x: np.ndarray,
        p_ref_x: np.ndarray,
        member_x: np.ndarray,
        p_target_z: np.ndarray,
        p_ref_z: np.ndarray,
        member_z: np.ndarray,
        *,
        q: tuple[np.ndarray, ...] | None = None,
    ) -> np.ndarray:
        """Scores of records ``x`` against population ``z``.

        ``p_*`` are true-class probabilities: the target's ``(n,)`` / ``(m,)`` and the
        reference models' ``(K, n)`` / ``(K, m)``; ``member_*`` say which reference
        models trained on which records. ``q``, when given, holds the complements
        ``1 - p`` of the four ``p_*`` in the same order, computed without rounding
        (:func:`~miaudit.signals.true_class_parts`); else they are ``1 - p``.

        The score is the fraction of ``z`` that ``x`` dominates (``LR(x, z) > γ``), its
        ties broken by the mean log likelihood ratio against the population: it is
        ``(count + u) / (m + 1)`` with ``u = 1/2 + arctan(t) / π`` in ``(0, 1)`` and ``t``
        the mean over ``z`` of ``log LR(x, z) - log γ``. Two records that dominate
        equally many population records (all of them, the case that matters) are thus
        ordered by how far they outdo them, and the score rises with ``Pr(x | θ) / Pr(x)``.
        """
        qt_x, qr_x, qt_z, qr_z = q if q is not None else (None,) * 4
        member_z = np.asarray(member_z, bool)
        p_target_z = np.asarray(p_target_z, np.float64)
        if qt_z is not None:
            qt_z, qr_z = np.asarray(qt_z, np.float64), np.asarray(qr_z, np.float64)
        if not self.config.online and len(p_target_z):
            # A population record every reference model trained on says nothing offline.
            usable = (~member_z).any(axis=0)
            p_target_z = p_target_z[usable]
            p_ref_z, member_z = np.asarray(p_ref_z)[:, usable], member_z[:, usable]
            if qt_z is not None:
                qt_z, qr_z = qt_z[usable], qr_z[:, usable]
        if len(p_target_z) == 0:
            raise ConfigError("RMIA needs population records z; none were drawn")
        log_x = self.log_ratios(p_target_x, p_ref_x, member_x, qt_x, qr_x)
        log_z = np.sort(self.log_ratios(p_target_z, p_ref_z, member_z, qt_z, qr_z))
        # LR(x, z) > γ  <=>  log ratio_z < log ratio_x - log γ.
        shifted = log_x - np.log(self.config.gamma)
        below = np.searchsorted(log_z, shifted, side="left")
        self.dominate_all_ = int((below == len(log_z)).sum())
        tie = 0.5 + np.arctan(shifted - log_z.mean()) / np.pi
        return (below + tie) / (len(log_z) + 1)

    def choose_a(
        self,
        p_ref_x: np.ndarray,
        member_x: np.ndarray,
        p_ref_z: np.ndarray,
        member_z: np.ndarray,
        pseudo_target: int = 0,
        *,
        q: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> float:
        """Offline ``a``: attack reference model ``pseudo_target`` with the others.

        Records where the pseudo-target is IN and OUT must both occur. ``q`` holds the
        complements of ``p_ref_x`` and ``p_ref_z`` (see :meth:`score`). Returns the ``a``
        of :data:`A_GRID` with the highest AUC (stored as ``a_``).
        """
        if self.config.online:
            raise ValueError("a applies to offline RMIA only")
        p_ref_x, q_ref_x = _pair(p_ref_x, None if q is None else q[0])
        p_ref_z, q_ref_z = _pair(p_ref_z, None if q is None else q[1])
        member_x, member_z = np.asarray(member_x, bool), np.asarray(member_z, bool)
        keep = np.arange(p_ref_x.shape[0]) != pseudo_target
        # Only records some other model did not train on can be scored offline.
        usable = (~member_x[keep]).any(axis=0)
        p_ref_x, q_ref_x, member_x = p_ref_x[:, usable], q_ref_x[:, usable], member_x[:, usable]
        truth = member_x[pseudo_target]
        if truth.all() or not truth.any():
            raise ConfigError(
                "rmia-offline cannot choose a: the reference model it attacks has no IN "
                f"or no OUT records among those scored; raise {key('shadows')}"
            )
        best, best_auc = 1.0, -1.0
        self.a_grid_ = {}
        for a in A_GRID:
            self.a_ = float(a)
            s = self.score(
                p_ref_x[pseudo_target],
                p_ref_x[keep],
                member_x[keep],
                p_ref_z[pseudo_target],
                p_ref_z[keep],
                member_z[keep],
                q=(q_ref_x[pseudo_target], q_ref_x[keep], q_ref_z[pseudo_target], q_ref_z[keep]),
            )
            value = auc(s, truth)
            self.a_grid_[float(a)] = value
            if value > best_auc:
                best, best_auc = float(a), value
        self.a_ = best
        return best


def _pair(p, q) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and their complements, as float64 (``1 - p`` when none are given)."""
    p = np.asarray(p, np.float64)
    return p, (1.0 - p) if q is None else np.asarray(q, np.float64)


def _log_of(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``log p`` from a probability and its complement, whichever is the more precise
    (``log1p(-q)`` near 1), clipped at ``log`` TINY."""
    with np.errstate(divide="ignore", invalid="ignore"):
        near_one = np.log1p(-np.minimum(q, 1.0))
        return np.maximum(np.where(p < 0.5, np.log(np.maximum(p, TINY)), near_one), LOG_TINY)


class RMIASettings(BaseModel):
    """RMIA's settings (``[attacks.rmia]``, shared by ``rmia`` and ``rmia-offline``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gamma: float = Field(default=1.0, gt=0, description="the likelihood-ratio threshold γ")
    population: int = Field(
        default=2000,
        ge=10,
        description="population records z drawn from the attacker's pool (fewer when it is "
        "smaller)",
    )
    queries: int = queries_field("the log likelihood ratios averaged over them")


#: The score is the fraction of population records a record dominates.
_CUT = 0.95


class RMIAOnline(Attack):
    """RMIA with reference models that trained on about half of each record (online);
    :class:`RMIAOffline` with models that never did, ``a`` chosen on a shadow."""

    name = "rmia"
    section = "rmia"
    Config = RMIASettings
    summary = "Zarifzadeh et al.'s relative membership inference, online"
    online = True

    def needs(self) -> Needs:
        return Needs(
            reference="in-out" if self.online else "out",
            reference_models=(0, 1),
            population=self.config.population,
            calibration=not self.online,
            variants=self.config.queries - 1,
        )

    def check(self, context: PlanContext) -> None:
        if (
            not self.online
            and (context.online or context.game == "recipe")
            and context.n_shadows < 4
        ):
            raise ConfigError(
                "rmia-offline chooses its a by attacking one shadow with the others; when "
                "shadows train on halves of the evaluated records that needs at least 4 "
                f"shadows, got {context.n_shadows}: raise {key('shadows')}"
            )
        if context.n_shadows < 2:
            raise ConfigError(
                f"{self.name} needs at least 2 shadows (one is attacked with the others to "
                f"set its parameters): raise {key('shadows')}"
            )

    def queries(self, records: np.ndarray, fmt: RecordFormat, rng: np.random.Generator):
        return make_variants(records, self.config.queries, fmt)

    def score(self, inputs: AttackInputs) -> np.ndarray:
        ref, y = inputs.reference, inputs.labels
        ev = np.arange(inputs.n_eval)
        pop = inputs.population
        rmia = RMIA(online=self.online, gamma=self.config.gamma)
        # Queries every record and population record has, of target and references.
        q = min(self.config.queries, inputs.available_queries(ev, population=True))
        cal = inputs.calibration if len(inputs.calibration) else ev
        if not self.online:
            q = min(q, inputs.n_queries(cal))
        if q < self.config.queries:
            self.messages_.append(
                f"{self.name}: {q} queries per record, not {self.config.queries}: the outputs "
                "hold no more variants of the records and the population"
            )

        def parts(records):
            # (K, r, q) true-class probabilities of the reference models and complements.
            return inputs.reference_signal(true_class_parts, records, q)

        p_ref_x, q_ref_x = parts(ev)
        p_ref_z, q_ref_z = parts(pop)
        self.notes_ = {"gamma": self.config.gamma, "population": len(pop)}
        if self.config.queries > 1:
            self.notes_["queries_per_record"] = q
        if not self.online:
            # The records on which shadow 0 is attacked: its own in/out records when the
            # shadows never saw the evaluated records, else the evaluated records.
            p_cal, q_cal = parts(cal)
            a = rmia.choose_a(
                p_cal, ref.member[:, cal], p_ref_z, ref.member[:, pop], q=(q_cal, q_ref_z)
            )
            self.notes_["a"] = a
            self.notes_["a_auc"] = {str(k): v for k, v in rmia.a_grid_.items()}
        p_x, q_x = true_class_parts(inputs.target_queries(q), y[:, None])
        p_z, q_z = true_class_parts(inputs.population_queries(q), ref.labels[pop][:, None])
        scores = rmia.score(
            p_x, p_ref_x, ref.member[:, ev], p_z, p_ref_z, ref.member[:, pop],
            q=(q_x, q_ref_x, q_z, q_ref_z),
        )  # fmt: skip
        # Records that dominate every population record: their order comes from the
        # tie-break (see RMIA.score).
        self.notes_["dominate_all"] = rmia.dominate_all_
        return scores

    @property
    def decision_threshold(self) -> float:
        return _CUT


class RMIAOffline(RMIAOnline):
    name = "rmia-offline"
    summary = (
        "RMIA offline: OUT reference models only, their IN half approximated linearly (a "
        "chosen by attacking one shadow with the others)"
    )
    online = False
