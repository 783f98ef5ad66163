"""One audit, many attacks: the plan the attacks' declarations add up to, and running them.

Position in the pipeline: ``signals -> attack -> scores``. One pass of shadow
training serves every attack of an audit. :class:`AttackPlan` reads each attack's
:meth:`~miaudit.attacks.base.Attack.needs` and says what that pass must provide
(reference models on the evaluated records, trained on halves of them or not;
population records; extra target queries), refuses before any training what the
audit cannot provide, and leaves out of the default set what a label-only target
cannot serve. :func:`run_attacks` fits and scores each attack on the shared
:class:`~miaudit.attacks.base.AttackInputs`. Nothing here tests an attack's name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from miaudit.attacks.base import Attack, AttackInputs, Needs, PlanContext, RecordFormat
from miaudit.attacks.registry import ATTACKS, DEFAULT_ATTACKS, get_attack, parse_attacks
from miaudit.errors import ConfigError, key
from miaudit.signals import ReferenceSignals

__all__ = [
    "ALL_ATTACKS",
    "DEFAULT_ATTACKS",
    "OUTPUT_ARRAYS",
    "AttackInputs",
    "AttackOutcome",
    "AttackPlan",
    "inputs_from_arrays",
    "inputs_to_arrays",
    "parse_attacks",
    "run_attacks",
]

ALL_ATTACKS: tuple[str, ...] = tuple(ATTACKS)


@dataclass(frozen=True)
class AttackPlan:
    """The attacks of one audit, built with their settings, and what they add up to."""

    attacks: tuple[Attack, ...]
    #: Default attacks left out because the target answers labels only.
    left_out: tuple[str, ...] = ()
    #: Attacks left out of ``all`` (or the default set) because the records cannot give
    #: what they need, each with why (``results.json``'s ``skipped_attacks``).
    unfit: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        names: tuple[str, ...] | list[str] | None,
        settings: Callable[[str], BaseModel],
        *,
        label_only: bool = False,
        records: dict[str, str] | None = None,
    ) -> AttackPlan:
        """The attacks ``names`` (``None``: the default set), each with
        ``settings(section)``.

        Against a label-only target, attacks that need probabilities are left out of
        the default set (see :attr:`left_out`) and refused when asked for by name.
        ``records`` says what the records cannot give (``"variants"``, ``"copies"``,
        ``"move"``, ``"features"``: the reason each cannot): an attack that needs it
        is left out of ``all`` and the default set (see :attr:`unfit`) and refused
        when asked for by name.
        """
        explicit = names is not None
        chosen = parse_attacks(list(names) if explicit else list(DEFAULT_ATTACKS))
        attacks = [get_attack(n)(settings(get_attack(n).section)) for n in chosen]
        unfit: dict[str, str] = {}
        # ``all`` reaches here expanded: every attack, in the registry's order.
        every = tuple(chosen) == tuple(ATTACKS)
        for attack in list(attacks):
            why = _unmet(attack, records or {})
            if why is None:
                continue
            if explicit and not every:
                raise ConfigError(f"{attack.name} cannot run on these records: {why}")
            attacks.remove(attack)
            unfit[attack.name] = why
        left_out: tuple[str, ...] = ()
        if label_only:
            need = tuple(a.name for a in attacks if a.needs().probabilities)
            if need and explicit:
                raise ConfigError(
                    f"the target answers labels only, but {', '.join(need)} need "
                    f"probabilities: use {key('attacks.run', 'shokri,gap,robustness,boundary')} "
                    "against it"
                )
            attacks = [a for a in attacks if a.name not in need]
            left_out = need
        if not attacks:
            raise ConfigError(
                f"no attack of {key('attacks.run')} can run on these records: "
                + "; ".join(f"{n}: {w}" for n, w in unfit.items())
            )
        return cls(tuple(attacks), left_out, unfit)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attacks)

    def _needs(self) -> list[Needs]:
        return [a.needs() for a in self.attacks]

    @property
    def online(self) -> bool:
        """Some attack needs shadows that trained on the evaluated records."""
        return any(n.reference == "in-out" for n in self._needs())

    @property
    def reference(self) -> bool:
        """Some attack needs the shadows' outputs on the evaluated records."""
        return any(n.reference is not None for n in self._needs())

    @property
    def shadows(self) -> bool:
        """Some attack learns from the shadows' outputs on their own records."""
        return any(n.shadows for n in self._needs())

    @property
    def population(self) -> int:
        return max((n.population for n in self._needs()), default=0)

    @property
    def calibration(self) -> bool:
        return any(n.calibration for n in self._needs())

    @property
    def public(self) -> int:
        return max((n.public for n in self._needs()), default=0)

    @property
    def features(self) -> bool:
        return any(n.features for n in self._needs())

    @property
    def variants(self) -> int:
        """Extra queries per evaluated record, asked of target and reference models."""
        return max((n.variants for n in self._needs()), default=0)

    @property
    def copies(self) -> int:
        """Perturbed copies per evaluated record, asked of the target."""
        return max((n.copies for n in self._needs()), default=0)

    @property
    def adaptive(self) -> int:
        """Adaptive target queries per evaluated record, all attacks together."""
        return sum(n.adaptive for n in self._needs())

    def make_queries(
        self, kind: str, records: np.ndarray, fmt: RecordFormat, rng: np.random.Generator
    ) -> np.ndarray:
        """The ``kind`` (``"variants"`` or ``"copies"``) queries of ``records``, made by the
        attack that declares the most of them."""
        attack = max(self.attacks, key=lambda a: getattr(a.needs(), kind))
        return attack.queries(records, fmt, rng)

    def extra_queries(self, n_eval: int, n_population: int, n_public: int) -> int:
        """Target queries beyond the ``n_eval`` evaluated records themselves."""
        # The target answers the variants of the evaluated and the population records.
        per_record = self.variants + self.copies + self.adaptive
        return n_population * (1 + self.variants) + n_public + per_record * n_eval

    def check(self, context: PlanContext) -> None:
        """Refuse, before any training, what these attacks cannot do in this audit."""
        online = [a.name for a in self.attacks if a.needs().reference == "in-out"]
        if online and context.game == "shokri" and context.shadow_data != "real":
            raise ConfigError(
                f"online {', '.join(online)} train shadows on the evaluated records, which "
                f"{key('shadow_data', context.shadow_data)} does not have: use "
                f"{key('shadow_data', 'real')}, "
                "or the offline variants (lira-offline, rmia-offline)"
            )
        for attack in self.attacks:
            attack.check(context)


