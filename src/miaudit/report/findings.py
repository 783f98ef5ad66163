"""What a run means for a person: the verdict, the classes most exposed, what to do.

Position in the pipeline: ``metrics -> report``. Everything here reads a
:class:`~miaudit.report.run.Run` (``results.json`` and ``scores.csv``), so the
terminal, the page and ``miaudit compare`` say the same thing about a run.

The verdict's level
-------------------
The strongest attack (``results.json``'s ``strongest_attack``) is read at the
false-positive rate the attacks were ranked at (``ranking.fpr``: the lowest of 0.1 %,
1 % and 10 % that allows ten false positives among the non-members). Its
*likelihood ratio* there is the lower end of the 95 % interval of its TPR divided by
that FPR: how many times more often it accuses a member than a non-member, at
least. Its lower bound on ε at that rate gives a second ratio, e^ε (Clopper–Pearson,
90 % confidence). The larger of the two sets the level:

=============  ==========================================================
not detected   no attack is distinguishable from chance (``ranking``)
low            distinguishable, ratio below ``moderate`` (default 2)
moderate       ratio at least 2: a member is twice as likely to be accused as a non-member
high           ratio at least 10 (ε ≥ ln 10 ≈ 2.3)
severe         ratio at least 50 (ε ≥ ln 50 ≈ 3.9)
=============  ==========================================================

The thresholds are :class:`Levels` (``miaudit report --levels 2,10,50``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miaudit.errors import ConfigError
from miaudit.metrics import clopper_pearson, fpr_key, operating_points
from miaudit.report.run import Run

LEVELS = ("not detected", "low", "moderate", "high", "severe")


@dataclass(frozen=True)
class Levels:
    """The likelihood ratios at which leakage is moderate, high and severe."""

    moderate: float = 2.0
    high: float = 10.0
    severe: float = 50.0

    def __post_init__(self) -> None:
        values = (self.moderate, self.high, self.severe)
        if not all(math.isfinite(v) for v in values) or not 1.0 < values[0] < values[1] < values[2]:
            raise ConfigError(
                f"--levels {self.text()}: give three increasing ratios above 1 (moderate, "
                "high, severe), e.g. --levels 2,10,50"
            )

    @classmethod
    def parse(cls, text: str) -> Levels:
        """``"2,10,50"`` as :class:`Levels`."""
        try:
            values = [float(v) for v in str(text).split(",")]
        except ValueError:
            values = []
        if len(values) != 3:
            raise ConfigError(
                f"--levels {text}: give three numbers, moderate,high,severe (e.g. 2,10,50)"
            )
        return cls(*values)

    def text(self) -> str:
        return f"{self.moderate:g},{self.high:g},{self.severe:g}"

    def level(self, ratio: float) -> str:
        """The level of a distinguishable leak of this likelihood ratio."""
        if ratio >= self.severe:
            return "severe"
        if ratio >= self.high:
            return "high"
        if ratio >= self.moderate:
            return "moderate"
        return "low"


@dataclass(frozen=True)
class Verdict:
    """A run's verdict: its ``level`` (one of :data:`LEVELS`), the ``sentence``
    saying it, and the figures it rests on (TPR and its interval at ``fpr``, the
    likelihood ratio and the ε bound)."""

    level: str
    sentence: str
    attack: str
    fpr: float | None
    tpr: float | None
    interval: tuple[float, float] | None
    ratio: float
    epsilon: float | None
    n_train: int
    identified: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "sentence": self.sentence,
            "attack": self.attack,
            "fpr": self.fpr,
            "tpr": self.tpr,
            "interval": None if self.interval is None else list(self.interval),
            "ratio": self.ratio,
            "epsilon": self.epsilon,
        }


def _pct(v: float) -> str:
    """A share as a percentage with the digits it needs: 18, 7.9, 0.4, 0.0025, and never
    100 unless it is all (99.9)."""
    p = 100 * v
    if p == 0 or p == 100:
        return f"{p:.0f}"
    if p >= 99.5:
        return f"{math.floor(p * 10) / 10:.1f}"
    if p >= 10:
        return f"{p:.0f}"
    if p >= 1:
        return f"{p:.1f}"
    # Two significant digits in fixed notation, however small.
    return f"{p:.{min(12, 1 - math.floor(math.log10(p)))}f}".rstrip("0").rstrip(".")


def _about(n: float) -> int:
    """``n`` to three significant figures, as "about" says it."""
    if n < 100:
        return round(n)
    digits = math.floor(math.log10(n)) - 2
    return round(round(n, -digits))


def tpr_interval(attack: dict, fpr_key: str) -> tuple[float, float] | None:
    """The bootstrap interval of TPR at ``fpr_key``, or Clopper–Pearson's over the
    members when no bootstrap ran; ``None`` when the rate is not resolved."""
    tpr = (attack.get("tpr_at_fpr") or {}).get(fpr_key)
    if tpr is None:
        return None
    ci = (attack.get("tpr_at_fpr_ci") or {}).get(fpr_key)
    if ci is not None:
        return float(ci[0]), float(ci[1])
    n = int(attack["n_members"])
    return clopper_pearson(round(tpr * n), n)


def strongest_epsilon(results: dict) -> float | None:
    """The strongest attack's Clopper–Pearson lower bound on ε at the ranking rate: one
    bound, so its 90 % confidence holds (the largest of many bounds would not)."""
    f = results["ranking"].get("fpr")
    a = results["attacks"][results["strongest_attack"]]
    key = None if f is None else _key(a, f)
    value = None if key is None else (a.get("epsilon_lower_bound_cp") or {}).get(key)
    return None if value is None else float(value)


def verdict(run: Run, levels: Levels | None = None) -> Verdict:
    """The run's :class:`Verdict` (see the module's table of levels)."""
    levels = levels or Levels()
    d = run.results
    ranking, name = d["ranking"], d["strongest_attack"]
    a = d["attacks"][name]
    n_train = int(d["target"]["n_train"])
    f = ranking.get("fpr")
    key = None if f is None else _key(a, f)
    tpr = None if key is None else a["tpr_at_fpr"].get(key)
    ci = None if key is None else tpr_interval(a, key)
    eps = strongest_epsilon(d)
    ratio = max(
        0.0 if ci is None or not f else ci[0] / f,
        0.0 if eps is None else math.exp(min(eps, 700.0)),
    )
    n_neg, n_pos = int(a["n_nonmembers"]), int(a["n_members"])
    per = None if not f else round(1 / f)
    accepts = (
        "" if per is None else f"An attacker who accepts 1 false accusation per {per:,} non-members"
    )
    if not ranking["distinguishable_from_chance"]:
        level = "not detected"
        if tpr is None or ci is None:
            sentence = (
                f"No attack told members from non-members better than chance. With only {n_neg:,} "
                f"non-members evaluated, no false-positive rate below {_pct(1 / max(n_neg, 1))} % "
                "is measured: evaluate more records to see a leak of that size. Leakage: not "
                "detected."
            )
        else:
            sentence = (
                f"No attack told members from non-members better than chance: at {_pct(f)} % "
                f"false positives the strongest, {name}, finds {_pct(tpr)} % of members (95 % "
                f"interval {_pct(ci[0])}–{_pct(ci[1])} %), what a guess finds. With {n_pos:,} "
                f"members and {n_neg:,} non-members evaluated, a leak smaller than "
                f"{_pct(ci[1])} % of the training records at that rate cannot be ruled out. "
                "Leakage: not detected."
            )
        return Verdict(level, sentence, name, f, tpr, ci, ratio, eps, n_train)
    level = levels.level(ratio)
    if ranking.get("above_chance") and tpr is not None and ci is not None:
        identified = _about(tpr * n_train)
        sentence = (
            f"{accepts} identifies about {identified:,} of the {n_train:,} training records "
            f"({_pct(tpr)} %; 95 % interval {_pct(ci[0])}–{_pct(ci[1])} %). "
            f"Leakage: {level}."
        )
        return Verdict(level, sentence, name, f, tpr, ci, ratio, eps, n_train, identified)
    # Distinguishable only at an attack's own, looser threshold.
    loose = ranking.get("above_chance_at_threshold") or [name]
    b = d["attacks"][loose[0]]
    b_fpr = max(0.0, float(b["recall"]) - float(b["advantage"]))
    at_low = (
        ""
        if tpr is None or ci is None
        else f" At {_pct(f)} % false positives no attack beats a guess ({name}: {_pct(tpr)} %, "
        f"95 % interval {_pct(ci[0])}–{_pct(ci[1])} %)."
    )
    sentence = (
        f"Members are told from non-members better than chance only when many false "
        f"accusations are accepted: at its own threshold {loose[0]} flags {_pct(b['recall'])} % "
        f"of members and {_pct(b_fpr)} % of non-members.{at_low} Leakage: {level}."
    )
    return Verdict(level, sentence, name, f, tpr, ci, ratio, eps, n_train)


def _key(attack: dict, fpr: float) -> str | None:
    """``attack``'s key of the rate ``fpr`` (:func:`miaudit.metrics.fpr_key`), if it has one."""
    key = fpr_key(fpr)
    return key if key in (attack.get("tpr_at_fpr") or {}) else None


