"""The ``miaudit`` command: ``audit``, ``train``, ``datasets``.

Options are validated here, once, into an :class:`miaudit.config.AuditConfig`.
Errors the user can cause are printed as one line on standard error with exit
status 2 — never a traceback.
"""

from __future__ import annotations

import sys
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


def _split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _recipe_overrides(**kw: Any) -> dict[str, Any] | None:
    given = {k: v for k, v in kw.items() if v is not None}
    return given or None


def _build_config(config: Path | None, flags: dict[str, Any]):
    from miaudit.config import load_config_file, make_config, merge

    base = load_config_file(config) if config is not None else {}
    return make_config(merge(base, flags))


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
    target_size: Annotated[
        int | None,
        typer.Option(help="Target's training-set size (default 10,000 where the data allows)."),
    ] = None,
    shadows: Annotated[int | None, typer.Option(help="Number of shadow models.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="mlp, cnn, logistic-regression, random-forest, gradient-boosting, sklearn-mlp.",
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
            help="Most target queries hill-climbing synthesis may spend "
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
        typer.Option(help="Attack model: gbdt, nn, logreg, rf.", rich_help_panel=_ATTACK),
    ] = None,
    class_agnostic: Annotated[
        bool | None,
        typer.Option(
            "--class-agnostic/--per-class",
            help="One attack model for all classes instead of one per class.",
            rich_help_panel=_ATTACK,
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every random choice.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Result folder (default runs/<data set>-<date>-<time>)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace results already in --out.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Run a shadow-model membership inference audit and write its results."""
    from miaudit.pipeline import run_audit
    from miaudit.progress import Reporter, RichReporter
    from miaudit.report import default_out_dir, prepare_out_dir, write_results
    from miaudit.report.summary import print_summary

    flags: dict[str, Any] = {
        "dataset": dataset,
        "label": label,
        "categorical": _split_list(categorical),
        "target_size": target_size,
        "shadows": shadows,
        "target": _recipe_overrides(
            model=model, epochs=epochs, lr=lr, batch_size=batch_size, l2=l2, hidden=hidden
        ),
        "shadow": _recipe_overrides(model=shadow_model),
        "target_model": str(target_model) if target_model else None,
        "save_target": str(save_target) if save_target else None,
        "shadow_data": shadow_data,
        "noise": noise,
        "shadow_labels": shadow_labels,
        "query_budget": query_budget,
        "defense": [d for spec in defense for d in _split_list(spec)] if defense else None,
        "attack": {
            "learner": attack_learner,
            "per_class": None if class_agnostic is None else not class_agnostic,
        },
        "seed": seed,
        "device": device,
    }
    cfg = _build_config(config, flags)
    if out is not None:
        prepare_out_dir(out, overwrite=overwrite)
    if cfg.save_target is not None:
        prepare_model_dir(Path(cfg.save_target), overwrite=overwrite)
    reporter = Reporter() if quiet else RichReporter()
    try:
        result = run_audit(cfg, reporter)
    except KeyboardInterrupt:
        typer.echo("miaudit: interrupted; nothing was written to --out", err=True)
        raise typer.Exit(130) from None
    target_dir = out if out is not None else default_out_dir(result.dataset["name"])
    written = write_results(result, target_dir)
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
    seed: Annotated[int | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option()] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a model already in --out.")] = False,
) -> None:
    """Train a target model and save it (with which records it saw) for later audits."""
    from miaudit.pipeline import train_target_only
    from miaudit.progress import RichReporter

    flags = {
        "dataset": dataset,
        "label": label,
        "target_size": target_size,
        "target": _recipe_overrides(
            model=model, epochs=epochs, lr=lr, batch_size=batch_size, l2=l2, hidden=hidden
        ),
        "seed": seed,
        "device": device,
    }
    cfg = _build_config(config, flags)
    prepare_model_dir(out, overwrite=overwrite)
    info = train_target_only(cfg, out, RichReporter())
    typer.echo(
        f"saved {info['model']} trained on {info['n_train']} records of {info['dataset']} to "
        f"{out} (train accuracy {info['train_accuracy']:.3f}, "
        f"test accuracy {info['test_accuracy']:.3f})"
    )


@app.command()
def datasets() -> None:
    """List the built-in data sets, their sizes, and whether each is installed here."""
    from rich.console import Console
    from rich.table import Table

    from miaudit.data import list_datasets

    table = Table(title="Built-in data sets")
    for col in ("name", "records", "features", "classes", "kind", "installed", "description"):
        table.add_column(
            col,
            justify="right" if col in ("records", "classes") else "left",
            no_wrap=col in ("name", "records"),
        )
    for info in list_datasets():
        table.add_row(
            info.name,
            f"{info.n_records:,}",
            str(info.n_features),
            str(info.n_classes),
            info.kind,
            "yes" if info.installed else f"no: {info.where}",
            info.description,
        )
    Console().print(table)


@app.command()
def version() -> None:
    """Print miaudit's version."""
    typer.echo(__version__)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning user errors into one line and exit status 2."""
    try:
        # Standalone mode lets typer print usage errors itself (exit status 2);
        # our own errors pass through it untouched and are printed here.
        app(args=argv, prog_name="miaudit", standalone_mode=True)
    except MiauditError as err:
        typer.echo(f"miaudit: error: {err}", err=True)
        return 2
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        typer.echo("miaudit: interrupted; nothing was written to --out", err=True)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
