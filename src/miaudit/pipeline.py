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
from miaudit.attacks.base import AttackInputs, PlanContext, RecordFormat
from miaudit.attacks.registry import get_attack
from miaudit.attacks.suite import (
    AttackPlan,
    inputs_from_arrays,
    inputs_to_arrays,
    run_attacks,
)
from miaudit.config import AuditConfig, RecipeSpec, flatten_validation_error
from miaudit.data import Dataset, load_dataset
from miaudit.errors import ConfigError, DataError, ModelError
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
    AttackMetrics,
    attack_strength,
    evaluate_attack,
    roc_points,
)
from miaudit.models import Recipe, check_input, load_model, save_model
from miaudit.models.family import ModelFamily, RecipeFamily, as_family
from miaudit.models.user import RecordAdapter, make_family
from miaudit.policies import PolicyTarget, apply_policies, parse_policy
from miaudit.progress import Reporter
from miaudit.shadow_data import feature_groups, shadow_records
from miaudit.signals import ReferenceSignals
from miaudit.splits import (
    AuditSplits,
    balanced_memberships,
    draw_shadow_sets,
    make_splits,
    online_shadow_sets,
    resolve_target_size,
)
from miaudit.synthesis import format_sampler, hill_climb, records_needed
from miaudit.target import LocalTarget

