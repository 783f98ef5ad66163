"""The audit pipeline: config -> data -> splits -> target / shadows -> attack -> metrics.

:func:`run_audit` is the one place the stages are wired together; the CLI and the
Python API (:func:`miaudit.audit`) both call it. It returns an :class:`AuditResult`
and writes nothing: :mod:`miaudit.report` turns the result into files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from miaudit.attacks.base import AttackInputs, PlanContext, RecordFormat
from miaudit.attacks.suite import (
    AttackPlan,
    inputs_from_arrays,
    run_attacks,
)
from miaudit.attacks.threshold import best_threshold
from miaudit.attacks.variants import numeric_columns
from miaudit.claim import DEFAULT_DELTA, claim_section
from miaudit.config import AuditConfig, RecipeSpec, flatten_validation_error
from miaudit.data import Dataset, load_dataset
from miaudit.data.describe import describe_records
from miaudit.data.kinds import kind_of
from miaudit.errors import ConfigError, DataError, ModelError, key
from miaudit.files import check_npy_sizes, read_json_object, write_folder
from miaudit.handover import (
    Handover,
    audit_data,
    class_map,
    clone_family,
    labels_for,
    load_object,
    membership,
    open_target,
    records_for,
)
from miaudit.jobs import Execution, ShadowJob, cached_model, run_jobs
from miaudit.metrics import (
    DEFAULT_FPRS,
    OPTIMISTIC_THRESHOLD,
    evaluate_attack,
    roc_points,
)
from miaudit.models import Recipe, check_input, load_model, save_model
from miaudit.models.family import ModelFamily, RecipeFamily, as_family
from miaudit.models.user import RecordAdapter, make_family
from miaudit.policies import PolicyTarget, apply_policies, parse_policy
from miaudit.progress import Reporter
from miaudit.result import AuditResult, DatasetSection, QueryCount, ShadowsSection, TargetSection
from miaudit.shadow_data import feature_groups, shadow_records
from miaudit.signals import ReferenceSignals
from miaudit.splits import (
    DEFAULT_TARGET_SIZE,
    AuditSplits,
    draw_recipe_pool,
    draw_shadow_sets,
    make_splits,
    online_shadow_sets,
    resolve_target_size,
    with_canaries,
)
from miaudit.synthesis import format_sampler, hill_climb, records_needed
from miaudit.target import LocalTarget

#: File beside a saved target that says which records it was trained on.
MEMBERSHIP_FILE = "membership.npz"


def resolve_recipe(spec: RecipeSpec, dataset: Dataset) -> Recipe:
    """A full recipe from the user's partial one: the paper's MLP for tables, CNN for
    images, the text recipe for text (:meth:`~miaudit.data.kinds.RecordKind.default_model`);
    a model that cannot read the records is refused, naming why."""
    given = spec.given()
    kind = kind_of(dataset)
    given.setdefault("model", kind.default_model(dataset))
    why = kind.cannot_train(dataset, given["model"])
    if why is not None:
        raise ConfigError(f"{key('target.model', given['model'])}: {why}")
    if given["model"] == "cnn" and dataset.kind != "image":
        raise ConfigError(
            f"{key('target.model', 'cnn')} needs an image data set, but {dataset.name} is "
            f"tabular: use {key('target.model', 'mlp')}"
        )
    try:
        return Recipe.model_validate(given)
    except ValidationError as err:
        raise ConfigError(flatten_validation_error(err, prefix="target.")) from None


def _seeds(seed: int) -> dict[str, np.random.SeedSequence]:
    # Independent streams per purpose, so adding a shadow never changes the target's
    # split or weights, and the same seed gives the same bytes.
    # New purposes go at the end: earlier streams stay as they were.
    names = (
        "splits",
        "target",
        "shadows",
        "attack",
        "shadow_data",
        "online",
        "population",
        "robustness",
        "bootstrap",
        "public",
        "canaries",
    )
    return dict(zip(names, np.random.SeedSequence(seed).spawn(len(names)), strict=True))


def _named_stream(seq: np.random.SeedSequence, name: str) -> np.random.SeedSequence:
    """A stream of ``seq`` for the purpose ``name``, the same whatever else is drawn."""
    tag = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, tag))


def _int_seeds(seq: np.random.SeedSequence, n: int) -> list[int]:
    return [int(s) for s in seq.generate_state(n, dtype=np.uint32)]


def run_audit(
    config: AuditConfig,
    reporter: Reporter | None = None,
    *,
    token: str | None = None,
    query_cache: str | Path | bool | None = None,
    execution: Execution | None = None,
    handed: Handover | None = None,
) -> AuditResult:
    """Run the shadow-model audit that ``config`` describes and return its result.

    ``token`` and ``query_cache`` concern only a remote target (``config.target_url``):
    the service's bearer token (kept out of the configuration, so it is never
    written to ``config.json``) and the root of the query cache (see
    :class:`miaudit.remote.QueryCache`; ``False`` turns it off). ``execution`` says
    where shadow training runs and where its job cache is (:class:`miaudit.jobs.Execution`).
    ``handed`` holds the objects of a Python session (the user's model, trainer, data
    and members: :class:`miaudit.handover.Handover`).
    """
    reporter = reporter or Reporter()
    handed = _with_python_objects(config, handed or Handover())
    seeds = _seeds(config.seed)

    with reporter.stage("load_data", "loading data"):
        data = audit_data(config, handed)
    _say_what_the_records_are(data, reporter)

    for line in config.moved:
        reporter.warn(line)
    if config.game == "recipe":
        return _recipe_game(config, data, seeds, reporter, execution, handed)
    remote = remote_membership = None
    if config.target_url is not None:
        remote_membership = load_membership(config.membership, data)
        # Opened before the splits: whether it answers labels only decides the attacks.
        remote = _open_remote(config, data, reporter, token=token, query_cache=query_cache)
    try:
        return _deployed_game(
            config, data, handed, (remote, remote_membership), seeds, reporter, execution
        )
    finally:
        if remote is not None:
            remote.close()


def _say_what_the_records_are(data: Dataset, reporter: Reporter) -> None:
    """Say, before anything trains, that the records are held as given, and warn of
    columns that look like identifiers (a model memorises them), for ``audit`` and
    ``train`` alike."""
    if data.notes.get("held_because"):
        reporter.message(
            f"your model reads the records as given: {data.notes['held_because']}; miaudit "
            "refuses only what would need it to encode them"
        )
    if data.notes.get("id_like_columns"):
        columns = ", ".join(data.notes["id_like_columns"])
        reporter.warn(
            f"column(s) {columns} hold a different value in every row: identifiers, most "
            f"likely, which let a model memorise records; name one with {key('id_column')} or "
            "drop it"
        )


def _label_only(config: AuditConfig, remote=None) -> bool:
    """Whether the target answers labels only (a service says so; a local target's
    output policy does)."""
    if remote is not None:
        return bool(remote.label_only)
    return any(parse_policy(spec).label_only for spec in config.defense)


def _plan(config: AuditConfig, label_only: bool, reporter: Reporter, data: Dataset) -> AttackPlan:
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


@dataclass
class Game:
    """What a game yields once its target exists: the evaluated records and who trains
    on what. The deployed-model game and the recipe game differ only in how they make
    one; :func:`_play` trains the models, queries the target and runs the attacks.

    ``data`` holds the evaluated records (and the target's answers come from it);
    ``shadow_data`` the records the models train on and answer (noisy, marginal or
    synthetic shadow data replaces the real). Every model ``k`` (a shadow, or a
    reference model) trains on ``jobs[k].train`` and answers ``jobs[k].query`` then
    ``extra``. Its first ``len(own_member[k])`` answers
    are its own records (``own_member[k]``: which it trained on), which Shokri's attack
    and the thresholds learn from; its answers from ``reference_from[k]`` on are the
    reference records, laid out by ``reference``
    (:func:`_reference_records`), which LiRA and RMIA read.
    """

    name: str
    data: Dataset
    shadow_data: Dataset
    eval_index: np.ndarray
    eval_member: np.ndarray
    jobs: list[ShadowJob]
    own_member: list[np.ndarray]
    extra: np.ndarray | None = None
    reference: dict[str, Any] | None = None
    reference_from: list[int] = field(default_factory=list)
    public: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    models: str = "shadows"
    shadows: dict[str, Any] = field(default_factory=dict)


def _deployed_game(config, data, handed, remote, seeds, reporter, execution) -> AuditResult:
    """The paper's game: a deployed target's members against its non-members, shadows
    trained on the attacker's pool. ``remote`` is a remote target and its membership,
    or ``(None, None)``."""
    remote, remote_membership = remote
    who = _who_trains(config, handed, data, remote, remote_membership, reporter)
    rng = np.random.default_rng(seeds["splits"])
    found = membership(data, handed, config, rng) if who.user else None
    if who.user and found is None:
        raise ConfigError(
            f"{key('members')}: name the records your target was trained on (a mask, row "
            "positions or ids of data; a file of them on the command line)"
        )
    label_only = _label_only(config, remote)
    plan = _plan(config, label_only, reporter, data)
    plan.check(
        PlanContext(
            n_shadows=config.shadows, shadow_data=config.shadow_data, game="shokri",
            online=plan.online, label_only=label_only,
        )
    )  # fmt: skip
    _check_scale(config, data, config.shadow_size or config.target_size)
    with reporter.stage("splits", "drawing splits"):
        splits, member_facts = _draw_splits(config, data, plan, who.saved, found, rng)
        if config.game == "canaries":
            splits, data, member_facts = _canaries(config, data, splits, who, seeds)
    _say_overlap(splits, reporter)
    resolved = _resolved(config, data, handed, plan, target_size=splits.target_size, who=who)
    _check_fprs(config, len(splits.target_out))
    population = _draw_population(plan, splits, np.random.default_rng(seeds["population"]))
    if plan.population and len(population) < 10:
        raise ConfigError(
            f"rmia compares records with population records from the attacker's pool, which "
            f"holds {len(splits.pool)}: leave more records out of the evaluation "
            "(non_members=), or drop rmia and rmia-offline from the attacks"
        )
    public = _draw_public(plan, splits.pool, np.random.default_rng(seeds["public"]))
    _check_public(plan, public, "the attacker's pool")
    if plan.online:
        # Shadows train on halves of the evaluated records, made up to the target's
        # size from the pool where the halves fall short (RMIA's population first).
        short = splits.train_size - (len(splits.target_in) + len(splits.target_out)) // 2
        fill = population if len(population) >= short else splits.pool
        splits = online_shadow_sets(splits, np.random.default_rng(seeds["online"]), fill=fill)
        _check_offline_population(plan, splits, population)
        smallest = min(len(t) for t in splits.training_sets)
        if smallest < splits.train_size:
            reporter.message(
                f"the attacker's pool is too small to make the shadows' training sets up to "
                f"the target's {splits.train_size:,} records: the smallest has {smallest:,}"
            )
    n_eval = len(splits.target_in) + len(splits.target_out)
    _check_budget(
        config, n_eval, splits, extra=plan.extra_queries(n_eval, len(population), len(public))
    )
    target, policies, facts = _deployed_target(
        config, data, handed, who, remote, splits, member_facts, seeds, reporter, execution
    )
    try:
        game = _deployed_draw(
            config, data, splits, target, plan, population, public, seeds, who, reporter
        )
        return _play(
            game, plan, target, policies, who.shadows, resolved, facts, seeds, reporter, execution
        )
    finally:
        close = getattr(target.target, "close", None)
        if close is not None and remote is None:
            close()


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
    trainer = _trainer_family(config, handed, data)
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
    shadows = _shadows_family(config, handed, data, trainer, target_family, reporter)
    return _Who(saved, user, trainer, target_recipe, target_family, shadows)


def _say_overlap(splits: AuditSplits, reporter: Reporter) -> None:
    if splits.overlap:
        reporter.message(
            f"the attacker's pool of {len(splits.pool):,} records is smaller than two training "
            f"sets of {splits.shadow_size:,}: each shadow trains on {splits.shadow_size:,} of "
            f"them (their training sets overlap) and is tested on the other "
            f"{len(splits.shadow_out[0]):,}"
        )


def _resolved(config, data, handed, plan, *, target_size, who=None, recipe=None) -> AuditConfig:
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


def _canaries(config, data, splits, who, seeds) -> tuple[AuditSplits, Dataset, dict[str, Any]]:
    """The canary game's splits (:func:`~miaudit.splits.with_canaries`), its data (the
    canaries given wrong labels when ``canary_kind`` is ``mislabelled``: each a label
    drawn uniformly from the others), and what the report says of the canaries."""
    if who.user or who.saved is not None:
        raise ConfigError(
            f"{key('game', 'canaries')} trains its own target with canaries in its training "
            f"set: drop target= and members=, or use {key('game', 'shokri')}"
        )
    rng = np.random.default_rng(seeds["canaries"])
    splits = with_canaries(splits, config.canaries, rng)
    canaries = np.concatenate([splits.target_in, splits.target_out])
    if config.canary_kind == "mislabelled":
        if data.n_classes < 2:
            raise DataError("mislabelled canaries need at least two classes")
        y = data.y.copy()
        shift = rng.integers(1, data.n_classes, len(canaries))
        y[canaries] = (y[canaries] + shift) % data.n_classes
        data = dataclasses.replace(data, y=y)
    facts = {
        "members_given": splits.target_size,
        "canaries": {
            "count": len(canaries),
            "included": len(splits.target_in),
            "kind": config.canary_kind,
        },
    }
    return splits, data, facts


def _privacy(family: ModelFamily, n_train: int) -> dict[str, Any]:
    """The DP-SGD plan a recipe trained the target with (``results.json``'s
    ``target.dp``: the claimed ε and δ, noise multiplier, clipping norm, accountant),
    or nothing."""
    plan = family.privacy(n_train)
    return {} if plan is None else {"dp": plan.as_dict()}


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
        facts.update(_privacy(who.target_family, splits.target_size))
    else:
        model = _train_target(
            who.target_family, data, splits, seeds["target"], config, reporter, execution
        )
        if config.save_target is not None:
            save_target(model, config.save_target, data, splits)
            reporter.message(f"saved the target to {config.save_target}")
        facts = {"source": "trained", **who.target_family.describe(), **member_facts}
        facts.update(_privacy(who.target_family, splits.target_size))
    policies = [parse_policy(spec) for spec in config.defense]
    local = LocalTarget(model, data.n_classes, query_budget=config.query_budget)
    return PolicyTarget(local, policies), policies, facts


def _deployed_draw(config, data, splits, target, plan, population, public, seeds, who,
                   reporter) -> Game:  # fmt: skip
    """The deployed game's models: each shadow trains on its training set and answers
    its in- and out-records, then the reference records."""
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
    reference = _reference_records(
        plan, config, data, splits, shadow_data, shadow_splits, population
    )
    seeds_k = _int_seeds(seeds["shadows"], config.shadows)
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
        **_family_facts(who.shadows),
        **_sizes(shadow_splits.training_sets),
        "n_out": len(shadow_splits.shadow_out[0]),
        "pool_size": len(shadow_splits.pool),
        **({"overlapping_in_sets": True} if shadow_splits.overlap else {}),
    }
    return Game(
        "shokri", data, shadow_data, eval_index, eval_member, jobs, own,
        extra=None if reference is None else reference["X"], reference=reference,
        reference_from=[len(j.query) for j in jobs], public=public,
        models=f"{config.shadows} shadows", shadows=shadows,
    )  # fmt: skip


def _play(game: Game, plan, target, policies, family, resolved, facts, seeds, reporter,
          execution) -> AuditResult:  # fmt: skip
    """One path for both games: train the models, query the target, run the attacks,
    build the result."""
    data, C = game.data, game.data.n_classes
    units = as_family(family).units
    unit = "model-epochs" if units > 1 else "models"
    with reporter.stage("train_shadows", f"training {game.models}", unit=unit) as tick:
        outputs, job_facts = train_models(
            family, game.shadow_data, game.jobs, extra=game.extra, device=resolved.device,
            progress=tick.update, execution=execution, notify=reporter.message,
        )  # fmt: skip
    if job_facts["from_cache"]:
        reporter.message(
            f"{job_facts['from_cache']} of {len(game.jobs)} models' outputs came from the job cache"
        )
    own = [(o[: len(m)], j.query[: len(m)]) for o, m, j in zip(
        outputs, game.own_member, game.jobs, strict=True)]  # fmt: skip
    eval_labels = data.y[game.eval_index]
    with reporter.stage("query_target", "querying the target"):
        target_probs = target.predict_proba(data.X[game.eval_index])
        inputs = AttackInputs(
            own_probs=apply_policies(np.concatenate([o for o, _ in own]), policies),
            own_labels=np.concatenate([game.shadow_data.y[q] for _, q in own]),
            own_member=np.concatenate(game.own_member),
            target_probs=target_probs,
            labels=eval_labels,
            n_eval=len(game.eval_index),
        )
        _ask_target(plan, inputs, target, data, game.eval_index, game.public, seeds)
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
            _ask_reference(inputs, game.reference, probs, target, data)
    outcome = _score_attacks(
        plan, inputs, resolved, data.class_names, game.eval_member, seeds, reporter, execution
    )
    claim = _privacy_claim(resolved, facts, game.eval_member, outcome)
    result = AuditResult(
        config=resolved,
        dataset=DatasetSection.of(data.summary()),
        target=_target_section(facts, policies, target, resolved, inputs, game.eval_member),
        shadows=_shadows_section(game.shadows),
        record_index=data.rows[game.eval_index],
        ids=None if data.ids is None else data.ids[game.eval_index],
        labels=eval_labels,
        member=game.eval_member,
        timings_s=reporter.timings,
        execution={"jobs": job_facts},
        privacy_claim=claim,
        **outcome,
    )
    result.skipped = dict(plan.unfit)
    # The report shows the most exposed records as the user knows them.
    top = result.exposed_positions()
    result.record_details = dict(
        zip(top.tolist(), describe_records(data, game.eval_index[top]), strict=True)
    )
    return result


def _privacy_claim(config, facts, member, outcome) -> dict[str, Any] | None:
    """``results.json``'s ``privacy_claim`` (:mod:`miaudit.claim`), for the canary game
    or a DP-SGD target: every attack's lower bounds on ε at the claim's δ (else at
    :data:`~miaudit.claim.DEFAULT_DELTA`), beside the claim."""
    claimed = facts.get("dp")
    canaries = config.game == "canaries"
    if not canaries and claimed is None:
        return None
    delta = claimed["delta"] if claimed is not None else DEFAULT_DELTA
    fprs = sorted({*DEFAULT_FPRS, *config.fprs})
    return claim_section(
        outcome["scores"], member, list(outcome["attacks"]), fprs, claimed, delta, canaries
    )


def _target_section(facts, policies, target, config, inputs, member) -> TargetSection:
    """What the report says of the target: its facts, policy, queries and accuracies."""
    correct = inputs.target_probs.argmax(axis=1) == inputs.labels
    member = np.asarray(member).astype(bool)
    details = {k: v for k, v in facts.items() if k not in ("source", "model", "recipe")}
    return TargetSection(
        source=facts["source"],
        model=facts.get("model"),
        recipe=facts.get("recipe"),
        defense=[p.spec for p in policies],
        queries=QueryCount(
            target.target.queries_, getattr(target.target, "cached_", 0), config.query_budget
        ),
        # Your own target's training set may be larger than the members evaluated.
        n_train=facts.get("members_given", int(member.sum())),
        n_test=int((~member).sum()),
        train_accuracy=float(correct[member].mean()),
        test_accuracy=float(correct[~member].mean()),
        details=details,
    )


def _shadows_section(facts: dict[str, Any]) -> ShadowsSection:
    details = {k: v for k, v in facts.items() if k not in ("count", "game", "source")}
    return ShadowsSection(facts["count"], facts["game"], facts["source"], details)


def _ask_reference(inputs: AttackInputs, layout, probs, target, data: Dataset) -> None:
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


def _check_scale(config: AuditConfig, data: Dataset, train_size: int | None) -> None:
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


def _draw_splits(config, data, plan, saved, found, rng) -> tuple[AuditSplits, dict[str, Any]]:
    """The deployed game's splits: a saved (or remote) target's membership, the user's
    members, or a target drawn here; and what the user's members say of themselves."""
    need_pool = _needs_pool(config, plan)
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


