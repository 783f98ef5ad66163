"""The ``miaudit`` command: ``audit``, ``train``, ``datasets``.

Options are validated here, once, into an :class:`miaudit.config.AuditConfig`.
Errors the user can cause are printed as one line on standard error with exit
status 2 — never a traceback.

The options of ``audit`` are one table, :data:`AUDIT`: each is declared there once
(its flags, help, type, default, panel, and the configuration key it sets), and the
command's signature is generated from it (:func:`_command`); ``train``, ``evaluate``
and ``serve`` take the options they share with ``audit`` from the same table.
Nothing heavy is imported until a command runs: ``--help`` reads only this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Literal, get_args, get_origin

import typer

from miaudit import __version__
from miaudit.errors import ConfigError, MiauditError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure how much a trained model leaks about which records it was trained on.",
    pretty_exceptions_enable=False,
)

_RECIPE = "Model recipe"
_AUDIT = "Audit"
_ATTACK = "Attack"
_REMOTE = "Remote target"
_EXEC = "Execution (never changes a result)"
_OWN = "Your own model"
_POLICY = "Output policy"
_DP = "DP-SGD (mlp, cnn; target and shadows)"
_INTERRUPTED = (
    "interrupted; nothing was written to --out (the shadows trained so far are kept in the "
    "job cache, and a remote target's answered queries in the query cache: rerun the same "
    "command to resume)"
)


def _split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _rates(value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in _split_list(value)]
    except ValueError:
        raise ConfigError(f"--fpr {value}: give rates as numbers, e.g. --fpr 0.0001,0.05") from None


def _attack_settings(specs: list[str] | None) -> dict[str, Any]:
    """``--attack-setting rmia.gamma=2`` as ``{"rmia": {"gamma": 2}}`` (values read as
    JSON where they parse, else as text)."""
    import json

    if not specs:
        return {}
    sections: dict[str, dict[str, Any]] = {}
    for spec in specs:
        name, eq, text = spec.partition("=")
        section, dot, key = name.strip().partition(".")
        if not eq or not dot or not section or not key:
            raise ConfigError(
                f"--attack-setting {spec}: write SECTION.KEY=VALUE, e.g. rmia.gamma=2"
            )
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):  # not JSON (or absurdly so): a string
            value = text.strip()
        sections.setdefault(section, {})[key.strip()] = value
    return sections


def _same(value: Any) -> Any:
    return value


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _policies(specs: list[str] | None) -> list[str] | None:
    return [d for spec in specs for d in _split_list(spec)] if specs else None


def _negated(value: bool | None) -> bool | None:
    return None if value is None else not value


#: The default of an option (or argument) the user must give.
REQUIRED: Any = inspect.Parameter.empty


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """One option (or argument) of a command, declared once: typer sees only the
    parameter :meth:`parameter` makes of it.

    ``key`` is the configuration key an option of ``audit`` sets (dotted into tables),
    read from its value by ``read``; ``run`` marks an option of ``audit`` that says how
    or where the audit runs (or which settings file to read), never what it computes:
    no configuration key. Every entry of :data:`AUDIT` is one or the other.
    """

    name: str
    type: Any
    default: Any = None
    help: str | None = None
    key: str | None = None
    run: bool = False
    read: Callable[[Any], Any] = _same
    flags: tuple[str, ...] = ()
    panel: str | None = None
    metavar: str | None = None
    hidden: bool = False
    envvar: str | None = None
    argument: bool = False

    def but(self, **changes: Any) -> OptionSpec:
        """This option as another command shows it (its own help, default, ...)."""
        return dataclasses.replace(self, **changes)

    @property
    def flag(self) -> str:
        """The option's first name, as click names it (``--augment`` of
        ``--augment/--no-augment``)."""
        if self.flags:
            return self.flags[0].split("/")[0].strip()
        return "--" + self.name.replace("_", "-")

    @property
    def setting_flag(self) -> str:
        """The flag that names the setting in messages: of a negated boolean pair, the
        one that turns the setting on (``--per-class`` of ``--class-agnostic``)."""
        if self.read is _negated and self.flags and "/" in self.flags[0]:
            return self.flags[0].split("/")[1].strip()
        return self.flag

    @property
    def choices(self) -> tuple[Any, ...] | None:
        """The values the option's setting allows where it is a ``Literal``, read from
        the configuration (so no choice exists without its setting's value); ``None``
        otherwise. Imports :mod:`miaudit.config`: for tests and tools, not ``--help``."""
        if self.key is None:
            return None
        annotation = config_field(self.key).annotation
        for kind in (annotation, *get_args(annotation)):
            if get_origin(kind) is Literal:
                return get_args(kind)
        return None

    def parameter(self) -> inspect.Parameter:
        """The command parameter typer reads: ``Annotated[type, typer.Option(...)]``."""
        if self.argument:
            info = typer.Argument(help=self.help, metavar=self.metavar, hidden=self.hidden)
        else:
            info = typer.Option(
                *self.flags,
                help=self.help,
                rich_help_panel=self.panel,
                metavar=self.metavar,
                hidden=self.hidden,
                envvar=self.envvar,
            )
        return inspect.Parameter(
            self.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=self.default,
            annotation=Annotated[self.type, info],
        )


def config_field(key: str) -> Any:
    """The field of :class:`miaudit.config.AuditConfig` at the dotted ``key``.

    Raises
    ------
    KeyError
        No such setting.
    """
    from pydantic import BaseModel

    from miaudit.config import AuditConfig

    model: type[BaseModel] = AuditConfig
    *tables, last = key.split(".")
    for table in tables:
        inner = model.model_fields[table].annotation
        kinds = [a for a in (inner, *get_args(inner)) if isinstance(a, type)]
        tables_of = [a for a in kinds if issubclass(a, BaseModel)]
        if not tables_of:
            raise KeyError(f"{key}: {table} is not a table of settings")
        model = tables_of[0]
    if last not in model.model_fields:
        raise KeyError(f"{key}: no such setting")
    return model.model_fields[last]


def _table(*specs: OptionSpec) -> tuple[OptionSpec, ...]:
    """The options of ``audit``, checked: unique names, each a setting or a run option."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise AssertionError(f"an option is declared twice: {names}")
    for spec in specs:
        if (spec.key is None) == (not spec.run):
            raise AssertionError(f"--{spec.name}: give it a configuration key or run=True")
    return specs


_DP_EPSILON_HELP = (
    "Train with DP-SGD to this epsilon: each record's gradient clipped, Gaussian noise "
    "set by Opacus's accountant for --epochs and --batch-size, Poisson sampling."
)

#: Every option of ``miaudit audit``, in the order ``--help`` shows them (by panel).
#: An option that sets the configuration names its key (error messages name keys,
#: and the CLI shows them as these options: :func:`option_for`); one that says how
#: the audit runs has ``run=True``. ``tests/test_options.py`` checks every key exists
#: and every setting is reached by an option or a file.
AUDIT: tuple[OptionSpec, ...] = _table(
    OptionSpec("config", Path | None, run=True, help="TOML or JSON settings (flags override it)."),
    OptionSpec(
        "dataset",
        str | None,
        key="dataset",
        help="Built-in data set (see `miaudit datasets`) or a CSV/Parquet/.npz file.",
    ),
    OptionSpec(
        "label",
        str | None,
        key="label",
        help="Label column of a table, or the label of a built-in set (census).",
    ),
    OptionSpec(
        "categorical",
        str | None,
        key="categorical",
        read=_split_list,
        help="Comma-separated columns to treat as categorical.",
    ),
    OptionSpec(
        "id_column",
        str | None,
        key="id_column",
        help="A column naming each record: kept out of the features, written to "
        "scores.csv and the report, and usable in --members.",
    ),
    OptionSpec(
        "text_column",
        str | None,
        key="text_column",
        help="A table's column of texts: its records are text records (audited with the "
        "text recipe tfidf-lr, or your own model).",
    ),
    OptionSpec(
        "pixel_scale",
        float | None,
        key="pixel_scale",
        help="Images that are not uint8: the value of white (e.g. 255, 65535).",
    ),
    OptionSpec(
        "target_size",
        int | None,
        key="target_size",
        help="Target's training-set size (default 10,000 where the data allows).",
    ),
    OptionSpec("shadows", int | None, key="shadows", help="Number of shadow models."),
    OptionSpec(
        "shadow_size",
        int | None,
        key="shadow_size",
        help="Records each shadow trains on (default: as many as the target); for a pool "
        "too small for shadows of the target's size.",
    ),
    OptionSpec(
        "target_python",
        str | None,
        key="target_python",
        panel=_OWN,
        help="Audit your own fitted model: module:attribute (or file.py:attribute) naming "
        "a scikit-learn estimator or Pipeline, a torch module, or a callable records -> "
        "probabilities. Needs --members.",
    ),
    OptionSpec(
        "trainer_python",
        str | None,
        key="trainer_python",
        panel=_OWN,
        help="Train shadows (and, with --game recipe, the target) with your own code: "
        "module:attribute naming an unfitted estimator, a miaudit.TorchTrainer, or a "
        "function fit(X, y, seed) -> model.",
    ),
    OptionSpec(
        "python_path",
        list[str] | None,
        key="python_path",
        panel=_OWN,
        help="Folder to import your modules from (repeatable).",
    ),
    OptionSpec(
        "members",
        Path | None,
        key="members",
        read=_text,
        panel=_OWN,
        help="Which rows your target was trained on: a .npy (mask, row numbers or ids), "
        ".txt (one per line) or .csv (one column) file; ids need --id-column; "
        "--members-as settles a file that reads more than one way.",
    ),
    OptionSpec(
        "non_members",
        Path | None,
        key="non_members",
        read=_text,
        panel=_OWN,
        help="Rows it never saw (default: as many other rows as members, at most half).",
    ),
    OptionSpec(
        "members_as",
        str | None,
        key="members_as",
        panel=_OWN,
        help="How --members and --non-members read where more than one way fits: mask "
        "(0/1 per row), positions (row numbers from 0) or ids.",
    ),
    OptionSpec(
        "model",
        str | None,
        key="target.model",
        panel=_RECIPE,
        help="mlp, cnn, logistic-regression, random-forest, gradient-boosting, sklearn-mlp; "
        "text: tfidf-lr, boe.",
    ),
    OptionSpec("epochs", int | None, key="target.epochs", panel=_RECIPE),
    OptionSpec("lr", float | None, key="target.lr", panel=_RECIPE, help="Learning rate."),
    OptionSpec("batch_size", int | None, key="target.batch_size", panel=_RECIPE),
    OptionSpec(
        "l2", float | None, key="target.l2", panel=_RECIPE, help="L2 regularisation weight."
    ),
    OptionSpec(
        "hidden", int | None, key="target.hidden", panel=_RECIPE, help="Hidden units of the MLP."
    ),
    OptionSpec(
        "augment",
        bool | None,
        key="target.augment",
        flags=("--augment/--no-augment",),
        panel=_RECIPE,
        help="Train the CNN on mirrored and shifted images (as image models usually are; "
        "augmented --queries pay on them).",
    ),
    OptionSpec(
        "dp_epsilon", float | None, key="target.dp_epsilon", panel=_DP, help=_DP_EPSILON_HELP
    ),
    OptionSpec(
        "dp_delta",
        float | None,
        key="target.dp_delta",
        panel=_DP,
        help="DP-SGD's delta (default 1/(2n)).",
    ),
    OptionSpec(
        "max_grad_norm",
        float | None,
        key="target.max_grad_norm",
        panel=_DP,
        help="DP-SGD's clipping norm of each record's gradient (default 1.0).",
    ),
    OptionSpec(
        "dp_accountant",
        str | None,
        key="target.dp_accountant",
        panel=_DP,
        help="Opacus accountant that sets the noise: rdp (default) or prv.",
    ),
    OptionSpec(
        "shadow_model",
        str | None,
        key="shadow.model",
        panel=_RECIPE,
        help="Train the shadows with another model.",
    ),
    OptionSpec(
        "target_model",
        str | None,
        key="target_model",
        read=_text,
        help="Audit a target saved by `miaudit train` instead of training one; or an MLflow "
        "model, models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/PATH, audited as "
        "your own model (needs --members; pip install 'miaudit[mlflow]').",
    ),
    OptionSpec(
        "save_target",
        Path | None,
        key="save_target",
        read=_text,
        help="Also save the trained target into this folder.",
    ),
    OptionSpec(
        "target_url",
        str | None,
        key="target_url",
        panel=_REMOTE,
        help="Attack a prediction API (miaudit serve, or any service speaking its "
        "protocol) at this base URL instead of a local model; with --protocol v2, the "
        "model's address, http://host:port/v2/models/NAME (or …/NAME/versions/V).",
    ),
    OptionSpec(
        "protocol",
        str | None,
        key="protocol",
        panel=_REMOTE,
        help="What --target-url speaks: miaudit (miaudit serve's protocol, the default), "
        "mlflow (MLflow's scoring server, `mlflow models serve`: POST /invocations) or v2 "
        "(the Open Inference Protocol of KServe, Triton, MLServer, Seldon: POST "
        "/v2/models/NAME/infer).",
    ),
    OptionSpec(
        "membership",
        Path | None,
        key="membership",
        read=_text,
        panel=_REMOTE,
        help="Which records the remote target was trained on: its saved folder or "
        "membership.npz (to evaluate the attack, never to train it).",
    ),
    OptionSpec(
        "token",
        str | None,
        run=True,
        envvar="MIAUDIT_TOKEN",
        panel=_REMOTE,
        help="Bearer token of the service (never written to the results).",
    ),
    OptionSpec(
        "query_cache",
        Path | None,
        run=True,
        panel=_REMOTE,
        help="Folder of answered queries, so an interrupted audit resumes without "
        "paying again (default $MIAUDIT_QUERY_CACHE or ~/.cache/miaudit/queries).",
    ),
    OptionSpec(
        "no_query_cache",
        bool,
        False,
        run=True,
        panel=_REMOTE,
        help="Keep no answered queries on disk.",
    ),
    OptionSpec(
        "http_timeout",
        float | None,
        key="http.timeout",
        panel=_REMOTE,
        help="Seconds per request (default 30).",
    ),
    OptionSpec(
        "http_retries",
        int | None,
        key="http.retries",
        panel=_REMOTE,
        help="Retries of a request that timed out, failed to connect or was answered "
        "429/5xx, with exponential backoff (default 5).",
    ),
    OptionSpec(
        "shadow_data",
        str | None,
        key="shadow_data",
        panel=_ATTACK,
        help="Shadow training data: real (the attacker's pool), noisy (pool records "
        "with --noise of their features re-drawn), marginal (features drawn from "
        "per-class marginals), synthetic (hill climbing against the target).",
    ),
    OptionSpec(
        "noise",
        float | None,
        key="noise",
        panel=_ATTACK,
        help="Fraction of features re-drawn for noisy.",
    ),
    OptionSpec(
        "shadow_labels",
        str | None,
        key="shadow_labels",
        panel=_ATTACK,
        help="Label shadow records by the data (data) or by the target's answer (target).",
    ),
    OptionSpec(
        "query_budget",
        int | None,
        key="query_budget",
        panel=_ATTACK,
        help="Most queries the audit may send to the target (cached answers are "
        "free); hill-climbing synthesis stops early to leave what scoring needs "
        "(its other knobs: the synthesis table of --config).",
    ),
    OptionSpec(
        "defense",
        list[str] | None,
        key="defense",
        read=_policies,
        panel=_ATTACK,
        help="Output policy of the target, repeatable, applied in order: top-k=K, "
        "round=D, temperature=T, label-only. The shadows answer through it too.",
    ),
    OptionSpec(
        "attack_learner",
        str | None,
        key="attacks.shokri.learner",
        panel=_ATTACK,
        help="Shokri's attack models: auto (default: nn or gbdt, whichever attacks a "
        "held-out shadow better; nn on a tie or with one shadow), nn (small networks "
        "trained as one stack on --device), gbdt, logreg, rf.",
    ),
    OptionSpec(
        "class_agnostic",
        bool | None,
        key="attacks.shokri.per_class",
        read=_negated,
        flags=("--class-agnostic/--per-class",),
        panel=_ATTACK,
        help="One attack model for all classes instead of one per class.",
    ),
    OptionSpec(
        "attacks",
        str | None,
        key="attacks.run",
        read=_split_list,
        panel=_ATTACK,
        help="Comma-separated attacks, all sharing one set of shadows: shokri; loss, "
        "confidence, entropy, mentr (each also -class: per-class thresholds); lira, "
        "rmia (online: shadows train on halves of the evaluated records), lira-offline, "
        "rmia-offline; gap, robustness (label only); 'all'. Default: "
        "shokri,loss,mentr-class,gap,lira-offline,rmia-offline.",
    ),
    OptionSpec(
        "attack_setting",
        list[str] | None,
        run=True,
        panel=_ATTACK,
        help="Any attack's setting, SECTION.KEY=VALUE, repeatable (e.g. rmia.gamma=2, "
        "boundary.directions=16); `miaudit attacks` lists them.",
    ),
    OptionSpec(
        "lira_variance",
        str | None,
        key="attacks.lira.variance",
        panel=_ATTACK,
        help="LiRA's Gaussians: auto (default: the stronger on shadows attacked with the "
        "others), global (stable below ~64 shadows) or per-record.",
    ),
    OptionSpec(
        "lira_queries",
        int | None,
        key="attacks.lira.queries",
        panel=_ATTACK,
        help="Queries per record for LiRA alone (see --queries).",
    ),
    OptionSpec(
        "queries",
        int | None,
        key="attacks.queries",
        panel=_ATTACK,
        help="Queries per record for every attack that scores a signal per record (LiRA, "
        "RMIA, the threshold attacks), averaged over them: 1 (default), or up to 18 with "
        "augmentations (images: mirror, then 1-pixel shifts; tables: small numeric "
        "offsets). They pay on models trained on those augmentations (--augment).",
    ),
    OptionSpec(
        "game",
        str | None,
        key="game",
        panel=_ATTACK,
        help="shokri (default: target members vs non-members, shadows on the attacker's "
        "pool), recipe (target and reference models each on a random half of a pool; "
        "every pool record is scored) or canaries (one training run: --canaries records "
        "each put in the target's training set with probability 1/2, and a lower bound "
        "on the epsilon its training honours; Steinke, Nasr and Jagielski 2023).",
    ),
    OptionSpec(
        "canaries",
        int | None,
        key="canaries",
        panel=_ATTACK,
        help="Canaries of --game canaries (default 1000; at most the target's size).",
    ),
    OptionSpec(
        "canary_kind",
        str | None,
        key="canary_kind",
        panel=_ATTACK,
        help="population (default: records drawn from the data) or mislabelled (the same, "
        "each given a wrong label: easier to memorise, a stronger test).",
    ),
    OptionSpec(
        "bootstrap",
        int | None,
        key="bootstrap",
        panel=_ATTACK,
        help="Bootstrap replicates for the TPR intervals (default 1000; 0: none).",
    ),
    OptionSpec(
        "fpr",
        str | None,
        key="fprs",
        read=_rates,
        panel=_ATTACK,
        help="Comma-separated extra false-positive rates to report the TPR at (always: "
        "0.001, 0.01, 0.1); refused when too few non-members can resolve one.",
    ),
    OptionSpec(
        "workers",
        int | None,
        run=True,
        panel=_EXEC,
        help="Shadow chunks trained at once: threads for PyTorch shadows, processes for "
        "scikit-learn shadows or a local Dask cluster (default: the cores available).",
    ),
    OptionSpec(
        "max_stack",
        int | None,
        run=True,
        panel=_EXEC,
        help="Most shadow networks trained together as one stack (default: 8 on a CPU, "
        "as many as half the GPU's memory holds on one, at most 256); lower it when a "
        "GPU runs out of memory.",
    ),
    OptionSpec(
        "executor",
        str,
        "local",
        run=True,
        panel=_EXEC,
        help="local (default) or dask: shadow training on a dask.distributed cluster.",
    ),
    OptionSpec(
        "scheduler",
        str | None,
        run=True,
        panel=_EXEC,
        help="Dask scheduler address (tcp://host:port); without it --executor dask "
        "starts a LocalCluster.",
    ),
    OptionSpec(
        "job_cache",
        Path | None,
        run=True,
        panel=_EXEC,
        help="Folder of trained shadows' outputs (default $MIAUDIT_JOB_CACHE or "
        "~/.cache/miaudit/jobs): an identical rerun trains nothing, an interrupted one "
        "resumes.",
    ),
    OptionSpec("no_job_cache", bool, False, run=True, panel=_EXEC, help="Keep no job cache."),
    OptionSpec(
        "keep_models",
        bool,
        False,
        run=True,
        panel=_EXEC,
        help="Save every shadow (or reference) model in OUT/shadow-models/NNN instead of "
        "dropping it once its outputs are taken.",
    ),
    OptionSpec("seed", int | None, key="seed", help="Seed of every random choice."),
    OptionSpec("device", str | None, key="device", help="cpu or cuda."),
    OptionSpec(
        "out",
        Path | None,
        run=True,
        help="Result folder (default runs/<data set>-<date>-<time>).",
    ),
    OptionSpec("overwrite", bool, False, run=True, help="Replace results already in --out."),
    OptionSpec(
        "records",
        str | None,
        key="show_records",
        help="How much of each record results.json, scores.csv and the page show: "
        "values, ids (default: rows and ids, no values) or none (nothing that names a "
        "record: a folder to share).",
    ),
    OptionSpec(
        "save_outputs",
        bool,
        False,
        run=True,
        help="Also write outputs.npz: every model output the attacks scored from, for "
        "`miaudit evaluate` (which then gives the same metrics).",
    ),
    OptionSpec(
        "mlflow",
        bool,
        False,
        run=True,
        help="Also log the run to MLflow (MLFLOW_TRACKING_URI): the verdict and every "
        "attack's AUC and TPR at each FPR as metrics, report.html, results.json and "
        "scores.csv as artifacts; to the run MLFLOW_RUN_ID names, else a new run in the "
        "current experiment (MLFLOW_EXPERIMENT_NAME).",
    ),
    OptionSpec(
        "fail_on",
        str | None,
        run=True,
        metavar="LEVEL",
        help="Fail (exit status 3) when the verdict reaches LEVEL (low, moderate, high, "
        "severe; 'at least' verdicts count), and with exit status 4 when the evaluation "
        "cannot rule LEVEL out: a leakage gate for CI. The files are written first.",
    ),
    OptionSpec("quiet", bool, False, run=True, help="No progress bars."),
    OptionSpec(
        "allow_python",
        bool,
        False,
        run=True,
        help="Let --config name Python code to import and run (target_python, "
        "trainer_python); without it such a file is refused.",
    ),
)

#: :data:`AUDIT` by option name.
OPTIONS: dict[str, OptionSpec] = {spec.name: spec for spec in AUDIT}

#: Every ``miaudit audit`` option that sets the configuration: its parameter -> the
#: configuration key it sets and how its value is read (a view of :data:`AUDIT`).
AUDIT_OPTIONS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    spec.name: (spec.key, spec.read) for spec in AUDIT if spec.key is not None
}

