"""The models an audit trains: which family trains the target and which the shadows (the
paper's recipes, the user's trainer, clones of the user's estimator), and the training
itself, cached and batched (:func:`miaudit.jobs.run_jobs`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ValidationError

from miaudit.config import AuditConfig, RecipeSpec, flatten_validation_error
from miaudit.data import Dataset
from miaudit.data.kinds import kind_of
from miaudit.errors import ConfigError, key
from miaudit.games.base import Game
from miaudit.handover import (
    Handover,
    class_map,
    clone_family,
    labels_for,
    records_for,
)
from miaudit.jobs import Execution, ShadowJob, cached_model, run_jobs
from miaudit.models import Recipe
from miaudit.models.family import ModelFamily, RecipeFamily, as_family
from miaudit.models.user import RecordAdapter, make_family
from miaudit.progress import Reporter
from miaudit.seeds import int_seeds
from miaudit.splits import (
    AuditSplits,
)


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


def trainer_family(config: AuditConfig, handed: Handover, data: Dataset) -> ModelFamily | None:
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


def shadows_family(config, handed, data, trainer, target_family, reporter) -> ModelFamily:
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


def family_facts(family: ModelFamily) -> dict[str, Any]:
    """``model`` and ``recipe`` (``None`` unless built in) of a family, for the report;
    ``trainer`` too for the user's code."""
    described = family.describe()
    facts = {"model": described["model"], "recipe": described.get("recipe")}
    if "trainer" in described:
        facts["trainer"] = described["trainer"]
    return facts


def training_sizes(training_sets) -> dict[str, int]:
    """``n_in``: how many records each shadow trains on (``n_in_min`` and ``n_in_max``
    too when they differ)."""
    sizes = [len(t) for t in training_sets]
    if not sizes:
        return {"n_in": 0}
    if min(sizes) == max(sizes):
        return {"n_in": sizes[0]}
    return {"n_in": sizes[0], "n_in_min": min(sizes), "n_in_max": max(sizes)}


def job_fingerprint(family: ModelFamily, data: Dataset) -> str | None:
    """The data's fingerprint for job keys, or ``None`` to key on the records a family's
    models read (the user's own rows carry more than their encoding)."""
    return data.fingerprint() if family.takes == "encoded" or data.raw is None else None


def train_target(
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
            int_seeds(seed, 1)[0],
            device=config.device,
            execution=execution,
            data_fingerprint=job_fingerprint(family, data),
            progress=tick.update,
            notify=reporter.message,
        )
    if from_cache:
        reporter.message("the target came from the job cache")
    return model if family.takes == "encoded" else RecordAdapter(model, records)


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
        data_fingerprint=job_fingerprint(family, data),
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


def train(game: Game, reporter: Reporter, execution: Execution | None) -> tuple[list, dict]:
    """The stage that trains the game's models (shadows, or reference models) and
    returns each one's outputs on its queries, with what the job cache gave."""
    units = as_family(game.family).units
    unit = "model-epochs" if units > 1 else "models"
    with reporter.stage("train_shadows", f"training {game.models}", unit=unit) as tick:
        outputs, job_facts = train_models(
            game.family, game.shadow_data, game.jobs, extra=game.extra,
            device=game.resolved.device, progress=tick.update, execution=execution,
            notify=reporter.message,
        )  # fmt: skip
    if job_facts["from_cache"]:
        reporter.message(
            f"{job_facts['from_cache']} of {len(game.jobs)} models' outputs came from the job cache"
        )
    return outputs, job_facts