def _unmet(attack: Attack, records: dict[str, str]) -> str | None:
    """Why the records cannot give ``attack`` what it needs, or ``None``."""
    need = attack.needs()
    asks = (
        ("variants", need.variants, lambda n: f"{n} extra queries per record (set queries to 1)"),
        ("copies", need.copies, lambda n: f"{n} perturbed copies per record"),
        ("move", need.adaptive, lambda n: "a search from each record towards the boundary"),
        ("features", need.features and not need.adaptive, lambda n: "features of each record"),
    )
    for what, amount, says in asks:
        if amount and what in records:
            return f"it needs {says(amount)}, and {records[what]}"
    return None


@dataclass
class AttackOutcome:
    """One attack's scores on the evaluated records, its own decision threshold, what
    it reports beside its metrics, and whether the job cache answered."""

    scores: np.ndarray
    threshold: float
    notes: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    from_cache: bool = False
    seconds: float = 0.0


def _fit_and_score(attack: Attack, inputs: AttackInputs) -> AttackOutcome:
    scores = attack.fit(inputs).score(inputs)
    return AttackOutcome(
        np.asarray(scores, dtype=np.float64),
        float(attack.decision_threshold),
        dict(attack.notes_),
        list(attack.messages_),
    )


def run_attack(attack: Attack, inputs: AttackInputs, execution=None) -> AttackOutcome:
    """Fit and score one attack; an attack that names its cache parts is answered from
    the job cache when it ran on the same inputs before."""
    from miaudit.jobs import cached_arrays

    started = time.perf_counter()
    parts = attack.cache_parts(inputs)
    if parts is None:
        outcome = _fit_and_score(attack, inputs)
    else:

        def compute() -> dict[str, np.ndarray]:
            out = _fit_and_score(attack, inputs)
            return {
                "scores": out.scores,
                "threshold": np.float64(out.threshold),
                "notes": np.array(json.dumps(out.notes)),
                "messages": np.array(json.dumps(out.messages)),
            }

        # A cache entry that failed its MAC is said among the attack's messages (not
        # cached with them: it is about this run's cache, not the attack).
        failed: list[str] = []
        found, from_cache = cached_arrays(
            {"kind": "attack-scores", "name": attack.name, **parts}, compute, execution,
            notify=lambda line: failed.append(f"{attack.name}: {line}"),
        )  # fmt: skip
        outcome = AttackOutcome(
            found["scores"],
            float(found["threshold"]),
            json.loads(str(found["notes"])),
            json.loads(str(found["messages"])) + failed,
            from_cache,
        )
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