#: ``miaudit audit`` options that say how or where the audit runs (or which settings
#: file to read), never what it computes: not configuration keys (``run=True``).
RUN_OPTIONS = frozenset(spec.name for spec in AUDIT if spec.run)


def _use(name: str, **changes: Any) -> OptionSpec:
    """The option ``name`` of :data:`AUDIT`, as another command shows it."""
    return OPTIONS[name].but(**changes)


def _command(specs: Sequence[OptionSpec], **settings: Any):
    """Register ``body`` as a command of :data:`app` whose parameters are ``specs``, in
    their order. Typer reads a command's ``inspect.signature``: the generated one is
    all it sees. ``body`` gets every value (defaults filled in) as one namespace; its
    name and docstring are the command's."""
    signature = inspect.Signature([spec.parameter() for spec in specs])

    def register(body: Callable[[SimpleNamespace], None]) -> Callable[..., None]:
        def command(*args: Any, **kwargs: Any) -> None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return body(SimpleNamespace(**bound.arguments))

        command.__signature__ = signature  # type: ignore[attr-defined]
        command.__name__ = command.__qualname__ = body.__name__
        command.__doc__ = body.__doc__
        command.__module__ = body.__module__
        return app.command(**settings)(command)

    return register


def _options_to_config(specs: Iterable[OptionSpec], values: dict[str, Any]) -> dict[str, Any]:
    """The settings the given options say, as nested tables (``None``: not given)."""
    out: dict[str, Any] = {}
    for spec in specs:
        if spec.key is None:
            continue
        value = spec.read(values[spec.name])
        if value is None:
            continue
        *tables, last = spec.key.split(".")
        at = out
        for table in tables:
            at = at.setdefault(table, {})
        at[last] = value
    return out


