"""The paper's game: a deployed target's members against its non-members, and shadows
trained on the attacker's pool to imitate it.

The target is the user's own (``target=`` with ``members=``), a saved folder
(``--target-model``), a service over HTTP (``--target-url`` with its membership), or
trained here from the recipe. The shadows train as the target did where that is known
(the user's trainer, clones of the user's estimator, the saved recipe), else with the
recipe the attacker guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit.attacks.base import PlanContext
from miaudit.errors import ConfigError, key
from miaudit.games.base import Game, GameRules, Setting, close_all
from miaudit.handover import membership, open_target
from miaudit.jobs import ShadowJob
from miaudit.models import Recipe
from miaudit.models.family import ModelFamily, RecipeFamily
from miaudit.policies import PolicyTarget, parse_policy
from miaudit.progress import Reporter
from miaudit.seeds import int_seeds
from miaudit.splits import AuditSplits, make_splits, online_shadow_sets, resolve_target_size
from miaudit.stages.models import (
    family_facts,
    resolve_recipe,
    shadows_family,
    train_target,
    trainer_family,
    training_sizes,
)
from miaudit.stages.plan import (
    check_budget,
    check_fprs,
    check_offline_population,
    check_public,
    check_scale,
    draw_population,
    draw_public,
    is_label_only,
    needs_pool,
    plan_attacks,
    resolved_config,
)
from miaudit.stages.queries import reference_records
from miaudit.stages.shadow_data import prepare_shadow_data
from miaudit.stages.targets import (
    SavedTarget,
    load_membership,
    load_saved_target,
    open_remote,
    privacy,
    save_target,
)
from miaudit.target import LocalTarget


class ShokriGame(GameRules):
    """Shokri et al.'s game, and the base of games that change only its splits."""

    name = "shokri"

    def set_up(self, setting: Setting) -> Game:
        config, data = setting.config, setting.data
        remote = remote_membership = None
        if config.target_url is not None:
            remote_membership = load_membership(config.membership, data)
            # Opened before the splits: whether it answers labels only decides the attacks.
            remote = open_remote(
                config, data, setting.reporter, token=setting.token,
                query_cache=setting.query_cache,
            )  # fmt: skip
        closers = [] if remote is None else [remote.close]
        try:
            return self._set_up(setting, remote, remote_membership, closers)
        except BaseException:
            close_all(closers)
            raise

    def draw_splits(self, setting: Setting, plan, who: _Who, found, rng):
        """The game's splits, its data and what the report says of the members
        (:func:`_draw_splits`); the canary game adds its canaries here."""
        splits, member_facts = _draw_splits(
            setting.config, setting.data, plan, who.saved, found, rng
        )
        return splits, setting.data, member_facts

    def _set_up(self, setting: Setting, remote, remote_membership, closers) -> Game:
        config, data, handed, seeds = setting.config, setting.data, setting.handed, setting.seeds
        reporter = setting.reporter
        who = _who_trains(config, handed, data, remote, remote_membership, reporter)
        rng = np.random.default_rng(seeds["splits"])
        found = membership(data, handed, config, rng) if who.user else None
        if who.user and found is None:
            raise ConfigError(
                f"{key('members')}: name the records your target was trained on (a mask, row "
                "positions or ids of data; a file of them on the command line)"
            )
        label_only = is_label_only(config, remote)
        plan = plan_attacks(config, label_only, reporter, data)
        plan.check(
            PlanContext(
                n_shadows=config.shadows, shadow_data=config.shadow_data, game="shokri",
                online=plan.online, label_only=label_only,
            )
        )  # fmt: skip
        check_scale(config, data, config.shadow_size or config.target_size)
        with reporter.stage("splits", "drawing splits"):
            splits, data, member_facts = self.draw_splits(setting, plan, who, found, rng)
        _say_overlap(splits, reporter)
        resolved = resolved_config(
            config, data, handed, plan, target_size=splits.target_size, who=who
        )
        check_fprs(config, len(splits.target_out))
        population = draw_population(plan, splits, np.random.default_rng(seeds["population"]))
        if plan.population and len(population) < 10:
            raise ConfigError(
                f"rmia compares records with population records from the attacker's pool, "
                f"which holds {len(splits.pool)}: leave more records out of the evaluation "
                "(non_members=), or drop rmia and rmia-offline from the attacks"
            )
        public = draw_public(plan, splits.pool, np.random.default_rng(seeds["public"]))
        check_public(plan, public, "the attacker's pool")
        if plan.online:
            splits = _online(splits, population, seeds, plan, reporter)
        n_eval = len(splits.target_in) + len(splits.target_out)
        check_budget(
            config, n_eval, splits, extra=plan.extra_queries(n_eval, len(population), len(public))
        )
        target, policies, facts = _deployed_target(
            config, data, handed, who, remote, splits, member_facts, seeds, reporter,
            setting.execution,
        )  # fmt: skip
        close = getattr(target.target, "close", None)
        if close is not None and remote is None:
            closers.append(close)
        return _deployed_draw(
            config, data, splits, target, plan, population, public, seeds, who, reporter,
            dict(policies=policies, family=who.shadows, resolved=resolved, facts=facts,
                 closers=closers),
        )  # fmt: skip


