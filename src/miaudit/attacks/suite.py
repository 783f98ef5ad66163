"""One audit, many attacks: what each attack needs, and running them on shared signals.

Position in the pipeline: ``signals -> attack -> scores``. One pass of shadow
training serves every attack (``--attacks``); this module says what that pass
must provide and turns the shared signals into one score per evaluated record
for each attack.

What each attack needs
----------------------
``shokri``, ``loss``, ``confidence``, ``entropy``, ``mentr`` (and their ``-class`` variants)
    Shadows' prediction vectors on their own in- and out-records (to fit the
    attack models or thresholds) and the target's on the evaluated records.
``lira-offline``, ``rmia-offline``
    Additionally every shadow's output on the evaluated records, as OUT models
    (the paper's disjoint shadows are OUT for every target record). RMIA also
    needs population records ``z`` (drawn from the attacker's pool, asked of the
    target too) and, to choose its ``a``, one shadow attacked by the others on that
    shadow's own in/out records.
``lira``, ``rmia`` (online)
    Shadows that trained on each evaluated record about half of the time. The
    audit then draws each shadow's in-set as a balanced half of the evaluated
    records (every record IN for exactly half of the shadows) and its out-set as
    the other half; all attacks share those shadows. Needs real shadow data.
``gap``, ``robustness``
    Only predicted labels: they work against label-only targets. ``robustness``
    asks the target ``copies`` perturbed versions of each record.

Attacks that need probabilities are refused against a label-only target, and
LiRA with fewer reference models than its Gaussians need is refused, before any
training starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from miaudit.attacks.label_only import gap_scores, robustness_scores
from miaudit.attacks.lira import LiRA
from miaudit.attacks.rmia import RMIA
from miaudit.attacks.threshold import ThresholdAttack
from miaudit.errors import ConfigError
from miaudit.signals import SIGNALS, ReferenceSignals, logit_confidence, true_class_probability

THRESHOLD_ATTACKS = tuple(n for s in SIGNALS for n in (s, f"{s}-class"))
REFERENCE_ATTACKS = ("lira", "lira-offline", "rmia", "rmia-offline")
LABEL_ATTACKS = ("gap", "robustness")
ALL_ATTACKS = ("shokri", *THRESHOLD_ATTACKS, *REFERENCE_ATTACKS, *LABEL_ATTACKS)
DEFAULT_ATTACKS = ("shokri", "loss", "mentr-class", "gap", "lira-offline", "rmia-offline")
ONLINE_ATTACKS = ("lira", "rmia")
PROBABILITY_ATTACKS = (*THRESHOLD_ATTACKS, *REFERENCE_ATTACKS)

#: Decision thresholds of the reference attacks: LiRA online calls a record a member
#: when IN is the likelier hypothesis; the offline tests reject OUT at 5 %.
_LIRA_OFFLINE_CUT = float(np.log(0.95))
_RMIA_CUT = 0.95


def parse_attacks(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validated, de-duplicated attack names (``all`` means every attack)."""
    out: list[str] = []
    for name in names:
        name = name.strip().lower()
        if name == "all":
            out.extend(ALL_ATTACKS)
        elif name == "default":
            out.extend(DEFAULT_ATTACKS)
        elif name in ALL_ATTACKS:
            out.append(name)
        else:
            raise ConfigError(
                f"--attacks: unknown attack {name!r}; choose from {', '.join(ALL_ATTACKS)} "
                "(or all, default)"
            )
    if not out:
        raise ConfigError("--attacks is empty: name at least one attack")
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class AttackPlan:
    """The attacks of one audit and what the shared shadow pass must provide."""

    names: tuple[str, ...]
    lira_variance: str = "global"

    @property
    def online(self) -> bool:
        return any(n in ONLINE_ATTACKS for n in self.names)

    @property
    def reference(self) -> bool:
        return any(n in REFERENCE_ATTACKS for n in self.names)

    @property
    def population(self) -> bool:
        return any(n.startswith("rmia") for n in self.names)

    @property
    def calibration(self) -> bool:
        return "rmia-offline" in self.names

    @property
    def robustness(self) -> bool:
        return "robustness" in self.names

    @property
    def lira(self) -> bool:
        return any(n.startswith("lira") for n in self.names)

    def check(self, *, n_shadows: int, shadow_data: str, label_only: bool, game: str) -> None:
        """Refuse, before any training, what these attacks cannot do with this audit."""
        if label_only:
            needs = [n for n in self.names if n in PROBABILITY_ATTACKS]
            if needs:
                raise ConfigError(
                    f"the target answers labels only, but {', '.join(needs)} need "
                    "probabilities: use --attacks shokri,gap,robustness against it"
                )
        online = [n for n in self.names if n in ONLINE_ATTACKS]
        if online and game == "shokri" and shadow_data != "real":
            raise ConfigError(
                f"online {', '.join(online)} train shadows on the evaluated records, which "
                f"--shadow-data {shadow_data} does not have: use --shadow-data real, or the "
                "offline variants (lira-offline, rmia-offline)"
            )
        for name in self.names:
            if name.startswith("lira"):
                lira = LiRA(online=name == "lira", variance=self.lira_variance)
                need_in, need_out = lira.required_models()
                # Balanced online draws put every record IN for exactly half the shadows.
                need = 2 * max(need_in, need_out) if lira.config.online else need_out
                if n_shadows < need:
                    raise ConfigError(
                        f"{name} with {self.lira_variance} variance needs at least {need} "
                        f"shadows ({need_in} IN and {need_out} OUT per record); got "
                        f"{n_shadows}: raise --shadows"
                        + (
                            " or use --lira-variance global"
                            if self.lira_variance == "per-record"
                            else ""
                        )
                    )
            if name == "rmia-offline" and (self.online or game == "recipe") and n_shadows < 4:
                raise ConfigError(
                    "rmia-offline chooses its a by attacking one shadow with the others; when "
                    "shadows train on halves of the evaluated records that needs at least 4 "
                    f"shadows, got {n_shadows}: raise --shadows"
                )
            if name.startswith("rmia") and n_shadows < 2:
                raise ConfigError(
                    f"{name} needs at least 2 shadows (one is attacked with the others to "
                    "set its parameters): raise --shadows"
                )


