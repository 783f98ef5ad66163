"""What an audit found: :class:`AuditResult` and its typed sections.

Position in the pipeline: ``metrics -> report``. The pipeline (and
:func:`miaudit.evaluate`) builds an :class:`AuditResult`; :meth:`AuditResult.to_dict`
is the ``results.json`` contract that :mod:`miaudit.report` and other tools read.
The ``dataset``, ``target`` and ``shadows`` sections are dataclasses with the fields
every audit has, plus ``details`` for what a kind of target or shadow adds (a
service's URL and policy, the user's members, hill climbing's statistics); each
section reads like the ``results.json`` table it becomes (``result.target["n_train"]``).

What the result's files mean is below it, where the report reads it too: the results
format and a run as its two tables (:mod:`miaudit.results_format`), what the files show
of the records at each level of ``show_records`` (:mod:`miaudit.disclosure`), and the
verdict (:mod:`miaudit.verdict`); their names used here (:data:`RESULTS_FORMAT`,
:class:`RunTables`, :func:`label_values`, :func:`redact_results`, :func:`redact_scores`,
:class:`Levels`, :class:`Verdict`, :func:`verdict`) are named here too.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.attacks.base import AttackInputs
from miaudit.attacks.registry import get_attack
from miaudit.attacks.suite import inputs_to_arrays
from miaudit.config import AuditConfig
from miaudit.disclosure import redact_results, redact_scores
from miaudit.errors import ConfigError
from miaudit.metrics import (
    OPTIMISTIC_THRESHOLD,
    AttackMetrics,
    LeakBound,
    Strength,
    attack_strength,
    json_safe,
    leak_bound,
)
from miaudit.models.dp import dp_claim
from miaudit.results_format import RESULTS_FORMAT, RunTables, label_values
from miaudit.verdict import Levels, Verdict, gate, verdict
from miaudit.version import __version__

__all__ = [
    "RESULTS_FORMAT",
    "AuditResult",
    "DatasetSection",
    "Levels",
    "QueryCount",
    "RunTables",
    "ShadowsSection",
    "TargetSection",
    "Verdict",
    "label_values",
    "redact_results",
    "redact_scores",
    "verdict",
]


class Section(Mapping):
    """A typed result section that reads like the ``results.json`` table it becomes."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == "details":
                out.update(value)
            else:
                out[f.name] = value.to_dict() if isinstance(value, Section) else value
        return out

    def __getitem__(self, name: str) -> Any:
        return self.to_dict()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


@dataclass(frozen=True, eq=False)
class DatasetSection(Section):
    """The records audited: ``results.json``'s ``dataset``."""

    name: str | None
    kind: str | None
    source: str | None
    n_records: int
    n_features: int | None
    n_classes: int
    class_names: list[str]
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, summary: dict[str, Any]) -> DatasetSection:
        return cls(**summary)


@dataclass(frozen=True, eq=False)
class QueryCount(Section):
    """Queries sent to the target, answered by the query cache, and the budget."""

    sent: int
    from_cache: int
    budget: int | None


@dataclass(frozen=True, eq=False)
class TargetSection(Section):
    """The audited model: ``results.json``'s ``target``. ``details`` holds what its
    source adds (a service's URL and policy, the user's model and members, a
    trainer)."""

    source: str
    model: str | None
    recipe: dict[str, Any] | None
    defense: list[str]
    queries: QueryCount
    n_train: int
    n_test: int
    train_accuracy: float
    test_accuracy: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class ShadowsSection(Section):
    """The shadow (reference) models: ``results.json``'s ``shadows``. ``details``
    holds what their kind adds (shadow data's source and labels, hill climbing's
    statistics, the pool and population sizes, a trainer)."""

    count: int | None
    game: str | None
    source: str
    details: dict[str, Any] = field(default_factory=dict)


#: How many of the most exposed records ``results.json`` lists.
MOST_EXPOSED = 20


