"""The verdict: how much a run leaks, in one level and one sentence.

:func:`verdict` reads a finished run as its two tables
(:class:`~miaudit.results_format.RunTables`: ``results.json`` and ``scores.csv``), so
an audit in memory (:meth:`miaudit.result.AuditResult.verdict`, which writes it into
``results.json``), a run folder read back (:class:`miaudit.report.run.Run`), the
terminal, the page and ``miaudit compare`` all say the same thing about a run. It sits
below the typed result and the report and imports neither, nor the configuration: only
NumPy and :mod:`miaudit.metrics`' bounds, so reading a run folder's verdict loads no
PyTorch or scikit-learn (the attacks' registry, which does, is read only to tell which
skipped attacks weaken the verdict, when an attack was skipped).

The verdict's level
-------------------
Every attack's scores give, at each false-positive budget ``k`` of 0, 1, 2, 3, 4, 5, 6, 8,
… (every whole 2^(j/4) below the number of non-members:
:func:`miaudit.metrics.false_positive_grid`), the members found
by the threshold that lets at most ``k`` non-members through. The one-sided
Clopper–Pearson lower bound on that TPR over the upper bound on that FPR is a lower
bound on the *likelihood ratio* TPR/FPR: how many times more often the attack accuses a
member than a non-member. (The same bounds bound (1 - FPR)/(1 - TPR), how many times
more often it clears a non-member than a member: evidence against a differential-privacy
claim that the sentence adds when it says more, but no member exposed, so it sets no
level.) The best over the budgets and the attacks, every bound at a
Bonferroni-corrected level so that all of them hold together with 95 % confidence, is
the verdict's ratio (:class:`miaudit.metrics.LeakBound`; ε ≥ ln ratio):

=============  ==========================================================
not detected   ratio at most 1: no threshold accuses members more often than non-members
low            ratio above 1, below ``moderate`` (default 2)
moderate       ratio at least 2: a member is twice as likely to be accused as a non-member
high           ratio at least 10 (ε ≥ ln 10 ≈ 2.3)
severe         ratio at least 50 (ε ≥ ln 50 ≈ 3.9)
=============  ==========================================================

The rule is monotone: an attack whose ROC curve (its steps) lies above another's on the
same records finds at least as many members within every budget, so its ratio, and its
level, is never lower. It is never capped by a fixed rate: with ``m`` non-members the
bound can reach about ``m / ln(tests / 0.025)``, and when that is below the next level's
ratio, or an attack's observed rates would reach the next level in a larger evaluation,
the level is said as "at least" with the number of non-members that would decide it
(:func:`undecided`). The thresholds are :class:`Levels` (``miaudit report --levels
2,10,50``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.errors import ConfigError, key, render
from miaudit.metrics import (
    LeakBound,
    clopper_pearson,
    false_positive_grid,
    fpr_key,
    json_safe,
    leak_bound,
    nonmembers_needed,
    perfect_ratio,
)
from miaudit.results_format import RunTables

__all__ = [
    "GATE_FAILED",
    "GATE_LEVELS",
    "GATE_UNDECIDED",
    "LEVELS",
    "GateOutcome",
    "Levels",
    "RunTables",
    "Verdict",
    "chance_accuracy",
    "check_gate_level",
    "gate",
    "leak_bounds",
    "learned_nothing",
    "level_of",
    "more_records",
    "open_at",
    "skipped_attacks",
    "tpr_interval",
    "undecided",
    "verdict",
    "weakened_sentences",
    "weakening_skips",
]

#: The levels of leakage, from none found to the most.
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
    """A run's verdict: its ``level`` (one of :data:`LEVELS`), whether it is only a lower
    end (``at_least``: the evaluation could not decide the next level), the ``sentence``
    saying it, and the figures it rests on.

    ``ratio`` and ``epsilon`` are the verdict attack's :class:`~miaudit.metrics.LeakBound`
    (``bound``); ``fpr``, ``tpr`` and ``interval`` its operating point there (the
    false-positive budget over the non-members, the members found, and the 95 %
    Clopper–Pearson interval of that TPR). For a run where nothing is detected they are
    the strongest attack's at the ranking rate. ``next_level`` and ``nonmembers_needed``
    say what would decide the next level when ``at_least``.
    """

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
    at_least: bool = False
    bound: LeakBound | None = None
    next_level: str | None = None
    nonmembers_needed: int | None = None
    estimate: bool = False
    #: What made the audit weaker than it could be (``results.json``'s ``weakened``
    #: sentences, and the strong attacks skipped for want of arrays).
    weakened: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The level as said: ``"high"``, or ``"at least high"``."""
        return f"at least {self.level}" if self.at_least else self.level

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "level": self.level,
            "at_least": self.at_least,
            "sentence": self.sentence,
            "attack": self.attack,
            "fpr": self.fpr,
            "tpr": self.tpr,
            "interval": None if self.interval is None else list(self.interval),
            "ratio": self.ratio,
            "epsilon": self.epsilon,
            "n_train": self.n_train,
            "identified": self.identified,
            "identified_is_estimate": self.estimate,
            "next_level": self.next_level,
            "nonmembers_needed": self.nonmembers_needed,
            "bound": None if self.bound is None else self.bound.to_dict(),
            "weakened": list(self.weakened),
        })  # fmt: skip


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