#: How many of the most exposed records ``results.json`` lists.
MOST_EXPOSED = 20
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
    #: Each evaluated record's row in the table the user gave (their file or
    #: DataFrame; a built-in set's :func:`miaudit.data.load_frame`), duplicates counted.
    record_index: np.ndarray
    labels: np.ndarray
    member: np.ndarray
    scores: dict[str, np.ndarray]
    roc: dict[str, dict[str, list[float]]]
    timings_s: dict[str, float] = field(default_factory=dict)
    #: How the work ran (jobs trained, jobs answered from the cache): like the
    #: timings, facts of this run rather than results, so not in ``results.json``.
    execution: dict[str, Any] = field(default_factory=dict)
    #: The signals the attacks scored from (see :meth:`outputs`).
    inputs: AttackInputs | None = field(default=None, repr=False)
    #: ``"audit"``, or ``"evaluation"`` of outputs computed elsewhere.
    kind: str = "audit"
    #: The user's own id of each evaluated record, when the data has ids.
    ids: np.ndarray | None = None

    @property
    def strongest(self) -> str:
        """The attack with the highest TPR at 1 % FPR (then the highest AUC)."""
        return self.ranked()[0]

    def ranked(self) -> list[str]:
        """The attacks, strongest first (TPR at 1 % FPR, then AUC; ties keep their order)."""
        return sorted(
            self.attacks,
            key=lambda n: attack_strength(self.attacks[n].tpr_at_fpr, self.attacks[n].auc),
            reverse=True,
        )

    def most_exposed(self, n: int = MOST_EXPOSED) -> dict[str, Any]:
        """The records the strongest attack most confidently calls members."""
        name = self.strongest
        scores = np.asarray(self.scores[name])
        top = np.argsort(-scores, kind="stable")[:n]
        names = self.dataset.get("class_names") or []
        return {
            "attack": name,
            "records": [
                {
                    "rank": rank + 1,
                    "record": int(self.record_index[i]),
                    **({} if self.ids is None else {"id": _plain(self.ids[i])}),
                    "label": names[int(self.labels[i])] if names else int(self.labels[i]),
                    "member": bool(self.member[i]),
                    "score": float(scores[i]),
                }
                for rank, i in enumerate(top)
            ],
        }

    def __repr__(self) -> str:
        best = self.attacks[self.strongest]
        at_1 = best.tpr_at_fpr.get("0.01")
        tpr = "–" if at_1 is None else f"{at_1:.3f}"
        return (
            f"<AuditResult {self.dataset.get('name')}: {len(self.member):,} records evaluated "
            f"({int(np.sum(self.member)):,} members), {len(self.attacks)} attacks; strongest "
            f"{self.strongest}: AUC {best.auc:.3f}, TPR at 1% FPR {tpr}>"
        )

    def summary(self) -> str:
        """A few lines for a person: the target, and each attack's headline figures,
        strongest first (TPR at 1 % FPR, then AUC)."""
        tg = self.target
        what = (
            f"outputs computed elsewhere, {tg['n_train']:,} members and {tg['n_test']:,} "
            "non-members"
            if self.kind == "evaluation"
            else f"{self.dataset.get('name')}: {tg.get('model') or tg.get('source')} as target, "
            f"{tg['n_train']:,} training records"
        )
        lines = [
            f"{what}; train accuracy {tg['train_accuracy']:.3f}, "
            f"test accuracy {tg['test_accuracy']:.3f}",
            f"{'attack':<16} {'AUC':>6} {'TPR@0.1%':>9} {'TPR@1%':>8} {'advantage':>9} "
            f"{'eps>=@1%':>9}",
        ]

        def rate(v: float | None) -> str:
            return "–" if v is None else f"{v:.3f}"

        for name in self.ranked():
            m = self.attacks[name]
            eps = (m.epsilon_lower_bound_cp or {}).get("0.01")
            lines.append(
                f"{name:<16} {m.auc:>6.3f} {rate(m.tpr_at_fpr.get('0.001')):>9} "
                f"{rate(m.tpr_at_fpr.get('0.01')):>8} {m.advantage:>9.3f} {rate(eps):>9}"
            )
        return "\n".join(lines)

    def to_frame(self, *, label_names: bool = True):
        """One row per evaluated record: ``record`` (its row in your table), ``id`` (when
        the data has ids), ``label`` (its class's name), ``member``, a ``score_<attack>``
        column per attack (higher: surer it was a member) and ``exposure_rank`` (1 = the
        record the strongest attack is surest of). A pandas DataFrame.

        ``label_names=False`` gives class codes and 0/1 members, as ``scores.csv`` does.
        """
        import pandas as pd

        labels = np.asarray(self.labels, dtype=np.int64)
        names = self.dataset.get("class_names")
        frame = pd.DataFrame(
            {
                "record": np.asarray(self.record_index, dtype=np.int64),
                **({} if self.ids is None else {"id": np.asarray(self.ids)}),
                "label": np.asarray(names, dtype=object)[labels]
                if label_names and names
                else labels,
                "member": np.asarray(self.member, dtype=bool if label_names else np.int64),
                **{f"score_{n}": np.asarray(v, dtype=np.float64) for n, v in self.scores.items()},
            }
        )
        # Whose privacy is most at stake: 1 = the record the strongest attack is surest of.
        strongest = np.asarray(self.scores[self.strongest], dtype=np.float64)
        rank = np.empty(len(strongest), dtype=np.int64)
        rank[np.argsort(-strongest, kind="stable")] = np.arange(1, len(strongest) + 1)
        frame["exposure_rank"] = rank
        return frame

    def plot_roc(self, ax=None, *, log: bool = True, attacks: list[str] | None = None):
        """Each attack's ROC curve with matplotlib, on log-log axes by default (the low
        false-positive end is where membership inference matters). Returns the axes."""
        import matplotlib.pyplot as plt

        names = list(attacks) if attacks is not None else list(self.attacks)
        unknown = [n for n in names if n not in self.roc]
        if unknown:
            raise ConfigError(
                f"plot_roc: no attack {unknown[0]!r} in this result; it has "
                f"{', '.join(self.attacks)}"
            )
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 4.5))
        floor = 1.0 / max(1, int(np.sum(np.asarray(self.member) == 0)))
        for name in names:
            curve = self.roc[name]
            ax.plot(curve["fpr"], curve["tpr"], label=f"{name} (AUC {self.attacks[name].auc:.3f})")
        ax.plot([floor, 1], [floor, 1], color="grey", linestyle=":", label="chance")
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(floor, 1)
            ax.set_ylim(floor, 1)
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_title(f"Membership inference: {self.dataset.get('name')}")
        ax.legend(fontsize="small")
        return ax

    def outputs(self) -> dict[str, np.ndarray]:
        """The arrays the attacks scored from, named as :func:`miaudit.evaluate` takes them
        (:data:`miaudit.attacks.suite.OUTPUT_ARRAYS`)."""
        if self.inputs is None:
            raise ConfigError("this result keeps no outputs")
        return inputs_to_arrays(self.inputs, self.member)

    def evaluate_settings(self) -> dict[str, Any]:
        """The settings that, with :meth:`outputs`, give back this result:
        ``miaudit.evaluate(result.outputs(), **result.evaluate_settings())`` (all but the
        attacks that ask the target itself, such as ``boundary``)."""
        c = self.config
        # Attacks that ask the target adaptively cannot be replayed from outputs.
        replayable = tuple(n for n in self.attacks if not get_attack(n)().needs().adaptive)
        settings = c.attacks.resolved(replayable)
        return {
            "attacks": settings.pop("run"),
            "attack_settings": settings,
            "seed": c.seed,
            "bootstrap": c.bootstrap,
            "fprs": list(c.fprs),
            "class_names": list(self.dataset.get("class_names") or []) or None,
            "records": self.record_index,
            "ids": self.ids,
        }

    def save_outputs(self, path: str | Path) -> Path:
        """Write :meth:`outputs`, the settings and the records' identity to one ``.npz``,
        for ``miaudit evaluate`` (or :func:`miaudit.evaluate`)."""
        from miaudit.evaluation import write_outputs

        settings = self.evaluate_settings()
        meta = {
            "class_names": settings.pop("class_names"),
            "records": settings.pop("records"),
            "ids": settings.pop("ids"),
            "settings": settings,
        }
        return write_outputs(path, self.outputs(), meta)

    def config_dict(self) -> dict[str, Any]:
        """``config.json``: the settings that repeat this run (``--config``), or for an
        evaluation the settings ``miaudit evaluate`` takes."""
        if self.kind == "evaluation":
            settings = self.evaluate_settings()
            del settings["records"], settings["ids"]  # arrays: they are in outputs.npz
            return {"evaluate": settings}
        return self.config.resolved_dict()

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
            "strongest_attack": self.strongest,
            "most_exposed": self.most_exposed(),
            "seed": self.config.seed,
            "timings_s": dict(self.timings_s),
        }


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value JSON writes."""
    return value.item() if isinstance(value, np.generic) else value


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
    )
    return dict(zip(names, np.random.SeedSequence(seed).spawn(len(names)), strict=True))


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
    if data.notes.get("id_like_columns"):
        columns = ", ".join(data.notes["id_like_columns"])
        reporter.warn(
            f"column(s) {columns} hold a different value in every row: identifiers, most "
            "likely, which let a model memorise records; name one with --id-column "
            "(id_column=) or drop it"
        )

    for line in config.moved:
        reporter.warn(line)
    if config.game == "recipe":
        return _recipe_game(config, data, seeds, reporter, execution, handed)
    remote = remote_membership = None
    if config.target_url is not None:
        _check_remote_options(config)
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


def _label_only(config: AuditConfig, remote=None) -> bool:
    """Whether the target answers labels only (a service says so; a local target's
    output policy does)."""
    if remote is not None:
        return bool(remote.label_only)
    return any(parse_policy(spec).label_only for spec in config.defense)


def _plan(config: AuditConfig, label_only: bool, reporter: Reporter) -> AttackPlan:
    """The audit's attacks with their settings; the default set adapts to a label-only
    target (and says so)."""
    plan = AttackPlan.build(config.attacks.run, config.attacks.settings, label_only=label_only)
    if plan.left_out:
        reporter.warn(
            f"the target answers labels only: {', '.join(plan.left_out)} need probabilities "
            "and were left out of the default attacks (label-only attacks: gap, robustness, "
            "boundary)"
        )
    return plan


def _deployed_game(config, data, handed, remote, seeds, reporter, execution) -> AuditResult:
    """The paper's game: a deployed target's members against its non-members, shadows
    trained on the attacker's pool. ``remote`` is a remote target and its membership,
    or ``(None, None)``."""
    remote, remote_membership = remote
    saved = None
    user = handed.target is not None
    if user:
        _check_user_target_options(config)
    if remote is not None:
        saved = remote_membership
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
    trainer = _trainer_family(config, handed, data)
    # A remote target's recipe is the attacker's guess (the paper's attacker knows the
    # training algorithm): the recipe flags describe it, and the shadows use it.
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
    shadow_family = _shadows_family(config, handed, data, trainer, target_family, reporter)

    found = None
    named = (handed.members, handed.non_members, config.members, config.non_members)
    if not user and any(m is not None for m in named):
        raise ConfigError(
            "members= names the training records of your own model: pass it as target= "
            "(a saved or remote target brings its own membership, a trained one is drawn)"
        )
    rng = np.random.default_rng(seeds["splits"])
    if user:
        found = membership(data, handed, config, rng)
        if found is None:
            raise ConfigError(
                "members: name the records your target was trained on (members= a mask, row "
                "positions or ids of data; --members FILE on the command line)"
            )
    plan = _plan(config, _label_only(config, remote), reporter)
    plan.check(
        PlanContext(
            n_shadows=config.shadows, shadow_data=config.shadow_data, game="shokri",
            online=plan.online, label_only=_label_only(config, remote),
        )
    )  # fmt: skip
    with reporter.stage("splits", "drawing splits"):
        splits, member_facts = _draw_splits(config, data, plan, saved, found, rng)
    if splits.overlap:
        reporter.message(
            f"the attacker's pool of {len(splits.pool):,} records is smaller than two training "
            f"sets of {splits.shadow_size:,}: each shadow trains on {splits.shadow_size:,} of "
            f"them (their training sets overlap) and is tested on the other "
            f"{len(splits.shadow_out[0]):,}"
        )

    resolved = config.model_copy(
        update={
            "dataset": data.name if handed.data is not None else config.dataset,
            "target_size": splits.target_size,
            # A saved target carries its own recipe; repeating the run must not restate it.
            "target": RecipeSpec()
            if target_recipe is None or config.target_model is not None or trainer is not None
            else RecipeSpec(**target_recipe.model_dump()),
            "shadow": RecipeSpec(**shadow_family.recipe.model_dump())
            if isinstance(shadow_family, RecipeFamily)
            else None,
            "attacks": config.attacks.model_copy(update={"run": list(plan.names)}),
        }
    )

    _check_fprs(config, len(splits.target_out))
    population = _draw_population(plan, splits, np.random.default_rng(seeds["population"]))
    if plan.population and len(population) < 10:
        raise ConfigError(
            f"rmia compares records with population records from the attacker's pool, which "
            f"holds {len(splits.pool)}: leave more records out of the evaluation "
            "(non_members=), or drop rmia and rmia-offline from the attacks"
        )
    public = _draw_public(plan, splits.pool, np.random.default_rng(seeds["public"]))
    if plan.online:
        splits, _ = online_shadow_sets(
            splits, np.random.default_rng(seeds["online"]), extra=population
        )
    n_eval = len(splits.target_in) + len(splits.target_out)
    extra_queries = plan.extra_queries(n_eval, len(population), len(public))
    _check_budget(config, n_eval, splits, extra=extra_queries)
    if remote is not None:
        facts = {"source": "http", **remote.describe()}
        policies = [parse_policy(spec) for spec in remote.policy]
        target = remote
    else:
        if user:
            model, facts = open_target(handed.target, data)
            facts.update(member_facts)
        elif saved is not None:
            model = saved.model
            facts = {"source": config.target_model}
        else:
            model = _train_target(
                target_family, data, splits, seeds["target"], config, reporter, execution
            )
            if config.save_target is not None:
                save_target(model, config.save_target, data, splits)
                reporter.message(f"saved the target to {config.save_target}")
            facts = {"source": "trained"}
        policies = [parse_policy(spec) for spec in config.defense]
        target = LocalTarget(model, data.n_classes, query_budget=config.query_budget)
    # The attacker knows the deployed output policy: the target answers through it,
    # and the shadows' outputs pass through it too before the attack learns from them.
    # A remote service applies its own policy (and reports it); it is not applied twice.
    target = PolicyTarget(target, [] if remote is not None else policies)
    if remote is not None:
        described = {"model": None, "recipe": None}
    elif user:
        described = {"model": facts["model"], "recipe": None}
    else:
        described = target_family.describe()
    try:
        return _attack(
            config,
            data,
            splits,
            target,
            policies,
            plan=plan,
            population=population,
            public=public,
            execution=execution,
            resolved=resolved,
            facts={**facts, **described},
            shadow_family=shadow_family,
            n_eval=n_eval,
            seeds=seeds,
            reporter=reporter,
        )
    finally:
        close = getattr(target.target, "close", None)
        if close is not None and remote is None:
            close()


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
        (config.target_python, "target", "--target-python"),
        (config.trainer_python, "trainer", "--trainer-python"),
    ):
        if spec is None:
            continue
        if getattr(handed, field_name) is not None:
            raise ConfigError(f"{flag} and {field_name}= both name the {field_name}: pass one")
        handed = dataclasses.replace(
            handed, **{field_name: load_object(spec, config.python_path, flag)}
        )
    return handed


def _refuse_given(config: AuditConfig, flags: dict[str, str], why: str) -> None:
    """Refuse the first of the options ``flags`` (field name -> flag) that is set:
    ``why`` (with ``{flag}``) says why it does not apply."""
    for name, flag in flags.items():
        if getattr(config, name) is not None:
            raise ConfigError(why.format(flag=flag))


def _check_user_target_options(config: AuditConfig) -> None:
    """Refuse options that contradict auditing the user's own fitted model."""
    _refuse_given(
        config,
        {"target_url": "--target-url", "target_model": "--target-model",
         "save_target": "--save-target", "membership": "--membership"},
        "target= is your own model, so {flag} does not apply: pass one target",
    )  # fmt: skip
    if config.target.given():
        given = ", ".join(sorted(config.target.given()))
        raise ConfigError(
            f"target recipe settings ({given}) would be ignored: target= is already trained; "
            "say how to train shadows with trainer= (or shadow={'model': ...})"
        )