def _with_python_objects(config: AuditConfig, handed: Handover) -> Handover:
    """``handed`` with the objects ``--target-python`` and ``--trainer-python`` name."""
    for spec, field_name, flag in (
        (config.target_python, "target", key("target_python")),
        (config.trainer_python, "trainer", key("trainer_python")),
    ):
        if spec is None:
            continue
        if getattr(handed, field_name) is not None:
            raise ConfigError(f"{flag} and {field_name}= both name the {field_name}: pass one")
        handed = dataclasses.replace(
            handed, **{field_name: load_object(spec, config.python_path, flag)}
        )
    return handed


def _trainer_family(config: AuditConfig, handed: Handover, data: Dataset) -> ModelFamily | None:
    """The family the user's ``trainer`` makes, or ``None``."""
    if handed.trainer is None:
        return None
    if config.shadow is not None:
        raise ConfigError(
            f"trainer= and the shadow recipe ({key('shadow.model')}) both say how shadows "
            "train: pass one"
        )
    trains_target = (
        handed.target is None and config.target_model is None and (config.target_url is None)
    )
    if trains_target and config.target.given():
        raise ConfigError(
            "trainer= trains the target too: drop the target recipe settings "
            f"({', '.join(sorted(config.target.given()))})"
        )
    return make_family(handed.trainer, class_map(data), handed.cache_key)