@dataclass
class AuditResult:
    """Everything an audit found; :meth:`to_dict` is the ``results.json`` contract."""

    config: AuditConfig
    dataset: DatasetSection
    target: TargetSection
    shadows: ShadowsSection
    attacks: dict[str, AttackMetrics]
    attack_notes: dict[str, dict[str, Any]]
    #: Each evaluated record's row in the table the user gave (their file or
    #: DataFrame; a built-in set's :func:`miaudit.data.load_frame`), duplicates counted.
    record_index: np.ndarray
    labels: np.ndarray
    member: np.ndarray
    scores: dict[str, np.ndarray]
    roc: dict[str, dict[str, list[float]]]
    timings_s: dict[str, float] = field(default_factory=dict)
    #: How the work ran (jobs trained, jobs answered from the cache): like the
    #: timings, facts of this run rather than results, so not in ``results.json``.
    execution: dict[str, Any] = field(default_factory=dict)
    #: The signals the attacks scored from (see :meth:`outputs`).
    inputs: AttackInputs | None = field(default=None, repr=False)
    #: ``"audit"``, or ``"evaluation"`` of outputs computed elsewhere.
    kind: str = "audit"
    #: The user's own id of each evaluated record, when the data has ids.
    ids: np.ndarray | None = None
    #: Lower bounds on the ε the target's training honours, beside the ε a DP-SGD
    #: target claims (:func:`miaudit.claim.claim_section`): with a DP-SGD target or
    #: the canary game; ``None`` otherwise.
    privacy_claim: dict[str, Any] | None = None
    #: What the report shows of the most exposed records, by position in the
    #: evaluation set (:func:`miaudit.data.describe.describe_records`): the user's
    #: decoded values, or an image's thumbnail.
    record_details: dict[int, dict[str, Any]] | None = field(default=None, repr=False)
    #: Attacks that did not run because what they need was not given (an evaluation's
    #: missing arrays), each with what it needs: ``results.json``'s ``skipped_attacks``.
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def strongest(self) -> str:
        """The strongest attack (see :meth:`ranked`)."""
        return self.ranked()[0]

    def ranked(self) -> list[str]:
        """The attacks, strongest first: by the lower end of the 95 % interval of their
        TPR at the lowest well-resolved FPR, then that TPR, then AUC
        (:func:`miaudit.metrics.attack_strength`); ties keep their order."""
        return sorted(
            self.attacks, key=lambda n: attack_strength(self.attacks[n]).key(), reverse=True
        )

    def ranking(self) -> dict[str, Any]:
        """How the attacks were ranked, and whether any is distinguishable from chance
        (``results.json``'s ``ranking``)."""
        strengths = {n: attack_strength(m) for n, m in self.attacks.items()}
        for n, notes in self.attack_notes.items():
            # A threshold chosen on the evaluated records themselves proves nothing.
            if n in strengths and notes.get("threshold_from") == OPTIMISTIC_THRESHOLD:
                strengths[n] = dataclasses.replace(strengths[n], at_threshold=False)
        return ranking_facts(strengths)

    def exposed_positions(self, n: int = MOST_EXPOSED) -> np.ndarray:
        """Positions (in the evaluation set) of the ``n`` records the strongest attack
        scores highest, ties in the evaluation set's order."""
        scores = np.asarray(self.scores[self.strongest])
        return np.argsort(-scores, kind="stable")[:n]

    def in_models(self) -> tuple[np.ndarray, int] | None:
        """How many reference models had each evaluated record in their training set,
        and how many reference models there were; ``None`` when none had any (the
        paper's game, whose shadows never see the target's records)."""
        ref = None if self.inputs is None else self.inputs.reference
        n = len(self.member)
        if ref is None or ref.member.ndim != 2 or ref.member.shape[1] < n:
            return None
        counts = np.asarray(ref.member[:, :n], dtype=bool).sum(axis=0)
        return (counts, int(ref.member.shape[0])) if counts.any() else None

    def most_exposed(self, n: int = MOST_EXPOSED) -> dict[str, Any]:
        """The records the strongest attack most confidently calls members.

        Each record has its ``rank`` (records with equal scores share one: 1 + how
        many score higher), ``tied`` (how many evaluated records have its score), its
        row, id, label name, membership and score; ``in_models`` (how many of the
        ``reference_models`` trained on it) when reference models saw evaluated
        records; and what :attr:`record_details` holds of it (its decoded values, or
        an image's thumbnail).
        """
        name = self.strongest
        scores = np.asarray(self.scores[name])
        top = self.exposed_positions(n)
        desc = np.sort(scores)[::-1]
        # scores.csv's exposure_rank, so the page and the file rank a record alike.
        ranks = _exposure_ranks(scores)
        names = self.dataset.class_names
        ins = self.in_models()
        details = self.record_details or {}

        def tied(v: float) -> int:
            return int(np.searchsorted(-desc, -v, side="right") - np.searchsorted(-desc, -v))

        return {
            "attack": name,
            **({} if ins is None else {"reference_models": ins[1]}),
            "records": [
                {
                    "rank": int(ranks[i]),
                    "tied": tied(scores[i]),
                    "record": int(self.record_index[i]),
                    **({} if self.ids is None else {"id": _plain(self.ids[i])}),
                    "label": names[int(self.labels[i])] if names else int(self.labels[i]),
                    "member": bool(self.member[i]),
                    # An infinite score (a certain attack) is null in JSON, as elsewhere.
                    "score": json_safe(float(scores[i])),
                    **({} if ins is None else {"in_models": int(ins[0][i])}),
                    **details.get(int(i), {}),
                }
                for i in top
            ],
        }

    def __repr__(self) -> str:
        best = self.attacks[self.strongest]
        at_1 = best.tpr_at_fpr.get("0.01")
        tpr = "–" if at_1 is None else f"{at_1:.3f}"
        return (
            f"<AuditResult {self.dataset.name}: {len(self.member):,} records evaluated "
            f"({int(np.sum(self.member)):,} members), {len(self.attacks)} attacks; strongest "
            f"{self.strongest}: AUC {best.auc:.3f}, TPR at 1% FPR {tpr}>"
        )

    def summary(self) -> str:
        """A few lines for a person: the verdict (:func:`verdict`), the target,
        and each attack's headline figures, strongest first (TPR at 1 % FPR, then AUC)."""
        tg = self.target
        dp = f" {dp_claim(tg.details['dp'])}" if tg.details.get("dp") else ""
        what = (
            f"outputs computed elsewhere, {tg.n_train:,} members and {tg.n_test:,} non-members"
            if self.kind == "evaluation"
            else f"{self.dataset.name}: {tg.model or tg.source}{dp} as target, "
            f"{tg.n_train:,} training records"
        )
        found = self.verdict()
        lines = [
            found.sentence,
            f"{what}; train accuracy {tg.train_accuracy:.3f}, test accuracy {tg.test_accuracy:.3f}",
            f"{'attack':<16} {'AUC':>6} {'TPR@0.1%':>9} {'TPR@1%':>8} {'advantage':>9} "
            f"{'eps>=@1%':>9}",
        ]

        def rate(v: float | None) -> str:
            return "–" if v is None else f"{v:.3f}"

        for name in self.ranked():
            m = self.attacks[name]
            eps = (m.epsilon_lower_bound_cp or {}).get("0.01")
            lines.append(
                f"{name:<16} {m.auc:>6.3f} {rate(m.tpr_at_fpr.get('0.001')):>9} "
                f"{rate(m.tpr_at_fpr.get('0.01')):>8} {m.advantage:>9.3f} {rate(eps):>9}"
            )
        ranking = self.ranking()
        # Not "nothing is distinguishable" under a verdict whose bound found a leak.
        if found.level == "not detected" or ranking["distinguishable_from_chance"]:
            lines.append(ranking["verdict"])
        else:
            lines.append(f"attacks ranked by the {ranking['by']}")
        return "\n".join(lines)

    def to_frame(self, *, label_names: bool = True):
        """One row per evaluated record, as ``scores.csv`` holds it: ``record`` (its row
        in your table), ``id`` (your id, when the data has ids), ``label`` (its label as
        your data gives it: ``3`` for a label 3, ``">50K"``; for a built-in set the value
        in :func:`miaudit.load_frame`'s label column), ``class_index`` (its class's
        position in ``dataset["class_names"]``, 0-based), ``member``, a ``score_<attack>``
        column per attack (higher: surer it was a member) and ``exposure_rank`` (1 + how
        many records the strongest attack scores higher, so records with equal scores
        share a rank, as in :meth:`most_exposed`). A pandas DataFrame.

        ``label_names=False`` gives ``member`` as 0/1, the form ``scores.csv`` writes
        (before results format 3 it also replaced ``label`` by the class codes, which
        ``class_index`` now holds in either form).
        """
        import pandas as pd

        codes = np.asarray(self.labels, dtype=np.int64)
        names = self.dataset.class_names
        # The user's own values, so the file joins back on label as well as on record or
        # id; without class names (outputs evaluated alone) the codes are all there is.
        labels = label_values(names)[codes] if names else codes
        frame = pd.DataFrame(
            {
                "record": np.asarray(self.record_index, dtype=np.int64),
                **({} if self.ids is None else {"id": np.asarray(self.ids)}),
                "label": labels,
                "class_index": codes,
                "member": np.asarray(self.member, dtype=bool if label_names else np.int64),
                **{f"score_{n}": np.asarray(v, dtype=np.float64) for n, v in self.scores.items()},
            }
        )
        # Whose privacy is most at stake: 1 = the records the strongest attack is surest of.
        frame["exposure_rank"] = _exposure_ranks(self.scores[self.strongest])
        return frame

    def plot_roc(self, ax=None, *, log: bool = True, attacks: list[str] | None = None):
        """Each attack's ROC curve with matplotlib, on log-log axes by default (the low
        false-positive end is where membership inference matters). Returns the axes."""
        import matplotlib.pyplot as plt

        names = list(attacks) if attacks is not None else list(self.attacks)
        unknown = [n for n in names if n not in self.roc]
        if unknown:
            raise ConfigError(
                f"plot_roc: no attack {unknown[0]!r} in this result; it has "
                f"{', '.join(self.attacks)}"
            )
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4.5))
        floor = 1.0 / max(1, int(np.sum(np.asarray(self.member) == 0)))
        for name in names:
            curve = self.roc[name]
            ax.plot(curve["fpr"], curve["tpr"], label=f"{name} (AUC {self.attacks[name].auc:.3f})")
        ax.plot([floor, 1], [floor, 1], color="grey", linestyle=":", label="chance")
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(floor, 1)
            ax.set_ylim(floor, 1)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_title(f"Membership inference: {self.dataset.name}")
        ax.legend(fontsize="small")
        return ax

    def outputs(self) -> dict[str, np.ndarray]:
        """The arrays the attacks scored from, named as :func:`miaudit.evaluate` takes them
        (:data:`miaudit.attacks.suite.OUTPUT_ARRAYS`)."""
        if self.inputs is None:
            raise ConfigError("this result keeps no outputs")
        return inputs_to_arrays(self.inputs, self.member)

    def evaluate_settings(self) -> dict[str, Any]:
        """The settings that, with :meth:`outputs`, give back this result:
        ``miaudit.evaluate(result.outputs(), **result.evaluate_settings())`` (all but the
        attacks that ask the target itself, such as ``boundary``)."""
        c = self.config
        # Attacks that ask the target adaptively cannot be replayed from outputs.
        replayable = tuple(n for n in self.attacks if not get_attack(n)().needs().adaptive)
        settings = c.attacks.resolved(replayable)
        return {
            "attacks": settings.pop("run"),
            "attack_settings": settings,
            "seed": c.seed,
            "bootstrap": c.bootstrap,
            "fprs": list(c.fprs),
            "class_names": list(self.dataset.class_names) or None,
            "records": self.record_index,
            "ids": self.ids,
        }

    def save_outputs(self, path: str | Path) -> Path:
        """Write :meth:`outputs`, the settings and the records' identity to one ``.npz``,
        for ``miaudit evaluate`` (or :func:`miaudit.evaluate`)."""
        from miaudit.evaluation import write_outputs

        settings = self.evaluate_settings()
        meta = {
            "class_names": settings.pop("class_names"),
            "records": settings.pop("records"),
            "ids": settings.pop("ids"),
            "settings": settings,
        }
        return write_outputs(path, self.outputs(), meta)

    def config_dict(self) -> dict[str, Any]:
        """``config.json``: the settings that repeat this run (``--config``), or for an
        evaluation the settings ``miaudit evaluate`` takes."""
        if self.kind == "evaluation":
            settings = self.evaluate_settings()
            del settings["records"], settings["ids"]  # arrays: they are in outputs.npz
            return {"evaluate": settings}
        return self.config.resolved_dict()

    def weakened(self) -> list[dict[str, Any]]:
        """What makes this audit weaker than it could be, each with a sentence and its
        figures (``results.json``'s ``weakened``): shadows that trained on fewer records
        than the target, shadow training sets that overlap, shadow data that is not real
        records of the target's distribution, fewer shadows than an attack's full
        strength needs. With any of them the measured leak is a lower bound."""
        out: list[dict[str, Any]] = []
        sh, tg = self.shadows.to_dict(), self.target
        n_in = sh.get("n_in_min", sh.get("n_in"))
        if self.kind == "audit" and isinstance(n_in, int) and 0 < n_in < tg.n_train:
            out.append({
                "what": "shadows_smaller_than_target",
                "shadow_records": n_in, "target_records": tg.n_train,
                "factor": round(tg.n_train / n_in, 2),
                "sentence": f"The shadows trained on {n_in:,} records each, the target on "
                f"{tg.n_train:,} ({tg.n_train / n_in:.1f}× more): models trained on fewer "
                "records over-fit differently, so the attacks learn the wrong signal.",
            })  # fmt: skip
        if sh.get("overlapping_in_sets"):
            out.append({
                "what": "overlapping_shadow_training_sets",
                "pool_size": sh.get("pool_size"),
                "sentence": f"The attacker's pool ({sh.get('pool_size', 0):,} records) holds "
                "fewer than two training sets: the shadows' training sets overlap, so they "
                "differ less from one another than independent models would.",
            })  # fmt: skip
        source = sh.get("source")
        if source in ("noisy", "marginal", "synthetic"):
            words = {
                "noisy": f"real records with {sh.get('noise') or 0:.0%} of their features re-drawn",
                "marginal": "records drawn feature by feature from the marginal statistics",
                "synthetic": "records synthesised by querying the target",
            }[source]
            out.append({
                "what": "shadow_data_not_real", "source": source,
                "sentence": f"The shadows trained on {words}, not on real records of the "
                "target's distribution.",
            })  # fmt: skip
        count = self.shadows.count
        if isinstance(count, int):
            for name in self.attacks:
                need = get_attack(name).full_strength_shadows
                if need and count < need:
                    out.append({
                        "what": "fewer_shadows_than_full_strength", "attack": name,
                        "shadows": count, "full_strength": need,
                        "sentence": f"{name} had {count} reference models; it reaches full "
                        f"strength from {need}.",
                    })  # fmt: skip
        return out

    def leak_bounds(self) -> dict[str, LeakBound]:
        """Every attack's :class:`~miaudit.metrics.LeakBound` (all attacks bounded
        together): what the verdict's level rests on."""
        member = np.asarray(self.member, dtype=bool)
        n = len(self.attacks)
        return {a: leak_bound(self.scores[a], member, attacks=n) for a in self.attacks}

    def verdict(self, levels=None):
        """The :class:`Verdict`: the level, the sentence and the figures they rest on
        (``levels``: :class:`Levels`)."""
        return self._verdict_of(self._results(), levels)

    def _verdict_of(self, results: dict[str, Any], levels=None):
        return verdict(RunTables(results, self._tables_frame()), levels)

    def _tables_frame(self):
        return self.to_frame(label_names=False)

    def _repr_html_(self) -> str:
        """How a notebook shows the result: the verdict box, the attacks' table and the ROC
        figure, self-contained (:func:`miaudit.report.notebook.result_html`)."""
        # The report's, imported by name: the result, below the report, imports none of it.
        return importlib.import_module("miaudit.report.notebook").result_html(self)

    @property
    def level(self) -> str:
        """The verdict's level: ``"not detected"``, ``"low"``, ``"moderate"``, ``"high"``
        or ``"severe"`` (:data:`~miaudit.verdict.LEVELS`, in that order). A verdict said
        as "at least" a level gives that level: :meth:`gate` says whether the evaluation
        can rule out a higher one."""
        return self.verdict().level

    def gate(self, fail_on: str, levels=None):
        """What ``--fail-on fail_on`` says of this result (:func:`miaudit.verdict.gate`):
        a :class:`~miaudit.verdict.GateOutcome` whose ``outcome`` is ``"passed"``,
        ``"failed"`` (the verdict reaches the level) or ``"undecided"`` (the evaluation
        cannot rule it out), with its message and exit status."""
        return gate(RunTables(self._results(), self._tables_frame()), fail_on, levels)

    @property
    def show_records(self) -> str:
        """How much of each record ``results.json``, ``scores.csv`` and the page show:
        ``values``, ``ids`` or ``none`` (:mod:`miaudit.disclosure`)."""
        return self.config.show_records

    def to_dict(self) -> dict[str, Any]:
        """``results.json``: its most exposed records as :attr:`show_records` allows
        (:meth:`most_exposed` has them whole)."""
        out = self._results()
        # The verdict goes in for tools that read results.json; the report recomputes it
        # from scores.csv rather than trusting a copy that may have been edited.
        out["verdict"] = self._verdict_of(out).to_dict()
        return redact_results(out, self.show_records)

    def scores_frame(self):
        """``scores.csv`` as written (before its cells are escaped): :meth:`to_frame`
        with 0/1 membership, at :attr:`show_records` (at ``none`` without ``record`` and
        ``id``, in order of exposure)."""
        return redact_scores(self.to_frame(label_names=False), self.show_records)

    def _results(self) -> dict[str, Any]:
        attacks = {}
        bounds = self.leak_bounds()
        for name, metrics in self.attacks.items():
            attacks[name] = {
                **metrics.to_dict(),
                "leak_bound": bounds[name].to_dict(),
                **self.attack_notes.get(name, {}),
            }
        return {
            "miaudit_version": __version__,
            "results_format": RESULTS_FORMAT,
            "dataset": self.dataset.to_dict(),
            "target": self.target.to_dict(),
            "shadows": self.shadows.to_dict(),
            "attacks": attacks,
            **({"skipped_attacks": dict(self.skipped)} if self.skipped else {}),
            **({"weakened": weakened} if (weakened := self.weakened()) else {}),
            "strongest_attack": self.strongest,
            "ranking": self.ranking(),
            "most_exposed": self.most_exposed(),
            **({} if self.privacy_claim is None else {"privacy_claim": self.privacy_claim}),
            "seed": self.config.seed,
            "timings_s": dict(self.timings_s),
        }