def option_for(config_key: str) -> str | None:
    """The ``miaudit audit`` option that sets ``config_key`` (``--attacks`` for
    ``attacks.run``), or ``None`` when only a settings file sets it."""
    for spec in AUDIT:
        if spec.key == config_key:
            # A boolean pair names the setting by the option that turns it on.
            return spec.setting_flag
    # A run option, named in a message by its parameter (``fail_on``).
    spec = OPTIONS.get(config_key)
    return spec.flag if spec is not None and spec.run else None


def _build_config(config: Path | None, flags: dict[str, Any], allow_python: bool = False):
    from miaudit.config import PYTHON_KEYS, combine, load_config_file, refuse_python_from_file

    base = load_config_file(config) if config is not None else {}
    # Code a flag names is the user's own choice; code only the file names is not.
    from_file = {k: v for k, v in base.items() if k not in PYTHON_KEYS or flags.get(k) is None}
    refuse_python_from_file(from_file, config, allow_python)
    return combine(base, flags)


@_command(AUDIT)
def audit(o: SimpleNamespace) -> None:
    """Run a shadow-model membership inference audit and write its results."""
    from miaudit.handover import Handover
    from miaudit.mlflow import open_named
    from miaudit.pipeline import run_audit
    from miaudit.progress import Reporter, auto_reporter
    from miaudit.report import default_out_dir, write_results
    from miaudit.report.summary import print_summary

    _check_gate(o.fail_on)
    if o.mlflow:  # refused before the audit runs, not after
        from miaudit.mlflow import require_mlflow

        require_mlflow("--mlflow")
    cfg = _audit_config(o)
    out = _audit_folders(o, cfg)
    reporter = Reporter() if o.quiet else auto_reporter(option_for)
    execution = _audit_execution(o, out)
    try:
        cfg, handed, mlflow_model = open_named(cfg, Handover(), reporter)
        result = run_audit(
            cfg,
            reporter,
            token=o.token,
            query_cache=False if o.no_query_cache else o.query_cache,
            execution=execution,
            handed=handed,
        )
    except KeyboardInterrupt:
        typer.echo(f"miaudit: {_INTERRUPTED}", err=True)
        raise typer.Exit(130) from None
    if mlflow_model is not None:
        from miaudit.mlflow import restate

        result = restate(result, mlflow_model)
    target_dir = out if out is not None else default_out_dir(result.dataset.name)
    written = write_results(result, target_dir, outputs=o.save_outputs)
    print_summary(result, written)
    if o.mlflow:
        from miaudit.mlflow import log_result

        run_id = log_result(written)
        typer.echo(f"miaudit: logged {written} to the MLflow run {run_id}", err=True)
    _judge(result, o.fail_on)


