"""The audit pipeline: config -> data -> splits -> target / shadows -> attack -> metrics.

:func:`run_audit` is the one place the stages are wired together; the CLI and the
Python API (:func:`miaudit.audit`) both call it. It returns an :class:`AuditResult`
and writes nothing: :mod:`miaudit.report` turns the result into files.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from miaudit import __version__
from miaudit.config import AuditConfig, RecipeSpec, flatten_validation_error
from miaudit.data import Dataset, load_dataset
from miaudit.errors import ConfigError, DataError, ModelError
from miaudit.metrics import AttackMetrics, evaluate_attack, roc_points
from miaudit.models import Recipe, check_input, load_model, save_model, train_models
from miaudit.policies import PolicyTarget, apply_policies, parse_policy
from miaudit.progress import Reporter
from miaudit.shadow_data import feature_groups, shadow_records
from miaudit.splits import AuditSplits, draw_shadow_sets, make_splits, resolve_target_size
from miaudit.synthesis import format_sampler, hill_climb, records_needed
from miaudit.target import LocalTarget

#: File beside a saved target that says which records it was trained on.
MEMBERSHIP_FILE = "membership.npz"


@dataclass
class AuditResult:
    """Everything an audit found; :meth:`to_dict` is the ``results.json`` contract."""

    config: AuditConfig
    dataset: dict[str, Any]
    target: dict[str, Any]
    shadows: dict[str, Any]
    attacks: dict[str, AttackMetrics]
    attack_notes: dict[str, dict[str, Any]]
    record_index: np.ndarray
    labels: np.ndarray
    member: np.ndarray
    scores: dict[str, np.ndarray]
    roc: dict[str, dict[str, list[float]]]
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        attacks = {}
        for name, metrics in self.attacks.items():
            attacks[name] = {**metrics.to_dict(), **self.attack_notes.get(name, {})}
        return {
            "miaudit_version": __version__,
            "dataset": self.dataset,
            "target": self.target,
            "shadows": self.shadows,
            "attacks": attacks,
            "seed": self.config.seed,
            "timings_s": dict(self.timings_s),
        }


def resolve_recipe(spec: RecipeSpec, dataset: Dataset) -> Recipe:
    """A full recipe from the user's partial one: the paper's MLP for tables, CNN for images."""
    given = spec.given()
    given.setdefault("model", "cnn" if dataset.kind == "image" else "mlp")
    if given["model"] == "cnn" and dataset.kind != "image":
        raise ConfigError(
            f"--model cnn needs an image data set, but {dataset.name} is tabular: use --model mlp"
        )
    try:
        return Recipe.model_validate(given)
    except ValidationError as err:
        raise ConfigError(flatten_validation_error(err, prefix="target.")) from None


def _seeds(seed: int) -> dict[str, np.random.SeedSequence]:
    # Independent streams per purpose, so adding a shadow never changes the target's
    # split or weights, and the same seed gives the same bytes.
    names = ("splits", "target", "shadows", "attack", "shadow_data")
    return dict(zip(names, np.random.SeedSequence(seed).spawn(len(names)), strict=True))


def _int_seeds(seq: np.random.SeedSequence, n: int) -> list[int]:
    return [int(s) for s in seq.generate_state(n, dtype=np.uint32)]


def run_audit(
    config: AuditConfig,
    reporter: Reporter | None = None,
    *,
    token: str | None = None,
    query_cache: str | Path | bool | None = None,
) -> AuditResult:
    """Run the shadow-model audit that ``config`` describes and return its result.

    ``token`` and ``query_cache`` concern only a remote target (``config.target_url``):
    the service's bearer token (kept out of the configuration, so it is never
    written to ``config.json``) and the root of the query cache (see
    :class:`miaudit.remote.QueryCache`; ``False`` turns it off).
    """
    reporter = reporter or Reporter()
    seeds = _seeds(config.seed)

    with reporter.stage("load_data", "loading data"):
        data = load_dataset(config.dataset, label=config.label, categorical=config.categorical)

    saved = None
    if config.target_url is not None:
        _check_remote_options(config)
        saved = load_membership(config.membership, data)
    elif config.target_model is not None:
        if config.target.given():
            given = ", ".join(sorted(config.target.given()))
            raise ConfigError(
                f"target recipe settings ({given}) would be ignored: --target-model loads a "
                "trained target; drop them, or use --shadow-model for the shadows"
            )
        saved = load_saved_target(config.target_model, data)
    elif config.membership is not None:
        raise ConfigError(
            "--membership says which records a remote target was trained on: use it with "
            "--target-url (a saved model's membership comes with --target-model)"
        )
    # A remote target's recipe is the attacker's guess (the paper's attacker knows the
    # training algorithm): the recipe flags describe it, and the shadows use it.
    target_recipe = (
        saved.recipe
        if saved is not None and saved.recipe is not None
        else resolve_recipe(config.target, data)
    )
    shadow_recipe = (
        resolve_recipe(config.shadow, data) if config.shadow is not None else target_recipe
    )

    with reporter.stage("splits", "drawing splits"):
        if saved is not None:
            splits = make_splits(
                data.n_records,
                len(saved.members),
                config.shadows,
                np.random.default_rng(seeds["splits"]),
                fixed_target=(saved.members, saved.non_members),
            )
        else:
            size = resolve_target_size(data.n_records, config.target_size)
            splits = make_splits(
                data.n_records, size, config.shadows, np.random.default_rng(seeds["splits"])
            )

    resolved = config.model_copy(
        update={
            "target_size": splits.target_size,
            # A saved target carries its own recipe; repeating the run must not restate it.
            "target": RecipeSpec()
            if config.target_model is not None
            else RecipeSpec(**target_recipe.model_dump()),
            "shadow": RecipeSpec(**shadow_recipe.model_dump()),
        }
    )

    n_eval = len(splits.target_in) + len(splits.target_out)
    _check_budget(config, n_eval, splits)
    if config.target_url is not None:
        target = _open_remote(config, data, reporter, token=token, query_cache=query_cache)
        policies = [parse_policy(spec) for spec in target.policy]
        facts = {"source": "http", **target.describe()}
    else:
        if saved is not None:
            model = saved.model
        else:
            model = _train_target(target_recipe, data, splits, seeds["target"], config, reporter)
            if config.save_target is not None:
                save_target(model, config.save_target, data, splits)
                reporter.message(f"saved the target to {config.save_target}")
        policies = [parse_policy(spec) for spec in config.defense]
        target = LocalTarget(model, data.n_classes, query_budget=config.query_budget)
        facts = {"source": config.target_model or "trained"}
    # The attacker knows the deployed output policy: the target answers through it,
    # and the shadows' outputs pass through it too before the attack learns from them.
    # A remote service applies its own policy (and reports it); it is not applied twice.
    target = PolicyTarget(target, [] if config.target_url is not None else policies)
    try:
        return _attack(
            config,
            data,
            splits,
            target,
            policies,
            resolved=resolved,
            facts=facts,
            target_recipe=target_recipe,
            shadow_recipe=shadow_recipe,
            n_eval=n_eval,
            seeds=seeds,
            reporter=reporter,
        )
    finally:
        close = getattr(target.target, "close", None)
        if close is not None:
            close()


def _attack(
    config: AuditConfig,
    data: Dataset,
    splits: AuditSplits,
    target: PolicyTarget,
    policies: list,
    *,
    resolved: AuditConfig,
    facts: dict[str, Any],
    target_recipe: Recipe,
    shadow_recipe: Recipe,
    n_eval: int,
    seeds: dict[str, np.random.SeedSequence],
    reporter: Reporter,
) -> AuditResult:
    """Shadow data, shadows, target queries, attack and metrics: the audit once the
    target is open (``run_audit`` closes it however this ends)."""
    with reporter.stage("shadow_data", f"preparing {config.shadow_data} shadow data"):
        shadow_data, shadow_splits, source_info = prepare_shadow_data(
            data,
            splits,
            config,
            target,
            np.random.default_rng(seeds["shadow_data"]),
            reserved_queries=n_eval,
        )
    unreached = (source_info["synthesis"] or {}).get("unreached_classes", [])
    if unreached:
        reporter.message(
            f"hill climbing reached no record of {len(unreached)} classes: "
            + ", ".join(unreached[:8])
        )

    with reporter.stage("train_shadows", f"training {config.shadows} shadows") as tick:
        shadow_probs, shadow_labels, shadow_member = shadow_signals(
            shadow_recipe,
            shadow_data,
            shadow_splits,
            _int_seeds(seeds["shadows"], config.shadows),
            device=config.device,
            progress=tick.update,
        )
        shadow_probs = apply_policies(shadow_probs, policies)

    with reporter.stage("query_target", "querying the target"):
        eval_index, eval_member = splits.evaluation()
        target_probs = target.predict_proba(data.X[eval_index])
        eval_labels = data.y[eval_index]
        predicted = target_probs.argmax(axis=1)
        n_in = len(splits.target_in)
        train_acc = float((predicted[:n_in] == eval_labels[:n_in]).mean())
        test_acc = float((predicted[n_in:] == eval_labels[n_in:]).mean())

    from miaudit.attacks.shokri import ShokriAttack

    with reporter.stage("attack_fit", "fitting the attack models"):
        # The audit's seed governs the attack's randomness too; attack.seed shifts it.
        attack_seed = (_int_seeds(seeds["attack"], 1)[0] + config.attack.seed) % 2**32
        attack = ShokriAttack.from_config(config.attack.model_copy(update={"seed": attack_seed}))
        attack.fit(shadow_probs, shadow_labels, shadow_member)
    with reporter.stage("attack_score", "scoring the target's records"):
        scores = attack.score(target_probs, eval_labels)
    with reporter.stage("metrics", "computing metrics"):
        metrics = evaluate_attack(scores, eval_member, eval_labels, data.class_names, threshold=0.5)
        fpr, tpr, _ = roc_points(scores, eval_member)
    fallback = [data.class_names[c] for c in sorted(attack.fallback_classes_)]
    if fallback:
        reporter.message(
            f"{len(fallback)} classes had too few attack records and used the class-agnostic "
            f"attack model: {', '.join(fallback[:8])}{' …' if len(fallback) > 8 else ''}"
        )

    return AuditResult(
        config=resolved,
        dataset=data.summary(),
        target={
            **facts,
            # A remote target's recipe is unknown; the shadows' recipe is the attacker's guess.
            "model": None if config.target_url is not None else target_recipe.model,
            "recipe": None
            if config.target_url is not None
            else target_recipe.model_dump(mode="json"),
            "defense": [p.spec for p in policies],
            "queries": {
                "sent": target.target.queries_,
                "from_cache": getattr(target.target, "cached_", 0),
                "budget": config.query_budget,
            },
            "n_train": len(splits.target_in),
            "n_test": len(splits.target_out),
            "train_accuracy": train_acc,
            "test_accuracy": test_acc,
        },
        shadows={
            "count": splits.n_shadows,
            "source": config.shadow_data,
            "noise": config.noise if config.shadow_data == "noisy" else None,
            "labels": config.shadow_labels,
            "target_queries": source_info["target_queries"],
            "synthesis": source_info["synthesis"],
            "model": shadow_recipe.model,
            "recipe": shadow_recipe.model_dump(mode="json"),
            "n_in": len(shadow_splits.shadow_in[0]),
            "n_out": len(shadow_splits.shadow_out[0]),
            "pool_size": len(shadow_splits.pool),
        },
        attacks={"shokri": metrics},
        attack_notes={
            "shokri": {
                "learner": config.attack.learner,
                "per_class_models": config.attack.per_class,
                "fallback_classes": fallback,
                "n_attack_records": len(shadow_member),
            }
        },
        record_index=eval_index,
        labels=eval_labels,
        member=eval_member,
        scores={"shokri": scores},
        roc={"shokri": {"fpr": fpr.tolist(), "tpr": tpr.tolist()}},
        timings_s=reporter.timings,
    )


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
        used = np.unique(np.concatenate([*splits.shadow_in, *splits.shadow_out]))
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
            "for a shadow; raise --query-budget or synthesis.iter_max, or lower synthesis.conf_min"
        )
    synth = dataclasses.replace(
        data, X=result.X.reshape(-1, *data.input_shape), y=result.y, name=f"{data.name}-synthetic"
    )
    pool = np.arange(len(result.y))
    shadow_in, shadow_out = draw_shadow_sets(pool, size, splits.n_shadows, rng)
    shadow_splits = dataclasses.replace(
        splits, pool=pool, shadow_in=shadow_in, shadow_out=shadow_out
    )
    return synth, shadow_splits, info


def _train_target(
    recipe: Recipe,
    data: Dataset,
    splits: AuditSplits,
    seed: np.random.SeedSequence,
    config: AuditConfig,
    reporter: Reporter,
):
    # One function for `audit` and `train`, so a saved target is the one an audit
    # with the same seed would have trained.
    with reporter.stage("train_target", "training target", total=1) as tick:
        models = train_models(
            recipe,
            data.X,
            data.y,
            data.n_classes,
            [splits.target_in],
            _int_seeds(seed, 1),
            device=config.device,
            progress=tick.update,
        )
    return models.model(0)


def shadow_signals(
    recipe: Recipe,
    data: Dataset,
    splits: AuditSplits,
    seeds: list[int],
    *,
    device: str = "cpu",
    progress=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train the shadows and return their outputs on their own in/out records.

    Returns ``(probabilities (m, C), labels (m,), member (m,))`` stacked over shadows;
    the models themselves are dropped here, only their outputs flow on.
    """
    models = train_models(
        recipe,
        data.X,
        data.y,
        data.n_classes,
        list(splits.shadow_in),
        seeds,
        device=device,
        progress=progress,
    )
    probs, labels, member = [], [], []
    for k in range(models.n_models):
        index = np.concatenate([splits.shadow_in[k], splits.shadow_out[k]])
        probs.append(models.model(k).predict_proba(data.X[index]))
        labels.append(data.y[index])
        member.append(
            np.r_[
                np.ones(len(splits.shadow_in[k]), np.int8),
                np.zeros(len(splits.shadow_out[k]), np.int8),
            ]
        )
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(member)