def leak_bounds(run: RunTables) -> dict[str, LeakBound]:
    """Every attack's :class:`~miaudit.metrics.LeakBound`, all the run's attacks bounded
    together. Computed from the scores (``scores.csv``), never read from
    ``results.json``: the verdict rests on the records' scores themselves."""
    attacks = run.attacks
    member = run.member
    return {a: leak_bound(run.score(a), member, attacks=len(attacks)) for a in attacks}


def level_of(ratio: float, levels: Levels) -> str:
    """The level of a :class:`~miaudit.metrics.LeakBound` ratio: not detected up to 1
    (no threshold shows members accused more often than non-members), else
    :meth:`Levels.level`."""
    return "not detected" if ratio <= 1.0 else levels.level(ratio)


def _next_threshold(level: str, levels: Levels) -> tuple[str, float] | None:
    """The level above ``level`` and the ratio it needs (1 for "low": anything above)."""
    steps = {"not detected": ("low", 1.0), "low": ("moderate", levels.moderate),
             "moderate": ("high", levels.high), "high": ("severe", levels.severe)}  # fmt: skip
    return steps.get(level)


def _point_ratio(b: LeakBound) -> float:
    """The best TPR/FPR the attack's observed rates give at budgets of one false positive
    or more (the point estimate the evaluation's size keeps from being confirmed)."""
    best = 0.0
    for k, tp in b.points:
        if k >= 1 and tp:
            best = max(best, (tp / b.n_members) / (k / b.n_nonmembers))
    return best


def undecided(
    bounds: dict[str, LeakBound], level: str, levels: Levels
) -> tuple[str, int | None, str] | None:
    """Whether the evaluation leaves the level above ``level`` undecided, and why:
    ``(next level, non-members needed, "size")`` when no attack could show it with this
    many records (even one that finds every member first), ``(…, "rates")`` when some
    attack's observed rates reach it and a larger evaluation would confirm or refute
    them; ``None`` when the evaluation decides it."""
    step = _next_threshold(level, levels)
    if step is None:
        return None
    name, target = step
    open_ = open_at(bounds, target)
    return None if open_ is None else (name, *open_)


def open_at(bounds: dict[str, LeakBound], target: float) -> tuple[int | None, str] | None:
    """Whether the evaluation leaves open that the leak reaches the likelihood ratio
    ``target`` (which no bound reaches): ``(non-members needed, "size")`` when no attack
    could show it with this many records, ``(…, "rates")`` when some attack's observed
    rates reach it and a larger evaluation would confirm or refute them (``None``
    non-members: no practical evaluation would); ``None`` when the evaluation rules it
    out."""
    any_bound = next(iter(bounds.values()))
    if perfect_ratio(any_bound.n_members, any_bound.n_nonmembers, any_bound.attacks) <= target:
        return nonmembers_needed(any_bound, target, observed=False), "size"
    reaching = [b for b in bounds.values() if _point_ratio(b) > target]
    if not reaching:
        return None
    # Rates that reach it leave it open even where no practical evaluation would settle
    # it (None: said so).
    needed = [n for b in reaching if (n := nonmembers_needed(b, target, observed=True))]
    return min(needed) if needed else None, "rates"


