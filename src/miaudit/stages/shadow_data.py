"""The records the shadows train on and answer: the attacker's pool as it is (``real``),
noised (``noisy``), drawn from its marginals (``marginal``), or synthesised by hill climbing
against the target (``synthetic``), labelled by the data or by the target.

The generators themselves are :mod:`miaudit.shadow_data` (noise, marginals) and
:mod:`miaudit.synthesis` (hill climbing); this stage applies the config to them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from miaudit.config import AuditConfig
from miaudit.data import Dataset
from miaudit.errors import DataError, key
from miaudit.shadow_data import feature_groups, shadow_records
from miaudit.splits import (
    AuditSplits,
    draw_shadow_sets,
)
from miaudit.synthesis import format_sampler, hill_climb, records_needed


def prepare_shadow_data(
    data: Dataset,
    splits: AuditSplits,
    config: AuditConfig,
    target,
    rng: np.random.Generator,
    *,
    reserved_queries: int = 0,
) -> tuple[Dataset, AuditSplits, dict[str, Any]]:
    """The data set and splits as the shadows see them, and what preparing them cost.

    ``real``, ``noisy`` and ``marginal`` replace the pool's rows in place, so the
    shadows' index sets stay as drawn; ``synthetic`` builds a data set of its own
    (:func:`synthesise_shadow_data`). With ``shadow_labels="target"`` the shadows'
    records are labelled by the target's answer (its top class), as an attacker
    without labels would do. Returns ``info`` with ``target_queries`` (spent on
    labels) and ``synthesis`` (``None`` unless synthetic). Hill climbing spends at
    most ``config.query_budget - reserved_queries``, leaving what scoring needs.
    """
    if config.shadow_data == "synthetic":
        budget = None if config.query_budget is None else config.query_budget - reserved_queries
        synth, synth_splits, synthesis = synthesise_shadow_data(
            data, splits, config, target, rng, query_budget=budget
        )
        return synth, synth_splits, {"target_queries": 0, "synthesis": synthesis}
    X = shadow_records(data, splits.pool, config.shadow_data, rng, noise=config.noise)
    y, queries = data.y, 0
    if config.shadow_labels == "target":
        used = np.unique(np.concatenate([*splits.training_sets, *splits.shadow_out]))
        y = data.y.copy()
        y[used] = target.predict_proba(X[used]).argmax(axis=1)
        queries = len(used)
    shadow_data = data if X is data.X and y is data.y else dataclasses.replace(data, X=X, y=y)
    return shadow_data, splits, {"target_queries": queries, "synthesis": None}


def synthesise_shadow_data(
    data: Dataset,
    splits: AuditSplits,
    config: AuditConfig,
    target,
    rng: np.random.Generator,
    *,
    query_budget: int | None = None,
) -> tuple[Dataset, AuditSplits, dict[str, Any]]:
    """Hill-climb records against the target and draw the shadows' sets from them.

    As many searches as the shadows need records (twice the target's size), spread
    evenly over the classes; each accepted record is labelled by the class it was
    searched for, as in the paper. Shadows get in/out sets of half the records found
    (at most the target's size).
    """
    needed = 2 * splits.target_size
    groups = feature_groups(data)
    result = hill_climb(
        target.predict_proba,
        records_needed(needed, data.n_classes),
        groups,
        format_sampler(groups, data.encoder),
        data.n_features,
        rng,
        config.synthesis,
        query_budget=query_budget,
    )
    names = data.class_names
    info = {
        "queries": result.queries,
        "queries_per_record": result.queries_per_record,
        "n_records": len(result.y),
        "n_searches": needed,
        "accepted_per_class": {names[c]: n for c, n in result.accepted_per_class.items()},
        "queries_per_class": {names[c]: n for c, n in result.queries_per_class.items()},
        "unreached_classes": [names[c] for c in result.unreached_classes],
        "settings": dataclasses.asdict(config.synthesis),
    }
    size = min(splits.target_size, len(result.y) // 2)
    if size < 1:
        raise DataError(
            f"hill climbing found {len(result.y)} records in {result.queries} queries: too few "
            f"for a shadow; raise {key('query_budget')} or {key('synthesis.iter_max')}, or "
            f"lower {key('synthesis.conf_min')}"
        )
    # Records of their own: no row of the user's table, no id (the user's raw records
    # stay, to decode these into the user's form).
    synth = dataclasses.replace(
        data, X=result.X.reshape(-1, *data.input_shape), y=result.y,
        name=f"{data.name}-synthetic", row=None, ids=None,
    )  # fmt: skip
    pool = np.arange(len(result.y))
    shadow_in, shadow_out = draw_shadow_sets(pool, size, splits.n_shadows, rng)
    shadow_splits = dataclasses.replace(
        splits, pool=pool, shadow_in=shadow_in, shadow_out=shadow_out, shadow_train=None,
        overlap=False, train_size=size,
    )  # fmt: skip
    return synth, shadow_splits, info