def _check_gate(fail_on: str | None) -> None:
    """``--fail-on``'s level, refused before anything runs when it names no level."""
    if fail_on is not None:
        from miaudit.verdict import check_gate_level

        check_gate_level(fail_on)


def _judge(result: Any, fail_on: str | None) -> None:
    """Say what ``--fail-on`` makes of the written result, and exit with its status (3:
    the verdict reaches the level; 4: the evaluation cannot rule it out)."""
    if fail_on is None:
        return
    outcome = result.gate(fail_on)
    word = {"passed": "passed", "failed": "FAILED", "undecided": "UNDECIDED"}[outcome.outcome]
    typer.echo(f"miaudit: gate {word}: {outcome.for_cli(option_for)}", err=outcome.status != 0)
    if outcome.status:
        raise typer.Exit(outcome.status)


def _audit_config(o: SimpleNamespace):
    """The audit's configuration: the options' settings (and ``--attack-setting``'s) over
    ``--config``'s; ``--save-outputs`` refused where ``--records`` forbids it."""
    flags = _options_to_config(AUDIT, vars(o))
    for section, values in _attack_settings(o.attack_setting).items():
        attacks = flags.setdefault("attacks", {})
        attacks[section] = {**(attacks.get(section) or {}), **values}
    cfg = _build_config(o.config, flags, o.allow_python)
    if o.save_outputs:  # refused before the audit runs, not after
        from miaudit.report.disclosure import refuse_outputs_at

        refuse_outputs_at(cfg.show_records)
    return cfg


