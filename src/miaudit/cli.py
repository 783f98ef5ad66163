"""The ``miaudit`` command: ``audit``, ``train``, ``datasets``.

Options are validated here, once, into an :class:`miaudit.config.AuditConfig`.
Errors the user can cause are printed as one line on standard error with exit
status 2 — never a traceback.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

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


def _recipe_overrides(**kw: Any) -> dict[str, Any] | None:
    given = {k: v for k, v in kw.items() if v is not None}
    return given or None


def _same(value: Any) -> Any:
    return value


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _policies(specs: list[str] | None) -> list[str] | None:
    return [d for spec in specs for d in _split_list(spec)] if specs else None


def _negated(value: bool | None) -> bool | None:
    return None if value is None else not value


_DP = "DP-SGD (mlp, cnn; target and shadows)"
_DP_EPSILON = typer.Option(
    help="Train with DP-SGD to this epsilon: each record's gradient clipped, Gaussian noise "
    "set by Opacus's accountant for --epochs and --batch-size, Poisson sampling.",
    rich_help_panel=_DP,
)
_DP_DELTA = typer.Option(help="DP-SGD's delta (default 1/(2n)).", rich_help_panel=_DP)
_MAX_GRAD_NORM = typer.Option(
    help="DP-SGD's clipping norm of each record's gradient (default 1.0).", rich_help_panel=_DP
)
_DP_ACCOUNTANT = typer.Option(
    help="Opacus accountant that sets the noise: rdp (default) or prv.", rich_help_panel=_DP
)


#: Every ``miaudit audit`` option that sets the configuration: its parameter -> the
#: configuration key it sets (dotted into tables) and how its value is read. The one
#: place options and settings meet: error messages name keys, and the CLI shows them
#: as these options (a test checks every key exists and every option is here or in
#: :data:`RUN_OPTIONS`).
AUDIT_OPTIONS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "dataset": ("dataset", _same),
    "label": ("label", _same),
    "categorical": ("categorical", _split_list),
    "id_column": ("id_column", _same),
    "text_column": ("text_column", _same),
    "pixel_scale": ("pixel_scale", _same),
    "target_size": ("target_size", _same),
    "shadows": ("shadows", _same),
    "shadow_size": ("shadow_size", _same),
    "target_python": ("target_python", _same),
    "trainer_python": ("trainer_python", _same),
    "python_path": ("python_path", _same),
    "members": ("members", _text),
    "non_members": ("non_members", _text),
    "members_as": ("members_as", _same),
    "model": ("target.model", _same),
    "epochs": ("target.epochs", _same),
    "lr": ("target.lr", _same),
    "batch_size": ("target.batch_size", _same),
    "l2": ("target.l2", _same),
    "hidden": ("target.hidden", _same),
    "augment": ("target.augment", _same),
    "dp_epsilon": ("target.dp_epsilon", _same),
    "dp_delta": ("target.dp_delta", _same),
    "max_grad_norm": ("target.max_grad_norm", _same),
    "dp_accountant": ("target.dp_accountant", _same),
    "shadow_model": ("shadow.model", _same),
    "target_model": ("target_model", _text),
    "save_target": ("save_target", _text),
    "target_url": ("target_url", _same),
    "membership": ("membership", _text),
    "http_timeout": ("http.timeout", _same),
    "http_retries": ("http.retries", _same),
    "shadow_data": ("shadow_data", _same),
    "noise": ("noise", _same),
    "shadow_labels": ("shadow_labels", _same),
    "query_budget": ("query_budget", _same),
    "defense": ("defense", _policies),
    "attack_learner": ("attacks.shokri.learner", _same),
    "class_agnostic": ("attacks.shokri.per_class", _negated),
    "attacks": ("attacks.run", _split_list),
    "lira_variance": ("attacks.lira.variance", _same),
    "lira_queries": ("attacks.lira.queries", _same),
    "queries": ("attacks.queries", _same),
    "game": ("game", _same),
    "canaries": ("canaries", _same),
    "canary_kind": ("canary_kind", _same),
    "bootstrap": ("bootstrap", _same),
    "fpr": ("fprs", _rates),
    "seed": ("seed", _same),
    "device": ("device", _same),
    "records": ("show_records", _same),
}

#: ``miaudit audit`` options that say how or where the audit runs (or which settings
#: file to read), never what it computes: not configuration keys.
RUN_OPTIONS = frozenset({
    "config", "attack_setting", "token", "query_cache", "no_query_cache", "workers",
    "max_stack", "executor", "scheduler", "job_cache", "no_job_cache", "keep_models", "out",
    "overwrite", "save_outputs", "quiet", "allow_python",
})  # fmt: skip


def _options_to_config(values: dict[str, Any]) -> dict[str, Any]:
    """The settings the given options say, as nested tables (``None``: not given)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        path, read = AUDIT_OPTIONS[name]
        value = read(value)
        if value is None:
            continue
        *tables, last = path.split(".")
        at = out
        for table in tables:
            at = at.setdefault(table, {})
        at[last] = value
    return out


