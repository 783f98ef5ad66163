"""What the models and the target are asked: the reference records every shadow answers
(evaluated, population and calibration records, and their variants), and the target's
answers the attacks read (the evaluated records, perturbed copies, public records).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.attacks.base import AttackInputs, RecordFormat
from miaudit.attacks.suite import (
    AttackPlan,
)
from miaudit.attacks.variants import numeric_columns
from miaudit.config import AuditConfig
from miaudit.data import Dataset
from miaudit.data.kinds import kind_of
from miaudit.games.base import Game
from miaudit.policies import apply_policies
from miaudit.progress import Reporter
from miaudit.shadow_data import feature_groups
from miaudit.signals import ReferenceSignals
from miaudit.splits import (
    AuditSplits,
)


def member_of(index: np.ndarray, shadow_in: tuple[np.ndarray, ...], trained_on_data: bool):
    """``(K, len(index))``: which shadows trained on which of these records."""
    if not trained_on_data:
        return np.zeros((len(shadow_in), len(index)), dtype=bool)
    return np.stack([np.isin(index, s) for s in shadow_in])


def reference_records(
    plan: AttackPlan,
    config: AuditConfig,
    data: Dataset,
    splits: AuditSplits,
    shadow_data: Dataset,
    shadow_splits: AuditSplits,
    z: np.ndarray,
) -> dict[str, Any] | None:
    """The records every shadow is asked about, for the reference attacks (LiRA, RMIA).

    In order: the evaluated records; population records ``z`` (RMIA, see
    :func:`draw_population`); shadow 0's own in/out records, on which RMIA-offline
    attacks shadow 0 with the others to choose ``a``; and LiRA's query variants.
    """
    if not plan.reference:
        return None
    on_data = config.shadow_data != "synthetic"  # synthetic shadows saw no real record
    eval_index, _ = splits.evaluation()
    X = [data.X[eval_index]]
    labels = [data.y[eval_index]]
    member = [member_of(eval_index, shadow_splits.training_sets, on_data)]
    offset = len(eval_index)
    if len(z):
        X.append(data.X[z])
        labels.append(data.y[z])
        member.append(member_of(z, shadow_splits.training_sets, on_data))
    population = np.arange(offset, offset + len(z))
    offset += len(z)
    calibration = np.zeros(0, np.int64)
    if plan.calibration and not plan.online:
        cal = np.concatenate([shadow_splits.shadow_in[0], shadow_splits.shadow_out[0]])
        X.append(shadow_data.X[cal])
        labels.append(shadow_data.y[cal])
        member.append(member_of(cal, shadow_splits.training_sets, True))
        calibration = np.arange(offset, offset + len(cal))
    offset += len(calibration)
    variants, variant_rows = variant_queries(plan, data, np.concatenate(X), offset)
    for rows in variant_rows:
        X.append(rows)
    labels.extend([np.concatenate(labels)] * len(variant_rows))
    member.extend([np.concatenate(member, axis=1)] * len(variant_rows))
    return {
        "X": np.concatenate(X),
        "labels": np.concatenate(labels),
        "member": np.concatenate(member, axis=1),
        "population": population,
        "calibration": calibration,
        "variants": variants,
        "variant_rows": variant_rows,
        "z": z,
    }


def variant_queries(plan: AttackPlan, data: Dataset, base: np.ndarray, offset: int):
    """The extra queries of every one of the ``base`` reference records (evaluated,
    population, calibration), placed after the ``offset`` rows before them: ``(A - 1,
    len(base))`` indices of the reference rows that hold them, and the records, ``(A -
    1, len(base), ...)``."""
    if not plan.variants:
        return np.zeros((0, len(base)), np.int64), np.zeros((0, *base.shape), np.float32)
    # The variants are fixed functions of a record; no attack draws here.
    made = plan.make_queries("variants", base, record_format(data), np.random.default_rng(0))
    index = offset + np.arange(len(made) * len(base)).reshape(len(made), -1)
    return index, made


def record_format(data: Dataset) -> RecordFormat:
    """How ``data``'s encoded records may be perturbed (one-hot blocks, pixels, and a
    table's numeric columns, judged on the whole data set); records of a kind that
    makes its own variants and copies (text) come with the kind's makers."""
    kind = kind_of(data)
    if kind.held(data):
        return RecordFormat(
            [], False, None,
            variants=lambda X, n: kind.variants(data, X, n),
            copies=lambda X, n, rng: kind.copies(data, X, n, rng),
        )  # fmt: skip
    image = data.kind == "image"
    numeric = None if image else numeric_columns(data.X.reshape(len(data.X), -1))
    return RecordFormat(feature_groups(data), image, numeric)