def _audit_folders(o: SimpleNamespace, cfg: Any) -> Path | None:
    """``--out`` (chosen now where ``--keep-models`` writes into it while the audit runs)
    and ``--save-target``, checked before any work."""
    from miaudit.report import default_out_dir, prepare_out_dir

    out = o.out
    if out is None and o.keep_models:
        # The models are written while the audit runs: the folder is chosen now, named
        # as the data set will be (a built-in's full name, or a file's stem).
        from miaudit.data.builtin import is_builtin, resolve_builtin

        name = str(cfg.dataset)
        label = resolve_builtin(name, cfg.label).name if is_builtin(name) else Path(name).stem
        out = default_out_dir(label)
    if out is not None:
        prepare_out_dir(out, overwrite=o.overwrite)
    if cfg.save_target is not None:
        prepare_model_dir(Path(cfg.save_target), overwrite=o.overwrite)
    return out


def _audit_execution(o: SimpleNamespace, out: Path | None):
    """How the shadows are trained (:class:`miaudit.jobs.Execution`), from the run options."""
    if o.no_query_cache and o.query_cache is not None:
        raise ConfigError("--query-cache and --no-query-cache contradict each other: pass one")
    if o.no_job_cache and o.job_cache is not None:
        raise ConfigError("--job-cache and --no-job-cache contradict each other: pass one")
    from miaudit.jobs import Execution

    return Execution(
        job_cache=False if o.no_job_cache else o.job_cache,
        executor=o.executor,
        scheduler=o.scheduler,
        workers=o.workers,
        keep_models=out / "shadow-models" if o.keep_models else None,
        max_stack=o.max_stack,
    )


def prepare_model_dir(path: Path, *, overwrite: bool) -> None:
    """Refuse to overwrite a saved model unless asked."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file: pass a folder to save the model into")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError(f"{path} is not empty: choose another folder or pass --overwrite")


#: ``miaudit train``: the recipe options of ``audit`` (some without their help).
TRAIN: tuple[OptionSpec, ...] = (
    _use(
        "out", type=Path, default=REQUIRED, help="Folder to save the model and its membership into."
    ),
    _use("config", help="TOML or JSON settings."),
    _use("dataset", help="Built-in data set or a file."),
    _use("label", help="Label column or built-in label."),
    _use("target_size", help="Training-set size."),
    _use("model", help=None),
    _use("epochs"),
    _use("lr", help=None),
    _use("batch_size"),
    _use("l2", help=None),
    _use("hidden", help=None),
    _use("augment", help=None),
    _use("dp_epsilon"),
    _use("dp_delta"),
    _use("max_grad_norm"),
    _use("dp_accountant"),
    _use("seed", help=None),
    _use("device", help=None),
    _use("overwrite", help="Replace a model already in --out."),
)


@_command(TRAIN)
def train(o: SimpleNamespace) -> None:
    """Train a target model and save it (with which records it saw) for later audits."""
    from miaudit.pipeline import train_target_only
    from miaudit.progress import auto_reporter

    cfg = _build_config(o.config, _options_to_config(TRAIN, vars(o)))
    prepare_model_dir(o.out, overwrite=o.overwrite)
    info = train_target_only(cfg, o.out, auto_reporter(option_for))
    typer.echo(
        f"saved {info['model']} trained on {info['n_train']} records of {info['dataset']} to "
        f"{o.out} (train accuracy {info['train_accuracy']:.3f}, "
        f"test accuracy {info['test_accuracy']:.3f})"
    )


#: ``miaudit serve``: its own options, and ``audit``'s ``--token`` and ``--workers`` as
#: a service reads them.
SERVE: tuple[OptionSpec, ...] = (
    OptionSpec(
        "model_dir",
        Path,
        REQUIRED,
        argument=True,
        help="A target saved by `miaudit train` or `audit --save-target`.",
    ),
    OptionSpec("host", str, "127.0.0.1", help="Address to listen on."),
    OptionSpec("port", int, 8000, help="Port (0 picks a free one and prints it)."),
    _use(
        "token",
        type=list[str] | None,
        envvar=None,
        panel=None,
        help="Bearer token a client must send; repeat for several clients (each gets "
        "its own query counter). Default: $MIAUDIT_TOKEN.",
    ),
    OptionSpec("no_auth", bool, False, help="Serve without a token (only on a trusted network)."),
    OptionSpec("top_k", int | None, panel=_POLICY, help="Answer only the K largest probabilities."),
    OptionSpec(
        "round_",
        int | None,
        flags=("--round",),
        panel=_POLICY,
        help="Round probabilities to D decimals.",
    ),
    OptionSpec(
        "temperature",
        float | None,
        panel=_POLICY,
        help="Soften the probabilities at temperature T.",
    ),
    OptionSpec("label_only", bool, False, panel=_POLICY, help="Answer only the predicted label."),
    OptionSpec("max_batch", int, 1024, help="Most records per request."),
    OptionSpec("max_body", int, 8 * 2**20, help="Most bytes per request body."),
    OptionSpec(
        "max_connections",
        int,
        100,
        help="Most open connections (fewer where the file-descriptor limit allows "
        "fewer); past it a new one displaces the longest idle one.",
    ),
    OptionSpec(
        "header_timeout", float, 10.0, help="Seconds a client has to send a request's headers."
    ),
    OptionSpec(
        "body_timeout",
        float,
        60.0,
        help="Seconds a client has to send a request's body, and to read an answer.",
    ),
    _use("workers", type=int, default=2, panel=None, help="Requests parsed and answered at once."),
)


@_command(SERVE)
def serve(o: SimpleNamespace) -> None:
    """Serve a saved model as an HTTP prediction API (POST /v1/predict, GET /v1/info)."""
    from miaudit.policies import parse_policy
    from miaudit.serve import PredictionService, ServiceLimits, bind, create_app, url_of
    from miaudit.serve import run as run_server

    tokens = _serve_tokens(o.token, o.no_auth)
    # The order a service would apply them: soften, truncate, round; label-only alone.
    specs = [
        f"temperature={o.temperature}" if o.temperature is not None else None,
        f"top-k={o.top_k}" if o.top_k is not None else None,
        f"round={o.round_}" if o.round_ is not None else None,
        "label-only" if o.label_only else None,
    ]
    policies = [parse_policy(spec) for spec in specs if spec is not None]
    service = PredictionService.from_folder(o.model_dir, policies, o.max_batch)
    limits = ServiceLimits(
        tuple(tokens),
        o.max_batch,
        o.max_body,
        max_connections=o.max_connections,
        header_timeout=o.header_timeout,
        body_timeout=o.body_timeout,
        workers=o.workers,
    )
    server = create_app(service, limits)
    sock = bind(o.host, o.port)
    policy = ", ".join(p.spec for p in policies) or "none"
    if o.no_auth:
        _warn_without_token(sock)
    typer.echo(
        f"serving {o.model_dir} ({len(service.class_names)} classes, output policy: {policy}) "
        f"on {url_of(sock)}; Ctrl-C stops",
    )
    sys.stdout.flush()
    run_server(server, sock)
    typer.echo(f"stopped after answering {sum(server.state.counts.values())} queries")


def _serve_tokens(given: list[str] | None, no_auth: bool) -> list[str]:
    """The tokens a client may send: ``--token``'s, else ``$MIAUDIT_TOKEN``; none only
    with ``--no-auth``, which no token may contradict."""
    import os

    from miaudit.serve import TOKEN_ENV

    tokens = list(given or [])
    if not tokens and os.environ.get(TOKEN_ENV):
        tokens = [os.environ[TOKEN_ENV]]
    if tokens and no_auth:
        raise ConfigError("--no-auth and a token contradict each other: pass one")
    if not tokens and not no_auth:
        raise ConfigError(
            f"no token: pass --token (or set {TOKEN_ENV}) so that only your clients can "
            "query the model, or --no-auth to serve it to anyone who can connect"
        )
    return tokens


def _warn_without_token(sock: Any) -> None:
    """Say on standard error that anyone who can connect may query the model (and that
    other machines can, where the address is not the loopback)."""
    import ipaddress

    from miaudit.serve import url_of

    try:
        loopback = ipaddress.ip_address(sock.getsockname()[0]).is_loopback
    except ValueError:
        loopback = False
    typer.echo(
        f"miaudit: warning: serving without a token: anyone who can reach {url_of(sock)} "
        "can query the model"
        + ("" if loopback else " — and this address is NOT the loopback: other machines can"),
        err=True,
    )


#: ``miaudit evaluate``: ``audit``'s attack options as they read a file of outputs.
EVALUATE: tuple[OptionSpec, ...] = (
    OptionSpec(
        "outputs",
        Path,
        REQUIRED,
        argument=True,
        help="An .npz of model outputs (array names: README, 'Your own model'), e.g. the "
        "outputs.npz of `miaudit audit --save-outputs`.",
    ),
    _use(
        "attacks",
        panel=None,
        help="Comma-separated attacks (default: every one the arrays allow).",
    ),
    OptionSpec("logits", bool, False, help="The outputs are logits: softmax them first."),
    _use("seed", help="Seed (default: the file's, or 0)."),
    _use("bootstrap", panel=None, help="Bootstrap replicates."),
    _use("fpr", panel=None, help="Extra false-positive rates."),
    _use(
        "attack_setting",
        panel=None,
        help="An attack's setting, SECTION.KEY=VALUE, repeatable (e.g. rmia.gamma=2).",
    ),
    _use(
        "queries",
        panel=None,
        help="Queries per record for LiRA, RMIA and the threshold attacks (default: all "
        "the variants the file holds).",
    ),
    _use("out", help="Result folder (default runs/outputs-<date>-<time>)."),
    _use("overwrite"),
    _use(
        "records",
        help="How much of each record the result files show: values, ids (default) or "
        "none (no row or id).",
    ),
    _use("fail_on"),
)


@_command(EVALUATE)
def evaluate(o: SimpleNamespace) -> None:
    """Run the attacks on model outputs computed elsewhere and write the results."""
    from miaudit.api import evaluate as run_evaluate
    from miaudit.report import default_out_dir
    from miaudit.report.summary import print_summary

    _check_gate(o.fail_on)
    target_dir = o.out if o.out is not None else default_out_dir(o.outputs.stem)
    settings: dict[str, Any] = dict(_attack_settings(o.attack_setting))
    if o.queries is not None:
        settings["queries"] = o.queries
    result = run_evaluate(
        o.outputs, attacks=_split_list(o.attacks), logits=o.logits, seed=o.seed,
        bootstrap=o.bootstrap, fprs=_rates(o.fpr), attack_settings=settings or None,
        out=target_dir, overwrite=o.overwrite,
        **({} if o.records is None else {"show_records": o.records}),
    )  # fmt: skip
    print_summary(result, target_dir)
    _judge(result, o.fail_on)


_LEVELS_HELP = (
    "The likelihood ratios from which leakage reads moderate, high and severe "
    "(default 2,10,50; README, 'Reading the report')."
)


@contextmanager
def _damaged(*runs: Path):
    """A run whose results.json passed its checks yet cannot be drawn (a field of an
    unexpected shape deep inside): one line naming the files, not a traceback."""
    try:
        yield
    except MiauditError:
        raise  # already one line that names the problem
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        where = " or ".join(str(r / "results.json") for r in runs)
        raise ConfigError(
            f"{where}: damaged or written by another miaudit ({type(exc).__name__}: "
            f"{str(exc)[:80]}): run the audit again"
        ) from None


def _check_report_target(run: Path, target: Path, overwrite: bool) -> None:
    """Refuse a page that would replace the run's own inputs (whatever --overwrite says),
    or, without --overwrite, any existing file but the run's own report.html."""
    own = {(run / n).resolve(): n for n in ("results.json", "scores.csv", "config.json")}
    where = target.resolve()
    if where in own:
        raise ConfigError(
            f"--out {target} is the run's own {own[where]}, which the page is made from: "
            "choose another file"
        )
    if target.exists() and not overwrite and where != (run / "report.html").resolve():
        raise ConfigError(
            f"--out {target} exists: pass --overwrite to replace it, or choose another file"
        )


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="A run folder (the --out of an audit).")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write the page (default RUN/report.html).")
    ] = None,
    levels: Annotated[str | None, typer.Option(help=_LEVELS_HELP)] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a file already at --out (never the run's inputs).")
    ] = False,
    records: Annotated[
        str | None,
        typer.Option(
            help="How much of each record the page shows: values, ids or none (a page to "
            "share); at most what the run holds (default: the run's own)."
        ),
    ] = None,
) -> None:
    """Render a run's report.html again from its results.json and scores.csv."""
    from rich.console import Console

    from miaudit.report.files import write_report
    from miaudit.report.findings import Levels, verdict
    from miaudit.report.run import load_run

    chosen = Levels.parse(levels) if levels is not None else Levels()
    loaded = load_run(run)
    if records is not None:
        loaded = loaded.shown_at(records)
    target = out if out is not None else run / "report.html"
    if target.is_dir():
        target = target / "report.html"
    _check_report_target(run, target, overwrite)
    with _damaged(run):
        written = write_report(loaded, target, chosen)
    Console().print(verdict(loaded, chosen).sentence, highlight=False, soft_wrap=True)
    typer.echo(f"Written {written}")