def _shadows_family(config, handed, data, trainer, target_family, reporter) -> ModelFamily:
    """How the shadows are trained: the user's trainer, clones of a scikit-learn target,
    the shadow recipe, or the target's recipe (the paper's attacker knows it)."""
    if trainer is not None:
        return trainer
    if config.shadow is not None:
        return RecipeFamily(resolve_recipe(config.shadow, data))
    clones = clone_family(handed.target, data, handed.cache_key)
    if clones is not None:
        return clones
    if target_family is not None:
        return target_family
    recipe = resolve_recipe(config.target, data)
    reporter.message(
        f"shadows: miaudit's built-in {recipe.model} stands for your model's training (pass "
        "trainer= to train them as your model was)"
    )
    return RecipeFamily(recipe)


def _needs_pool(config: AuditConfig, plan: AttackPlan) -> bool:
    """Whether the shadows draw their records from the attacker's pool."""
    return config.shadow_data != "synthetic" and not plan.online


def _sizes(training_sets) -> dict[str, int]:
    """``n_in``: how many records each shadow trains on (``n_in_min`` and ``n_in_max``
    too when they differ)."""
    sizes = [len(t) for t in training_sets]
    if not sizes:
        return {"n_in": 0}
    if min(sizes) == max(sizes):
        return {"n_in": sizes[0]}
    return {"n_in": sizes[0], "n_in_min": min(sizes), "n_in_max": max(sizes)}