def _percent(fpr: str) -> str:
    return f"{100 * float(fpr):g} %"


def ranking_facts(strengths: dict[str, Strength]) -> dict[str, Any]:
    """``results.json``'s ``ranking``: the rule, the FPR it used, the attacks whose
    interval there lies above chance (``above_chance``), those that beat chance at their
    own decision threshold (``above_chance_at_threshold``), whether any attack is
    distinguishable from chance, and a sentence for a person (``verdict``)."""
    fpr = next((s.fpr for s in strengths.values() if s.fpr is not None), None)
    above = [n for n, s in strengths.items() if s.above_chance]
    at_threshold = [n for n, s in strengths.items() if s.at_threshold]
    rate = None if fpr is None else _percent(fpr)
    if above:
        verdict = (
            f"ranked by the lower end of the 95 % interval of TPR at {rate} FPR; "
            f"{len(above)} of {len(strengths)} attacks are above chance there"
        )
    elif at_threshold:
        low_end = (
            "no false-positive rate is resolved"
            if fpr is None
            else f"no attack is above chance at {rate} FPR"
        )
        verdict = (
            f"{low_end}, but {', '.join(at_threshold)} tell members from non-members better "
            "than chance at their own decision threshold, where more non-members are "
            "called members"
        )
    elif fpr is None:
        verdict = (
            "no attack is distinguishable from chance: too few non-members to resolve a low "
            "false-positive rate, and at its own decision threshold each attack's TPR and "
            "FPR intervals overlap"
        )
    else:
        verdict = (
            f"no attack is distinguishable from chance: every attack's 95 % interval of TPR "
            f"at {rate} FPR reaches {rate}, the rate of a guess, and at its own decision "
            "threshold its TPR and FPR intervals overlap"
        )
    return {
        "by": "AUC"
        if fpr is None
        else f"lower end of the 95 % interval of TPR at {rate} FPR, then TPR, then AUC",
        "fpr": None if fpr is None else float(fpr),
        "distinguishable_from_chance": bool(above or at_threshold),
        "above_chance": above,
        "above_chance_at_threshold": at_threshold,
        "verdict": verdict,
    }


def _exposure_ranks(scores: np.ndarray) -> np.ndarray:
    """Each record's rank under ``scores``: 1 + how many score strictly higher, so that
    equal scores (which no attack can tell apart) share a rank."""
    s = np.asarray(scores, dtype=np.float64)
    ascending = np.sort(s)
    return (len(s) - np.searchsorted(ascending, s, side="right") + 1).astype(np.int64)


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value JSON writes."""
    return value.item() if isinstance(value, np.generic) else value