@app.command()
def compare(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Two or more run folders; the first is the baseline."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for compare.html and compare.json (default runs/compare-<date>-<time>)."
        ),
    ] = None,
    levels: Annotated[str | None, typer.Option(help=_LEVELS_HELP)] = None,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap replicates of each change.", min=100, max=100_000)
    ] = 1000,
    overwrite: Annotated[bool, typer.Option(help="Replace a comparison already in --out.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.", min=0)] = 0,
    quiet: Annotated[bool, typer.Option(help="No progress.")] = False,
    fail_on_increase: Annotated[
        bool,
        typer.Option(
            help="Fail (exit status 3) when a run's strongest attack finds members at a "
            "higher rate than the first run's by more than the noise (the change's 95 % "
            "interval lies above 0): a regression gate for CI. The files are written first."
        ),
    ] = False,
) -> None:
    """Put runs side by side: each verdict, the change of the strongest attack's TPR at
    low FPR against the first run with its interval, and overlaid ROC curves."""
    from rich.console import Console

    from miaudit.report.compare import compare_runs, print_comparison, render_compare_html
    from miaudit.report.findings import Levels
    from miaudit.report.run import load_run

    chosen = Levels.parse(levels) if levels is not None else Levels()
    folder = _compare_folder(out, overwrite)
    from miaudit.progress import Reporter, auto_reporter

    loaded = [load_run(r) for r in runs]  # seconds for a million records; then, progress
    # The bootstrap of small runs ends in a second: progress only where it takes a while.
    slow = sum(len(r.scores) for r in loaded) >= COMPARE_PROGRESS_RECORDS
    reporter = auto_reporter(option_for) if slow and not quiet else Reporter()
    with _damaged(*runs):
        cmp = compare_runs(loaded, levels=chosen, n_boot=bootstrap, seed=seed, reporter=reporter)
        page = render_compare_html(cmp)
    _write_comparison(folder, page, cmp.to_dict())
    print_comparison(cmp, folder, Console())
    if fail_on_increase:
        _judge_increase(cmp)


