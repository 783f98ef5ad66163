"""The result's assembly: what the report says of the target and the shadows, the privacy
claim's check, and the typed :class:`~miaudit.result.AuditResult` built from the attacks'
outcome.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.attacks.base import AttackInputs
from miaudit.claim import DEFAULT_DELTA, claim_section
from miaudit.config import AuditConfig
from miaudit.data.describe import describe_records
from miaudit.games.base import Game
from miaudit.metrics import (
    DEFAULT_FPRS,
)
from miaudit.progress import Reporter
from miaudit.result import AuditResult, DatasetSection, QueryCount, ShadowsSection, TargetSection


def privacy_claim(config, facts, member, outcome) -> dict[str, Any] | None:
    """``results.json``'s ``privacy_claim`` (:mod:`miaudit.claim`), for the canary game
    or a DP-SGD target: every attack's lower bounds on ε at the claim's δ (else at
    :data:`~miaudit.claim.DEFAULT_DELTA`), beside the claim."""
    claimed = facts.get("dp")
    canaries = config.game == "canaries"
    if not canaries and claimed is None:
        return None
    delta = claimed["delta"] if claimed is not None else DEFAULT_DELTA
    fprs = sorted({*DEFAULT_FPRS, *config.fprs})
    return claim_section(
        outcome["scores"], member, list(outcome["attacks"]), fprs, claimed, delta, canaries
    )


def target_section(facts, policies, target, config, inputs, member) -> TargetSection:
    """What the report says of the target: its facts, policy, queries and accuracies."""
    correct = inputs.target_probs.argmax(axis=1) == inputs.labels
    member = np.asarray(member).astype(bool)
    details = {k: v for k, v in facts.items() if k not in ("source", "model", "recipe")}
    return TargetSection(
        source=facts["source"],
        model=facts.get("model"),
        recipe=facts.get("recipe"),
        defense=[p.spec for p in policies],
        queries=QueryCount(
            target.target.queries_, getattr(target.target, "cached_", 0), config.query_budget
        ),
        # Your own target's training set may be larger than the members evaluated.
        n_train=facts.get("members_given", int(member.sum())),
        n_test=int((~member).sum()),
        train_accuracy=float(correct[member].mean()),
        test_accuracy=float(correct[~member].mean()),
        details=details,
    )


def shadows_section(facts: dict[str, Any]) -> ShadowsSection:
    details = {k: v for k, v in facts.items() if k not in ("count", "game", "source")}
    return ShadowsSection(facts["count"], facts["game"], facts["source"], details)


def assemble(game: Game, inputs: AttackInputs, outcome: dict[str, Any], job_facts,
             reporter: Reporter) -> AuditResult:  # fmt: skip
    """The stage that builds the :class:`AuditResult` of a played game: the sections of
    the data, the target and the shadows, the privacy claim's check, the attacks'
    outcome, and the most exposed records as the user knows them."""
    data, resolved, member = game.data, game.resolved, game.eval_member
    result = AuditResult(
        config=resolved,
        dataset=DatasetSection.of(data.summary()),
        target=target_section(game.facts, game.policies, game.target, resolved, inputs, member),
        shadows=shadows_section(game.shadows),
        record_index=data.rows[game.eval_index],
        ids=None if data.ids is None else data.ids[game.eval_index],
        labels=data.y[game.eval_index],
        member=member,
        timings_s=reporter.timings,
        execution={"jobs": job_facts},
        privacy_claim=privacy_claim(resolved, game.facts, member, outcome),
        **outcome,
    )
    result.skipped = dict(game.plan.unfit)
    # The report shows the most exposed records as the user knows them.
    top = result.exposed_positions()
    result.record_details = dict(
        zip(top.tolist(), describe_records(data, game.eval_index[top]), strict=True)
    )
    return result


def evaluation(arrays: dict[str, np.ndarray], config: AuditConfig, inputs: AttackInputs,
               outcome: dict[str, Any], names: list[str], records, ids,
               reporter: Reporter) -> AuditResult:  # fmt: skip
    """The :class:`AuditResult` of outputs computed elsewhere (``miaudit evaluate``): the
    target's sections read from the arrays, no model or query of miaudit's own."""
    n, n_classes = arrays["outputs"].shape
    member = arrays["members"].astype(np.int8)
    correct = arrays["outputs"].argmax(axis=1) == arrays["labels"]
    reference = arrays.get("reference_outputs")
    return AuditResult(
        config=config,
        dataset=DatasetSection(config.dataset, None, "outputs", n, None, n_classes, names),
        target=TargetSection(
            source="outputs",
            model=None,
            recipe=None,
            defense=[],
            queries=QueryCount(0, 0, None),
            n_train=int(member.sum()),
            n_test=int((member == 0).sum()),
            train_accuracy=float(correct[member == 1].mean()),
            test_accuracy=float(correct[member == 0].mean()),
        ),
        shadows=ShadowsSection(
            None if reference is None else int(reference.shape[0]),
            None,
            "outputs",
            {"n_attack_records": len(inputs.own_member)},
        ),
        record_index=np.arange(n) if records is None else np.asarray(records),
        ids=None if ids is None else np.asarray(ids),
        labels=arrays["labels"],
        member=member,
        timings_s=reporter.timings,
        kind="evaluation",
        **outcome,
    )