def more_records(results: dict[str, Any]) -> str:
    """What would evaluate more records in this run, by where its target came from."""
    source = results["target"].get("source")
    if source == "outputs":
        return "the model's outputs on more members and non-members"
    if source == "python":
        return "more records (more held-out rows as non_members=, --non-members)"
    return "more records (a larger --target-size, target_size= in Python, or a larger data set)"


#: Exit status of ``--fail-on`` when the verdict reaches the level.
GATE_FAILED = 3
#: Exit status of ``--fail-on`` when the evaluation cannot tell whether it does.
GATE_UNDECIDED = 4
#: The levels a gate can fail on (every verdict reaches "not detected").
GATE_LEVELS = LEVELS[1:]


@dataclass(frozen=True)
class GateOutcome:
    """What ``--fail-on LEVEL`` (``fail_on=``) says of a run: ``passed``, ``failed`` (the
    verdict reaches ``level``; "at least" verdicts count) or ``undecided`` (the verdict is
    below ``level`` but the evaluation cannot rule it out: too few non-members for any
    attack to show it, or observed rates that reach it unconfirmed), the ``message``
    saying so, and the exit status (0, :data:`GATE_FAILED`, :data:`GATE_UNDECIDED`)."""

    level: str
    outcome: str
    text: str
    verdict: Verdict
    nonmembers_needed: int | None = None

    @property
    def message(self) -> str:
        """What the gate says, settings named as Python passes them (``fail_on=high``)."""
        return render(self.text)

    def for_cli(self, flag) -> str:
        """What the gate says, settings named as the command line's options."""
        return render(self.text, flag)

    @property
    def status(self) -> int:
        return {"passed": 0, "failed": GATE_FAILED, "undecided": GATE_UNDECIDED}[self.outcome]

    def to_dict(self) -> dict[str, Any]:
        return {
            "fail_on": self.level,
            "outcome": self.outcome,
            "status": self.status,
            "message": self.message,
            "verdict": self.verdict.label,
            "nonmembers_needed": self.nonmembers_needed,
        }


def check_gate_level(level: str) -> str:
    """``level`` if a gate can fail on it, else one line naming the choices."""
    if level not in GATE_LEVELS:
        raise ConfigError(
            f"{key('fail_on', level)}: give one of {', '.join(GATE_LEVELS)} (the verdict's "
            "levels above not detected; every verdict reaches not detected)"
        )
    return level


def gate(run: RunTables, level: str, levels: Levels | None = None) -> GateOutcome:
    """Judge the run against ``--fail-on level``: failed when its verdict reaches
    ``level`` (an "at least" verdict counts for what it reaches), undecided when the
    verdict is below it but the evaluation cannot rule it out, passed otherwise. A run
    whose audit was weakened says so in the message, whatever the outcome."""
    levels = levels or Levels()
    check_gate_level(level)
    found = verdict(run, levels)
    weakened = (
        f" The audit was weakened ({'; '.join(found.weakened)}): the leak it measures is a "
        "lower bound."
        if found.weakened
        else ""
    )
    if LEVELS.index(found.level) >= LEVELS.index(level):
        message = (
            f"leakage {found.label} reaches {key('fail_on', level)} ({found.attack}: a member is "
            f"accused at least {_ratio(found.ratio)} times as often as a non-member)"
        )
        return GateOutcome(level, "failed", message + "." + weakened, found)
    target = 1.0 if level == "low" else getattr(levels, level)
    open_ = open_at(leak_bounds(run), target)
    if open_ is not None:
        needed, why = open_
        more = (
            f"an evaluation of about {needed:,} non-members would decide it"
            if needed
            else "no practical evaluation would decide it"
        )
        cause = (
            "too few non-members were evaluated for any attack to show it"
            if why == "size"
            else "an attack's observed rates reach it, but not with 95 % confidence"
        )
        message = (
            f"leakage is {found.label}, and this evaluation cannot rule out {level}: {cause}; "
            f"{more}: evaluate {more_records(run.results)}"
        )
        return GateOutcome(level, "undecided", message + "." + weakened, found, needed)
    message = (
        f"leakage {found.label} is below --fail-on {level}, and the evaluation rules {level} out"
    )
    return GateOutcome(level, "passed", message + "." + weakened, found)