def _judge_increase(cmp: Any) -> None:
    """``--fail-on-increase``: exit status 3, naming each run whose leak rose beyond noise."""
    from miaudit.report.text import clean

    def pct(v: float) -> str:
        return f"{100 * v:.1f} %"

    risen = cmp.increases()
    if not risen:
        said = f"no run's strongest attack rose beyond noise at {pct(cmp.fpr)} FPR"
        typer.echo(f"miaudit: gate passed: {said}")
        return
    for c in risen:
        low, high = (100 * v for v in c.interval)
        typer.echo(
            f"miaudit: gate FAILED: {clean(c.run)}: {c.attack} finds {pct(c.tpr)} of members at "
            f"{pct(c.fpr)} FPR against the baseline's {pct(c.base_tpr)} ({100 * c.delta:+.1f} "
            f"points, 95 % interval {low:+.1f} to {high:+.1f}): beyond noise",
            err=True,
        )
    raise typer.Exit(3)


def _compare_folder(out: Path | None, overwrite: bool) -> Path:
    """Where ``miaudit compare`` writes (``--out``, else a new folder under runs/),
    refused before any work when it is a file or holds a comparison not to replace."""
    from miaudit.report import default_out_dir

    folder = out if out is not None else default_out_dir("compare")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file: pass a folder for compare.html")
    if any((folder / name).exists() for name in COMPARE_FILES) and not overwrite:
        raise ConfigError(
            f"--out {folder} already holds a comparison: choose another folder or pass --overwrite"
        )
    return folder


