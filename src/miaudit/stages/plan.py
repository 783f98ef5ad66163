"""The audit's plan, drawn up before anything trains: which attacks run (and which the
records or a label-only target leave out), and every refusal that can be made early (rates
the evaluation cannot resolve, a query budget too small, too few population or public
records, more models than the machine holds), with the draws of RMIA's population and
QMIA's public records.
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.suite import (
    AttackPlan,
)
from miaudit.config import AuditConfig, RecipeSpec
from miaudit.data import Dataset
from miaudit.data.kinds import kind_of
from miaudit.errors import ConfigError, key
from miaudit.models.family import RecipeFamily
from miaudit.policies import parse_policy
from miaudit.progress import Reporter
from miaudit.splits import (
    DEFAULT_TARGET_SIZE,
    AuditSplits,
)


def is_label_only(config: AuditConfig, remote=None) -> bool:
    """Whether the target answers labels only (a service says so; a local target's
    output policy does)."""
    if remote is not None:
        return bool(remote.label_only)
    return any(parse_policy(spec).label_only for spec in config.defense)


def plan_attacks(
    config: AuditConfig, label_only: bool, reporter: Reporter, data: Dataset
) -> AttackPlan:
    """The audit's attacks with their settings; the default set (and ``all``) adapts to a
    label-only target and to records that cannot give what an attack needs (and says so)."""
    kind = kind_of(data)
    limits = {
        what: why
        for what, why in (
            ("variants", kind.cannot_vary(data)),
            ("copies", kind.cannot_perturb(data)),
            ("move", kind.cannot_move(data)),
            ("features", kind.cannot_represent(data)),
        )
        if why is not None
    }
    plan = AttackPlan.build(
        config.attacks.run, config.attacks.settings, label_only=label_only, records=limits
    )
    if plan.left_out:
        reporter.warn(
            f"the target answers labels only: {', '.join(plan.left_out)} need probabilities "
            "and were left out of the default attacks (label-only attacks: gap, robustness, "
            "boundary)"
        )
    for name, why in plan.unfit.items():
        reporter.warn(f"{name} left out: {why}")
    if config.shadow_data != "real":
        why = kind.cannot_synthesise(data)
        if why is not None:
            raise ConfigError(
                f"{key('shadow_data', config.shadow_data)}: {why}; use {key('shadow_data', 'real')}"
            )
    return plan


def check_scale(config: AuditConfig, data: Dataset, train_size: int | None) -> None:
    """Refuse, before anything is drawn, more models than this machine can hold the
    splits and outputs of (``shadows = 1000000``), naming the estimate and the memory.

    Per model: its training set and its complement as row numbers, and its
    probabilities (float64) on up to twice its training set's records, once per
    query; the target counts as one more model.
    """
    from miaudit.resources import refuse_past_memory

    size = min(train_size or DEFAULT_TARGET_SIZE, data.n_records)
    n_scored = min(2 * size, data.n_records)
    queries = max(config.attacks.queries or 1, 1)
    need = (config.shadows + 1) * (16 * size + n_scored * (1 + 8 * data.n_classes * queries))
    refuse_past_memory(
        need,
        f"the splits and outputs of {key('shadows', config.shadows)} models of {size:,} "
        f"records, each scored on {n_scored:,} records of {data.n_classes} classes,",
        f"lower {key('shadows')}",
    )


def check_fprs(config: AuditConfig, n_nonmembers: int) -> None:
    """Refuse a requested FPR the evaluation set cannot resolve, before any training."""
    for f in config.fprs:
        if f * n_nonmembers < 1 - 1e-9:
            need = int(np.ceil(1 / f - 1e-9))
            raise ConfigError(
                f"{key('fprs', f'{f:g}')}: TPR at that rate needs at least {need:,} non-members "
                f"(one false positive), but this audit evaluates {n_nonmembers:,}; raise "
                f"{key('target_size')} or ask for a higher rate"
            )


def check_budget(config: AuditConfig, n_eval: int, splits: AuditSplits, extra: int = 0) -> None:
    """Refuse a query budget that cannot cover scoring, before training anything."""
    if config.query_budget is None:
        return
    # MLflow's server and a v2 server are first probed with one record on its own (a v2
    # model that declares no outputs is asked twice: for predict_proba, then as it is).
    probe = {"miaudit": 0, "mlflow": 1, "v2": 2}[config.protocol] if config.target_url else 0
    needed = n_eval + extra + probe
    if config.shadow_labels == "target" and config.shadow_data != "synthetic":
        needed += len(np.unique(np.concatenate([*splits.training_sets, *splits.shadow_out])))
    if config.query_budget < needed + (config.shadow_data == "synthetic"):
        what = (
            "scoring the evaluation records"
            + (" and labelling the shadows' records" if needed > n_eval + probe else "")
            + ["", " (and probing the server with one)", " (and probing the server: up to two)"][
                probe
            ]
        )
        raise ConfigError(
            f"{key('query_budget', config.query_budget)} cannot cover the {needed} queries "
            f"{what} "
            f"needs: raise it to at least {needed}"
            + (" plus what hill climbing should spend" if config.shadow_data == "synthetic" else "")
        )


def draw_population(plan: AttackPlan, splits: AuditSplits, rng: np.random.Generator) -> np.ndarray:
    """RMIA's population records ``z``: from the attacker's pool, never the target's data.

    The disjoint shadows draw from the pool too; records none of them uses are
    preferred, so that offline every reference model is OUT for ``z``. Online shadows
    train on ``z`` only where halves of the evaluated records fall short of the
    target's training-set size (:func:`~miaudit.splits.online_shadow_sets`).
    """
    if not plan.population:
        return np.zeros(0, np.int64)
    m = min(plan.population, len(splits.pool))
    used = np.concatenate([*splits.training_sets, *splits.shadow_out])
    free = np.setdiff1d(splits.pool, used)
    candidates = free if len(free) >= m else splits.pool
    return np.sort(rng.choice(candidates, m, replace=False))


def draw_public(plan: AttackPlan, candidates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Records the target never saw, for attacks that learn from its answers on them
    (QMIA): up to ``plan.public`` of ``candidates`` (records no target trained on)."""
    if not plan.public or not len(candidates):
        return np.zeros(0, np.int64)
    return np.sort(rng.choice(candidates, min(plan.public, len(candidates)), replace=False))