def _family_facts(family: ModelFamily) -> dict[str, Any]:
    """``model`` and ``recipe`` (``None`` unless built in) of a family, for the report;
    ``trainer`` too for the user's code."""
    described = family.describe()
    facts = {"model": described["model"], "recipe": described.get("recipe")}
    if "trainer" in described:
        facts["trainer"] = described["trainer"]
    return facts


def _recipe_game(config, data, seeds, reporter, execution, handed) -> AuditResult:
    """The "audit a training recipe" game LiRA and RMIA report on.

    A pool of ``2 × target_size`` records; the target and ``config.shadows``
    reference models are trained with the recipe, each on a random half of the pool,
    drawn so that every record is IN for half of the models
    (:func:`miaudit.splits.draw_recipe_pool`). Every pool record is then scored against
    the target (model 0) from the reference models' outputs: a leakage score for every
    record of the pool. RMIA's population records come from outside the pool; no model
    trains on them, so every model trains on as many records as the target. With the user's
    ``trainer``, the target and every reference model come from it: the game audits
    the user's own training code.
    """
    family, recipe = _recipe_family(config, handed, data)
    policies = [parse_policy(spec) for spec in config.defense]
    plan = _plan(config, _label_only(config), reporter, data)
    plan.check(
        PlanContext(
            n_shadows=config.shadows, shadow_data="real", game="recipe", online=True,
            label_only=_label_only(config),
        )
    )  # fmt: skip
    size = resolve_target_size(data.n_records, config.target_size)
    pool_size = 2 * size
    population = min(plan.population, data.n_records - pool_size) if plan.population else 0
    if pool_size > data.n_records or (plan.population and population < 10):
        raise ConfigError(
            f"{key('game', 'recipe')} needs a pool of 2 × {key('target_size')} = {pool_size} "
            "records"
            + (" and population records for RMIA outside it" if plan.population else "")
            + f", but {data.name} has {data.n_records}: lower {key('target_size')}"
        )
    # Half the pool, about, are non-members of the target.
    _check_fprs(config, pool_size // 2)
    _check_scale(config, data, size)
    with reporter.stage("splits", "drawing the pool"):
        drawn = draw_recipe_pool(
            data.n_records, pool_size, config.shadows, population,
            np.random.default_rng(seeds["splits"]),
        )  # fmt: skip
    # Records the target never saw, for QMIA: any outside the pool.
    public = _draw_public(plan, drawn.outside, np.random.default_rng(seeds["public"]))
    _check_public(plan, public, "the records outside the pool")
    extra = plan.extra_queries(pool_size, len(drawn.z), len(public))
    if config.query_budget is not None and config.query_budget < pool_size + extra:
        raise ConfigError(
            f"{key('query_budget', config.query_budget)} cannot cover the {pool_size + extra} "
            f"queries the recipe game needs: raise it to at least {pool_size + extra}"
        )
    model_seeds = _int_seeds(seeds["shadows"], config.shadows + 1)
    target = _recipe_target(family, data, drawn, model_seeds[0], policies, config, reporter,
                            execution)  # fmt: skip
    game = _recipe_draw(data, drawn, model_seeds[1:], plan, public, family)
    resolved = _resolved(config, data, handed, plan, target_size=size, recipe=recipe)
    facts = {"source": "trained", **_family_facts(family)}
    return _play(game, plan, target, policies, family, resolved, facts, seeds, reporter, execution)


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
    family = _trainer_family(config, handed, data)
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
            data_fingerprint=_fingerprint(family, data), progress=tick.update,
            notify=reporter.message,
        )  # fmt: skip
    local = LocalTarget(
        RecordAdapter(model, records), data.n_classes, query_budget=config.query_budget
    )
    return PolicyTarget(local, policies)