@dataclass
class AttackInputs:
    """The shared signals every attack of one audit scores from.

    ``own_*`` are the shadows' outputs on their own in/out records (stacked);
    ``target_probs`` the target's on the evaluated records; ``reference`` every
    shadow's outputs on the evaluated records followed by the population and
    calibration records (``population``/``calibration`` index into it);
    ``target_population`` the target's outputs on the population records;
    ``target_copies`` its outputs on perturbed copies (robustness);
    ``variants`` ``(A - 1, n_eval)`` index the reference records holding LiRA's extra
    queries of each evaluated record, and ``target_variants`` ``(A - 1, n_eval, C)``
    are the target's answers to them.
    """

    own_probs: np.ndarray
    own_labels: np.ndarray
    own_member: np.ndarray
    target_probs: np.ndarray
    labels: np.ndarray
    reference: ReferenceSignals | None = None
    n_eval: int = 0
    population: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    calibration: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    target_population: np.ndarray | None = None
    target_copies: np.ndarray | None = None
    variants: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    target_variants: np.ndarray | None = None


@dataclass
class AttackOutcome:
    scores: np.ndarray
    threshold: float
    notes: dict[str, Any] = field(default_factory=dict)


def run_attack(
    name: str,
    inputs: AttackInputs,
    *,
    shokri=None,
    rmia_gamma: float = 1.0,
    lira_variance: str = "global",
) -> AttackOutcome:
    """One attack's scores on the evaluated records.

    ``shokri`` is a fitted :class:`~miaudit.attacks.shokri.ShokriAttack`, or its
    scores on ``inputs.target_probs`` already computed (as the audit caches them).
    """
    y = inputs.labels
    if name == "shokri":
        if isinstance(shokri, np.ndarray):
            if shokri.shape != y.shape:
                raise ValueError(f"{len(shokri)} Shokri scores for {len(y)} evaluated records")
            return AttackOutcome(shokri, 0.5)
        return AttackOutcome(shokri.score(inputs.target_probs, y), 0.5)
    if name in THRESHOLD_ATTACKS:
        signal, _, per_class = name.partition("-")
        attack = ThresholdAttack(signal=signal, thresholds="class" if per_class else "global")
        attack.fit(inputs.own_probs, inputs.own_labels, inputs.own_member)
        notes = {"global_threshold": attack.global_threshold_}
        if per_class:
            notes["fallback_classes"] = list(attack.fallback_classes_)
        return AttackOutcome(attack.score(inputs.target_probs, y), attack.decision_threshold, notes)
    if name == "gap":
        return AttackOutcome(gap_scores(inputs.target_probs, y), 1.0)
    if name == "robustness":
        scores = robustness_scores(inputs.target_probs, inputs.target_copies, y)
        return AttackOutcome(scores, 1.0, {"copies": len(inputs.target_copies)})
    ref = inputs.reference
    ev = ref.subset(np.arange(inputs.n_eval))
    if name.startswith("lira"):
        lira = LiRA(online=name == "lira", variance=lira_variance)
        phi_ref = logit_confidence(ev.probs, ev.labels)
        phi_target = logit_confidence(inputs.target_probs, y)
        if len(inputs.variants):
            # Extra queries per record: (K, n, A) and (n, A).
            extra = [logit_confidence(ref.probs[:, v], ev.labels) for v in inputs.variants]
            phi_ref = np.stack([phi_ref, *extra], axis=-1)
            phi_target = np.stack(
                [phi_target, *(logit_confidence(t, y) for t in inputs.target_variants)], axis=-1
            )
        scores = lira.score(phi_ref, ev.member, phi_target)
        cut = 0.0 if name == "lira" else _LIRA_OFFLINE_CUT
        notes = {
            "variance": lira_variance,
            "reference_models": ref.n_models,
            "queries_per_record": 1 + len(inputs.variants),
        }
        return AttackOutcome(scores, cut, notes)
    if name.startswith("rmia"):
        rmia = RMIA(online=name == "rmia", gamma=rmia_gamma)
        pop = ref.subset(inputs.population)
        p_ref_x = true_class_probability(ev.probs, ev.labels)
        p_ref_z = true_class_probability(pop.probs, pop.labels)
        notes: dict[str, Any] = {"gamma": rmia_gamma, "population": len(inputs.population)}
        if not rmia.config.online:
            # The records on which shadow 0 is attacked: its own in/out records when the
            # shadows never saw the evaluated records, else the evaluated records.
            cal = ref.subset(inputs.calibration) if len(inputs.calibration) else ev
            a = rmia.choose_a(
                true_class_probability(cal.probs, cal.labels),
                cal.member,
                p_ref_z,
                pop.member,
            )
            notes["a"] = a
            notes["a_auc"] = {str(k): v for k, v in rmia.a_grid_.items()}
        scores = rmia.score(
            true_class_probability(inputs.target_probs, y),
            p_ref_x,
            ev.member,
            true_class_probability(inputs.target_population, pop.labels),
            p_ref_z,
            pop.member,
        )
        return AttackOutcome(scores, _RMIA_CUT, notes)
    raise ConfigError(f"unknown attack {name!r}")


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
    "variant_outputs": "(A-1, n, C) the target's outputs on LiRA's extra queries of each record",
    "reference_variant_outputs": "(K, A-1, n, C) the reference models' outputs on them",
    "copies_outputs": "(R, n, C) the target's outputs on perturbed copies (robustness)",
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
        if len(inputs.variants):
            arrays["reference_variant_outputs"] = ref.probs[:, inputs.variants]
    for name, value in (
        ("population_outputs", inputs.target_population),
        ("variant_outputs", inputs.target_variants),
        ("copies_outputs", inputs.target_copies),
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
    )
    if "reference_outputs" not in arrays:
        return inputs
    probs = [arrays["reference_outputs"]]
    member = [arrays["reference_members"]]
    labels = [arrays["labels"]]
    offset = n
    for name, key in (("population", "population_reference"), ("calibration", "calibration")):
        if f"{key}_outputs" in arrays:
            block = arrays[f"{key}_outputs"]
            probs.append(block)
            member.append(arrays[f"{key}_members"])
            labels.append(arrays[f"{name}_labels"])
            setattr(inputs, name, np.arange(offset, offset + block.shape[1]))
            offset += block.shape[1]
    if "reference_variant_outputs" in arrays:
        extra = arrays["reference_variant_outputs"]
        k, a = extra.shape[:2]
        probs.append(extra.reshape(k, a * n, *extra.shape[3:]))
        member.extend([arrays["reference_members"]] * a)
        labels.extend([arrays["labels"]] * a)
        inputs.variants = offset + np.arange(a * n).reshape(a, n)
        inputs.target_variants = arrays["variant_outputs"]
    inputs.reference = ReferenceSignals(
        np.concatenate(probs, axis=1), np.concatenate(member, axis=1), np.concatenate(labels)
    )
    return inputs