def percent(v: float | None) -> str:
    """A rate in a table: one decimal and the sign (``18.3 %``), ``–`` when unmeasured."""
    return "–" if v is None else f"{100 * v:.1f} %"


# --------------------------------------------------------------------------- classes


def class_exposure(run: Run, attack: str, fpr: float) -> list[dict[str, Any]]:
    """Per class, the TPR of ``attack`` at the threshold that gives ``fpr`` over all
    non-members, with its 95 % Clopper–Pearson interval, and the class's own FPR there;
    most exposed first (classes without members are left out)."""
    s, member = run.score(attack), run.member
    labels = run.scores["label"].to_numpy(dtype=np.int64)
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


def recommendations(
    run: Run, found: Verdict, classes: list[dict[str, Any]] | None = None
) -> list[Advice]:
    """What to do, each with the measurement behind it; empty when nothing measured
    calls for a change. ``classes``: :func:`class_exposure` of the verdict's attack,
    when the caller has it already."""
    d = run.results
    if classes is None and found.fpr:
        classes = class_exposure(run, found.attack, found.fpr)
    tg = d["target"]
    out: list[Advice] = []
    leaks = found.level != "not detected"
    gap = float(tg["train_accuracy"]) - float(tg["test_accuracy"])
    dp = tg.get("dp")
    if leaks and gap >= GAP and tg.get("source") != "outputs":
        private = (
            f"train with DP-SGD at a smaller ε than {dp['epsilon']:g}"
            if dp
            else "train with DP-SGD (miaudit audit --dp-epsilon 8, say)"
        )
        out.append(Advice(
            f"Regularise the model (weight decay, e.g. --l2 1e-3; dropout), stop training "
            f"earlier, or {private}, then audit again and compare (miaudit compare).",
            f"Train accuracy {tg['train_accuracy']:.3f} against test accuracy "
            f"{tg['test_accuracy']:.3f}: a gap of {gap:.3f}, the over-fitting membership "
            f"inference feeds on; leakage is {found.level}.",
            ("gap",),
        ))  # fmt: skip
    policy = tg.get("defense") or []
    if policy and found.level in ("moderate", "high", "severe"):
        out.append(Advice(
            "Prefer a training-time defence (regularisation, DP-SGD) to restricting the "
            "outputs: the restriction measured here leaves the leak in place.",
            f"With the output policy {', '.join(policy)}, {found.attack} still reaches a "
            f"likelihood ratio of {found.ratio:.1f} (leakage {found.level}).",
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
    if found.interval is not None and found.fpr:
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