def _online(splits: AuditSplits, population, seeds, plan, reporter: Reporter) -> AuditSplits:
    """Online shadows train on halves of the evaluated records, made up to the target's
    size from the pool where the halves fall short (RMIA's population first)."""
    short = splits.train_size - (len(splits.target_in) + len(splits.target_out)) // 2
    fill = population if len(population) >= short else splits.pool
    splits = online_shadow_sets(splits, np.random.default_rng(seeds["online"]), fill=fill)
    check_offline_population(plan, splits, population)
    smallest = min(len(t) for t in splits.training_sets)
    if smallest < splits.train_size:
        reporter.message(
            f"the attacker's pool is too small to make the shadows' training sets up to "
            f"the target's {splits.train_size:,} records: the smallest has {smallest:,}"
        )
    return splits


@dataclass
class _Who:
    """Who trains what in the deployed game: a saved (or remote) target's membership,
    whether the target is the user's own, the families of target and shadows."""

    saved: SavedTarget | None
    user: bool
    trainer: ModelFamily | None
    target_recipe: Recipe | None
    target_family: ModelFamily | None
    shadows: ModelFamily


def _who_trains(config, handed, data, remote, remote_membership, reporter) -> _Who:
    user = handed.target is not None
    if user:
        config.check_own_target()
    named = (handed.members, handed.non_members, config.members, config.non_members)
    if not user and any(m is not None for m in named):
        raise ConfigError(
            "members= names the training records of your own model: pass it as target= "
            "(a saved or remote target brings its own membership, a trained one is drawn)"
        )
    saved = remote_membership
    if remote is None and config.target_model is not None:
        saved = load_saved_target(config.target_model, data)
    trainer = trainer_family(config, handed, data)
    # A remote target's recipe is the attacker's guess (the paper's attacker knows the
    # training algorithm): the recipe settings describe it, and the shadows use it.
    target_recipe = None
    if not user:
        target_recipe = (
            saved.recipe
            if saved is not None and saved.recipe is not None
            else resolve_recipe(config.target, data)
        )
    # The family that trains the target, or that did (a saved target's recipe).
    target_family = None if target_recipe is None else RecipeFamily(target_recipe)
    if trainer is not None and saved is None and remote is None:
        target_family = trainer
    shadows = shadows_family(config, handed, data, trainer, target_family, reporter)
    return _Who(saved, user, trainer, target_recipe, target_family, shadows)


def _say_overlap(splits: AuditSplits, reporter: Reporter) -> None:
    if splits.overlap:
        reporter.message(
            f"the attacker's pool of {len(splits.pool):,} records is smaller than two training "
            f"sets of {splits.shadow_size:,}: each shadow trains on {splits.shadow_size:,} of "
            f"them (their training sets overlap) and is tested on the other "
            f"{len(splits.shadow_out[0]):,}"
        )


def _draw_splits(config, data, plan, saved, found, rng) -> tuple[AuditSplits, dict[str, Any]]:
    """The deployed game's splits: a saved (or remote) target's membership, the user's
    members, or a target drawn here; and what the user's members say of themselves."""
    need_pool = needs_pool(config, plan)
    if saved is not None:
        splits = make_splits(
            data.n_records, len(saved.members), config.shadows, rng,
            fixed_target=(saved.members, saved.non_members),
            shadow_size=config.shadow_size, need_pool=need_pool,
        )  # fmt: skip
        return splits, {}
    if found is not None:
        all_members, members, non_members, member_facts = found
        splits = make_splits(
            data.n_records, len(members), config.shadows, rng,
            fixed_target=(members, non_members), exclude=all_members,
            shadow_size=config.shadow_size or len(all_members), need_pool=need_pool,
        )  # fmt: skip
        return splits, member_facts
    size = resolve_target_size(data.n_records, config.target_size)
    splits = make_splits(
        data.n_records, size, config.shadows, rng,
        shadow_size=config.shadow_size, need_pool=need_pool,
    )  # fmt: skip
    return splits, {}