def chance_accuracy(run: RunTables) -> float | None:
    """The accuracy of always answering the evaluated records' most common class."""
    try:
        classes = run.class_index
    except Exception:  # a run without per-record classes: no chance to compare with
        return None
    if not len(classes):
        return None
    return float(np.bincount(classes).max() / len(classes))


def learned_nothing(run: RunTables) -> str | None:
    """A sentence when a DP-SGD target is no more accurate than a constant guess: its ε
    is then not the privacy of a model anyone would deploy, and finding no leak in it
    says nothing of DP-SGD's price on a useful one."""
    tg = run.results.get("target") or {}
    dp, test = tg.get("dp"), tg.get("test_accuracy")
    chance = chance_accuracy(run)
    if not isinstance(dp, dict) or not isinstance(test, int | float) or chance is None:
        return None
    if test > chance + 0.01:
        return None
    eps = dp.get("epsilon")
    at = f" at ε = {eps:g}" if isinstance(eps, int | float) else ""
    return (
        f"The target, trained with DP-SGD{at}, is no more accurate than always answering "
        f"the most common class (test accuracy {test:.3f}, that class's share "
        f"{chance:.3f}): it learned nothing, so its ε and this verdict say nothing of a "
        "model worth deploying; check the DP-SGD settings (a clipping norm far above the "
        "gradients' makes the noise drown them)."
    )


def weakened_sentences(results: dict[str, Any]) -> tuple[str, ...]:
    """Why the run's measured leak is a lower bound: ``results.json``'s ``weakened``, and
    the attacks (other than label-only ones) skipped for want of what they need."""
    out = []
    for item in results.get("weakened") or []:
        if isinstance(item, dict) and isinstance(item.get("sentence"), str):
            out.append(item["sentence"])
    strong = weakening_skips(results)
    if strong:
        out.append(f"{', '.join(strong)} did not run: what they need was not given.")
    return tuple(out)


def verdict(run: RunTables, levels: Levels | None = None) -> Verdict:
    """The run's :class:`Verdict` (see the module's rule). An audit weaker than it could
    be says so in the sentence, and :attr:`Verdict.weakened` says how."""
    found = _verdict(run, levels or Levels())
    useless = learned_nothing(run)
    if useless is not None:
        found = dataclasses.replace(found, sentence=f"{found.sentence} {useless}")
    why = weakened_sentences(run.results)
    if not why:
        return found
    n = len(why)
    return dataclasses.replace(
        found,
        sentence=f"{found.sentence} This audit was weakened in {n} way{'s' if n > 1 else ''} "
        "(listed with it): the leak it measures is a lower bound.",
        weakened=why,
    )


def _verdict(run: RunTables, levels: Levels) -> Verdict:
    """:func:`verdict` before what weakened the audit is said."""
    d = run.results
    n_train = int(d["target"]["n_train"])
    bounds = leak_bounds(run)
    # The attack with the highest bound; ties go to the ranking's order.
    order = [d["strongest_attack"], *[a for a in bounds if a != d["strongest_attack"]]]
    name = max(order, key=lambda a: bounds[a].ratio)
    b = bounds[name]
    level = level_of(b.ratio, levels)
    open_ = undecided(bounds, level, levels)
    if level == "not detected" and d["ranking"].get("distinguishable_from_chance"):
        return _beyond_chance_only(run, bounds)
    if level == "not detected":
        # Noise alone gives some budget rates above chance: only an evaluation too small
        # to show any leak leaves "not detected" open.
        return _not_detected(run, bounds, open_ if open_ and open_[2] == "size" else None, levels)
    fpr = b.fp_budget / b.n_nonmembers
    tpr = b.tp / b.n_members
    interval = clopper_pearson(b.tp, b.n_members)
    estimate = n_train > b.n_members
    identified = _about(tpr * n_train) if estimate else b.tp
    at_least = open_ is not None
    said = f"at least {level}" if at_least else level
    tests = len(false_positive_grid(b.n_nonmembers)) * b.attacks
    if b.fp_budget == 0:
        letting = f"without a single false accusation among the {b.n_nonmembers:,} non-members"
    else:
        letting = (
            f"accusing at most {b.fp_budget:,} of the {b.n_nonmembers:,} non-members "
            f"({_pct(fpr)} %)"
        )
    scaled = (
        f"Scaled to all {n_train:,} training records that is about {identified:,} of them, "
        f"an estimate from the {b.n_members:,} members evaluated."
        if estimate
        else f"That is {b.tp:,} of the {n_train:,} training records."
    )
    sentence = (
        f"{name} finds {b.tp:,} of the {b.n_members:,} members evaluated ({_pct(tpr)} %; "
        f"95 % interval {_pct(interval[0])}–{_pct(interval[1])} %) {letting}. {scaled} "
        f"A member is accused at least {_ratio(b.ratio)} times as often as a non-member "
        f"(95 % confidence for all {tests:,} thresholds and attacks tried; ε ≥ "
        f"{b.epsilon:.2f}). Leakage: {said}."
    )
    if open_ is not None:
        sentence += " " + _undecided_sentence(open_, b.n_nonmembers, levels)
    sentence += _dp_clause(bounds)
    return Verdict(
        level, sentence, name, fpr, tpr, interval, b.ratio, b.epsilon, n_train, identified,
        at_least=at_least, bound=b, next_level=None if open_ is None else open_[0],
        nonmembers_needed=None if open_ is None else open_[1], estimate=estimate,
    )  # fmt: skip


