"""Checking a privacy claim: lower bounds on the ε a trained model's training honours.

Three estimates, side by side with the ε a DP-SGD target claims (its accountant's):

``one_run``
    Steinke, Nasr and Jagielski, "Privacy Auditing with One (1) Training Run"
    (NeurIPS 2023). ``m`` canaries each enter the training set independently with
    probability ½ (``--game canaries``); the auditor guesses "in" for the ``k``
    highest-scoring canaries and "out" for the ``k`` lowest, abstaining on the
    rest: ``r = 2k`` guesses, ``v`` of them right. Under (ε, δ)-DP (their
    Corollary 5.4), with ``q = e^ε / (1 + e^ε)``::

        P[V ≥ v]  ≤  P[Binomial(r, q) ≥ v]  +  2 m δ · max_{1≤i≤v} P[v-i ≤ Binomial(r, q) < v] / i

    An ε whose bound falls below ``1 − confidence`` is rejected; the largest one
    rejected is the lower bound. Several ``k`` are tried, each at
    ``(1 − confidence) / len(ks)`` (Bonferroni), so the bound over all of them keeps
    its confidence. Valid only when membership was drawn independently per record,
    as the canary game draws it: the shadow-model game's balanced split is not.
``clopper_pearson``
    The hypothesis-testing bound of :func:`miaudit.metrics.epsilon_lower_bound_cp`
    at the audit's FPRs, at δ, Bonferroni-corrected over the FPRs tried.
``gdp``
    An estimate, not a bound: the μ of the Gaussian-DP trade-off curve whose AUC
    is the attack's, ``μ = √2 Φ⁻¹(AUC)``, and the ε a μ-GDP mechanism has at δ
    (Dong, Roth and Su 2022: ``δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from miaudit.errors import ConfigError
from miaudit.metrics import auc, epsilon_lower_bound_cp, fpr_key, json_safe, operating_points

#: δ of the bounds on a target that claims none (no DP-SGD): the customary 1e-5.
#: The one-run bound's δ term grows with ``2 m δ``, so a δ near ``1 / n`` would
#: leave little to bound with a thousand canaries.
DEFAULT_DELTA = 1e-5
#: Confidence of every lower bound here.
CONFIDENCE = 0.95
#: The canary game's guesses: ``k`` in and ``k`` out, as these shares of the canaries.
GUESS_SHARES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


def one_run_p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """The probability, under (ε, δ)-DP, of ``v`` or more right guesses out of ``r``
    on ``m`` canaries (Steinke et al. 2023, Corollary 5.4; the module docstring)."""
    from scipy.stats import binom

    if not (0 <= v <= r <= m) or eps < 0 or not (0 <= delta <= 1):
        raise ValueError(f"need 0 <= v <= r <= m, eps >= 0, delta in [0, 1]: {m, r, v, eps}")
    q = 1.0 / (1.0 + math.exp(-eps))
    tail = float(binom.sf(v - 1, r, q))  # P[Binomial(r, q) >= v]
    if delta == 0 or v == 0:
        return min(tail, 1.0)
    i = np.arange(1, v + 1)
    # P[v - i <= Binomial(r, q) < v] for i = 1..v
    below = binom.sf(v - i - 1, r, q) - tail
    return min(tail + 2 * m * delta * float(np.max(below / i)), 1.0)


def one_run_epsilon(
    m: int, r: int, v: int, delta: float, significance: float = 1 - CONFIDENCE
) -> float:
    """The largest ε that ``v`` right guesses of ``r`` reject at ``significance`` (0 when
    none is rejected); bisection to 1e-4."""
    if one_run_p_value(m, r, v, 0.0, delta) >= significance:
        return 0.0
    low, high = 0.0, 1.0
    while one_run_p_value(m, r, v, high, delta) < significance:
        low, high = high, 2 * high
        if high > 1e3:  # (the tail reaches 1 long before: q^r alone exceeds it)
            return low  # rejected, so still a lower bound
    while high - low > 1e-4:
        mid = (low + high) / 2
        if one_run_p_value(m, r, v, mid, delta) < significance:
            low = mid
        else:
            high = mid
    return low


def one_run_audit(
    scores: np.ndarray,
    member: np.ndarray,
    delta: float,
    confidence: float = CONFIDENCE,
    shares: Sequence[float] = GUESS_SHARES,
) -> dict[str, Any]:
    """The one-run bound of canaries' ``scores`` (higher: more likely in) and their
    ``member``ship: the best over ``k`` in and ``k`` out for each share of the
    canaries, each at the Bonferroni-corrected level."""
    scores = np.asarray(scores, dtype=np.float64)
    member = np.asarray(member).astype(bool)
    m = len(scores)
    ks = sorted({max(1, int(share * m)) for share in shares if 2 * max(1, int(share * m)) <= m})
    if not ks:
        raise ConfigError(f"the canary game needs at least 2 canaries, got {m}")
    order = np.argsort(scores, kind="stable")
    significance = (1 - confidence) / len(ks)
    tried = []
    for k in ks:
        low, high = order[:k], order[m - k :]
        v = int(member[high].sum() + (~member[low]).sum())
        tried.append({"k": k, "guesses": 2 * k, "correct": v,
                      "epsilon": one_run_epsilon(m, 2 * k, v, delta, significance)})  # fmt: skip
    best = max(tried, key=lambda t: t["epsilon"])
    return {
        "epsilon": best["epsilon"],
        # What every guess right would show: no claim above it can be refuted here.
        "ceiling": max(one_run_epsilon(m, 2 * k, 2 * k, delta, significance) for k in ks),
        "canaries": m,
        "included": int(member.sum()),
        "guesses": best["guesses"],
        "correct": best["correct"],
        "confidence": confidence,
        "delta": delta,
        "tried": tried,
    }


def clopper_pearson_audit(
    scores: np.ndarray,
    member: np.ndarray,
    fprs: Sequence[float],
    delta: float,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """The Clopper–Pearson lower bound at the best of ``fprs``' operating points (the
    audit's own, :func:`~miaudit.metrics.operating_points`), each tried at
    ``(1 − confidence) / len(fprs)``."""
    tps, fps, n_pos, n_neg = operating_points(scores, member, fprs)
    # Each bound holds with probability 2·level − 1; split what may fail over the FPRs.
    level = 1 - (1 - confidence) / (2 * len(fprs))
    best: dict[str, Any] = {"epsilon": 0.0, "fpr": None}
    for f, tp, fp in zip(fprs, tps, fps, strict=True):
        eps = epsilon_lower_bound_cp(int(tp), n_pos, int(fp), n_neg, level=level, delta=delta)
        if eps > best["epsilon"]:
            best = {"epsilon": eps, "fpr": fpr_key(f), "tpr": int(tp) / n_pos}
    return {**best, "confidence": confidence, "delta": delta}


def gdp_mu(auc_value: float) -> float:
    """The μ of the Gaussian trade-off curve with this AUC: ``√2 Φ⁻¹(AUC)`` (0 at or
    below chance)."""
    from scipy.special import ndtri

    a = min(max(float(auc_value), 0.5), 1 - 1e-12)
    return float(math.sqrt(2.0) * ndtri(a))


def gdp_epsilon(mu: float, delta: float) -> float:
    """The ε of a μ-GDP mechanism at ``delta`` (0 when μ = 0)."""
    from scipy.optimize import brentq
    from scipy.special import ndtr

    if mu <= 0:
        return 0.0

    def excess(eps: float) -> float:
        return float(ndtr(-eps / mu + mu / 2) - math.exp(eps) * ndtr(-eps / mu - mu / 2)) - delta

    if excess(0.0) <= 0:
        return 0.0
    high = 1.0
    while excess(high) > 0:
        high *= 2
        if high > 1e3:
            return math.inf
    return float(brentq(excess, 0.0, high, xtol=1e-6))


def claim_section(
    scores: dict[str, np.ndarray],
    member: np.ndarray,
    attack_order: Sequence[str],
    fprs: Sequence[float],
    claimed: dict[str, Any] | None,
    delta: float,
    one_run: bool,
) -> dict[str, Any]:
    """``results.json``'s ``privacy_claim``: per attack the one-run bound (the canary
    game only), the Clopper–Pearson bound and the GDP estimate at ``delta``; the
    largest bound, and the claim (a DP-SGD plan) they are checked against."""
    attacks = {}
    for name in attack_order:
        s = np.asarray(scores[name], dtype=np.float64)
        entry: dict[str, Any] = {}
        if one_run:
            entry["one_run"] = one_run_audit(s, member, delta)
        entry["clopper_pearson"] = clopper_pearson_audit(s, member, fprs, delta)
        mu = gdp_mu(auc(s, member))
        entry["gdp"] = {"mu": mu, "epsilon": gdp_epsilon(mu, delta), "delta": delta}
        attacks[name] = entry
    bounds = [
        (e[kind]["epsilon"], name, kind)
        for name, e in attacks.items()
        for kind in ("one_run", "clopper_pearson")
        if kind in e
    ]
    eps, name, kind = max(bounds, key=lambda b: b[0])
    out: dict[str, Any] = {
        "delta": delta,
        "confidence": CONFIDENCE,
        "lower_bound": {"epsilon": eps, "attack": name, "method": kind},
        "attacks": attacks,
        "claimed": claimed,
    }
    if claimed is not None:
        out["consistent"] = bool(eps <= claimed["epsilon"])
    return json_safe(out)  # results.json: an unbounded ε is written as null


_METHODS = {
    "one_run": "one training run, Steinke et al. 2023",
    "clopper_pearson": "Clopper–Pearson",
}


def claim_sentences(section: dict[str, Any]) -> list[str]:
    """The privacy claim in words, for the terminal and the report: what is claimed,
    what the audit shows at 95 % confidence, and whether they agree."""
    low = section["lower_bound"]
    delta = section["delta"]
    shown = (
        f"the audit shows ε ≥ {low['epsilon']:.2f} at δ = {delta:.1e} "
        f"({low['attack']}, {_METHODS[low['method']]}, {100 * section['confidence']:g} % "
        "confidence)"
    )
    canary = section["attacks"][low["attack"]].get("one_run")
    ceiling = ""
    if canary is not None:
        ceiling = (
            f"; with {canary['canaries']:,} canaries it could show at most ε ≥ "
            f"{canary['ceiling']:.2f}, so a claim above that cannot be refuted here"
        )
    claimed = section.get("claimed")
    if claimed is None:
        return [f"No privacy claim (no DP-SGD): {shown}{ceiling}."]
    verdict = (
        "consistent with the claim (a lower bound: it cannot confirm the claim, only refute it)"
        if section["consistent"]
        else "the claim is REFUTED: the training leaks more than its ε allows"
    )
    return [
        f"Claimed: DP-SGD ε = {claimed['epsilon']:g}, δ = {claimed['delta']:.1e} "
        f"({claimed['accountant'].upper()} accountant, noise multiplier "
        f"{claimed['noise_multiplier']:.3f}, clipping norm {claimed['max_grad_norm']:g}).",
        f"Empirically {shown}{ceiling}: {verdict}.",
    ]
