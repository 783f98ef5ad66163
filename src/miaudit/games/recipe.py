"""The "audit a training recipe" game LiRA and RMIA report on.

A pool of ``2 × target_size`` records; the target and ``config.shadows`` reference
models are trained with the recipe, each on a random half of the pool, drawn so that
every record is IN for half of the models (:func:`miaudit.splits.draw_recipe_pool`).
Every pool record is then scored against the target (model 0) from the reference
models' outputs: a leakage score for every record of the pool. RMIA's population records
come from outside the pool; no model trains on them, so every model trains on as many
records as the target. With the user's ``trainer``, the target and every reference model
come from it: the game audits the user's own training code.
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.base import PlanContext
from miaudit.errors import ConfigError, key
from miaudit.games.base import Game, GameRules, Setting
from miaudit.handover import labels_for, records_for
from miaudit.jobs import ShadowJob, cached_model
from miaudit.models import Recipe
from miaudit.models.family import ModelFamily, RecipeFamily
from miaudit.models.user import RecordAdapter
from miaudit.policies import PolicyTarget, parse_policy
from miaudit.seeds import int_seeds
from miaudit.splits import draw_recipe_pool, resolve_target_size
from miaudit.stages.models import (
    family_facts,
    job_fingerprint,
    resolve_recipe,
    trainer_family,
    training_sizes,
)
from miaudit.stages.plan import (
    check_fprs,
    check_public,
    check_scale,
    draw_public,
    is_label_only,
    plan_attacks,
    resolved_config,
)
from miaudit.stages.queries import variant_queries
from miaudit.target import LocalTarget


class RecipeGame(GameRules):
    """The recipe game: every model, the target too, trained by one recipe."""

    name = "recipe"

    def set_up(self, setting: Setting) -> Game:
        config, data, seeds = setting.config, setting.data, setting.seeds
        reporter = setting.reporter
        family, recipe = _recipe_family(config, setting.handed, data)
        policies = [parse_policy(spec) for spec in config.defense]
        plan = plan_attacks(config, is_label_only(config), reporter, data)
        plan.check(
            PlanContext(
                n_shadows=config.shadows, shadow_data="real", game="recipe", online=True,
                label_only=is_label_only(config),
            )
        )  # fmt: skip
        size = resolve_target_size(data.n_records, config.target_size)
        pool_size = 2 * size
        population = min(plan.population, data.n_records - pool_size) if plan.population else 0
        if pool_size > data.n_records or (plan.population and population < 10):
            raise ConfigError(
                f"{key('game', 'recipe')} needs a pool of 2 × {key('target_size')} = "
                f"{pool_size} records"
                + (" and population records for RMIA outside it" if plan.population else "")
                + f", but {data.name} has {data.n_records}: lower {key('target_size')}"
            )
        # Half the pool, about, are non-members of the target.
        check_fprs(config, pool_size // 2)
        check_scale(config, data, size)
        with reporter.stage("splits", "drawing the pool"):
            drawn = draw_recipe_pool(
                data.n_records, pool_size, config.shadows, population,
                np.random.default_rng(seeds["splits"]),
            )  # fmt: skip
        # Records the target never saw, for QMIA: any outside the pool.
        public = draw_public(plan, drawn.outside, np.random.default_rng(seeds["public"]))
        check_public(plan, public, "the records outside the pool")
        extra = plan.extra_queries(pool_size, len(drawn.z), len(public))
        if config.query_budget is not None and config.query_budget < pool_size + extra:
            raise ConfigError(
                f"{key('query_budget', config.query_budget)} cannot cover the "
                f"{pool_size + extra} queries the recipe game needs: raise it to at least "
                f"{pool_size + extra}"
            )
        model_seeds = int_seeds(seeds["shadows"], config.shadows + 1)
        target = _recipe_target(family, data, drawn, model_seeds[0], policies, config,
                                reporter, setting.execution)  # fmt: skip
        played = dict(
            policies=policies, family=family,
            resolved=resolved_config(
                config, data, setting.handed, plan, target_size=size, recipe=recipe
            ),
            facts={"source": "trained", **family_facts(family)},
        )  # fmt: skip
        return _recipe_draw(data, drawn, model_seeds[1:], plan, public, family, target, played)


def _recipe_family(config, handed, data) -> tuple[ModelFamily, Recipe | None]:
    """The family that trains the recipe game's target and reference models (and its
    recipe, when built in); refuses what does not apply to the game."""
    if handed.target is not None:
        raise ConfigError(
            f"{key('game', 'recipe')} trains its own target, so target= does not apply: pass "
            f"the training code as trainer=, or use {key('game', 'shokri')}"
        )
    if handed.members is not None:
        raise ConfigError(f"{key('game', 'recipe')} draws its own members: drop members=")
    family = trainer_family(config, handed, data)
    recipe = None
    if family is None:
        recipe = resolve_recipe(config.target, data)
        family = RecipeFamily(recipe)
    if config.shadow is not None and resolve_recipe(config.shadow, data) != recipe:
        raise ConfigError(
            f"{key('game', 'recipe')} audits one recipe: the reference models share the "
            f"target's, so drop {key('shadow.model')}"
        )
    return family, recipe


def _recipe_target(family, data, drawn, seed, policies, config, reporter, execution):
    """The recipe game's target: model 0, trained on its half of the pool."""
    records = records_for(family.takes, data, family.describe()["model"])
    with reporter.stage("train_target", "training target", total=1) as tick:
        model, _ = cached_model(
            family, records(data.X), labels_for(family, data), data.n_classes,
            drawn.in_sets[0], seed, device=config.device, execution=execution,
            data_fingerprint=job_fingerprint(family, data), progress=tick.update,
            notify=reporter.message,
        )  # fmt: skip
    local = LocalTarget(
        RecordAdapter(model, records), data.n_classes, query_budget=config.query_budget
    )
    return PolicyTarget(local, policies)