def run_attacks(
    plan: AttackPlan,
    inputs: AttackInputs,
    execution=None,
    progress: Callable[[float], None] | None = None,
):
    """Each attack's :class:`AttackOutcome`, in the plan's order (a generator, so the
    caller can report progress). ``progress`` is called with the attacks done so far,
    fractions of the running one included where it reports them."""
    for done, attack in enumerate(plan.attacks):
        if progress is not None:
            inputs.progress = lambda share, done=done: progress(done + share)
        try:
            outcome = run_attack(attack, inputs, execution)
        finally:
            inputs.progress = None
        if progress is not None:
            progress(done + 1)
        yield attack.name, outcome


#: The arrays :func:`miaudit.evaluate` takes (and ``outputs.npz`` holds), by name: the
#: target's outputs on the evaluated records are the only ones always needed.
OUTPUT_ARRAYS: dict[str, str] = {
    "outputs": "(n, C) the target's probabilities (or logits) on the evaluated records",
    "labels": "(n,) their classes, 0 .. C-1",
    "members": "(n,) 1 where the record was in the target's training set",
    "shadow_outputs": "(m, C) shadow models' outputs on their own in/out records (Shokri, "
    "thresholds)",
    "shadow_labels": "(m,) their classes",
    "shadow_members": "(m,) 1 where the record was in its shadow's training set",
    "reference_outputs": "(K, n, C) K reference models' outputs on the evaluated records (LiRA, "
    "RMIA)",
    "reference_members": "(K, n) whether each reference model trained on each record (all 0: "
    "offline)",
    "population_outputs": "(z, C) the target's outputs on population records (RMIA)",
    "population_labels": "(z,) their classes",
    "population_reference_outputs": "(K, z, C) the reference models' outputs on them",
    "population_reference_members": "(K, z) whether each reference model trained on them "
    "(default 0)",
    "calibration_outputs": "(K, c, C) reference outputs on records some trained on, to set "
    "offline RMIA's a when no reference model trained on an evaluated record",
    "calibration_labels": "(c,) their classes",
    "calibration_members": "(K, c) which reference models trained on them",
    "variant_outputs": "(A-1, n, C) the target's outputs on the extra queries of each record "
    "(augmentations)",
    "reference_variant_outputs": "(K, A-1, n, C) the reference models' outputs on them",
    "population_variant_outputs": "(A-1, z, C) the target's outputs on the extra queries of "
    "each population record",
    "population_reference_variant_outputs": "(K, A-1, z, C) the reference models' outputs on them",
    "calibration_variant_outputs": "(K, A-1, c, C) the reference models' outputs on the extra "
    "queries of each calibration record",
    "copies_outputs": "(R, n, C) the target's outputs on perturbed copies (robustness)",
    "features": "(n, ...) the evaluated records themselves, as the model reads them (qmia)",
    "public_outputs": "(p, C) the target's outputs on records it never saw (qmia)",
    "public_labels": "(p,) their classes",
    "public_features": "(p, ...) those records themselves",
}