def _ratio(r: float) -> str:
    """A ratio with the digits that keep it apart from 1 and from the levels' thresholds."""
    if r < 2:
        return f"{math.floor(r * 100) / 100:.2f}"
    return f"{math.floor(r * 10) / 10:.1f}" if r < 100 else f"{math.floor(r):,.0f}"


def _dp_clause(bounds: dict[str, LeakBound]) -> str:
    """What the non-members' side says for a differential-privacy claim, when it says more
    than the members' side: a record a threshold clears is far likelier a non-member."""
    name = max(bounds, key=lambda a: bounds[a].cleared_ratio)
    b = bounds[name]
    # Said only where it raises ε by a tenth or more: a perfect split gives both sides
    # nearly alike, and the members' side has been said.
    if b.cleared_ratio <= 1.1 * max(1.0, max(x.ratio for x in bounds.values())):
        return ""
    return (
        f" For a differential-privacy claim the records {name} clears say more: letting at "
        f"most {b.cleared_budget:,} of the {b.n_nonmembers:,} non-members through, it clears "
        f"a non-member at least {_ratio(b.cleared_ratio)} times as often as a member, so "
        f"ε ≥ {b.dp_epsilon:.2f} (not a measure of members exposed: the level reads the "
        "members' side)."
    )


def _undecided_sentence(open_: tuple[str, int | None, str], n_neg: int, levels: Levels) -> str:
    name, needed, why = open_
    target = {"moderate": levels.moderate, "high": levels.high, "severe": levels.severe}.get(name)
    need = "" if target is None else f" (a ratio of {target:g})"
    if needed is None:
        how = "no evaluation of a practical size would tell"
    else:
        how = f"about {needed:,} non-members ({needed - n_neg:,} more, with members in proportion)"
    if why == "size":
        return (
            f"This evaluation is too small to show {name}{need} even for an attack that finds "
            f"every member first: {how} would be needed to tell."
        )
    return f"At the rates observed the leak may be {name}{need}: {how} would confirm or refute it."


