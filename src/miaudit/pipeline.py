"""The audit pipeline, stage by stage: data → plan → game → models → queries → attacks →
result.

:func:`run_audit` is the one place the stages are wired together; the CLI and the
Python API (:func:`miaudit.audit`) both call it. Each stage is a call into a module named
after it (:mod:`miaudit.stages`); the game (:mod:`miaudit.games`) draws the splits and
makes the target, and every game is then played alike (:func:`play`). It returns an
:class:`AuditResult` and writes nothing: :mod:`miaudit.report` turns the result into
files. :func:`train_target_only` (``miaudit train``) and :func:`evaluate_arrays`
(``miaudit evaluate``) are the two shorter paths through the same stages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from miaudit.attacks.suite import AttackPlan, inputs_from_arrays
from miaudit.config import AuditConfig
from miaudit.data import load_dataset
from miaudit.games import get_game
from miaudit.games.base import Game, Setting
from miaudit.handover import Handover
from miaudit.jobs import Execution
from miaudit.progress import Reporter
from miaudit.result import AuditResult
from miaudit.seeds import seeds_for
from miaudit.splits import make_splits, resolve_target_size
from miaudit.stages import attacks, data, models, queries, result
from miaudit.stages.plan import check_fprs
from miaudit.stages.targets import save_target


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
    handed = data.with_python_objects(config, handed or Handover())
    records = data.load(config, handed, reporter)
    for line in config.moved:
        reporter.warn(line)
    setting = Setting(
        config, records, handed, seeds_for(config.seed), reporter, execution, token, query_cache
    )
    # The game plans the attacks, draws the splits, makes the target and lays out the
    # models' jobs; it refuses what it cannot play before anything trains.
    game = get_game(config.game).set_up(setting)
    try:
        return play(game, setting)
    finally:
        game.close()


def play(game: Game, setting: Setting) -> AuditResult:
    """One path for every game: train the models, ask the target, run the attacks,
    assemble the result."""
    reporter = setting.reporter
    outputs, job_facts = models.train(game, reporter, setting.execution)
    inputs = queries.ask(game, outputs, setting.seeds, reporter)
    outcome = attacks.score_attacks(
        game.plan, inputs, game.resolved, game.data.class_names, game.eval_member,
        setting.seeds, reporter, setting.execution,
    )  # fmt: skip
    return result.assemble(game, inputs, outcome, job_facts, reporter)


def train_target_only(config: AuditConfig, out: str | Path, reporter: Reporter | None = None):
    """Train the target exactly as :func:`run_audit` would and save it with its membership."""
    reporter = reporter or Reporter()
    seeds = seeds_for(config.seed)
    with reporter.stage("load_data", "loading data"):
        dataset = load_dataset(
            config.dataset, label=config.label, categorical=config.categorical,
            id_column=config.id_column, pixel_scale=config.pixel_scale,
            text_column=config.text_column,
        )  # fmt: skip
    data.say_what_the_records_are(dataset, reporter)
    recipe = models.resolve_recipe(config.target, dataset)
    size = resolve_target_size(dataset.n_records, config.target_size)
    splits = make_splits(dataset.n_records, size, 1, np.random.default_rng(seeds["splits"]))
    model = models.train_target(recipe, dataset, splits, seeds["target"], config, reporter)
    save_target(model, out, dataset, splits)
    evaluated = np.concatenate([splits.target_in, splits.target_out])
    correct = model.predict_proba(dataset.X[evaluated]).argmax(axis=1) == dataset.y[evaluated]
    return {
        "dataset": dataset.name,
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
    seeds = seeds_for(config.seed)
    n, n_classes = arrays["outputs"].shape
    names, records, ids = check_identity(n, n_classes, class_names, records, ids)
    names = names or [str(c) for c in range(n_classes)]
    member = arrays["members"].astype(np.int8)
    inputs = inputs_from_arrays(arrays)
    plan = AttackPlan.build(config.attacks.run, config.attacks.settings)
    check_fprs(config, int((member == 0).sum()))
    outcome = attacks.score_attacks(plan, inputs, config, names, member, seeds, reporter, execution)
    return result.evaluation(arrays, config, inputs, outcome, names, records, ids, reporter)