def option_for(config_key: str) -> str | None:
    """The ``miaudit audit`` option that sets ``config_key`` (``--attacks`` for
    ``attacks.run``), or ``None`` when only a settings file sets it."""
    names = {path: name for name, (path, _) in AUDIT_OPTIONS.items()}
    name = names.get(config_key)
    if name is None:
        return None
    for param in typer.main.get_command(app).commands["audit"].params:
        if param.name == name:
            # A boolean pair names the setting by the option that turns it on.
            return "--per-class" if name == "class_agnostic" else param.opts[0]
    return None


def _build_config(config: Path | None, flags: dict[str, Any], allow_python: bool = False):
    from miaudit.config import PYTHON_KEYS, combine, load_config_file, refuse_python_from_file

    base = load_config_file(config) if config is not None else {}
    # Code a flag names is the user's own choice; code only the file names is not.
    from_file = {k: v for k, v in base.items() if k not in PYTHON_KEYS or flags.get(k) is None}
    refuse_python_from_file(from_file, config, allow_python)
    return combine(base, flags)


@app.command()
def audit(
    config: Annotated[
        Path | None, typer.Option(help="TOML or JSON settings (flags override it).")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="Built-in data set (see `miaudit datasets`) or a CSV/Parquet/.npz file."),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(help="Label column of a table, or the label of a built-in set (census)."),
    ] = None,
    categorical: Annotated[
        str | None, typer.Option(help="Comma-separated columns to treat as categorical.")
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(
            help="A column naming each record: kept out of the features, written to "
            "scores.csv and the report, and usable in --members."
        ),
    ] = None,
    text_column: Annotated[
        str | None,
        typer.Option(
            help="A table's column of texts: its records are text records (audited with the "
            "text recipe tfidf-lr, or your own model)."
        ),
    ] = None,
    pixel_scale: Annotated[
        float | None,
        typer.Option(help="Images that are not uint8: the value of white (e.g. 255, 65535)."),
    ] = None,
    target_size: Annotated[
        int | None,
        typer.Option(help="Target's training-set size (default 10,000 where the data allows)."),
    ] = None,
    shadows: Annotated[int | None, typer.Option(help="Number of shadow models.")] = None,
    shadow_size: Annotated[
        int | None,
        typer.Option(
            help="Records each shadow trains on (default: as many as the target); for a pool "
            "too small for shadows of the target's size."
        ),
    ] = None,
    target_python: Annotated[
        str | None,
        typer.Option(
            help="Audit your own fitted model: module:attribute (or file.py:attribute) naming "
            "a scikit-learn estimator or Pipeline, a torch module, or a callable records -> "
            "probabilities. Needs --members.",
            rich_help_panel=_OWN,
        ),
    ] = None,
    trainer_python: Annotated[
        str | None,
        typer.Option(
            help="Train shadows (and, with --game recipe, the target) with your own code: "
            "module:attribute naming an unfitted estimator, a miaudit.TorchTrainer, or a "
            "function fit(X, y, seed) -> model.",
            rich_help_panel=_OWN,
        ),
    ] = None,
    python_path: Annotated[
        list[str] | None,
        typer.Option(help="Folder to import your modules from (repeatable).", rich_help_panel=_OWN),
    ] = None,
    members: Annotated[
        Path | None,
        typer.Option(
            help="Which rows your target was trained on: a .npy (mask, row numbers or ids), "
            ".txt (one per line) or .csv (one column) file; ids need --id-column; "
            "--members-as settles a file that reads more than one way.",
            rich_help_panel=_OWN,
        ),
    ] = None,
    non_members: Annotated[
        Path | None,
        typer.Option(
            help="Rows it never saw (default: as many other rows as members, at most half).",
            rich_help_panel=_OWN,
        ),
    ] = None,
    members_as: Annotated[
        str | None,
        typer.Option(
            help="How --members and --non-members read where more than one way fits: mask "
            "(0/1 per row), positions (row numbers from 0) or ids.",
            rich_help_panel=_OWN,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="mlp, cnn, logistic-regression, random-forest, gradient-boosting, sklearn-mlp; "
            "text: tfidf-lr, boe.",
            rich_help_panel=_RECIPE,
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(rich_help_panel=_RECIPE)] = None,
    lr: Annotated[
        float | None, typer.Option(help="Learning rate.", rich_help_panel=_RECIPE)
    ] = None,
    batch_size: Annotated[int | None, typer.Option(rich_help_panel=_RECIPE)] = None,
    l2: Annotated[
        float | None, typer.Option(help="L2 regularisation weight.", rich_help_panel=_RECIPE)
    ] = None,
    hidden: Annotated[
        int | None, typer.Option(help="Hidden units of the MLP.", rich_help_panel=_RECIPE)
    ] = None,
    augment: Annotated[
        bool | None,
        typer.Option(
            "--augment/--no-augment",
            help="Train the CNN on mirrored and shifted images (as image models usually are; "
            "augmented --queries pay on them).",
            rich_help_panel=_RECIPE,
        ),
    ] = None,
    dp_epsilon: Annotated[float | None, _DP_EPSILON] = None,
    dp_delta: Annotated[float | None, _DP_DELTA] = None,
    max_grad_norm: Annotated[float | None, _MAX_GRAD_NORM] = None,
    dp_accountant: Annotated[str | None, _DP_ACCOUNTANT] = None,
    shadow_model: Annotated[
        str | None,
        typer.Option(help="Train the shadows with another model.", rich_help_panel=_RECIPE),
    ] = None,
    target_model: Annotated[
        Path | None,
        typer.Option(help="Audit a target saved by `miaudit train` instead of training one."),
    ] = None,
    save_target: Annotated[
        Path | None, typer.Option(help="Also save the trained target into this folder.")
    ] = None,
    target_url: Annotated[
        str | None,
        typer.Option(
            help="Attack a prediction API (miaudit serve, or any service speaking its "
            "protocol) at this base URL instead of a local model.",
            rich_help_panel=_REMOTE,
        ),
    ] = None,
    membership: Annotated[
        Path | None,
        typer.Option(
            help="Which records the remote target was trained on: its saved folder or "
            "membership.npz (to evaluate the attack, never to train it).",
            rich_help_panel=_REMOTE,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="MIAUDIT_TOKEN",
            show_envvar=True,
            help="Bearer token of the service (never written to the results).",
            rich_help_panel=_REMOTE,
        ),
    ] = None,
    query_cache: Annotated[
        Path | None,
        typer.Option(
            help="Folder of answered queries, so an interrupted audit resumes without "
            "paying again (default $MIAUDIT_QUERY_CACHE or ~/.cache/miaudit/queries).",
            rich_help_panel=_REMOTE,
        ),
    ] = None,
    no_query_cache: Annotated[
        bool,
        typer.Option(help="Keep no answered queries on disk.", rich_help_panel=_REMOTE),
    ] = False,
    http_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds per request (default 30).", rich_help_panel=_REMOTE),
    ] = None,
    http_retries: Annotated[
        int | None,
        typer.Option(
            help="Retries of a request that timed out, failed to connect or was answered "
            "429/5xx, with exponential backoff (default 5).",
            rich_help_panel=_REMOTE,
        ),
    ] = None,
    shadow_data: Annotated[
        str | None,
        typer.Option(
            help="Shadow training data: real (the attacker's pool), noisy (pool records "
            "with --noise of their features re-drawn), marginal (features drawn from "
            "per-class marginals), synthetic (hill climbing against the target).",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    noise: Annotated[
        float | None,
        typer.Option(help="Fraction of features re-drawn for noisy.", rich_help_panel=_ATTACK),
    ] = None,
    shadow_labels: Annotated[
        str | None,
        typer.Option(
            help="Label shadow records by the data (data) or by the target's answer (target).",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    query_budget: Annotated[
        int | None,
        typer.Option(
            help="Most queries the audit may send to the target (cached answers are "
            "free); hill-climbing synthesis stops early to leave what scoring needs "
            "(its other knobs: the synthesis table of --config).",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    defense: Annotated[
        list[str] | None,
        typer.Option(
            help="Output policy of the target, repeatable, applied in order: top-k=K, "
            "round=D, temperature=T, label-only. The shadows answer through it too.",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    attack_learner: Annotated[
        str | None,
        typer.Option(
            help="Shokri's attack models: auto (default: nn or gbdt, whichever attacks a "
            "held-out shadow better; nn on a tie or with one shadow), nn (small networks "
            "trained as one stack on --device), gbdt, logreg, rf.",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    class_agnostic: Annotated[
        bool | None,
        typer.Option(
            "--class-agnostic/--per-class",
            help="One attack model for all classes instead of one per class.",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    attacks: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated attacks, all sharing one set of shadows: shokri; loss, "
            "confidence, entropy, mentr (each also -class: per-class thresholds); lira, "
            "rmia (online: shadows train on halves of the evaluated records), lira-offline, "
            "rmia-offline; gap, robustness (label only); 'all'. Default: "
            "shokri,loss,mentr-class,gap,lira-offline,rmia-offline.",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    attack_setting: Annotated[
        list[str] | None,
        typer.Option(
            help="Any attack's setting, SECTION.KEY=VALUE, repeatable (e.g. rmia.gamma=2, "
            "boundary.directions=16); `miaudit attacks` lists them.",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    lira_variance: Annotated[
        str | None,
        typer.Option(
            help="LiRA's Gaussians: auto (default: the stronger on shadows attacked with the "
            "others), global (stable below ~64 shadows) or per-record.",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    lira_queries: Annotated[
        int | None,
        typer.Option(
            help="Queries per record for LiRA alone (see --queries).",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    queries: Annotated[
        int | None,
        typer.Option(
            help="Queries per record for every attack that scores a signal per record (LiRA, "
            "RMIA, the threshold attacks), averaged over them: 1 (default), or up to 18 with "
            "augmentations (images: mirror, then 1-pixel shifts; tables: small numeric "
            "offsets). They pay on models trained on those augmentations (--augment).",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    game: Annotated[
        str | None,
        typer.Option(
            help="shokri (default: target members vs non-members, shadows on the attacker's "
            "pool), recipe (target and reference models each on a random half of a pool; "
            "every pool record is scored) or canaries (one training run: --canaries records "
            "each put in the target's training set with probability 1/2, and a lower bound "
            "on the epsilon its training honours; Steinke, Nasr and Jagielski 2023).",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    canaries: Annotated[
        int | None,
        typer.Option(
            help="Canaries of --game canaries (default 1000; at most the target's size).",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    canary_kind: Annotated[
        str | None,
        typer.Option(
            help="population (default: records drawn from the data) or mislabelled (the same, "
            "each given a wrong label: easier to memorise, a stronger test).",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    bootstrap: Annotated[
        int | None,
        typer.Option(
            help="Bootstrap replicates for the TPR intervals (default 1000; 0: none).",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    fpr: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated extra false-positive rates to report the TPR at (always: "
            "0.001, 0.01, 0.1); refused when too few non-members can resolve one.",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Shadow chunks trained at once: threads for PyTorch shadows, processes for "
            "scikit-learn shadows or a local Dask cluster (default: the cores available).",
            rich_help_panel=_EXEC,
        ),
    ] = None,
    max_stack: Annotated[
        int | None,
        typer.Option(
            help="Most shadow networks trained together as one stack (default: 8 on a CPU, "
            "as many as half the GPU's memory holds on one, at most 256); lower it when a "
            "GPU runs out of memory.",
            rich_help_panel=_EXEC,
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            help="local (default) or dask: shadow training on a dask.distributed cluster.",
            rich_help_panel=_EXEC,
        ),
    ] = "local",
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Dask scheduler address (tcp://host:port); without it --executor dask "
            "starts a LocalCluster.",
            rich_help_panel=_EXEC,
        ),
    ] = None,
    job_cache: Annotated[
        Path | None,
        typer.Option(
            help="Folder of trained shadows' outputs (default $MIAUDIT_JOB_CACHE or "
            "~/.cache/miaudit/jobs): an identical rerun trains nothing, an interrupted one "
            "resumes.",
            rich_help_panel=_EXEC,
        ),
    ] = None,
    no_job_cache: Annotated[
        bool, typer.Option(help="Keep no job cache.", rich_help_panel=_EXEC)
    ] = False,
    keep_models: Annotated[
        bool,
        typer.Option(
            help="Save every shadow (or reference) model in OUT/shadow-models/NNN instead of "
            "dropping it once its outputs are taken.",
            rich_help_panel=_EXEC,
        ),
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Seed of every random choice.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Result folder (default runs/<data set>-<date>-<time>)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace results already in --out.")] = False,
    records: Annotated[
        str | None,
        typer.Option(
            help="How much of each record results.json, scores.csv and the page show: "
            "values, ids (default: rows and ids, no values) or none (nothing that names a "
            "record: a folder to share)."
        ),
    ] = None,
    save_outputs: Annotated[
        bool,
        typer.Option(
            help="Also write outputs.npz: every model output the attacks scored from, for "
            "`miaudit evaluate` (which then gives the same metrics)."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    allow_python: Annotated[
        bool,
        typer.Option(
            help="Let --config name Python code to import and run (target_python, "
            "trainer_python); without it such a file is refused."
        ),
    ] = False,
) -> None:
    """Run a shadow-model membership inference audit and write its results."""
    from miaudit.pipeline import run_audit
    from miaudit.progress import Reporter, auto_reporter
    from miaudit.report import default_out_dir, prepare_out_dir, write_results
    from miaudit.report.summary import print_summary

    given = locals()
    flags = _options_to_config({name: given[name] for name in AUDIT_OPTIONS})
    for section, values in _attack_settings(attack_setting).items():
        attacks = flags.setdefault("attacks", {})
        attacks[section] = {**(attacks.get(section) or {}), **values}
    cfg = _build_config(config, flags, allow_python)
    if save_outputs:  # refused before the audit runs, not after
        from miaudit.report.disclosure import refuse_outputs_at

        refuse_outputs_at(cfg.show_records)
    if out is None and keep_models:
        # The models are written while the audit runs: the folder is chosen now, named
        # as the data set will be (a built-in's full name, or a file's stem).
        from miaudit.data.builtin import is_builtin, resolve_builtin

        name = str(cfg.dataset)
        label = resolve_builtin(name, cfg.label).name if is_builtin(name) else Path(name).stem
        out = default_out_dir(label)
    if out is not None:
        prepare_out_dir(out, overwrite=overwrite)
    if cfg.save_target is not None:
        prepare_model_dir(Path(cfg.save_target), overwrite=overwrite)
    reporter = Reporter() if quiet else auto_reporter(option_for)
    if no_query_cache and query_cache is not None:
        raise ConfigError("--query-cache and --no-query-cache contradict each other: pass one")
    if no_job_cache and job_cache is not None:
        raise ConfigError("--job-cache and --no-job-cache contradict each other: pass one")
    from miaudit.jobs import Execution

    execution = Execution(
        job_cache=False if no_job_cache else job_cache,
        executor=executor,
        scheduler=scheduler,
        workers=workers,
        keep_models=out / "shadow-models" if keep_models else None,
        max_stack=max_stack,
    )
    try:
        result = run_audit(
            cfg,
            reporter,
            token=token,
            query_cache=False if no_query_cache else query_cache,
            execution=execution,
        )
    except KeyboardInterrupt:
        typer.echo(f"miaudit: {_INTERRUPTED}", err=True)
        raise typer.Exit(130) from None
    target_dir = out if out is not None else default_out_dir(result.dataset.name)
    written = write_results(result, target_dir, outputs=save_outputs)
    print_summary(result, written)


def prepare_model_dir(path: Path, *, overwrite: bool) -> None:
    """Refuse to overwrite a saved model unless asked."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file: pass a folder to save the model into")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError(f"{path} is not empty: choose another folder or pass --overwrite")


@app.command()
def train(
    out: Annotated[Path, typer.Option(help="Folder to save the model and its membership into.")],
    config: Annotated[Path | None, typer.Option(help="TOML or JSON settings.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Built-in data set or a file.")] = None,
    label: Annotated[str | None, typer.Option(help="Label column or built-in label.")] = None,
    target_size: Annotated[int | None, typer.Option(help="Training-set size.")] = None,
    model: Annotated[str | None, typer.Option(rich_help_panel=_RECIPE)] = None,
    epochs: Annotated[int | None, typer.Option(rich_help_panel=_RECIPE)] = None,
    lr: Annotated[float | None, typer.Option(rich_help_panel=_RECIPE)] = None,
    batch_size: Annotated[int | None, typer.Option(rich_help_panel=_RECIPE)] = None,
    l2: Annotated[float | None, typer.Option(rich_help_panel=_RECIPE)] = None,
    hidden: Annotated[int | None, typer.Option(rich_help_panel=_RECIPE)] = None,
    augment: Annotated[
        bool | None, typer.Option("--augment/--no-augment", rich_help_panel=_RECIPE)
    ] = None,
    dp_epsilon: Annotated[float | None, _DP_EPSILON] = None,
    dp_delta: Annotated[float | None, _DP_DELTA] = None,
    max_grad_norm: Annotated[float | None, _MAX_GRAD_NORM] = None,
    dp_accountant: Annotated[str | None, _DP_ACCOUNTANT] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option()] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a model already in --out.")] = False,
) -> None:
    """Train a target model and save it (with which records it saw) for later audits."""
    from miaudit.pipeline import train_target_only
    from miaudit.progress import auto_reporter

    flags = {
        "dataset": dataset,
        "label": label,
        "target_size": target_size,
        "target": _recipe_overrides(
            model=model,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            l2=l2,
            hidden=hidden,
            augment=augment,
            dp_epsilon=dp_epsilon,
            dp_delta=dp_delta,
            max_grad_norm=max_grad_norm,
            dp_accountant=dp_accountant,
        ),
        "seed": seed,
        "device": device,
    }
    cfg = _build_config(config, flags)
    prepare_model_dir(out, overwrite=overwrite)
    info = train_target_only(cfg, out, auto_reporter(option_for))
    typer.echo(
        f"saved {info['model']} trained on {info['n_train']} records of {info['dataset']} to "
        f"{out} (train accuracy {info['train_accuracy']:.3f}, "
        f"test accuracy {info['test_accuracy']:.3f})"
    )


@app.command()
def serve(
    model_dir: Annotated[
        Path, typer.Argument(help="A target saved by `miaudit train` or `audit --save-target`.")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one and prints it).")] = 8000,
    token: Annotated[
        list[str] | None,
        typer.Option(
            help="Bearer token a client must send; repeat for several clients (each gets "
            "its own query counter). Default: $MIAUDIT_TOKEN.",
        ),
    ] = None,
    no_auth: Annotated[
        bool, typer.Option(help="Serve without a token (only on a trusted network).")
    ] = False,
    top_k: Annotated[
        int | None,
        typer.Option(help="Answer only the K largest probabilities.", rich_help_panel=_POLICY),
    ] = None,
    round_: Annotated[
        int | None,
        typer.Option("--round", help="Round probabilities to D decimals.", rich_help_panel=_POLICY),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(help="Soften the probabilities at temperature T.", rich_help_panel=_POLICY),
    ] = None,
    label_only: Annotated[
        bool, typer.Option(help="Answer only the predicted label.", rich_help_panel=_POLICY)
    ] = False,
    max_batch: Annotated[int, typer.Option(help="Most records per request.")] = 1024,
    max_body: Annotated[int, typer.Option(help="Most bytes per request body.")] = 8 * 2**20,
    max_connections: Annotated[
        int,
        typer.Option(
            help="Most open connections (fewer where the file-descriptor limit allows "
            "fewer); past it a new one displaces the longest idle one."
        ),
    ] = 100,
    header_timeout: Annotated[
        float, typer.Option(help="Seconds a client has to send a request's headers.")
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(help="Seconds a client has to send a request's body, and to read an answer."),
    ] = 60.0,
    workers: Annotated[int, typer.Option(help="Requests parsed and answered at once.")] = 2,
) -> None:
    """Serve a saved model as an HTTP prediction API (POST /v1/predict, GET /v1/info)."""
    import os

    from miaudit.policies import parse_policy
    from miaudit.serve import TOKEN_ENV, PredictionService, ServiceLimits, bind, create_app, url_of
    from miaudit.serve import run as run_server

    tokens = list(token or [])
    if not tokens and os.environ.get(TOKEN_ENV):
        tokens = [os.environ[TOKEN_ENV]]
    if tokens and no_auth:
        raise ConfigError("--no-auth and a token contradict each other: pass one")
    if not tokens and not no_auth:
        raise ConfigError(
            f"no token: pass --token (or set {TOKEN_ENV}) so that only your clients can "
            "query the model, or --no-auth to serve it to anyone who can connect"
        )
    # The order a service would apply them: soften, truncate, round; label-only alone.
    specs = [
        f"temperature={temperature}" if temperature is not None else None,
        f"top-k={top_k}" if top_k is not None else None,
        f"round={round_}" if round_ is not None else None,
        "label-only" if label_only else None,
    ]
    policies = [parse_policy(spec) for spec in specs if spec is not None]
    service = PredictionService.from_folder(model_dir, policies, max_batch)
    limits = ServiceLimits(
        tuple(tokens),
        max_batch,
        max_body,
        max_connections=max_connections,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        workers=workers,
    )
    app = create_app(service, limits)
    sock = bind(host, port)
    policy = ", ".join(p.spec for p in policies) or "none"
    if no_auth:
        import ipaddress

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
    typer.echo(
        f"serving {model_dir} ({len(service.class_names)} classes, output policy: {policy}) "
        f"on {url_of(sock)}; Ctrl-C stops",
    )
    sys.stdout.flush()
    run_server(app, sock)
    typer.echo(f"stopped after answering {sum(app.state.counts.values())} queries")


@app.command()
def evaluate(
    outputs: Annotated[
        Path,
        typer.Argument(
            help="An .npz of model outputs (array names: README, 'Your own model'), e.g. the "
            "outputs.npz of `miaudit audit --save-outputs`."
        ),
    ],
    attacks: Annotated[
        str | None,
        typer.Option(help="Comma-separated attacks (default: every one the arrays allow)."),
    ] = None,
    logits: Annotated[
        bool, typer.Option(help="The outputs are logits: softmax them first.")
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Seed (default: the file's, or 0).")] = None,
    bootstrap: Annotated[int | None, typer.Option(help="Bootstrap replicates.")] = None,
    fpr: Annotated[str | None, typer.Option(help="Extra false-positive rates.")] = None,
    attack_setting: Annotated[
        list[str] | None,
        typer.Option(
            help="An attack's setting, SECTION.KEY=VALUE, repeatable (e.g. rmia.gamma=2)."
        ),
    ] = None,
    queries: Annotated[
        int | None,
        typer.Option(
            help="Queries per record for LiRA, RMIA and the threshold attacks (default: all "
            "the variants the file holds)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Result folder (default runs/outputs-<date>-<time>).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace results already in --out.")] = False,
    records: Annotated[
        str | None,
        typer.Option(
            help="How much of each record the result files show: values, ids (default) or "
            "none (no row or id)."
        ),
    ] = None,
) -> None:
    """Run the attacks on model outputs computed elsewhere and write the results."""
    from miaudit.api import evaluate as run_evaluate
    from miaudit.report import default_out_dir
    from miaudit.report.summary import print_summary

    target_dir = out if out is not None else default_out_dir(outputs.stem)
    settings: dict[str, Any] = dict(_attack_settings(attack_setting))
    if queries is not None:
        settings["queries"] = queries
    result = run_evaluate(
        outputs, attacks=_split_list(attacks), logits=logits, seed=seed, bootstrap=bootstrap,
        fprs=_rates(fpr), attack_settings=settings or None, out=target_dir, overwrite=overwrite,
        **({} if records is None else {"show_records": records}),
    )  # fmt: skip
    print_summary(result, target_dir)


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
) -> None:
    """Put runs side by side: each verdict, the change of the strongest attack's TPR at
    low FPR against the first run with its interval, and overlaid ROC curves."""
    import json

    from rich.console import Console

    from miaudit.report import default_out_dir
    from miaudit.report.compare import compare_runs, print_comparison, render_compare_html
    from miaudit.report.findings import Levels
    from miaudit.report.run import load_run

    chosen = Levels.parse(levels) if levels is not None else Levels()
    folder = out if out is not None else default_out_dir("compare")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file: pass a folder for compare.html")
    if any((folder / name).exists() for name in COMPARE_FILES) and not overwrite:
        raise ConfigError(
            f"--out {folder} already holds a comparison: choose another folder or pass --overwrite"
        )
    from miaudit.progress import Reporter, auto_reporter

    loaded = [load_run(r) for r in runs]  # seconds for a million records; then, progress
    # The bootstrap of small runs ends in a second: progress only where it takes a while.
    slow = sum(len(r.scores) for r in loaded) >= COMPARE_PROGRESS_RECORDS
    reporter = auto_reporter(option_for) if slow and not quiet else Reporter()
    with _damaged(*runs):
        cmp = compare_runs(loaded, levels=chosen, n_boot=bootstrap, seed=seed, reporter=reporter)
        page = render_compare_html(cmp)
    from miaudit.files import write_folder

    def fill(tmp: Path) -> None:
        (tmp / "compare.html").write_text(page, encoding="utf-8")
        (tmp / "compare.json").write_text(
            json.dumps(cmp.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )

    # Swapped in whole: a kill leaves the old comparison or the new one.
    write_folder(folder, fill, COMPARE_FILES, ConfigError, "choose another --out")
    print_comparison(cmp, folder, Console())


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
    from miaudit.experiments import EXPERIMENTS, Experiment, get_experiment, run_experiment
    from miaudit.experiments.base import check_data
    from miaudit.jobs import Execution
    from miaudit.progress import LogReporter

    every = name == "all"
    chosen = list(EXPERIMENTS.values()) if every else [get_experiment(name, EXPERIMENTS)]
    not_run: list[tuple[Experiment, str]] = []
    if every:
        # Say at the start which experiments this machine cannot run (a data set not
        # installed), rather than after the others' minutes of training.
        runnable = []
        for exp in chosen:
            try:
                check_data(exp.points(quick))
            except DataError as err:
                not_run.append((exp, err.for_cli(option_for)))
                typer.echo(f"{exp.name}: cannot run here, skipped: {not_run[-1][1]}")
                continue
            runnable.append(exp)
        chosen = runnable
    execution = Execution(job_cache=job_cache, workers=workers)
    done = []
    for exp in chosen:
        try:
            table = run_experiment(
                exp, out / exp.name, quick=quick, execution=execution, device=device,
                say=LogReporter(stream=sys.stdout).line,
            )  # fmt: skip
        except DataError as err:
            # One experiment the data cannot serve leaves the others to run; alone, it
            # is the command's error (one line, exit status 2).
            if not every:
                raise
            not_run.append((exp, err.for_cli(option_for)))
            typer.echo(f"{exp.name}: could not run, skipped: {not_run[-1][1]}")
            continue
        finding = table["finding"]
        verdict = {True: "holds", False: "does not hold", None: "cannot tell"}[finding["holds"]]
        typer.echo(f"{exp.name}: the paper's finding {verdict}. {finding['sentence']}")
        typer.echo(f"{exp.name}: {table['seconds']:.0f} s; results in {out / exp.name}/")
        done.append((exp, table))
    if not every:
        return
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
