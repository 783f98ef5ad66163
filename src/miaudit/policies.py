"""Output policies: the paper's mitigations that restrict what a target answers.

Position in the pipeline: ``target -> [policy] -> signals``. A policy is a pure
function of the probability vectors (:meth:`OutputPolicy.apply`), so the same
transformation can wrap a local target (:class:`PolicyTarget`) and be applied to
the shadows' outputs — the attacker knows the deployed policy and re-trains the
attack against it, as Shokri et al. do (§ mitigations). Every policy keeps the
contract of a target: rows are probability vectors summing to 1.

Spelling on the command line: ``top-k=3``, ``round=2``, ``temperature=5``,
``label-only``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miaudit.errors import ConfigError, key


class OutputPolicy:
    """A transformation of prediction vectors, ``(n, C) -> (n, C)``."""

    #: The policy's spelling, e.g. ``"top-k=3"``.
    spec: str
    #: True when the answer carries only the predicted label.
    label_only: bool = False

    def apply(self, P: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class TopK(OutputPolicy):
    """Keep the ``k`` largest probabilities, zero the rest, renormalise to sum 1.

    Ties at the k-th value are broken towards the lower class index, so exactly
    ``k`` entries survive.
    """

    k: int

    @property
    def spec(self) -> str:
        return f"top-k={self.k}"

    def apply(self, P: np.ndarray) -> np.ndarray:
        P = np.asarray(P, dtype=np.float64)
        k = min(self.k, P.shape[1])
        # A stable sort of -P keeps the lower index first among equal values.
        order = np.argsort(-P, axis=1, kind="stable")[:, :k]
        out = np.zeros_like(P)
        rows = np.arange(P.shape[0])[:, None]
        out[rows, order] = P[rows, order]
        total = out.sum(axis=1, keepdims=True)
        # A row whose top k are all zero cannot happen for probability vectors
        # (the largest entry is at least 1/C), but guard against dividing by zero.
        return np.divide(out, total, out=np.full_like(out, 1.0 / k), where=total > 0)


@dataclass(frozen=True)
class Rounding(OutputPolicy):
    """Round to ``decimals`` decimals so that each row still sums to exactly 1.

    Largest-remainder rounding: every entry is floored to a multiple of
    ``10**-decimals`` and the units left over go to the entries with the largest
    remainders. Each entry ends within one unit of its true value, and rows
    stay probability vectors (plain rounding would not).
    """

    decimals: int

    @property
    def spec(self) -> str:
        return f"round={self.decimals}"

    def apply(self, P: np.ndarray) -> np.ndarray:
        P = np.asarray(P, dtype=np.float64)
        scale = 10**self.decimals
        scaled = P / P.sum(axis=1, keepdims=True) * scale
        floor = np.floor(scaled + 1e-9)
        missing = np.rint(scale - floor.sum(axis=1)).astype(np.int64)
        remainder = scaled - floor
        order = np.argsort(-remainder, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(P.shape[1])[None, :], axis=1)
        floor += ranks < missing[:, None]
        return floor / scale


@dataclass(frozen=True)
class Temperature(OutputPolicy):
    """Softmax at temperature ``t``: ``softmax(log p / t)``.

    The logits are known only up to a per-row constant, which softmax ignores, so
    this equals raising the temperature of the model's own softmax.
    """

    t: float

    @property
    def spec(self) -> str:
        return f"temperature={self.t:g}"

    def apply(self, P: np.ndarray) -> np.ndarray:
        logp = np.log(np.clip(np.asarray(P, dtype=np.float64), 1e-300, None)) / self.t
        logp -= logp.max(axis=1, keepdims=True)
        e = np.exp(logp)
        return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class LabelOnly(OutputPolicy):
    """Answer only the predicted label, as a one-hot vector (lowest index on ties)."""

    label_only = True

    @property
    def spec(self) -> str:
        return "label-only"

    def apply(self, P: np.ndarray) -> np.ndarray:
        P = np.asarray(P, dtype=np.float64)
        out = np.zeros_like(P)
        out[np.arange(P.shape[0]), P.argmax(axis=1)] = 1.0
        return out


def parse_policy(spec: str) -> OutputPolicy:
    """``"top-k=3"`` → :class:`TopK` (3), and so on; a clear error for anything else."""
    name, _, value = spec.strip().partition("=")
    name = name.strip().lower()
    usage = "use top-k=K, round=D, temperature=T or label-only"

    def number(kind, low):
        try:
            v = kind(value)
        except ValueError:
            raise ConfigError(
                f"{key('defense', spec)}: '{value}' is not a "
                f"{'whole ' if kind is int else ''}number; "
                f"{usage}"
            ) from None
        if v < low:
            raise ConfigError(f"{key('defense', spec)}: the value must be at least {low}")
        return v

    if name in ("top-k", "topk"):
        return TopK(number(int, 1))
    if name in ("round", "rounding"):
        return Rounding(number(int, 0))
    if name in ("temperature", "temp"):
        t = number(float, 0)
        if t == 0:
            raise ConfigError(f"{key('defense', spec)}: the temperature must be positive")
        return Temperature(t)
    if name in ("label-only", "label") and not value:
        return LabelOnly()
    raise ConfigError(f"{key('defense', spec)}: unknown output policy; {usage}")


def apply_policies(P: np.ndarray, policies: list[OutputPolicy]) -> np.ndarray:
    """Apply the policies in order (the order a service would apply them)."""
    for policy in policies:
        P = policy.apply(P)
    return P


class PolicyTarget:
    """A target whose answers pass through output policies; itself a target."""

    def __init__(self, target, policies: list[OutputPolicy]) -> None:
        self.target = target
        self.policies = list(policies)

    @property
    def label_only(self) -> bool:
        # A remote target may answer labels itself (its service's policy).
        inner = bool(getattr(self.target, "label_only", False))
        return inner or any(p.label_only for p in self.policies)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return apply_policies(self.target.predict_proba(X), self.policies)