def _beyond_chance_only(run: RunTables, bounds: dict[str, LeakBound]) -> Verdict:
    """The ranking's one test (an attack's interval above chance at the ranking rate, or
    at its own threshold) tells members from non-members, but no likelihood ratio above 1
    holds with all thresholds and attacks corrected together: at least low, never "not
    detected"."""
    d = run.results
    ranking = d["ranking"]
    n_train = int(d["target"]["n_train"])
    f = ranking.get("fpr")
    above = ranking.get("above_chance") or []
    if above:
        name = above[0]
        a = d["attacks"][name]
        key = _key(a, f) if f is not None else None
        tpr = None if key is None else a["tpr_at_fpr"].get(key)
        ci = None if key is None else tpr_interval(a, key)
        told = (
            f"at {_pct(f)} % false positives {name} finds {_pct(tpr)} % of members (95 % "
            f"interval {_pct(ci[0])}–{_pct(ci[1])} %), more than the {_pct(f)} % a guess finds"
            if tpr is not None and ci is not None
            else f"{name} beats chance at {_pct(f)} % false positives"
        )
    else:
        name = (ranking.get("above_chance_at_threshold") or [d["strongest_attack"]])[0]
        a = d["attacks"][name]
        b_fpr = max(0.0, float(a["recall"]) - float(a["advantage"]))
        f, tpr, ci = None, float(a["recall"]), None
        told = (
            f"at its own threshold {name} flags {_pct(a['recall'])} % of members and "
            f"{_pct(b_fpr)} % of non-members"
        )
    b = bounds[name]
    sentence = (
        f"Members are told from non-members better than chance: {told}. With every "
        "threshold and attack corrected together, no likelihood ratio above 1 is shown at "
        "95 % confidence, so how much more often a member is accused is not measured. "
        "Leakage: at least low." + _dp_clause(bounds)
    )
    return Verdict(
        "low", sentence, name, f, tpr, ci, b.ratio, b.epsilon, n_train, at_least=True,
        bound=b, next_level="moderate",
    )  # fmt: skip


def _not_detected(
    run: RunTables,
    bounds: dict[str, LeakBound],
    open_: tuple[str, int | None, str] | None,
    levels: Levels,
) -> Verdict:
    """No threshold of any attack accuses members more often than non-members with 95 %
    confidence: what the evaluation can and cannot rule out."""
    d = run.results
    ranking, name = d["ranking"], d["strongest_attack"]
    a = d["attacks"][name]
    n_train = int(d["target"]["n_train"])
    f = ranking.get("fpr")
    key = None if f is None else _key(a, f)
    tpr = None if key is None else a["tpr_at_fpr"].get(key)
    ci = None if key is None else tpr_interval(a, key)
    n_neg, n_pos = int(a["n_nonmembers"]), int(a["n_members"])
    b = bounds[name]
    if tpr is None or ci is None:
        sentence = (
            f"No attack told members from non-members better than chance. With only {n_neg:,} "
            f"non-members evaluated, no false-positive rate below {_pct(1 / max(n_neg, 1))} % "
            "is measured: evaluate more records to see a leak of that size."
        )
    else:
        sentence = (
            f"No attack told members from non-members better than chance: at {_pct(f)} % "
            f"false positives the strongest, {name}, finds {_pct(tpr)} % of members (95 % "
            f"interval {_pct(ci[0])}–{_pct(ci[1])} %), what a guess finds. With {n_pos:,} "
            f"members and {n_neg:,} non-members evaluated, a leak smaller than "
            f"{_pct(ci[1])} % of the training records at that rate cannot be ruled out."
        )
    sentence += " Leakage: not detected."
    if open_ is not None:
        sentence += " " + _undecided_sentence(open_, n_neg, levels)
    sentence += _dp_clause(bounds)
    return Verdict(
        "not detected", sentence, name, f, tpr, ci, b.ratio, b.epsilon, n_train,
        at_least=False, bound=b, next_level=None if open_ is None else open_[0],
        nonmembers_needed=None if open_ is None else open_[1],
    )  # fmt: skip


def _key(attack: dict, fpr: float) -> str | None:
    """``attack``'s key of the rate ``fpr`` (:func:`miaudit.metrics.fpr_key`), if it has one."""
    key = fpr_key(fpr)
    return key if key in (attack.get("tpr_at_fpr") or {}) else None


def skipped_attacks(results: dict[str, Any]) -> list[str]:
    """The attacks that did not run for want of what they need (``skipped_attacks``)."""
    skipped = results.get("skipped_attacks") or {}
    return list(skipped) if isinstance(skipped, dict) else []


def weakening_skips(results: dict[str, Any]) -> list[str]:
    """The skipped attacks whose absence weakens the verdict: all but the label-only
    family (:attr:`~miaudit.attacks.base.Attack.label_only_family`)."""
    skipped = skipped_attacks(results)
    if not skipped:
        return []
    # The registry imports every attack (and so PyTorch): only when one was skipped.
    from miaudit.attacks.registry import ATTACKS

    return [n for n in skipped if n not in ATTACKS or not ATTACKS[n].label_only_family]