def _write_comparison(folder: Path, page: str, table: dict[str, Any]) -> None:
    """compare.html and compare.json, swapped in whole: a kill leaves the old comparison
    or the new one."""
    import json

    from miaudit.files import write_folder

    def fill(tmp: Path) -> None:
        (tmp / "compare.html").write_text(page, encoding="utf-8")
        (tmp / "compare.json").write_text(
            json.dumps(table, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )

    write_folder(folder, fill, COMPARE_FILES, ConfigError, "choose another --out")


#: What `miaudit compare` writes into its folder.
COMPARE_FILES = ("compare.html", "compare.json")
#: Records (all runs together) from which `miaudit compare` shows its bootstrap's progress.
COMPARE_PROGRESS_RECORDS = 100_000


def _experiments_help() -> str:
    from miaudit.experiments import EXPERIMENTS

    lines = [
        "Reproduce one of the paper's experiments (or all): a sweep of audits, written to "
        "--out/NAME as a table (CSV, JSON), a plot (PNG, SVG), summary.md beside the paper's "
        "figures, and report.html. Every audit goes through the job cache, so a rerun trains "
        "nothing. Full size on a 2-core machine:",
        "",
    ]
    lines += [f"{e.name}: {e.title} ({e.full_time})." for e in EXPERIMENTS.values()]
    lines += [
        "'all' runs every experiment this machine can and writes --out/index.html; one it "
        "cannot (a data set not installed: size needs Debian's dataset-fashion-mnist) is "
        "skipped, and listed at the end and in index.html with why. Exit status: 0 when "
        "every experiment ran, 1 when some could not run, 2 on an error in the command "
        "(or when the one experiment named cannot run).",
    ]
    return "\n\n".join(lines)


@app.command(help=_experiments_help())
def experiment(
    name: Annotated[
        str,
        typer.Argument(help="classes, size, shadows, overfitting, mitigations, synthesis, or all."),
    ],
    out: Annotated[
        Path, typer.Option(help="Folder for the results (one subfolder per experiment).")
    ] = Path("miaudit-experiments"),
    quick: Annotated[
        bool,
        typer.Option(
            help="A small version of each sweep (300 records, 4 shadows, logistic-regression "
            "attack models; seconds each)."
        ),
    ] = False,
    device: Annotated[str | None, typer.Option(help="cpu or cuda.")] = None,
    workers: Annotated[int | None, typer.Option(help="As for miaudit audit.")] = None,
    job_cache: Annotated[
        Path | None, typer.Option(help="Job cache folder (default: the user cache).")
    ] = None,
) -> None:
    from miaudit.errors import DataError
    from miaudit.experiments import EXPERIMENTS, get_experiment
    from miaudit.jobs import Execution

    every = name == "all"
    chosen = list(EXPERIMENTS.values()) if every else [get_experiment(name, EXPERIMENTS)]
    # Say at the start which experiments this machine cannot run (a data set not
    # installed), rather than after the others' minutes of training.
    chosen, not_run = _runnable(chosen, quick) if every else (chosen, [])
    execution = Execution(job_cache=job_cache, workers=workers)
    done = []
    for exp in chosen:
        try:
            done.append((exp, _run_one(exp, out, quick, execution, device)))
        except DataError as err:
            # One experiment the data cannot serve leaves the others to run; alone, it
            # is the command's error (one line, exit status 2).
            if not every:
                raise
            not_run.append((exp, err.for_cli(option_for)))
            typer.echo(f"{exp.name}: could not run, skipped: {not_run[-1][1]}")
    if every:
        _index_all(out, done, not_run, quick)


def _runnable(chosen: list[Any], quick: bool) -> tuple[list[Any], list[tuple[Any, str]]]:
    """The experiments whose data this machine has, and the others with why not (each
    said as it is found)."""
    from miaudit.errors import DataError
    from miaudit.experiments.base import check_data

    runnable, not_run = [], []
    for exp in chosen:
        try:
            check_data(exp.points(quick))
        except DataError as err:
            not_run.append((exp, err.for_cli(option_for)))
            typer.echo(f"{exp.name}: cannot run here, skipped: {not_run[-1][1]}")
            continue
        runnable.append(exp)
    return runnable, not_run


def _run_one(exp: Any, out: Path, quick: bool, execution: Any, device: str | None) -> Any:
    """Run one experiment into ``out/NAME`` and say whether the paper's finding holds."""
    from miaudit.experiments import run_experiment
    from miaudit.progress import LogReporter

    table = run_experiment(
        exp, out / exp.name, quick=quick, execution=execution, device=device,
        say=LogReporter(stream=sys.stdout).line,
    )  # fmt: skip
    finding = table["finding"]
    verdict = {True: "holds", False: "does not hold", None: "cannot tell"}[finding["holds"]]
    typer.echo(f"{exp.name}: the paper's finding {verdict}. {finding['sentence']}")
    typer.echo(f"{exp.name}: {table['seconds']:.0f} s; results in {out / exp.name}/")
    return table


def _index_all(out: Path, done: list[Any], not_run: list[tuple[Any, str]], quick: bool) -> None:
    """``experiment all``: write out/index.html, then name on standard error each
    experiment that could not run (exit status 1)."""
    from miaudit.experiments import EXPERIMENTS
    from miaudit.experiments.base import write_index

    # Registry order, whichever pass found them: the list reads like the index's.
    order = list(EXPERIMENTS.values())
    not_run.sort(key=lambda item: order.index(item[0]))
    write_index(out, done, quick=quick, not_run=not_run)
    typer.echo(f"index of all experiments: {out / 'index.html'}")
    if not_run:
        total = len(done) + len(not_run)
        head = f"{len(not_run)} of {total} experiments could not run here (exit status 1):"
        typer.echo(f"miaudit: {head}", err=True)
        for exp, reason in not_run:
            typer.echo(f"miaudit:   {exp.name}: {reason}", err=True)
        # 1, not 2: the command was right and the others' results are written.
        raise typer.Exit(1)


@app.command("attacks")
def list_attacks(
    as_json: Annotated[bool, typer.Option("--json", help="As JSON, for tools.")] = False,
) -> None:
    """List every attack: what it needs from an audit, and its settings."""
    from miaudit.attacks.listing import attack_listing

    listing = attack_listing()
    if as_json:
        import json

        typer.echo(json.dumps(listing, indent=1))
        return
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    console.soft_wrap = not console.is_terminal  # a file or a pipe: whole lines
    for i, entry in enumerate(listing):
        default = " [dim](default)[/dim]" if entry["default"] else ""
        console.print(f"[bold]{entry['name']}[/bold]{default}: {escape(entry['summary'])}")
        console.print(f"  needs: {escape('; '.join(entry['needs']))}")
        last_of_section = i + 1 == len(listing) or listing[i + 1]["section"] != entry["section"]
        if entry["settings"] and last_of_section:
            table = escape("[attacks." + entry["section"] + "]")
            console.print(f"  [cyan]{table}[/cyan]")
            for key, field in entry["settings"].items():
                about = f": {field['description']}" if field["description"] else ""
                console.print(f"    {key} = {field['default']!r} ({field['type']}){escape(about)}")
    console.print(
        escape(
            "Run them with --attacks a,b,c (or all, default); set one with --attack-setting "
            "SECTION.KEY=VALUE or an [attacks.SECTION] table in --config."
        ),
        style="dim",
    )


@app.command()
def datasets() -> None:
    """List the built-in data sets, their sizes, and whether each is installed here."""
    from rich.console import Console

    from miaudit.data import list_datasets
    from miaudit.report.text import print_table

    headers = ("name", "records", "features", "classes", "kind", "installed", "description")
    rows = [
        (
            info.name,
            f"{info.n_records:,}",
            str(info.n_features),
            str(info.n_classes),
            info.kind,
            "yes" if info.installed else f"no: {info.where}",
            info.description,
        )
        for info in list_datasets()
    ]
    print_table(
        Console(), "Built-in data sets", headers, rows,
        right=("records", "features", "classes"), no_wrap=("name", "records"),
    )  # fmt: skip


cache_app = typer.Typer(help="The on-disk caches: trained shadows' outputs, answered queries.")
app.add_typer(cache_app, name="cache")


def _cache_folders() -> dict[str, Path]:
    from miaudit.data.cache import cache_dir
    from miaudit.jobs import job_cache_root
    from miaudit.remote import query_cache_root

    return {"jobs": job_cache_root(), "queries": query_cache_root(), "datasets": cache_dir()}


def _folder_size(path: Path) -> tuple[int, int]:
    """Files and bytes of a cache (its marker aside)."""
    from miaudit.data.cache import CACHE_MARKER

    files = [
        p for p in path.rglob("*") if p.is_file() and p != path / CACHE_MARKER
    ] if path.is_dir() else []  # fmt: skip
    return len(files), sum(p.stat().st_size for p in files)


@cache_app.command("info")
def cache_info() -> None:
    """Where each cache is and how much it holds, and the key that signs their entries."""
    from miaudit.cache_key import KEY_ENV, key_path

    for name, folder in _cache_folders().items():
        files, size = _folder_size(folder)
        typer.echo(f"{name:<9} {folder}  {files} files, {size / 2**20:.1f} MiB")
    key = key_path()
    state = "signs every entry" if key.exists() else "made on first use"
    typer.echo(f"{'key':<9} {key}  ({state}; set ${KEY_ENV} to move it)")


def _check_clearable(folder: Path, name: str) -> None:
    """Refuse a cache folder miaudit did not create (see ``cache clear``)."""
    from miaudit.data.cache import CACHE_MARKER, user_cache_dir

    if folder.is_symlink():
        raise ConfigError(
            f"the {name} cache {folder} is a symbolic link: miaudit empties only folders it "
            "created; remove what it points to yourself"
        )
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ConfigError(f"the {name} cache {folder} is a file, not a cache folder: leave it")
    default = folder == user_cache_dir(name, "MIAUDIT_NO_SUCH_VARIABLE")
    if not (folder / CACHE_MARKER).is_file() and not default:
        raise ConfigError(
            f"{folder} is not a cache miaudit created (no {CACHE_MARKER} in it): nothing was "
            f"deleted; empty it yourself if it is one, or point the variable elsewhere"
        )


@cache_app.command("clear")
def cache_clear(
    which: Annotated[str, typer.Argument(help="jobs, queries, datasets or all.")] = "jobs",
) -> None:
    """Empty a cache (default: the job cache); it refills as audits run.

    Only a folder miaudit created is emptied: one holding its marker file, or the
    default folder under ``~/.cache/miaudit``. A folder a ``MIAUDIT_*_CACHE`` variable
    names that miaudit did not create, and a symbolic link, are refused: nothing in
    them is deleted."""
    import shutil

    from miaudit.data.cache import CACHE_MARKER

    folders = _cache_folders()
    names = list(folders) if which == "all" else [which]
    unknown = [n for n in names if n not in folders]
    if unknown:
        raise ConfigError(f"unknown cache {unknown[0]!r}: use jobs, queries, datasets or all")
    for name in names:
        folder = folders[name]
        _check_clearable(folder, name)
        files, size = _folder_size(folder)
        for entry in folder.iterdir() if folder.is_dir() else ():
            if entry.name == CACHE_MARKER:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        typer.echo(f"cleared {name}: {files} files, {size / 2**20:.1f} MiB")


@app.command()
def version() -> None:
    """Print miaudit's version."""
    typer.echo(__version__)


@contextmanager
def _terminate_as_interrupt():
    """SIGTERM (``kill``, a CI job's timeout, a container stopping) ends a command as
    Ctrl-C does: through the same cleanup, so no temporary folder of records is left and
    work already done stays in the caches. Only where SIGTERM has its default action (a
    caller that handles it keeps its own handler); the default is back afterwards."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    installed = False
    with contextlib.suppress(ValueError):  # not the main thread: the caller's business
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, interrupt)
            installed = True
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning user errors into one line and exit status 2."""
    try:
        # Standalone mode lets typer print usage errors itself (exit status 2);
        # our own errors pass through it untouched and are printed here.
        with _terminate_as_interrupt():
            app(args=argv, prog_name="miaudit", standalone_mode=True)
    except MiauditError as err:
        typer.echo(f"miaudit: error: {err.for_cli(option_for)}", err=True)
        return 2
    except PermissionError as exc:
        # A file of another user's (miaudit writes every file 0600): said as what it is.
        from miaudit.files import PERMISSION
        from miaudit.report.text import clean

        where = clean(exc.filename) if exc.filename is not None else "a file"
        typer.echo(f"miaudit: error: cannot open {where}: {PERMISSION}", err=True)
        return 2
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        typer.echo(f"miaudit: {_INTERRUPTED}", err=True)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