def _trainer_family(config: AuditConfig, handed: Handover, data: Dataset) -> ModelFamily | None:
    """The family the user's ``trainer`` makes, or ``None``."""
    if handed.trainer is None:
        return None
    if config.shadow is not None:
        raise ConfigError(
            "trainer= and the shadow recipe (--shadow-model) both say how shadows train: pass one"
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


def _attack(
    config: AuditConfig,
    data: Dataset,
    splits: AuditSplits,
    target: PolicyTarget,
    policies: list,
    *,
    plan: AttackPlan,
    population: np.ndarray,
    public: np.ndarray,
    execution: Execution | None,
    resolved: AuditConfig,
    facts: dict[str, Any],
    shadow_family: ModelFamily,
    n_eval: int,
    seeds: dict[str, np.random.SeedSequence],
    reporter: Reporter,
) -> AuditResult:
    """Shadow data, shadows, target queries, attacks and metrics: the audit once the
    target is open (``run_audit`` closes it however this ends)."""
    with reporter.stage("shadow_data", f"preparing {config.shadow_data} shadow data"):
        shadow_data, shadow_splits, source_info = prepare_shadow_data(
            data,
            splits,
            config,
            target,
            np.random.default_rng(seeds["shadow_data"]),
            reserved_queries=n_eval + plan.extra_queries(n_eval, len(population), len(public)),
        )
    unreached = (source_info["synthesis"] or {}).get("unreached_classes", [])
    if unreached:
        reporter.message(
            f"hill climbing reached no record of {len(unreached)} classes: "
            + ", ".join(unreached[:8])
        )
    eval_index, eval_member = splits.evaluation()
    eval_labels = data.y[eval_index]
    reference = _reference_records(
        plan, config, data, splits, shadow_data, shadow_splits, population
    )

    with reporter.stage("train_shadows", f"training {config.shadows} shadows") as tick:
        shadow_probs, shadow_labels, shadow_member, ref_probs, job_facts = shadow_signals(
            shadow_family,
            shadow_data,
            shadow_splits,
            _int_seeds(seeds["shadows"], config.shadows),
            device=config.device,
            progress=tick.update,
            extra=None if reference is None else reference["X"],
            execution=execution,
            notify=reporter.message,
        )
        shadow_probs = apply_policies(shadow_probs, policies)
        if ref_probs is not None:
            ref_probs = apply_policies(ref_probs.reshape(-1, data.n_classes), policies).reshape(
                ref_probs.shape
            )
    if job_facts["from_cache"]:
        reporter.message(
            f"{job_facts['from_cache']} of {config.shadows} shadows' outputs came from the job "
            "cache"
        )

    with reporter.stage("query_target", "querying the target"):
        target_probs = target.predict_proba(data.X[eval_index])
        predicted = target_probs.argmax(axis=1)
        n_in = len(splits.target_in)
        train_acc = float((predicted[:n_in] == eval_labels[:n_in]).mean())
        test_acc = float((predicted[n_in:] == eval_labels[n_in:]).mean())
        inputs = AttackInputs(
            own_probs=shadow_probs,
            own_labels=shadow_labels,
            own_member=shadow_member,
            target_probs=target_probs,
            labels=eval_labels,
            n_eval=len(eval_index),
        )
        _ask_target(plan, inputs, target, data, eval_index, public, seeds)
        if reference is not None:
            inputs.reference = ReferenceSignals(ref_probs, reference["member"], reference["labels"])
            inputs.population = reference["population"]
            inputs.calibration = reference["calibration"]
            if len(reference["z"]):
                inputs.target_population = target.predict_proba(data.X[reference["z"]])
            if len(reference["variants"]):
                inputs.variants = reference["variants"]
                rows = reference["X"][reference["variants"].reshape(-1)]
                inputs.target_variants = target.predict_proba(rows).reshape(
                    *reference["variants"].shape, -1
                )

    outcome = _score_attacks(
        plan, inputs, config, data.class_names, eval_member, seeds, reporter, execution
    )
    queries = {
        "sent": target.target.queries_,
        "from_cache": getattr(target.target, "cached_", 0),
        "budget": config.query_budget,
    }
    return AuditResult(
        config=resolved,
        dataset=data.summary(),
        target={
            # A remote target's recipe is unknown; the shadows' recipe is the attacker's guess.
            **facts,
            "defense": [p.spec for p in policies],
            "queries": queries,
            # Your own target's training set may be larger than the members evaluated.
            "n_train": facts.get("members_given", len(splits.target_in)),
            "n_test": len(splits.target_out),
            "train_accuracy": train_acc,
            "test_accuracy": test_acc,
        },
        shadows={
            "count": splits.n_shadows,
            "game": "shokri",
            "draw": "online" if plan.online else "disjoint",
            "source": config.shadow_data,
            "noise": config.noise if config.shadow_data == "noisy" else None,
            "labels": config.shadow_labels,
            "target_queries": source_info["target_queries"],
            "synthesis": source_info["synthesis"],
            **_family_facts(shadow_family),
            "n_in": len(shadow_splits.training_sets[0]),
            "n_out": len(shadow_splits.shadow_out[0]),
            "pool_size": len(shadow_splits.pool),
            **({"overlapping_in_sets": True} if shadow_splits.overlap else {}),
        },
        record_index=data.rows[eval_index],
        ids=None if data.ids is None else data.ids[eval_index],
        labels=eval_labels,
        member=eval_member,
        timings_s=reporter.timings,
        execution={"jobs": job_facts},
        **outcome,
    )


def _family_facts(family: ModelFamily) -> dict[str, Any]:
    """``model`` and ``recipe`` (``None`` unless built in) of a family, for the report;
    ``trainer`` too for the user's code."""
    described = family.describe()
    facts = {"model": described["model"], "recipe": described.get("recipe")}
    if "trainer" in described:
        facts["trainer"] = described["trainer"]
    return facts


def _recipe_game(
    config: AuditConfig,
    data: Dataset,
    seeds: dict[str, np.random.SeedSequence],
    reporter: Reporter,
    execution: Execution | None,
    handed: Handover,
) -> AuditResult:
    """The "audit a training recipe" game LiRA and RMIA report on.

    A pool of ``2 × target_size`` records; the target and ``config.shadows``
    reference models are trained with the recipe, each on a random half of the pool,
    drawn so that every record is IN for half of the models. Every pool record is
    then scored against the target (model 0) from the reference models' outputs: a
    leakage score for every record of the pool. RMIA's population records come from
    outside the pool; the reference models (not the target) train on halves of them.
    With the user's ``trainer``, the target and every reference model come from it:
    the game audits the user's own training code.
    """
    if handed.target is not None:
        raise ConfigError(
            "--game recipe trains its own target, so target= does not apply: pass the "
            "training code as trainer=, or use the default --game shokri"
        )
    if handed.members is not None or config.members is not None:
        raise ConfigError("--game recipe draws its own members: drop members=")
    _refuse_given(
        config,
        {"target_model": "--target-model", "target_url": "--target-url",
         "save_target": "--save-target"},
        "--game recipe trains its target with the recipe, so {flag} does not apply: drop it, "
        "or use the default --game shokri",
    )  # fmt: skip
    if config.shadow_data != "real":
        raise ConfigError("--game recipe trains every model on the pool: use --shadow-data real")
    family = _trainer_family(config, handed, data)
    recipe = None
    if family is None:
        recipe = resolve_recipe(config.target, data)
        family = RecipeFamily(recipe)
    if config.shadow is not None and resolve_recipe(config.shadow, data) != recipe:
        raise ConfigError(
            "--game recipe audits one recipe: the reference models share the target's, so "
            "drop --shadow-model"
        )
    records = records_for(family.takes, data, family.describe()["model"])
    X_in, y_in = records(data.X), labels_for(family, data)
    fingerprint = _fingerprint(family, data)
    policies = [parse_policy(spec) for spec in config.defense]
    plan = _plan(config, _label_only(config), reporter)
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
            f"--game recipe needs a pool of 2 × --target-size = {pool_size} records"
            + (" and population records for RMIA outside it" if plan.population else "")
            + f", but {data.name} has {data.n_records}: lower --target-size"
        )
    # Half the pool, about, are non-members of the target.
    _check_fprs(config, pool_size // 2)
    n_models = config.shadows + 1
    with reporter.stage("splits", "drawing the pool"):
        rng = np.random.default_rng(seeds["splits"])
        order = rng.permutation(data.n_records)
        pool = np.sort(order[:pool_size])
        z = np.sort(order[pool_size : pool_size + population])
        # The target takes an independent random half; the reference models balanced
        # halves (see balanced_memberships), so each pool record is IN for half of them.
        target_half = np.zeros(pool_size, dtype=bool)
        target_half[rng.permutation(pool_size)[: pool_size // 2]] = True
        keep = np.vstack([target_half, balanced_memberships(config.shadows, pool_size, rng)])
        # Reference models also train on halves of the population records, as RMIA's
        # do; the target never sees them.
        keep_z = balanced_memberships(config.shadows, len(z), rng)
        in_sets = [pool[keep[0]]] + [
            np.sort(np.concatenate([pool[keep[k]], z[keep_z[k - 1]]])) for k in range(1, n_models)
        ]
    # Records the target never saw, for QMIA: any outside the pool.
    public = _draw_public(plan, order[pool_size:], np.random.default_rng(seeds["public"]))
    extra = plan.extra_queries(pool_size, len(z), len(public))
    if config.query_budget is not None and config.query_budget < pool_size + extra:
        raise ConfigError(
            f"--query-budget {config.query_budget} cannot cover the {pool_size + extra} "
            f"queries the recipe game needs: raise it to at least {pool_size + extra}"
        )
    asked = np.concatenate([pool, z])
    variant_rows = np.zeros((0, *data.input_shape), np.float32)
    if plan.variants:
        variant_rows = plan.make_queries(
            "variants", data.X[pool], record_format(data), np.random.default_rng(0)
        ).reshape(-1, *data.input_shape)
    model_seeds = _int_seeds(seeds["shadows"], n_models)
    with reporter.stage("train_target", "training target", total=1) as tick:
        model, _ = cached_model(
            family, X_in, y_in, data.n_classes, in_sets[0], model_seeds[0],
            device=config.device, execution=execution, data_fingerprint=fingerprint,
            progress=tick.update,
        )  # fmt: skip
        target = PolicyTarget(
            LocalTarget(
                RecordAdapter(model, records), data.n_classes, query_budget=config.query_budget
            ),
            policies,
        )
    with reporter.stage("train_shadows", f"training {config.shadows} reference models") as tick:
        # Reference models are jobs like shadows: cached, resumable, on Dask if asked.
        jobs = [
            ShadowJob(t, s, asked, f"reference model {k}")
            for k, (t, s) in enumerate(zip(in_sets[1:], model_seeds[1:], strict=True))
        ]
        outputs, job_facts = run_jobs(
            family, X_in, y_in, data.n_classes, jobs,
            extra=records(variant_rows) if len(variant_rows) else None,
            device=config.device, execution=execution, data_fingerprint=fingerprint,
            progress=tick.update, notify=reporter.message,
        )  # fmt: skip
        probs = np.stack(outputs)
        probs = apply_policies(probs.reshape(-1, data.n_classes), policies).reshape(probs.shape)
    labels = data.y[pool]
    member = keep[0].astype(np.int8)
    n_variants = len(variant_rows) // pool_size
    ref_member = np.concatenate([keep[1:], keep_z, *([keep[1:]] * n_variants)], axis=1)
    ref_labels = np.concatenate([data.y[asked], *([labels] * n_variants)])
    with reporter.stage("query_target", "querying the target"):
        target_probs = target.predict_proba(data.X[pool])
        correct = target_probs.argmax(axis=1) == labels
        inputs = AttackInputs(
            # Shokri's attack and the thresholds learn from the reference models'
            # outputs on the pool, labelled by their own membership.
            own_probs=probs[:, :pool_size].reshape(-1, data.n_classes),
            own_labels=np.tile(labels, config.shadows),
            own_member=keep[1:].reshape(-1).astype(np.int8),
            target_probs=target_probs,
            labels=labels,
            reference=ReferenceSignals(probs, ref_member, ref_labels),
            n_eval=pool_size,
            population=np.arange(pool_size, pool_size + len(z)),
        )
        if len(z):
            inputs.target_population = target.predict_proba(data.X[z])
        if n_variants:
            start = len(asked)
            inputs.variants = start + np.arange(n_variants * pool_size).reshape(n_variants, -1)
            inputs.target_variants = target.predict_proba(variant_rows).reshape(
                n_variants, pool_size, -1
            )
        _ask_target(plan, inputs, target, data, pool, public, seeds)
    outcome = _score_attacks(
        plan, inputs, config, data.class_names, member, seeds, reporter, execution
    )
    resolved = config.model_copy(
        update={
            "dataset": data.name if handed.data is not None else config.dataset,
            "target_size": size,
            "target": RecipeSpec() if recipe is None else RecipeSpec(**recipe.model_dump()),
            "shadow": None,
            "attacks": config.attacks.model_copy(update={"run": list(plan.names)}),
        }
    )
    described = _family_facts(family)
    return AuditResult(
        config=resolved,
        dataset=data.summary(),
        target={
            "source": "trained",
            **described,
            "defense": [p.spec for p in policies],
            "queries": {
                "sent": target.target.queries_,
                "from_cache": 0,
                "budget": config.query_budget,
            },
            "n_train": int(keep[0].sum()),
            "n_test": int((~keep[0]).sum()),
            "train_accuracy": float(correct[keep[0]].mean()),
            "test_accuracy": float(correct[~keep[0]].mean()),
        },
        shadows={
            "count": config.shadows,
            "game": "recipe",
            "draw": "balanced halves of the pool",
            "source": "real",
            **described,
            "pool_size": pool_size,
            "population": len(z),
            "n_in": int(keep[1:].sum(axis=1).mean()) if config.shadows else 0,
            "n_out": int((~keep[1:]).sum(axis=1).mean()) if config.shadows else 0,
        },
        record_index=data.rows[pool],
        ids=None if data.ids is None else data.ids[pool],
        labels=labels,
        member=member,
        timings_s=reporter.timings,
        execution={"jobs": job_facts},
        **outcome,
    )


def _check_fprs(config: AuditConfig, n_nonmembers: int) -> None:
    """Refuse a requested FPR the evaluation set cannot resolve, before any training."""
    for f in config.fprs:
        if f * n_nonmembers < 1 - 1e-9:
            need = int(np.ceil(1 / f - 1e-9))
            raise ConfigError(
                f"--fpr {f:g}: TPR at that rate needs at least {need:,} non-members (one "
                f"false positive), but this audit evaluates {n_nonmembers:,}; raise "
                "--target-size or ask for a higher rate"
            )


def _member_of(index: np.ndarray, shadow_in: tuple[np.ndarray, ...], trained_on_data: bool):
    """``(K, len(index))``: which shadows trained on which of these records."""
    if not trained_on_data:
        return np.zeros((len(shadow_in), len(index)), dtype=bool)
    return np.stack([np.isin(index, s) for s in shadow_in])


def _draw_population(plan: AttackPlan, splits: AuditSplits, rng: np.random.Generator) -> np.ndarray:
    """RMIA's population records ``z``: from the attacker's pool, never the target's data.

    The disjoint shadows draw from the pool too; records none of them uses are
    preferred, so that offline every reference model is OUT for ``z``. With online
    attacks the shadows then also train on balanced halves of ``z``, as RMIA's
    reference models train on halves of the population, so that ``Pr(z)`` and
    ``Pr(x)`` are averaged the same way.
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
    variants = np.zeros((0, len(eval_index)), np.int64)
    if plan.variants:
        rng = np.random.default_rng(0)  # LiRA's variants are fixed; no attack draws here
        extra = plan.make_queries("variants", data.X[eval_index], record_format(data), rng)
        for v in extra:
            X.append(v)
            labels.append(data.y[eval_index])
            member.append(member[0])
        variants = offset + np.arange(len(extra) * len(eval_index)).reshape(len(extra), -1)
    return {
        "X": np.concatenate(X),
        "labels": np.concatenate(labels),
        "member": np.concatenate(member, axis=1),
        "population": population,
        "calibration": calibration,
        "variants": variants,
        "z": z,
    }


def record_format(data: Dataset) -> RecordFormat:
    """How ``data``'s encoded records may be perturbed (one-hot blocks, pixels)."""
    return RecordFormat(feature_groups(data), data.kind == "image")


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
    if plan.features:
        inputs.features = data.X[index]
    if len(public):
        inputs.public_outputs = target.predict_proba(data.X[public])
        inputs.public_labels = data.y[public]
        inputs.public_features = data.X[public]
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
    inputs.class_names = list(class_names)
    notes: dict[str, dict[str, Any]] = {}
    scores, thresholds = {}, {}
    with reporter.stage("attack_score", "fitting and scoring the attacks"):
        for name, out in run_attacks(plan, inputs, execution):
            scores[name], thresholds[name], notes[name] = out.scores, out.threshold, out.notes
            # With the stage times (not in the attack's notes), so that two runs with the
            # same seed have identical attack results.
            reporter.timings[f"score:{name}"] = out.seconds
            if out.from_cache:
                reporter.message(f"{name}: scores from the job cache")
            for line in out.messages:
                reporter.message(line)
    metrics, roc = {}, {}
    with reporter.stage("metrics", "computing metrics"):
        boot = np.random.default_rng(seeds["bootstrap"])
        for name in plan.names:
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
            "for a shadow; raise --query-budget or synthesis.iter_max, or lower synthesis.conf_min"
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
        splits, pool=pool, shadow_in=shadow_in, shadow_out=shadow_out, shadow_train=None
    )
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
            splits.target_in,
            _int_seeds(seed, 1)[0],
            device=config.device,
            execution=execution,
            data_fingerprint=_fingerprint(family, data),
            progress=tick.update,
        )
    if from_cache:
        reporter.message("the target came from the job cache")
    return model if family.takes == "encoded" else RecordAdapter(model, records)


def _fingerprint(family: ModelFamily, data: Dataset) -> str | None:
    """The data's fingerprint for job keys, or ``None`` to key on the records a family's
    models read (the user's own rows carry more than their encoding)."""
    return data.fingerprint() if family.takes == "encoded" or data.raw is None else None


def shadow_signals(
    family: Recipe | ModelFamily,
    data: Dataset,
    splits: AuditSplits,
    seeds: list[int],
    *,
    device: str = "cpu",
    progress=None,
    extra: np.ndarray | None = None,
    execution: Execution | None = None,
    notify=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Train the shadows (as cached, batched jobs) and return their outputs.

    Returns ``(probabilities (m, C), labels (m,), member (m,), extra_probs, facts)``:
    the first three are every shadow's outputs on its own in/out records, stacked;
    ``extra_probs`` is every shadow's output on the records ``extra`` (``(K,
    len(extra), C)``, ``None`` without ``extra``); ``facts`` says how many shadows
    were trained and how many came from the job cache (:func:`miaudit.jobs.run_jobs`).
    Only outputs flow on: the models are dropped as soon as they are taken. Each
    shadow trains on its training set (:attr:`AuditSplits.training_sets`) and answers
    on its in- and out-records; ``data``'s records reach the models in the form the
    family reads (:func:`miaudit.handover.records_for`).
    """
    family = as_family(family)
    records = records_for(family.takes, data, family.describe()["model"])
    jobs = [
        ShadowJob(train, seed, np.concatenate([s_in, s_out]), f"shadow {k}")
        for k, (train, s_in, s_out, seed) in enumerate(
            zip(splits.training_sets, splits.shadow_in, splits.shadow_out, seeds, strict=True)
        )
    ]
    outputs, facts = run_jobs(
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
        data = load_dataset(
            config.dataset, label=config.label, categorical=config.categorical,
            id_column=config.id_column, pixel_scale=config.pixel_scale,
        )  # fmt: skip
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
    :func:`miaudit.evaluation.check_arrays`: the audit from its signals on."""
    reporter = reporter or Reporter()
    seeds = _seeds(config.seed)
    n, n_classes = arrays["outputs"].shape
    names = [str(c) for c in class_names] if class_names is not None else None
    if names is not None and len(names) != n_classes:
        raise ConfigError(
            f"class_names: {len(names)} names for outputs of {n_classes} columns; give one per "
            "column"
        )
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
        dataset={
            "name": config.dataset,
            "kind": None,
            "source": "outputs",
            "n_records": n,
            "n_features": None,
            "n_classes": n_classes,
            "class_names": names,
            "notes": {},
        },
        target={
            "source": "outputs",
            "model": None,
            "recipe": None,
            "defense": [],
            "queries": {"sent": 0, "from_cache": 0, "budget": None},
            "n_train": int(member.sum()),
            "n_test": int((member == 0).sum()),
            "train_accuracy": float(correct[member == 1].mean()),
            "test_accuracy": float(correct[member == 0].mean()),
        },
        shadows={
            "count": None if reference is None else int(reference.shape[0]),
            "game": None,
            "source": "outputs",
            "n_attack_records": len(inputs.own_member),
        },
        record_index=np.arange(n) if records is None else np.asarray(records),
        ids=None if ids is None else np.asarray(ids),
        labels=arrays["labels"],
        member=member,
        timings_s=reporter.timings,
        kind="evaluation",
        **outcome,
    )