def _deployed_target(config, data, handed, who, remote, splits, member_facts, seeds,
                     reporter, execution):  # fmt: skip
    """The target as the attacker reaches it, through its output policy (the attacker
    knows the deployed policy: the shadows answer through it too), its policies and
    the facts the report gives of it."""
    if remote is not None:
        # A service applies its own policy (and reports it); it is not applied twice.
        facts = {"source": "http", **remote.describe(), "model": None, "recipe": None}
        return PolicyTarget(remote, []), [parse_policy(s) for s in remote.policy], facts
    if who.user:
        model, facts = open_target(handed.target, data)
        facts = {**facts, **member_facts, "model": facts["model"], "recipe": None}
    elif who.saved is not None:
        model = who.saved.model
        facts = {"source": config.target_model, **who.target_family.describe()}
        facts.update(privacy(who.target_family, splits.target_size))
    else:
        model = train_target(
            who.target_family, data, splits, seeds["target"], config, reporter, execution
        )
        if config.save_target is not None:
            save_target(model, config.save_target, data, splits)
            reporter.message(f"saved the target to {config.save_target}")
        facts = {"source": "trained", **who.target_family.describe(), **member_facts}
        facts.update(privacy(who.target_family, splits.target_size))
    policies = [parse_policy(spec) for spec in config.defense]
    local = LocalTarget(model, data.n_classes, query_budget=config.query_budget)
    return PolicyTarget(local, policies), policies, facts


def _deployed_draw(config, data, splits, target, plan, population, public, seeds, who,
                   reporter, played: dict[str, Any]) -> Game:  # fmt: skip
    """The deployed game's models: each shadow trains on its training set and answers
    its in- and out-records, then the reference records. ``played`` holds the rest of
    the :class:`Game` (the policies, the shadows' family, the resolved config, the
    target's facts and what closes it)."""
    eval_index, eval_member = splits.evaluation()
    n_eval = len(eval_index)
    with reporter.stage("shadow_data", f"preparing {config.shadow_data} shadow data"):
        shadow_data, shadow_splits, source_info = prepare_shadow_data(
            data, splits, config, target, np.random.default_rng(seeds["shadow_data"]),
            reserved_queries=n_eval + plan.extra_queries(n_eval, len(population), len(public)),
        )  # fmt: skip
    unreached = (source_info["synthesis"] or {}).get("unreached_classes", [])
    if unreached:
        reporter.message(
            f"hill climbing reached no record of {len(unreached)} classes: "
            + ", ".join(unreached[:8])
        )
    reference = reference_records(
        plan, config, data, splits, shadow_data, shadow_splits, population
    )
    seeds_k = int_seeds(seeds["shadows"], config.shadows)
    jobs, own = [], []
    for k, (train, s_in, s_out) in enumerate(
        zip(shadow_splits.training_sets, shadow_splits.shadow_in, shadow_splits.shadow_out,
            strict=True)
    ):  # fmt: skip
        jobs.append(ShadowJob(train, seeds_k[k], np.concatenate([s_in, s_out]), f"shadow {k}"))
        own.append(np.r_[np.ones(len(s_in), np.int8), np.zeros(len(s_out), np.int8)])
    shadows = {
        "count": splits.n_shadows,
        "game": "shokri",
        "draw": "online" if plan.online else "disjoint",
        "source": config.shadow_data,
        "noise": config.noise if config.shadow_data == "noisy" else None,
        "labels": config.shadow_labels,
        "target_queries": source_info["target_queries"],
        "synthesis": source_info["synthesis"],
        **family_facts(who.shadows),
        **training_sizes(shadow_splits.training_sets),
        "n_out": len(shadow_splits.shadow_out[0]),
        "pool_size": len(shadow_splits.pool),
        **({"overlapping_in_sets": True} if shadow_splits.overlap else {}),
    }
    return Game(
        "shokri", data, shadow_data, eval_index, eval_member, jobs, own, plan, target,
        **played,
        extra=None if reference is None else reference["X"], reference=reference,
        reference_from=[len(j.query) for j in jobs], public=public,
        models=f"{config.shadows} shadows", shadows=shadows,
    )  # fmt: skip
