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

The score is vectorised: the population's ratios are sorted once and each
record's count is one binary search.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from miaudit.attacks.base import Attack, AttackInputs, Needs, PlanContext, build_config
from miaudit.errors import ConfigError, key
from miaudit.metrics import auc
from miaudit.signals import TINY, true_class_probability

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

    def _marginal(self, p_ref: np.ndarray, member: np.ndarray) -> np.ndarray:
        """``Pr(x)`` from reference models' true-class probabilities ``(K, n)``."""
        if self.config.online:
            return p_ref.mean(axis=0)
        out = ~member
        n_out = out.sum(axis=0)
        if (n_out == 0).any():
            raise ConfigError(
                f"rmia-offline: {int((n_out == 0).sum())} records have no OUT reference "
                f"model; raise {key('shadows')}"
            )
        p_out = (p_ref * out).sum(axis=0) / n_out
        a = 1.0 if self.a_ is None else self.a_
        return 0.5 * ((1 + a) * p_out + (1 - a))

    def score(
        self,
        p_target_x: np.ndarray,
        p_ref_x: np.ndarray,
        member_x: np.ndarray,
        p_target_z: np.ndarray,
        p_ref_z: np.ndarray,
        member_z: np.ndarray,
    ) -> np.ndarray:
        """Scores of records ``x`` against population ``z``.

        ``p_*`` are true-class probabilities: the target's ``(n,)`` / ``(m,)`` and the
        reference models' ``(K, n)`` / ``(K, m)``; ``member_*`` say which reference
        models trained on which records.
        """
        member_z = np.asarray(member_z, bool)
        if not self.config.online and len(p_target_z):
            # A population record every reference model trained on says nothing offline.
            usable = (~member_z).any(axis=0)
            p_target_z = np.asarray(p_target_z)[usable]
            p_ref_z, member_z = np.asarray(p_ref_z)[:, usable], member_z[:, usable]
        if len(p_target_z) == 0:
            raise ConfigError("RMIA needs population records z; none were drawn")
        ratio_x = np.asarray(p_target_x, np.float64) / np.maximum(
            self._marginal(np.asarray(p_ref_x, np.float64), np.asarray(member_x, bool)), TINY
        )
        ratio_z = np.asarray(p_target_z, np.float64) / np.maximum(
            self._marginal(np.asarray(p_ref_z, np.float64), np.asarray(member_z, bool)), TINY
        )
        ratio_z = np.sort(ratio_z)
        # LR(x, z) > γ  <=>  ratio_z < ratio_x / γ.
        below = np.searchsorted(ratio_z, ratio_x / self.config.gamma, side="left")
        return below / len(ratio_z)

    def choose_a(
        self,
        p_ref_x: np.ndarray,
        member_x: np.ndarray,
        p_ref_z: np.ndarray,
        member_z: np.ndarray,
        pseudo_target: int = 0,
    ) -> float:
        """Offline ``a``: attack reference model ``pseudo_target`` with the others.

        Records where the pseudo-target is IN and OUT must both occur. Returns the
        ``a`` of :data:`A_GRID` with the highest AUC (stored as ``a_``).
        """
        if self.config.online:
            raise ValueError("a applies to offline RMIA only")
        keep = np.arange(p_ref_x.shape[0]) != pseudo_target
        # Only records some other model did not train on can be scored offline.
        usable = (~member_x[keep]).any(axis=0)
        p_ref_x, member_x = p_ref_x[:, usable], member_x[:, usable]
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
            )
            value = auc(s, truth)
            self.a_grid_[float(a)] = value
            if value > best_auc:
                best, best_auc = float(a), value
        self.a_ = best
        return best


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

    def score(self, inputs: AttackInputs) -> np.ndarray:
        ref, y = inputs.reference, inputs.labels
        ev = ref.subset(np.arange(inputs.n_eval))
        rmia = RMIA(online=self.online, gamma=self.config.gamma)
        pop = ref.subset(inputs.population)
        p_ref_x = true_class_probability(ev.probs, ev.labels)
        p_ref_z = true_class_probability(pop.probs, pop.labels)
        self.notes_ = {"gamma": self.config.gamma, "population": len(inputs.population)}
        if not self.online:
            # The records on which shadow 0 is attacked: its own in/out records when the
            # shadows never saw the evaluated records, else the evaluated records.
            cal = ref.subset(inputs.calibration) if len(inputs.calibration) else ev
            a = rmia.choose_a(
                true_class_probability(cal.probs, cal.labels), cal.member, p_ref_z, pop.member
            )
            self.notes_["a"] = a
            self.notes_["a_auc"] = {str(k): v for k, v in rmia.a_grid_.items()}
        return rmia.score(
            true_class_probability(inputs.target_probs, y),
            p_ref_x,
            ev.member,
            true_class_probability(inputs.target_population, pop.labels),
            p_ref_z,
            pop.member,
        )

    @property
    def decision_threshold(self) -> float:
        return _CUT


class RMIAOffline(RMIAOnline):
    name = "rmia-offline"
    summary = "RMIA offline: OUT reference models only, their IN half approximated by a"
    online = False
