"""What a run means for a person: the verdict, the classes most exposed, what to do.

Position in the pipeline: ``metrics -> result -> report``. Everything here reads a
:class:`~miaudit.report.run.Run` (``results.json`` and ``scores.csv``), so the
terminal, the page and ``miaudit compare`` say the same thing about a run.

The verdict itself (:class:`Levels`, :class:`Verdict`, :func:`verdict` and the rule of
its level) is :mod:`miaudit.verdict`'s, below the typed result and the report: an
audit's ``results.json`` holds it too. It is named here, where the report and its
callers find it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miaudit.metrics import clopper_pearson, operating_points
from miaudit.report.run import Run
from miaudit.verdict import (
    LEVELS,
    Levels,
    Verdict,
    _key,
    _pct,
    chance_accuracy,
    leak_bounds,
    learned_nothing,
    level_of,
    more_records,
    skipped_attacks,
    tpr_interval,
    undecided,
    verdict,
    weakened_sentences,
    weakening_skips,
)
from miaudit.verdict import _about as _about

__all__ = [
    "GAP",
    "LEVELS",
    "Advice",
    "Levels",
    "Verdict",
    "chance_accuracy",
    "chance_of_unmistaken",
    "class_exposure",
    "exposed_classes",
    "leak_bounds",
    "learned_nothing",
    "level_of",
    "percent",
    "recommendations",
    "skipped_attacks",
    "strongest_epsilon",
    "tpr_interval",
    "undecided",
    "unmistaken_members",
    "verdict",
    "weakened_sentences",
    "weakening_skips",
]


def strongest_epsilon(results: dict) -> float | None:
    """The strongest attack's Clopper–Pearson lower bound on ε at the ranking rate: one
    bound, so its 90 % confidence holds (the largest of many bounds would not)."""
    f = results["ranking"].get("fpr")
    a = results["attacks"][results["strongest_attack"]]
    key = None if f is None else _key(a, f)
    value = None if key is None else (a.get("epsilon_lower_bound_cp") or {}).get(key)
    return None if value is None else float(value)


def percent(v: float | None) -> str:
    """A rate in a table: one decimal and the sign (``18.3 %``), ``–`` when unmeasured."""
    return "–" if v is None else f"{100 * v:.1f} %"


# --------------------------------------------------------------------------- classes


def class_exposure(run: Run, attack: str, fpr: float) -> list[dict[str, Any]]:
    """Per class, the TPR of ``attack`` at the threshold that gives ``fpr`` over all
    non-members, with its 95 % Clopper–Pearson interval, and the class's own FPR there;
    most exposed first (classes without members are left out)."""
    s, member = run.score(attack), run.member
    labels = run.class_index
    tps, fps, _, _ = operating_points(s, member, [fpr])
    # The operating point's threshold: the lowest score that keeps the false positives
    # within the budget (tps/fps count records scoring at least it).
    order = np.sort(s)[::-1]
    flagged = s >= order[int(tps[0] + fps[0]) - 1] if tps[0] + fps[0] > 0 else np.zeros_like(member)
    rows = []
    for code in np.unique(labels):
        inside = labels == code
        m, n = member & inside, ~member & inside
        if not m.any():
            continue
        k = int((flagged & m).sum())
        low, high = clopper_pearson(k, int(m.sum()))
        rows.append({
            "class": run.class_name(int(code)),
            "members": int(m.sum()),
            "found": k,
            "tpr": k / int(m.sum()),
            "low": low,
            "high": high,
            "fpr": None if not n.any() else float((flagged & n).sum() / n.sum()),
        })  # fmt: skip
    rows.sort(key=lambda r: (-r["tpr"], -r["low"], r["class"]))
    return rows


def exposed_classes(rows: list[dict[str, Any]], overall_high: float) -> list[dict[str, Any]]:
    """The classes whose TPR interval lies wholly above the upper end of the overall
    TPR's; each class's interval at 95 % confidence for all classes together
    (Bonferroni), so that among many classes none is named by chance."""
    level = 1 - 0.05 / max(1, len(rows))
    return [r for r in rows if clopper_pearson(r["found"], r["members"], level)[0] > overall_high]


def unmistaken_members(run: Run, attack: str) -> tuple[int, int, int]:
    """Members scored above every non-member (found with no false accusation at all),
    the members, and the non-members."""
    s, member = run.score(attack), run.member
    top_out = s[~member].max() if (~member).any() else -math.inf
    return int((s[member] > top_out).sum()), int(member.sum()), int((~member).sum())


def chance_of_unmistaken(k: int, n_pos: int, n_neg: int) -> float:
    """The probability that a guess (scores unrelated to membership) puts at least ``k``
    members above every non-member: that the ``k`` highest of all records are members,
    C(n_pos, k) / C(n_pos + n_neg, k)."""
    if k > n_pos:
        return 0.0
    log = (math.lgamma(n_pos + 1) - math.lgamma(n_pos - k + 1)
           - math.lgamma(n_pos + n_neg + 1) + math.lgamma(n_pos + n_neg - k + 1))  # fmt: skip
    return math.exp(log)


# --------------------------------------------------------------------------- advice


@dataclass(frozen=True)
class Advice:
    """A recommendation and the measurement it rests on."""

    action: str
    evidence: str
    tags: tuple[str, ...] = field(default=())


#: The train–test accuracy gap from which over-fitting is named as the cause.
GAP = 0.05

#: miaudit's recipes that train with PyTorch (and so can train with DP-SGD).
_NETWORKS = ("mlp", "cnn", "boe")


def _regularise(tg: dict[str, Any]) -> str:
    """What to change in the target's training, in terms that fit who trained it: a
    recipe's next setting (never one already set), or, for the user's own model or
    outputs computed elsewhere, what to change in their own training code."""
    recipe = tg.get("recipe")
    dp = tg.get("dp")
    if not isinstance(recipe, dict):
        if tg.get("source") == "http":
            return (
                "Ask the model's owner to regularise it (weight decay, early stopping) or to "
                "train it with DP-SGD"
            )
        private = (
            f"train with DP-SGD at a smaller ε than {dp['epsilon']:g}"
            if dp
            else "train with DP-SGD (miaudit.TorchTrainer(..., dp_epsilon=8), or Opacus's "
            "make_private around your own loop)"
        )
        return (
            "In your own training: add weight decay (your optimizer's weight_decay=, "
            "TorchTrainer(weight_decay=...), a smaller C for scikit-learn's linear models, "
            "max_depth= or min_samples_leaf= for trees), stop training earlier, or "
            f"{private}"
        )
    model = recipe.get("model")
    saved = tg.get("source") not in ("trained", None)
    how = "train it again (miaudit train) with" if saved else "audit the recipe with"
    steps = []
    if model == "random-forest":
        depth = recipe.get("max_depth")
        if depth is None or int(depth) > 1:  # a stump cannot be made shallower
            nxt = 10 if depth is None else int(depth) // 2
            steps.append(f"shallower trees (max_depth = {nxt} in the settings' [target] table)")
        else:
            steps.append("more training data")
    else:
        l2 = float(recipe.get("l2") or 0.0)
        nxt = 1e-3 if l2 <= 0 else 10 * l2
        steps.append(f"stronger weight decay (--l2 {nxt:g}, l2={nxt:g} in Python)")
    if model in _NETWORKS:
        steps.append("fewer epochs")
        eps = None if not dp else float(dp["epsilon"])
        nxt_eps = 8.0 if eps is None else eps / 2
        steps.append(
            f"DP-SGD at ε = {nxt_eps:g} (--dp-epsilon {nxt_eps:g}"
            + ("" if eps is None else f"; ε = {eps:g} now")
            + ")"
        )
    return f"Regularise the model: {how} " + ", or ".join(steps)


def recommendations(
    run: Run, found: Verdict, classes: list[dict[str, Any]] | None = None
) -> list[Advice]:
    """What to do, each with the measurement behind it; empty when nothing measured
    calls for a change. ``classes``: :func:`class_exposure` of the verdict's attack,
    when the caller has it already."""
    d = run.results
    if classes is None and found.fpr is not None:
        classes = class_exposure(run, found.attack, found.fpr)
    tg = d["target"]
    out: list[Advice] = []
    leaks = found.level != "not detected"
    gap = float(tg["train_accuracy"]) - float(tg["test_accuracy"])
    if leaks and gap >= GAP:
        out.append(Advice(
            f"{_regularise(tg)}, then audit again and compare (miaudit compare).",
            f"Train accuracy {tg['train_accuracy']:.3f} against test accuracy "
            f"{tg['test_accuracy']:.3f}: a gap of {gap:.3f}, the over-fitting membership "
            f"inference feeds on; leakage is {found.label}.",
            ("gap",),
        ))  # fmt: skip
    policy = tg.get("defense") or []
    if policy and found.level in ("moderate", "high", "severe"):
        out.append(Advice(
            "Prefer a training-time defence (regularisation, DP-SGD) to restricting the "
            "outputs: the restriction measured here leaves the leak in place.",
            f"With the output policy {', '.join(policy)}, {found.attack} still reaches a "
            f"likelihood ratio of {found.ratio:.1f} (leakage {found.label}).",
            ("policy",),
        ))  # fmt: skip
    if leaks and classes and found.interval is not None:
        worse = exposed_classes(classes, found.interval[1])
        if worse:
            names = ", ".join(f"{r['class']} ({_pct(r['tpr'])} %)" for r in worse[:5])
            out.append(Advice(
                f"Look first at the most exposed classes: {names}. Their members are found "
                "more often than the rest: collect more records of them, or check them for "
                "duplicates and rare values.",
                f"Their intervals (95 % for all {len(classes)} classes together) lie above "
                f"the {_pct(found.interval[1])} % upper end of {found.attack}'s overall rate "
                f"at {_pct(found.fpr)} % false positives.",
                ("classes",),
            ))  # fmt: skip
    k, n_pos, n_neg = unmistaken_members(run, found.attack)
    if leaks and k and chance_of_unmistaken(k, n_pos, n_neg) < 0.01:
        out.append(Advice(
            f"Examine the {k:,} records {found.attack} finds without a single false "
            "accusation (the top of “Whose privacy is at stake”, and exposure_rank in "
            "scores.csv): outliers, duplicates and rare values are memorised; remove or "
            "merge them, or train with DP-SGD.",
            f"{k:,} of {n_pos:,} evaluated members score above every one of the {n_neg:,} "
            f"non-members; a guess puts that many there with probability "
            f"{chance_of_unmistaken(k, n_pos, n_neg):.1g}.",
            ("records",),
        ))  # fmt: skip
    strong = weakening_skips(d)
    if strong:
        needs = d["skipped_attacks"]
        out.append(Advice(
            f"Run the attacks this evaluation could not ({', '.join(strong)}) before "
            f"concluding: the leak measured here is a lower bound. Give them what they need "
            f"({'; '.join(f'{n}: {needs[n]}' for n in strong[:3])}), or audit the model "
            "itself (miaudit audit), which trains the shadows and reference models they "
            "read.",
            f"Only {', '.join(d['attacks'])} ran; the shadow-model and reference-model "
            "attacks, usually the strongest, did not.",
            ("skipped",),
        ))  # fmt: skip
    claim = d.get("privacy_claim")
    if claim and claim.get("claimed") and not claim.get("consistent", True):
        low = claim["lower_bound"]
        out.append(Advice(
            "Check the DP-SGD training (the sampling, clipping and noise, and the accountant): "
            "it does not give the privacy it claims.",
            f"Claimed ε = {claim['claimed']['epsilon']:g}; the audit shows ε ≥ "
            f"{low['epsilon']:.2f} with {low['attack']}.",
            ("claim",),
        ))  # fmt: skip
    if found.at_least and found.next_level is not None:
        needed = found.nonmembers_needed
        more = (
            "no evaluation of a practical size would tell"
            if needed is None
            else f"about {needed:,} non-members would tell"
        )
        how = more_records(d)
        out.append(Advice(
            f"Evaluate {how} before concluding the leak is only {found.level}: {more}.",
            f"{found.bound.n_nonmembers:,} non-members were evaluated; whether the leak is "
            f"{found.next_level} is not decided by them.",
            ("resolution",),
        ))  # fmt: skip
    elif found.interval is not None and found.fpr:
        width = found.interval[1] - found.interval[0]
        if found.level in ("not detected", "low") and found.interval[1] >= 5 * found.fpr:
            out.append(Advice(
                "Evaluate more records (a larger --target-size or a larger data set) before "
                "concluding the model is safe: this evaluation is too small to rule out a "
                "leak of a few per cent.",
                f"The 95 % interval of {found.attack}'s TPR at {_pct(found.fpr)} % false "
                f"positives spans {_pct(width)} points, up to {_pct(found.interval[1])} %.",
                ("resolution",),
            ))  # fmt: skip
    return out