def ask_target(plan, inputs: AttackInputs, target, data: Dataset, index, public, seeds) -> None:
    """Put into ``inputs`` what the attacks ask of the target beyond the evaluated records
    ``index`` (already answered): perturbed copies, the public records' answers, the
    records themselves and the target to ask again (adaptive attacks)."""
    fmt = record_format(data)
    inputs.format = fmt
    inputs.class_names = list(data.class_names)
    if plan.copies:
        copies = plan.make_queries(
            "copies", data.X[index], fmt, np.random.default_rng(seeds["robustness"])
        )
        P = target.predict_proba(copies.reshape(-1, *data.input_shape))
        inputs.target_copies = P.reshape(len(copies), len(index), -1)
    kind = kind_of(data)
    # Held records' arrays are handles: attacks that learn from features read the
    # kind's representation of them instead (text: a bag of words).
    features = kind.representation if kind.held(data) else (lambda _, X: X)
    if plan.features:
        inputs.features = features(data, data.X[index])
    if len(public):
        inputs.public_outputs = target.predict_proba(data.X[public])
        inputs.public_labels = data.y[public]
        inputs.public_features = features(data, data.X[public])
    if plan.adaptive:
        inputs.oracle = target.predict_proba


def ask_reference(inputs: AttackInputs, layout, probs, target, data: Dataset) -> None:
    """Put the reference models' outputs into ``inputs``, and ask the target about the
    population records and the variants the reference models answered."""
    inputs.reference = ReferenceSignals(probs, layout["member"], layout["labels"])
    inputs.population = layout["population"]
    inputs.calibration = layout["calibration"]
    if len(layout["z"]):
        inputs.target_population = target.predict_proba(data.X[layout["z"]])
    if len(layout["variants"]):
        # The target answers the variants of the evaluated and the population records
        # (the first rows of the reference set), not the shadows' calibration records.
        inputs.variants = layout["variants"]
        n_eval, m = inputs.n_eval, len(layout["z"])
        rows = layout["variant_rows"][:, : n_eval + m]
        answers = target.predict_proba(rows.reshape(-1, *rows.shape[2:]))
        answers = answers.reshape(len(rows), n_eval + m, -1)
        inputs.target_variants = answers[:, :n_eval]
        if m:
            inputs.target_population_variants = answers[:, n_eval:]


def ask(game: Game, outputs: list, seeds, reporter: Reporter) -> AttackInputs:
    """The stage that asks the target and gathers what the attacks read: the models'
    answers on their own records (for Shokri's attack and the thresholds), the target's
    on the evaluated records and beyond (:func:`ask_target`), and the reference models'
    answers (:func:`ask_reference`). ``outputs`` is let go of model by model."""
    data, C, policies, target = game.data, game.data.n_classes, game.policies, game.target
    own = [(o[: len(m)], j.query[: len(m)]) for o, m, j in zip(
        outputs, game.own_member, game.jobs, strict=True)]  # fmt: skip
    with reporter.stage("query_target", "querying the target"):
        target_probs = target.predict_proba(data.X[game.eval_index])
        inputs = AttackInputs(
            own_probs=apply_policies(np.concatenate([o for o, _ in own]), policies),
            own_labels=np.concatenate([game.shadow_data.y[q] for _, q in own]),
            own_member=np.concatenate(game.own_member),
            target_probs=target_probs,
            labels=data.y[game.eval_index],
            n_eval=len(game.eval_index),
        )
        ask_target(game.plan, inputs, target, data, game.eval_index, game.public, seeds)
        del own
        if game.reference is not None:
            # Filled model by model, each model's outputs let go once copied, so the
            # (K, n, C) array never sits beside all of the shadows' outputs.
            starts = game.reference_from
            probs = np.empty((len(outputs), len(outputs[0]) - starts[0], C), np.float32)
            for k, s in enumerate(starts):
                probs[k] = outputs[k][s:]
                outputs[k] = None
            probs = apply_policies(probs.reshape(-1, C), policies).reshape(probs.shape)
            ask_reference(inputs, game.reference, probs, target, data)
    return inputs