@dataclass
class SavedTarget:
    """A target's membership, and its model and recipe where they are local."""

    model: Any
    recipe: Recipe | None
    members: np.ndarray
    non_members: np.ndarray


def save_target(model, path: str | Path, data: Dataset, splits: AuditSplits) -> None:
    """Save a trained target and which records it was trained on (so it can be audited)."""
    path = Path(path)
    save_model(model, path, class_names=data.class_names, dataset_fingerprint=data.fingerprint())
    np.savez(
        path / MEMBERSHIP_FILE,
        members=splits.target_in,
        non_members=splits.target_out,
    )
    (path / "dataset.json").write_text(
        json.dumps(
            {
                "name": data.name,
                "fingerprint": data.fingerprint(),
                # What `miaudit serve` needs to take raw records: the data's own columns
                # and the encoder that turns them into the model's inputs.
                "kind": data.kind,
                "input_shape": list(data.input_shape),
                "encoder": data.encoder,
            },
            indent=2,
        )
        + "\n"
    )


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


def load_membership(path: str | Path, data: Dataset) -> SavedTarget:
    """Which records of ``data`` a target was trained on, from a saved target's folder
    (or its ``membership.npz``); the folder's data fingerprint must match ``data``."""
    path = Path(path)
    folder, membership = (path, path / MEMBERSHIP_FILE) if path.is_dir() else (path.parent, path)
    if not membership.is_file():
        raise ConfigError(
            f"--membership {path}: no {MEMBERSHIP_FILE} there; pass the folder `miaudit train` "
            "saved the target into, or its membership.npz"
        )
    info_file = folder / "dataset.json"
    if info_file.is_file():
        info = json.loads(info_file.read_text())
        if info.get("fingerprint") != data.fingerprint():
            raise ModelError(
                f"{folder} was trained on data set '{info.get('name')}', whose content differs "
                f"from '{data.name}': audit it with --dataset {info.get('name')}"
            )
    try:
        with np.load(membership) as f:
            members, non_members = f["members"], f["non_members"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{membership} is not a membership file ({exc})") from None
    everything = np.concatenate([members, non_members])
    if len(everything) and (everything.min() < 0 or everything.max() >= data.n_records):
        raise ConfigError(
            f"{membership} names records beyond the {data.n_records} of '{data.name}': "
            "audit it with the data set the target was trained on"
        )
    return SavedTarget(None, None, members, non_members)


def _check_remote_options(config: AuditConfig) -> None:
    """Refuse options that make no sense for a remote target, before any work."""
    if config.target_model is not None:
        raise ConfigError("--target-url and --target-model both name the target: pass one")
    if config.save_target is not None:
        raise ConfigError("--save-target saves a target trained here; a remote one cannot be")
    if config.defense:
        raise ConfigError(
            "--defense applies an output policy to a local target; a service applies its own "
            "and reports it (miaudit serve --top-k/--round/--temperature/--label-only)"
        )
    if config.membership is None:
        raise ConfigError(
            "an audit of --target-url must know which records the target was trained on: "
            "pass --membership (the saved target's folder or its membership.npz)"
        )


def _check_budget(config: AuditConfig, n_eval: int, splits: AuditSplits) -> None:
    """Refuse a query budget that cannot cover scoring, before training anything."""
    if config.query_budget is None:
        return
    needed = n_eval
    if config.shadow_labels == "target" and config.shadow_data != "synthetic":
        needed += len(np.unique(np.concatenate([*splits.shadow_in, *splits.shadow_out])))
    if config.query_budget < needed + (config.shadow_data == "synthetic"):
        what = "scoring the evaluation records" + (
            " and labelling the shadows' records" if needed > n_eval else ""
        )
        raise ConfigError(
            f"--query-budget {config.query_budget} cannot cover the {needed} queries {what} "
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
            f"{len(target.cache.skipped_chunks)} unreadable query-cache chunks were set aside; "
            "their records are asked again"
        )
    return target


def train_target_only(config: AuditConfig, out: str | Path, reporter: Reporter | None = None):
    """Train the target exactly as :func:`run_audit` would and save it with its membership."""
    reporter = reporter or Reporter()
    seeds = _seeds(config.seed)
    with reporter.stage("load_data", "loading data"):
        data = load_dataset(config.dataset, label=config.label, categorical=config.categorical)
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