#: Fewest records the target never saw that an attack learning from them may use.
MIN_PUBLIC = 100


def check_public(plan: AttackPlan, public: np.ndarray, where: str) -> None:
    """Refuse, before any training, attacks that learn from records the target never
    saw when there are too few of them."""
    if plan.public and len(public) < MIN_PUBLIC:
        names = ", ".join(a.name for a in plan.attacks if a.needs().public)
        raise ConfigError(
            f"{names} learns from records the target never saw, taken from {where}: it "
            f"holds {len(public)}, fewer than {MIN_PUBLIC}; leave more records out "
            f"(non_members=, {key('target_size')}), or drop {names}"
        )


def check_offline_population(plan: AttackPlan, splits: AuditSplits, population) -> None:
    """Refuse, before any training, online shadows made up to the target's size from
    every population record: an offline population attack (rmia-offline) compares each
    record with population records its reference models never saw, and none would be
    left."""
    offline = [a.name for a in plan.attacks
               if a.needs().population and a.needs().reference == "out"]  # fmt: skip
    if not offline or not len(population) or splits.shadow_train is None:
        return
    seen_by_all = np.ones(len(population), dtype=bool)
    # Offline RMIA sets its a by attacking shadow 0 with the others: they must leave
    # some population record unseen.
    for train in splits.training_sets[1:] or splits.training_sets:
        seen_by_all &= np.isin(population, train)
    if seen_by_all.all():
        raise ConfigError(
            f"{offline[0]} needs population records that some shadows did not train on, but "
            f"the attacker's pool ({len(splits.pool):,} records) is so small that every "
            "online shadow trains on all of them to reach the target's size: leave more "
            f"records out of the evaluation ({key('non_members')}), or drop {offline[0]} "
            f"from {key('attacks.run')}"
        )


def needs_pool(config: AuditConfig, plan: AttackPlan) -> bool:
    """Whether the shadows draw their records from the attacker's pool."""
    return config.shadow_data != "synthetic" and not plan.online


def resolved_config(
    config, data, handed, plan, *, target_size, who=None, recipe=None
) -> AuditConfig:
    """The config that repeats this run: the data set's name, the sizes and recipes
    as resolved, the attacks that ran."""
    if who is not None:
        # A saved target carries its own recipe; repeating the run must not restate it.
        restate = who.target_recipe is not None and config.target_model is None
        restate = restate and who.trainer is None
        recipe = who.target_recipe if restate else None
        shadow = who.shadows.recipe if isinstance(who.shadows, RecipeFamily) else None
    else:
        shadow = None
    return config.model_copy(
        update={
            "dataset": data.name if handed.data is not None else config.dataset,
            "target_size": target_size,
            "target": RecipeSpec() if recipe is None else RecipeSpec(**recipe.settings()),
            "shadow": None if shadow is None else RecipeSpec(**shadow.settings()),
            "attacks": config.attacks.model_copy(update={"run": list(plan.names)}),
        }
    )
