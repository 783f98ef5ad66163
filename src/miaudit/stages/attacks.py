"""The attacks' stage: every attack of the plan fitted and scored
(:func:`miaudit.attacks.suite.run_attacks`), and its metrics with their intervals
(:func:`miaudit.metrics.evaluate_attack`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from miaudit.attacks.base import AttackInputs
from miaudit.attacks.suite import (
    AttackPlan,
    run_attacks,
)
from miaudit.attacks.threshold import best_threshold
from miaudit.config import AuditConfig
from miaudit.jobs import Execution
from miaudit.metrics import (
    DEFAULT_FPRS,
    OPTIMISTIC_THRESHOLD,
    evaluate_attack,
    roc_points,
)
from miaudit.progress import Reporter
from miaudit.seeds import int_seeds, named_stream


def score_attacks(
    plan: AttackPlan,
    inputs: AttackInputs,
    config: AuditConfig,
    class_names: list[str],
    member: np.ndarray,
    seeds: dict[str, np.random.SeedSequence],
    reporter: Reporter,
    execution: Execution | None,
) -> dict[str, Any]:
    """Every attack's scores, metrics and notes (:func:`miaudit.attacks.suite.run_attacks`)."""
    # The audit's seed governs the attacks' randomness (Shokri's attack.seed shifts it).
    inputs.seed = int_seeds(seeds["attack"], 1)[0]
    inputs.device = config.device
    inputs.class_names = list(class_names)
    notes: dict[str, dict[str, Any]] = {}
    scores, thresholds = {}, {}
    with reporter.stage(
        "attack_score",
        "fitting and scoring the attacks",
        total=len(plan.names),
        unit="attacks",
        estimate=False,  # one attack may take a hundred times another
    ) as tick:

        def progress(done: float) -> None:
            tick.update(done, len(plan.names))

        for name, out in run_attacks(plan, inputs, execution, progress):
            scores[name], thresholds[name], notes[name] = out.scores, out.threshold, out.notes
            if math.isnan(out.threshold) and out.notes.get("shadows") == 0:
                # Scored without shadows: no threshold was learnt. Precision and recall
                # are then read at the one that best separates the evaluated records
                # themselves, which knows their membership: optimistic, and said so.
                thresholds[name] = best_threshold(out.scores, member)
                notes[name] = {**out.notes, "threshold_from": OPTIMISTIC_THRESHOLD}
            # With the stage times (not in the attack's notes), so that two runs with the
            # same seed have identical attack results.
            reporter.timings[f"score:{name}"] = out.seconds
            if out.from_cache:
                reporter.message(f"{name}: scores from the job cache")
            for line in out.messages:
                reporter.message(line)
    metrics, roc = {}, {}
    with reporter.stage("metrics", "computing metrics"):
        for name in plan.names:
            # Each attack's replicates from its own stream, named by the attack: its
            # intervals do not depend on which other attacks ran, or on their scores.
            boot = np.random.default_rng(named_stream(seeds["bootstrap"], name))
            metrics[name] = evaluate_attack(
                scores[name],
                member,
                inputs.labels,
                class_names,
                threshold=thresholds[name],
                fprs=sorted({*DEFAULT_FPRS, *config.fprs}),
                n_boot=config.bootstrap,
                rng=boot,
            )
            fpr, tpr, _ = roc_points(scores[name], member)
            roc[name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    return {
        "attacks": metrics,
        "attack_notes": notes,
        "scores": scores,
        "roc": roc,
        "inputs": inputs,
    }