def inputs_to_arrays(inputs: AttackInputs, member: np.ndarray) -> dict[str, np.ndarray]:
    """The named arrays of :data:`OUTPUT_ARRAYS` that ``inputs`` holds."""
    arrays = {
        "outputs": inputs.target_probs,
        "labels": inputs.labels,
        "members": np.asarray(member, dtype=np.int8),
        "shadow_outputs": inputs.own_probs,
        "shadow_labels": inputs.own_labels,
        "shadow_members": inputs.own_member,
    }
    ref = inputs.reference
    if ref is not None:
        n = inputs.n_eval
        arrays["reference_outputs"] = ref.probs[:, :n]
        arrays["reference_members"] = ref.member[:, :n]
        for name, index in (("population", inputs.population), ("calibration", inputs.calibration)):
            if len(index):
                key = "population_reference" if name == "population" else name
                arrays[f"{key}_outputs"] = ref.probs[:, index]
                arrays[f"{key}_members"] = ref.member[:, index]
                arrays[f"{name}_labels"] = ref.labels[index]
        v = inputs.variants
        if len(v):
            arrays["reference_variant_outputs"] = ref.probs[:, v[:, :n]]
            for key, index in (
                ("population_reference", inputs.population),
                ("calibration", inputs.calibration),
            ):
                if len(index) and inputs.n_queries(index) == 1 + len(v):
                    arrays[f"{key}_variant_outputs"] = ref.probs[:, v[:, index]]
    for name, value in (
        ("population_outputs", inputs.target_population),
        ("variant_outputs", inputs.target_variants),
        ("population_variant_outputs", inputs.target_population_variants),
        ("copies_outputs", inputs.target_copies),
        ("features", inputs.features),
        ("public_outputs", inputs.public_outputs),
        ("public_labels", inputs.public_labels),
        ("public_features", inputs.public_features),
    ):
        if value is not None:
            arrays[name] = value
    return {k: v for k, v in arrays.items() if v is not None}


def inputs_from_arrays(arrays: dict[str, np.ndarray]) -> AttackInputs:
    """The :class:`AttackInputs` named arrays describe (checked by the caller)."""
    n = len(arrays["outputs"])
    C = arrays["outputs"].shape[1]
    empty = np.zeros((0, C))
    inputs = AttackInputs(
        own_probs=arrays.get("shadow_outputs", empty),
        own_labels=arrays.get("shadow_labels", np.zeros(0, np.int64)),
        own_member=arrays.get("shadow_members", np.zeros(0, np.int8)),
        target_probs=arrays["outputs"],
        labels=arrays["labels"],
        n_eval=n,
        target_population=arrays.get("population_outputs"),
        target_copies=arrays.get("copies_outputs"),
        features=arrays.get("features"),
        public_outputs=arrays.get("public_outputs"),
        public_labels=arrays.get("public_labels"),
        public_features=arrays.get("public_features"),
    )
    if "reference_outputs" not in arrays:
        return inputs
    probs = [arrays["reference_outputs"]]
    member = [arrays["reference_members"]]
    labels = [arrays["labels"]]
    offset = n
    for name, prefix in (("population", "population_reference"), ("calibration", "calibration")):
        if f"{prefix}_outputs" in arrays:
            block = arrays[f"{prefix}_outputs"]
            probs.append(block)
            member.append(arrays[f"{prefix}_members"])
            labels.append(arrays[f"{name}_labels"])
            setattr(inputs, name, np.arange(offset, offset + block.shape[1]))
            offset += block.shape[1]
    if "reference_variant_outputs" in arrays:
        # Variants of the evaluated records, and of the population and calibration
        # records where the arrays hold them (-1: none).
        a = arrays["reference_variant_outputs"].shape[1]
        inputs.variants = np.full((a, offset), -1, np.int64)
        blocks = [("reference_variant", np.arange(n))]
        if "population_reference_variant_outputs" in arrays and len(inputs.population):
            blocks.append(("population_reference_variant", inputs.population))
        if "calibration_variant_outputs" in arrays and len(inputs.calibration):
            blocks.append(("calibration_variant", inputs.calibration))
        base_member = np.concatenate(member, axis=1)
        base_labels = np.concatenate(labels)
        at = offset
        for name, rows in blocks:
            extra = arrays[f"{name}_outputs"]
            k = extra.shape[0]
            probs.append(extra.reshape(k, a * len(rows), *extra.shape[3:]))
            member.extend([base_member[:, rows]] * a)
            labels.extend([base_labels[rows]] * a)
            inputs.variants[:, rows] = at + np.arange(a * len(rows)).reshape(a, -1)
            at += a * len(rows)
        inputs.target_variants = arrays["variant_outputs"]
        inputs.target_population_variants = arrays.get("population_variant_outputs")
    inputs.reference = ReferenceSignals(
        np.concatenate(probs, axis=1), np.concatenate(member, axis=1), np.concatenate(labels)
    )
    return inputs