def _recipe_draw(data, drawn, seeds, plan, public, family) -> Game:
    """The recipe game's models: each reference model trains on its half of the pool
    and answers the pool and the population, then their variants."""
    pool, z, keep = drawn.pool, drawn.z, drawn.keep
    asked = np.concatenate([pool, z])
    variants, variant_rows = _variants(plan, data, data.X[asked], len(asked))
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
    described = _family_facts(family)
    shadows = {
        "count": len(jobs),
        "game": "recipe",
        "draw": "balanced halves of the pool",
        "source": "real",
        **described,
        "pool_size": len(pool),
        "population": len(z),
        **_sizes([j.train for j in jobs]),
        "n_out": int((~keep[1:]).sum(axis=1).mean()) if len(jobs) else 0,
    }
    return Game(
        "recipe", data, data, pool, keep[0].astype(np.int8), jobs,
        # Shokri's attack and the thresholds learn from the reference models' outputs
        # on the pool, labelled by their own membership.
        own_member=[k.astype(np.int8) for k in keep[1:]],
        extra=variant_rows.reshape(-1, *data.input_shape) if n_variants else None,
        reference=reference, reference_from=[0] * len(jobs), public=public,
        models=f"{len(jobs)} reference models", shadows=shadows,
    )  # fmt: skip


def _check_fprs(config: AuditConfig, n_nonmembers: int) -> None:
    """Refuse a requested FPR the evaluation set cannot resolve, before any training."""
    for f in config.fprs:
        if f * n_nonmembers < 1 - 1e-9:
            need = int(np.ceil(1 / f - 1e-9))
            raise ConfigError(
                f"{key('fprs', f'{f:g}')}: TPR at that rate needs at least {need:,} non-members "
                f"(one false positive), but this audit evaluates {n_nonmembers:,}; raise "
                f"{key('target_size')} or ask for a higher rate"
            )


def _member_of(index: np.ndarray, shadow_in: tuple[np.ndarray, ...], trained_on_data: bool):
    """``(K, len(index))``: which shadows trained on which of these records."""
    if not trained_on_data:
        return np.zeros((len(shadow_in), len(index)), dtype=bool)
    return np.stack([np.isin(index, s) for s in shadow_in])


def _check_offline_population(plan: AttackPlan, splits: AuditSplits, population) -> None:
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


def _draw_population(plan: AttackPlan, splits: AuditSplits, rng: np.random.Generator) -> np.ndarray:
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