def _recipe_draw(data, drawn, seeds, plan, public, family, target, played) -> Game:
    """The recipe game's models: each reference model trains on its half of the pool
    and answers the pool and the population, then their variants. ``played`` holds the
    rest of the :class:`Game`."""
    pool, z, keep = drawn.pool, drawn.z, drawn.keep
    asked = np.concatenate([pool, z])
    variants, variant_rows = variant_queries(plan, data, data.X[asked], len(asked))
    n_variants = len(variants)
    # No model trains on the population records (each trains on half of the pool, as
    # many records as the target).
    member = np.concatenate([keep[1:], np.zeros((len(seeds), len(z)), bool)], axis=1)
    reference = {
        "labels": np.concatenate([data.y[asked]] * (1 + n_variants)),
        "member": np.concatenate([member] * (1 + n_variants), axis=1),
        "population": np.arange(len(pool), len(asked)),
        "calibration": np.zeros(0, np.int64),
        "variants": variants,
        "variant_rows": variant_rows,
        "z": z,
    }
    jobs = [
        ShadowJob(t, s, asked, f"reference model {k}")
        for k, (t, s) in enumerate(zip(drawn.in_sets[1:], seeds, strict=True))
    ]
    described = family_facts(family)
    shadows = {
        "count": len(jobs),
        "game": "recipe",
        "draw": "balanced halves of the pool",
        "source": "real",
        **described,
        "pool_size": len(pool),
        "population": len(z),
        **training_sizes([j.train for j in jobs]),
        "n_out": int((~keep[1:]).sum(axis=1).mean()) if len(jobs) else 0,
    }
    return Game(
        "recipe", data, data, pool, keep[0].astype(np.int8), jobs,
        # Shokri's attack and the thresholds learn from the reference models' outputs
        # on the pool, labelled by their own membership.
        own_member=[k.astype(np.int8) for k in keep[1:]], plan=plan, target=target,
        **played,
        extra=variant_rows.reshape(-1, *data.input_shape) if n_variants else None,
        reference=reference, reference_from=[0] * len(jobs), public=public,
        models=f"{len(jobs)} reference models", shadows=shadows,
    )  # fmt: skip
