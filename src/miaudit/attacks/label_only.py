"""Label-only attacks: membership from predicted labels alone.

Position in the pipeline: ``signals -> attack -> scores``. Against a target that
answers only labels (the ``label-only`` policy, or a service in label mode), the
probability-based attacks have nothing to work with. Two attacks remain:

* **gap** (Yeom et al.): a record the target classifies correctly is called a
  member. Its score has two values, so its ROC has one corner; it is the
  baseline every label-only attack must beat, and its advantage equals the
  train-test accuracy gap.
* **robustness** (Choquette-Choo et al., ICML 2021): a training record sits
  further from the decision boundary, so its label survives perturbation more
  often. The target is asked ``copies`` perturbed versions of each record, and the
  score is the fraction answered with the true label (the unperturbed answer
  counts as one of them). Perturbations keep the data's format: standardised
  numeric features get Gaussian noise of ``noise`` standard deviations, each
  categorical feature is re-drawn uniformly with probability ``noise / 3``, and
  image pixels get Gaussian noise of ``noise / 3`` (clipped to [0, 1]).

Both work on any target (prediction vectors are reduced to their argmax).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from miaudit.attacks.base import Attack, AttackInputs, Needs, RecordFormat

__all__ = [
    "Gap",
    "Robustness",
    "RobustnessSettings",
    "gap_scores",
    "perturb",
    "robustness_scores",
]


def gap_scores(P: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1.0 where the target's top class is the true class, else 0.0."""
    return (np.asarray(P).argmax(axis=-1) == np.asarray(labels)).astype(np.float64)


def perturb(
    X: np.ndarray,
    groups: list[np.ndarray],
    *,
    image: bool,
    copies: int,
    noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """``copies`` perturbed versions of each record: ``(copies, n, *record shape)``."""
    X = np.asarray(X, dtype=np.float32)
    out = np.repeat(X[None], copies, axis=0)
    if image:
        out += rng.normal(0.0, noise / 3, out.shape).astype(np.float32)
        return np.clip(out, 0.0, 1.0, out=out)
    flat = out.reshape(copies, len(X), -1)
    for g in groups:
        if len(g) == 1:
            flat[..., g[0]] += rng.normal(0.0, noise, flat.shape[:2]).astype(np.float32)
            continue
        redraw = rng.random(flat.shape[:2]) < noise / 3
        if redraw.any():
            block = np.zeros((int(redraw.sum()), len(g)), dtype=np.float32)
            block[np.arange(len(block)), rng.integers(0, len(g), len(block))] = 1.0
            sub = flat[..., g]
            sub[redraw] = block
            flat[..., g] = sub
    return out


def robustness_scores(
    P_original: np.ndarray, P_copies: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Fraction of the original and perturbed answers that give the true label.

    ``P_original`` is ``(n, C)``, ``P_copies`` ``(copies, n, C)``.
    """
    y = np.asarray(labels)
    hits = (np.asarray(P_copies).argmax(axis=-1) == y).sum(axis=0)
    hits = hits + (np.asarray(P_original).argmax(axis=-1) == y)
    return hits / (len(P_copies) + 1)


class Gap(Attack):
    """Yeom et al.'s baseline: correctly classified records are called members."""

    name = "gap"
    section = "gap"
    label_only_family = True
    summary = "Yeom et al.'s baseline: a correctly classified record is a member"

    def needs(self) -> Needs:
        return Needs(probabilities=False)

    def score(self, inputs: AttackInputs) -> np.ndarray:
        return gap_scores(inputs.target_probs, inputs.labels)

    @property
    def decision_threshold(self) -> float:
        return 1.0


class RobustnessSettings(BaseModel):
    """The robustness attack's settings (``[attacks.robustness]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    copies: int = Field(default=8, ge=1, description="perturbed copies asked per record")
    noise: float = Field(
        default=0.3,
        gt=0,
        description="standard deviations of noise on numeric features (a third of it on "
        "pixels; categories re-drawn with probability noise/3)",
    )


class Robustness(Attack):
    """Choquette-Choo et al.'s data-augmentation attack: the share of perturbed copies
    the target still labels correctly."""

    name = "robustness"
    section = "robustness"
    label_only_family = True
    Config = RobustnessSettings
    summary = "label-only: how many perturbed copies of a record keep its true label"

    def needs(self) -> Needs:
        return Needs(copies=self.config.copies, probabilities=False)

    def queries(self, records: np.ndarray, fmt: RecordFormat, rng: np.random.Generator):
        if fmt.copies is not None:  # the records' kind perturbs its own (text: word drops)
            return fmt.copies(records, self.config.copies, rng)
        return perturb(
            records,
            fmt.groups,
            image=fmt.image,
            copies=self.config.copies,
            noise=self.config.noise,
            rng=rng,
        )

    def score(self, inputs: AttackInputs) -> np.ndarray:
        self.notes_ = {"copies": len(inputs.target_copies)}
        return robustness_scores(inputs.target_probs, inputs.target_copies, inputs.labels)

    @property
    def decision_threshold(self) -> float:
        return 1.0