def _draw_public(plan: AttackPlan, candidates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Records the target never saw, for attacks that learn from its answers on them
    (QMIA): up to ``plan.public`` of ``candidates`` (records no target trained on)."""
    if not plan.public or not len(candidates):
        return np.zeros(0, np.int64)
    return np.sort(rng.choice(candidates, min(plan.public, len(candidates)), replace=False))


#: Fewest records the target never saw that an attack learning from them may use.
MIN_PUBLIC = 100


def _check_public(plan: AttackPlan, public: np.ndarray, where: str) -> None:
    """Refuse, before any training, attacks that learn from records the target never
    saw when there are too few of them."""
    if plan.public and len(public) < MIN_PUBLIC:
        names = ", ".join(a.name for a in plan.attacks if a.needs().public)
        raise ConfigError(
            f"{names} learns from records the target never saw, taken from {where}: it "
            f"holds {len(public)}, fewer than {MIN_PUBLIC}; leave more records out "
            f"(non_members=, {key('target_size')}), or drop {names}"
        )


def _reference_records(
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
    :func:`_draw_population`); shadow 0's own in/out records, on which RMIA-offline
    attacks shadow 0 with the others to choose ``a``; and LiRA's query variants.
    """
    if not plan.reference:
        return None
    on_data = config.shadow_data != "synthetic"  # synthetic shadows saw no real record
    eval_index, _ = splits.evaluation()
    X = [data.X[eval_index]]
    labels = [data.y[eval_index]]
    member = [_member_of(eval_index, shadow_splits.training_sets, on_data)]
    offset = len(eval_index)
    if len(z):
        X.append(data.X[z])
        labels.append(data.y[z])
        member.append(_member_of(z, shadow_splits.training_sets, on_data))
    population = np.arange(offset, offset + len(z))
    offset += len(z)
    calibration = np.zeros(0, np.int64)
    if plan.calibration and not plan.online:
        cal = np.concatenate([shadow_splits.shadow_in[0], shadow_splits.shadow_out[0]])
        X.append(shadow_data.X[cal])
        labels.append(shadow_data.y[cal])
        member.append(_member_of(cal, shadow_splits.training_sets, True))
        calibration = np.arange(offset, offset + len(cal))
    offset += len(calibration)
    variants, variant_rows = _variants(plan, data, np.concatenate(X), offset)
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


def _variants(plan: AttackPlan, data: Dataset, base: np.ndarray, offset: int):
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


def _ask_target(plan, inputs: AttackInputs, target, data: Dataset, index, public, seeds) -> None:
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


def _score_attacks(
    plan: AttackPlan,
    inputs: AttackInputs,
    config: AuditConfig,
    class_names: list[str],
    member: np.ndarray,
    seeds: dict[str, np.random.SeedSequence],
    reporter: Reporter,
    execution: Execution | None,
) -> dict[str, Any]:
    """Every attack's scores, metrics and notes (:func:`miaudit.attacks.suite.run_attacks`)."""
    # The audit's seed governs the attacks' randomness (Shokri's attack.seed shifts it).
    inputs.seed = _int_seeds(seeds["attack"], 1)[0]
    inputs.device = config.device
    inputs.class_names = list(class_names)
    notes: dict[str, dict[str, Any]] = {}
    scores, thresholds = {}, {}
    with reporter.stage(
        "attack_score",
        "fitting and scoring the attacks",
        total=len(plan.names),
        unit="attacks",
        estimate=False,  # one attack may take a hundred times another
    ) as tick:

        def progress(done: float) -> None:
            tick.update(done, len(plan.names))

        for name, out in run_attacks(plan, inputs, execution, progress):
            scores[name], thresholds[name], notes[name] = out.scores, out.threshold, out.notes
            if math.isnan(out.threshold) and out.notes.get("shadows") == 0:
                # Scored without shadows: no threshold was learnt. Precision and recall
                # are then read at the one that best separates the evaluated records
                # themselves, which knows their membership: optimistic, and said so.
                thresholds[name] = best_threshold(out.scores, member)
                notes[name] = {**out.notes, "threshold_from": OPTIMISTIC_THRESHOLD}
            # With the stage times (not in the attack's notes), so that two runs with the
            # same seed have identical attack results.
            reporter.timings[f"score:{name}"] = out.seconds
            if out.from_cache:
                reporter.message(f"{name}: scores from the job cache")
            for line in out.messages:
                reporter.message(line)
    metrics, roc = {}, {}
    with reporter.stage("metrics", "computing metrics"):
        for name in plan.names:
            # Each attack's replicates from its own stream, named by the attack: its
            # intervals do not depend on which other attacks ran, or on their scores.
            boot = np.random.default_rng(_named_stream(seeds["bootstrap"], name))
            metrics[name] = evaluate_attack(
                scores[name],
                member,
                inputs.labels,
                class_names,
                threshold=thresholds[name],
                fprs=sorted({*DEFAULT_FPRS, *config.fprs}),
                n_boot=config.bootstrap,
                rng=boot,
            )
            fpr, tpr, _ = roc_points(scores[name], member)
            roc[name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    return {
        "attacks": metrics,
        "attack_notes": notes,
        "scores": scores,
        "roc": roc,
        "inputs": inputs,
    }


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


def _train_target(
    family: Recipe | ModelFamily,
    data: Dataset,
    splits: AuditSplits,
    seed: np.random.SeedSequence,
    config: AuditConfig,
    reporter: Reporter,
    execution: Execution | None = None,
):
    """The target trained by ``family`` on the target's members, answering encoded records.

    One function for ``audit`` and ``train``, so a saved target is the one an audit
    with the same seed would have trained.
    """
    family = as_family(family)
    records = records_for(family.takes, data, family.describe()["model"])
    with reporter.stage("train_target", "training target", total=1) as tick:
        model, from_cache = cached_model(
            family,
            records(data.X),
            labels_for(family, data),
            data.n_classes,
            splits.target_train,
            _int_seeds(seed, 1)[0],
            device=config.device,
            execution=execution,
            data_fingerprint=_fingerprint(family, data),
            progress=tick.update,
            notify=reporter.message,
        )
    if from_cache:
        reporter.message("the target came from the job cache")
    return model if family.takes == "encoded" else RecordAdapter(model, records)


def _fingerprint(family: ModelFamily, data: Dataset) -> str | None:
    """The data's fingerprint for job keys, or ``None`` to key on the records a family's
    models read (the user's own rows carry more than their encoding)."""
    return data.fingerprint() if family.takes == "encoded" or data.raw is None else None


def train_models(
    family: Recipe | ModelFamily,
    data: Dataset,
    jobs: list[ShadowJob],
    *,
    extra: np.ndarray | None = None,
    device: str = "cpu",
    progress=None,
    execution: Execution | None = None,
    notify=None,
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Train one model per job (cached, batched, on Dask if asked) and return each one's
    outputs on its job's records then on ``extra``, with how many came from the job
    cache (:func:`miaudit.jobs.run_jobs`). ``data``'s records reach the models in the
    form the family reads (:func:`miaudit.handover.records_for`); only outputs flow on.
    """
    family = as_family(family)
    records = records_for(family.takes, data, family.describe()["model"])
    return run_jobs(
        family,
        records(data.X),
        labels_for(family, data),
        data.n_classes,
        jobs,
        extra=None if extra is None else records(extra),
        device=device,
        execution=execution,
        data_fingerprint=_fingerprint(family, data),
        progress=progress,
        notify=notify,
    )


def shadow_signals(
    family: Recipe | ModelFamily,
    data: Dataset,
    splits: AuditSplits,
    seeds: list[int],
    *,
    extra: np.ndarray | None = None,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Train the shadows of ``splits`` (:func:`train_models`) and return their outputs.

    Returns ``(probabilities (m, C), labels (m,), member (m,), extra_probs, facts)``:
    the first three are every shadow's outputs on its own in/out records, stacked;
    ``extra_probs`` is every shadow's output on the records ``extra`` (``(K,
    len(extra), C)``, ``None`` without ``extra``). Each shadow trains on its training
    set (:attr:`AuditSplits.training_sets`) and answers on its in- and out-records.
    """
    jobs = [
        ShadowJob(train, seed, np.concatenate([s_in, s_out]), f"shadow {k}")
        for k, (train, s_in, s_out, seed) in enumerate(
            zip(splits.training_sets, splits.shadow_in, splits.shadow_out, seeds, strict=True)
        )
    ]
    outputs, facts = train_models(family, data, jobs, extra=extra, **options)
    probs, labels, member, extra_probs = [], [], [], []
    for job, s_in, out in zip(jobs, splits.shadow_in, outputs, strict=True):
        n = len(job.query)
        probs.append(out[:n])
        labels.append(data.y[job.query])
        member.append(np.r_[np.ones(len(s_in), np.int8), np.zeros(n - len(s_in), np.int8)])
        extra_probs.append(out[n:])
    stacked = None if extra is None else np.stack(extra_probs)
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(member), stacked, facts


@dataclass
class SavedTarget:
    """A target's membership, and its model and recipe where they are local."""

    model: Any
    recipe: Recipe | None
    members: np.ndarray
    non_members: np.ndarray


#: What a saved target's folder holds besides the model's own files.
TARGET_FILES = (MEMBERSHIP_FILE, "dataset.json")


def save_target(model, path: str | Path, data: Dataset, splits: AuditSplits) -> None:
    """Save a trained target and which records it was trained on (so it can be audited),
    the folder written whole (:func:`miaudit.files.write_folder`)."""

    def fill(tmp: Path) -> None:
        save_model(model, tmp, class_names=data.class_names, dataset_fingerprint=data.fingerprint())
        np.savez(
            tmp / MEMBERSHIP_FILE,
            members=splits.target_in,
            non_members=splits.target_out,
        )
        (tmp / "dataset.json").write_text(json.dumps(_dataset_info(data), indent=2) + "\n")

    write_folder(path, fill, TARGET_FILES, ConfigError, "free space or choose another folder")


def _dataset_info(data: Dataset) -> dict[str, Any]:
    """``dataset.json``: what a saved target's data was, and what `miaudit serve` needs."""
    return {
        "name": data.name,
        "fingerprint": data.fingerprint(),
        # What an audit names when the data it is given differs.
        "n_records": data.n_records,
        "features_sha256": _digest_of(data.X),
        "labels_sha256": _digest_of(data.y),
        # What `miaudit serve` needs to take raw records: the data's own columns
        # and the encoder that turns them into the model's inputs.
        "kind": data.kind,
        "input_shape": list(data.input_shape),
        "encoder": data.encoder,
        # Text: the token ids per text the model reads (`miaudit serve` hashes
        # the texts it is sent into as many).
        "text_tokens": data.notes.get("text_tokens"),
    }


def load_saved_target(path: str | Path, data: Dataset) -> SavedTarget:
    """Load a saved target for an audit; its membership must be known and fit ``data``."""
    path = Path(path)
    model = load_model(path)
    check_input(model, data)
    if not (path / MEMBERSHIP_FILE).is_file():
        raise ModelError(
            f"{path} has no {MEMBERSHIP_FILE}: an audit must know which records the target was "
            "trained on; save targets with `miaudit train` or `miaudit audit --save-target`"
        )
    membership = load_membership(path, data)
    return dataclasses.replace(membership, model=model, recipe=model.recipe)


def _row_numbers(values: np.ndarray, name: str, path: Path) -> np.ndarray:
    """A membership file's ``members`` or ``non_members``: distinct row numbers, 1-D."""
    a = np.asarray(values)
    if a.ndim != 1 or a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise ConfigError(
            f"{path}: {name} must be a 1-D array of row numbers (integers); it has shape "
            f"{a.shape} of {a.dtype}: save the target again (`miaudit train`)"
        )
    if not len(a) and name == "members":
        raise ConfigError(f"{path}: {name} names no record; save the target again")
    repeated = len(a) - len(np.unique(a))
    if repeated:
        raise ConfigError(f"{path}: {name} names {repeated} row(s) more than once")
    return a.astype(np.int64)


def _digest_of(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _data_differs(folder: Path, info: dict[str, Any], data: Dataset) -> str:
    """Why a saved target's data set is not ``data``: what differs, and what to do."""
    name = info.get("name")
    what = []
    if info.get("n_records") is not None and info["n_records"] != data.n_records:
        what.append(f"it had {info['n_records']:,} records, this has {data.n_records:,}")
    else:
        if info.get("features_sha256") not in (None, _digest_of(data.X)):
            what.append("the features differ")
        if info.get("labels_sha256") not in (None, _digest_of(data.y)):
            what.append("the labels differ")
    differs = "; ".join(what) or "its content differs"
    if name != data.name:
        return (
            f"{folder} was trained on data set '{name}', not '{data.name}' ({differs}): audit "
            f"it with {key('dataset', name)}"
        )
    return (
        f"{folder} was trained on '{name}', but the '{data.name}' loaded now differs from it "
        f"({differs}): its source files changed, or the data cache is damaged; `miaudit cache "
        "clear datasets` rebuilds the cache (or retrain the target on today's data)"
    )


def load_membership(path: str | Path, data: Dataset) -> SavedTarget:
    """Which records of ``data`` a target was trained on, from a saved target's folder
    (or its ``membership.npz``); the folder's data fingerprint must match ``data``."""
    path = Path(path)
    folder, membership = (path, path / MEMBERSHIP_FILE) if path.is_dir() else (path.parent, path)
    if not membership.is_file():
        raise ConfigError(
            f"{key('membership', path)}: no {MEMBERSHIP_FILE} there; pass the folder `miaudit "
            "train` saved the target into, or its membership.npz"
        )
    info_file = folder / "dataset.json"
    if info_file.is_file():
        info = read_json_object(
            info_file, ConfigError, "save the target again with `miaudit train` or --save-target"
        )
        if info.get("fingerprint") != data.fingerprint():
            raise ModelError(_data_differs(folder, info, data))
    check_npy_sizes(
        membership, ConfigError, "save the target again with `miaudit train`", str(membership)
    )
    try:
        with np.load(membership, allow_pickle=False) as f:
            members, non_members = f["members"], f["non_members"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{membership} is not a membership file ({exc})") from None
    from miaudit.data.records import membership_mask

    def records(values: np.ndarray, name: str) -> np.ndarray:
        # miaudit writes record numbers; a mask over the records (a file written by
        # hand) reads as the audit's membership rule reads one. Over more than two
        # records a 0/1 array of that length cannot be distinct record numbers.
        if np.ndim(values) == 1 and len(values) == data.n_records > 2:
            try:
                shape = (data.n_records,)
                return np.flatnonzero(membership_mask(values, name, shape, error=ConfigError))
            except ConfigError:
                pass  # not a mask: record numbers, checked as such
        return _row_numbers(values, name, membership)

    members = records(members, "members")
    non_members = records(non_members, "non_members")
    if np.intersect1d(members, non_members).size:
        raise ConfigError(
            f"{membership}: {np.intersect1d(members, non_members).size} records are both "
            "members and non_members; save the target again"
        )
    everything = np.concatenate([members, non_members])
    if len(everything) and (everything.min() < 0 or everything.max() >= data.n_records):
        raise ConfigError(
            f"{membership} names records beyond the {data.n_records} of '{data.name}': "
            "audit it with the data set the target was trained on"
        )
    return SavedTarget(None, None, members, non_members)


def _check_budget(config: AuditConfig, n_eval: int, splits: AuditSplits, extra: int = 0) -> None:
    """Refuse a query budget that cannot cover scoring, before training anything."""
    if config.query_budget is None:
        return
    needed = n_eval + extra
    if config.shadow_labels == "target" and config.shadow_data != "synthetic":
        needed += len(np.unique(np.concatenate([*splits.training_sets, *splits.shadow_out])))
    if config.query_budget < needed + (config.shadow_data == "synthetic"):
        what = "scoring the evaluation records" + (
            " and labelling the shadows' records" if needed > n_eval else ""
        )
        raise ConfigError(
            f"{key('query_budget', config.query_budget)} cannot cover the {needed} queries "
            f"{what} "
            f"needs: raise it to at least {needed}"
            + (" plus what hill climbing should spend" if config.shadow_data == "synthetic" else "")
        )


def _open_remote(config: AuditConfig, data: Dataset, reporter: Reporter, *, token, query_cache):
    from miaudit.protocol import InputSchema
    from miaudit.remote import HttpTarget

    target = HttpTarget(
        config.target_url,
        InputSchema.for_dataset(data),
        data.class_names,
        token=token,
        query_budget=config.query_budget,
        cache_dir=query_cache,
        batch_size=config.http.batch_size,
        timeout=config.http.timeout,
        retries=config.http.retries,
        on_retry=reporter.message,
    )
    if target.cache is not None and len(target.cache):
        reporter.message(
            f"resuming: {len(target.cache)} answered queries of {target.url} are in the query cache"
        )
    if target.cache is not None and target.cache.skipped_chunks:
        reporter.message(
            f"{len(target.cache.skipped_chunks)} query-cache chunks failed authentication "
            "(damaged, edited, or not written with your cache key) or did not read back, and "
            "were set aside (.bad); their records are asked again"
        )
    return target


def train_target_only(config: AuditConfig, out: str | Path, reporter: Reporter | None = None):
    """Train the target exactly as :func:`run_audit` would and save it with its membership."""
    reporter = reporter or Reporter()
    seeds = _seeds(config.seed)
    with reporter.stage("load_data", "loading data"):
        data = load_dataset(
            config.dataset, label=config.label, categorical=config.categorical,
            id_column=config.id_column, pixel_scale=config.pixel_scale,
            text_column=config.text_column,
        )  # fmt: skip
    _say_what_the_records_are(data, reporter)
    recipe = resolve_recipe(config.target, data)
    size = resolve_target_size(data.n_records, config.target_size)
    splits = make_splits(data.n_records, size, 1, np.random.default_rng(seeds["splits"]))
    model = _train_target(recipe, data, splits, seeds["target"], config, reporter)
    save_target(model, out, data, splits)
    P = model.predict_proba(data.X[np.concatenate([splits.target_in, splits.target_out])])
    correct = P.argmax(axis=1) == data.y[np.concatenate([splits.target_in, splits.target_out])]
    return {
        "dataset": data.name,
        "model": recipe.model,
        "n_train": size,
        "train_accuracy": float(correct[:size].mean()),
        "test_accuracy": float(correct[size:].mean()),
    }


def evaluate_arrays(
    arrays: dict[str, np.ndarray],
    config: AuditConfig,
    *,
    class_names: list[str] | None = None,
    records: np.ndarray | None = None,
    ids: np.ndarray | None = None,
    reporter: Reporter | None = None,
    execution: Execution | None = None,
) -> AuditResult:
    """Every attack of ``config.attacks`` on arrays checked by
    :func:`miaudit.evaluation.check_arrays`: the audit from its signals on. Class names,
    record numbers and ids that repeat are refused
    (:func:`miaudit.evaluation.check_identity`)."""
    from miaudit.evaluation import check_identity

    reporter = reporter or Reporter()
    seeds = _seeds(config.seed)
    n, n_classes = arrays["outputs"].shape
    names, records, ids = check_identity(n, n_classes, class_names, records, ids)
    names = names or [str(c) for c in range(n_classes)]
    member = arrays["members"].astype(np.int8)
    inputs = inputs_from_arrays(arrays)
    plan = AttackPlan.build(config.attacks.run, config.attacks.settings)
    _check_fprs(config, int((member == 0).sum()))
    outcome = _score_attacks(plan, inputs, config, names, member, seeds, reporter, execution)
    correct = arrays["outputs"].argmax(axis=1) == arrays["labels"]
    reference = arrays.get("reference_outputs")
    return AuditResult(
        config=config,
        dataset=DatasetSection(config.dataset, None, "outputs", n, None, n_classes, names),
        target=TargetSection(
            source="outputs",
            model=None,
            recipe=None,
            defense=[],
            queries=QueryCount(0, 0, None),
            n_train=int(member.sum()),
            n_test=int((member == 0).sum()),
            train_accuracy=float(correct[member == 1].mean()),
            test_accuracy=float(correct[member == 0].mean()),
        ),
        shadows=ShadowsSection(
            None if reference is None else int(reference.shape[0]),
            None,
            "outputs",
            {"n_attack_records": len(inputs.own_member)},
        ),
        record_index=np.arange(n) if records is None else np.asarray(records),
        ids=None if ids is None else np.asarray(ids),
        labels=arrays["labels"],
        member=member,
        timings_s=reporter.timings,
        kind="evaluation",
        **outcome,
    )
