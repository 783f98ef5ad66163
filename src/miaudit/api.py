"""The Python API: :func:`audit` and :func:`evaluate`, the same pipeline as the CLI.

Position: the edge. Keyword arguments are sorted here into settings (validated into
an :class:`~miaudit.config.AuditConfig`, written to ``config.json``) and the objects
of the user's session (their model, trainer, data and members, carried as a
:class:`~miaudit.handover.Handover`), then handed to
:func:`miaudit.pipeline.run_audit`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from miaudit.result import AuditResult

__all__ = ["audit", "evaluate"]


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _sort_target(target: Any, settings: dict[str, Any], handed: dict[str, Any]) -> None:
    """``target=`` is a recipe, a saved model, a URL, an MLflow model's URI (kept as
    ``target_model``, loaded by :func:`miaudit.mlflow.open_named`), or the user's own model."""
    from miaudit.config import RecipeSpec, is_mlflow_uri

    if target is None:
        return
    if isinstance(target, RecipeSpec):
        settings["target"] = target.model_dump(exclude_none=True)
    elif isinstance(target, dict):
        settings["target"] = target
    elif isinstance(target, Path):
        settings["target_model"] = str(target)
    elif isinstance(target, str):
        if _is_url(target):
            settings["target_url"] = target
        elif is_mlflow_uri(target) or Path(target).expanduser().is_dir():
            settings["target_model"] = target
        else:
            settings["target"] = {"model": target}
    else:
        handed["target"] = target


def audit(
    config=None,
    *,
    target: Any = None,
    data: Any = None,
    members: Any = None,
    non_members: Any = None,
    members_as: str | None = None,
    trainer: Any = None,
    ids: Any = None,
    cache_key: str | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    allow_python: bool = False,
    token: str | None = None,
    query_cache: str | bool | None = None,
    execution=None,
    progress: Any = False,
    fail_on: str | None = None,
    **settings: Any,
) -> AuditResult:
    """Run an audit and return its result (the same pipeline as ``miaudit audit``).

    Parameters
    ----------
    config:
        An :class:`miaudit.config.AuditConfig`, a dict of settings, or a path to a
        ``.toml``/``.json`` file; keyword ``settings`` override it (same names as the
        config file: ``dataset``, ``label``, ``target_size``, ``shadows``,
        ``attacks`` (a list of names, or ``{"run": [...], "rmia": {"gamma": 2}}`` with
        each attack's settings: ``miaudit attacks`` lists them), ``id_column``, ``seed``, …).
    target:
        What is audited: your own fitted model — a scikit-learn estimator or
        ``Pipeline`` (anything with ``predict_proba``), a PyTorch ``nn.Module``
        (its outputs are logits; see :class:`miaudit.TorchModel`), or a callable
        ``records -> probabilities`` — which then needs ``members``; or what miaudit
        trains or reaches itself: a recipe (``"mlp"``, ``{"model": "mlp", "epochs":
        5}``), a saved model's folder, a prediction API's URL. An MLflow model's URI
        (``"models:/NAME/VERSION"``, ``"models:/NAME@ALIAS"``, ``"runs:/RUN_ID/PATH"``;
        ``pip install 'miaudit[mlflow]'``) is loaded with MLflow's own loaders and
        audited as your own model, with ``members`` (:mod:`miaudit.mlflow`).
    data:
        Your records: a pandas DataFrame (with ``label=`` naming the label column) or
        ``(X, y)`` arrays (a table, or images ``(n, h, w)`` / ``(n, c, h, w)``). Your
        model receives exactly these rows. A string is a built-in data set's name or
        a file's path (like ``dataset=``).
    members, non_members:
        Which records of ``data`` your target was trained on (and which it never
        saw): a mask (one entry per row: booleans, or 0/1 integers or floats), row
        positions (integers ``0 .. n-1``, each once), or ids (with ``ids=`` or
        ``id_column=``, each once). The one reading that fits is used; booleans and
        floats are only ever a mask, text only ids. Where more than one fits (integer
        ids that are all row positions too, a 0/1 array over two rows) the audit stops
        and asks for ``members_as``. Without ``non_members``, as many other records as
        there are members are drawn (at most half of them; the rest is the attacker's
        pool). A string is a file (``.npy``, ``.txt``, ``.csv``).
    members_as:
        ``"mask"``, ``"positions"`` or ``"ids"``: how ``members`` and ``non_members``
        are read, where more than one reading fits (the others are then refused).
    trainer:
        How shadow and reference models are trained: an unfitted scikit-learn
        estimator or Pipeline (cloned per model), :class:`miaudit.TorchTrainer`, or a
        function ``fit(X, y, seed) -> model``. With a scikit-learn ``target`` and no
        ``trainer``, shadows are clones of the target. With ``game="recipe"`` (or no
        ``target``), the trainer trains the target too: your training code is audited.
    ids:
        One identifier per row of ``data`` (they reach ``scores.csv`` and the report).
    cache_key:
        A name for the trainer's models in the job cache when no key can be derived
        from its code (change it when the code changes).
    out:
        When given, also write ``results.json``, ``scores.csv``, ``config.json`` and
        ``report.html`` into this folder; ``overwrite=True`` replaces results there.
    allow_python:
        Let a settings file (``config`` as a path) name Python code to import and run
        (``target_python``, ``trainer_python``); without it such a file is refused, so
        that repeating a received run never runs its code unasked.
    token, query_cache:
        For a remote target: the service's bearer token (never written) and the query
        cache's folder (``False`` keeps none).
    execution:
        A :class:`miaudit.jobs.Execution`: the job cache, Dask, workers.
    progress:
        ``True`` shows each stage's progress: bars in a terminal or a notebook,
        timestamped lines on standard error otherwise (a log). A
        :class:`miaudit.progress.Reporter` receives it instead. Off by default.
    fail_on:
        A level of leakage (``"low"``, ``"moderate"``, ``"high"`` or ``"severe"``) that
        fails the audit, as ``--fail-on`` does in CI: once the result is returned to be
        written (``out=``), :class:`miaudit.GateFailed` is raised when the verdict
        reaches the level (its ``status`` 3; "at least" verdicts count) or when the
        evaluation cannot rule it out (``status`` 4: too few records to show it, or
        rates that reach it unconfirmed). ``result.level`` and ``result.gate(level)``
        say the same without raising.
    **settings:
        Any key of :class:`miaudit.config.AuditConfig` (``shadows=``, ``game=``, ...).
        ``show_records="values" | "ids" | "none"`` says how much of each record
        :meth:`AuditResult.to_dict`, ``scores.csv`` and ``report.html`` show (default
        ``"ids"``: rows and ids, no values; :mod:`miaudit.report.disclosure`).

    Raises
    ------
    miaudit.errors.MiauditError
        For invalid settings, data or models, with a message that says what to change.
    miaudit.GateFailed
        With ``fail_on``, for a verdict that reaches it or an evaluation that cannot
        rule it out (after ``out=`` is written).
    """
    from miaudit.config import combine
    from miaudit.handover import Handover
    from miaudit.pipeline import run_audit
    from miaudit.report import prepare_out_dir, write_results

    if fail_on is not None:
        from miaudit.verdict import check_gate_level

        check_gate_level(fail_on)
    base = _base_settings(config, settings, allow_python)
    objects: dict[str, Any] = {"trainer": trainer, "ids": ids, "cache_key": cache_key}
    _sort_target(target, settings, objects)
    _sort_objects(objects, settings, trainer=trainer, data=data, members=members,
                  non_members=non_members, members_as=members_as)  # fmt: skip
    cfg = combine(base, settings)
    if out is not None:
        prepare_out_dir(out, overwrite=overwrite)
    reporter, handed = _reporter(progress), Handover(**objects)
    from miaudit.mlflow import open_named

    cfg, handed, mlflow_model = open_named(cfg, handed, reporter)
    result = run_audit(
        cfg, reporter, token=token, query_cache=query_cache, execution=execution, handed=handed,
    )  # fmt: skip
    if mlflow_model is not None:
        from miaudit.mlflow import restate

        result = restate(result, mlflow_model)
    if out is not None:
        _remember(result, write_results(result, out))
    return _gated(result, fail_on)


def _remember(result: AuditResult, folder: Path) -> None:
    """Note the folder ``out=`` wrote, so that :func:`miaudit.mlflow.log_result` logs
    those very files."""
    from miaudit.mlflow import remember_folder

    remember_folder(result, folder)


def _gated(result: AuditResult, fail_on: str | None) -> AuditResult:
    """``result``, or :class:`miaudit.GateFailed` where ``fail_on`` fails it."""
    if fail_on is None:
        return result
    from miaudit.errors import GateFailed

    outcome = result.gate(fail_on)
    if outcome.status:
        raise GateFailed(outcome, result)
    return result


def _base_settings(config: Any, settings: dict[str, Any], allow_python: bool) -> dict[str, Any]:
    """The settings ``config=`` gives (an :class:`AuditConfig`, a file's path, or a dict),
    under the keywords; a file naming code to import is refused unless allowed."""
    from miaudit.config import AuditConfig, load_config_file, refuse_python_from_file

    if isinstance(config, AuditConfig):
        return config.model_dump()
    if isinstance(config, str | Path):
        base = load_config_file(config)
        # Code a keyword names is the caller's own choice; code only the file names is not.
        from_file = {k: v for k, v in base.items() if settings.get(k) is None}
        refuse_python_from_file(from_file, config, allow_python)
        return base
    return dict(config or {})


def _sort_objects(objects: dict[str, Any], settings: dict[str, Any], *, trainer, data, members,
                  non_members, members_as) -> None:  # fmt: skip
    """Put each argument where it belongs: a path or a name into ``settings`` (so it is
    written to ``config.json``), a Python object into ``objects`` (handed over)."""
    from miaudit.errors import ConfigError

    if isinstance(trainer, str):
        objects["trainer"] = None
        settings["trainer_python"] = trainer
    if data is not None:
        if settings.get("dataset") is not None:
            raise ConfigError("pass the data as data= or as dataset=, not both")
        if isinstance(data, str | Path):
            settings["dataset"] = str(data)
        else:
            objects["data"] = data
    if members_as is not None:
        settings["members_as"] = members_as
    for name, given in (("members", members), ("non_members", non_members)):
        if isinstance(given, str | Path):
            settings[name] = str(given)
        elif given is not None:
            objects[name] = given


def _reporter(progress: Any):
    """The reporter ``progress=`` asks for: bars (``True``), silence (``False``), or the
    caller's own :class:`miaudit.progress.Reporter`."""
    from miaudit.errors import ConfigError
    from miaudit.progress import Reporter, auto_reporter

    if isinstance(progress, Reporter):
        return progress
    if isinstance(progress, bool):
        return auto_reporter() if progress else Reporter()
    raise ConfigError(f"progress={progress!r}: pass True, False or a miaudit.progress.Reporter")


def evaluate(
    outputs: Any = None,
    labels: Any = None,
    members: Any = None,
    *,
    logits: bool = False,
    reference_outputs: Any = None,
    reference_members: Any = None,
    shadow_outputs: Any = None,
    shadow_labels: Any = None,
    shadow_members: Any = None,
    population_outputs: Any = None,
    population_labels: Any = None,
    population_reference_outputs: Any = None,
    population_reference_members: Any = None,
    calibration_outputs: Any = None,
    calibration_labels: Any = None,
    calibration_members: Any = None,
    variant_outputs: Any = None,
    reference_variant_outputs: Any = None,
    population_variant_outputs: Any = None,
    population_reference_variant_outputs: Any = None,
    calibration_variant_outputs: Any = None,
    copies_outputs: Any = None,
    attacks: list[str] | str | None = None,
    class_names: list[str] | None = None,
    records: Any = None,
    ids: Any = None,
    seed: int | None = None,
    bootstrap: int | None = None,
    fprs: list[float] | None = None,
    attack_settings: dict[str, Any] | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    show_records: str = "ids",
    execution=None,
    fail_on: str | None = None,
) -> AuditResult:
    """Run the attacks on outputs computed elsewhere; the same result as an audit's.

    Parameters
    ----------
    outputs, labels, members:
        The target's class probabilities on the evaluated records ``(n, C)`` (logits
        with ``logits=True``), their classes ``0 .. C-1`` and whether each was in the
        target's training set: a mask, as booleans or as 0/1 integers or floats (the
        ``*_members`` arrays too). ``outputs`` may instead be a dict of all the arrays
        by name (:meth:`AuditResult.outputs`) or the path of an ``.npz`` holding them
        (``--save-outputs``; its settings become the defaults here).
    reference_outputs, reference_members:
        ``(K, n, C)`` outputs of K reference models on the same records and ``(K, n)``
        which of them trained on which record: LiRA and RMIA, online where some
        trained on each record, offline where none did.
    shadow_outputs, shadow_labels, shadow_members:
        Shadow models' outputs on their own in/out records: Shokri's attack and the
        threshold attacks.
    population_outputs, population_labels, population_reference_outputs:
        The target's and the reference models' outputs on population records: RMIA
        (``population_reference_members``: which reference models trained on them).
    calibration_outputs, calibration_labels, calibration_members:
        Reference outputs on records some reference models trained on: offline RMIA's
        ``a`` when no reference model trained on an evaluated record.
    variant_outputs, reference_variant_outputs:
        Extra queries per record (augmentations): the target's ``(A-1, n, C)``, the
        reference models' ``(K, A-1, n, C)``; LiRA, RMIA and the threshold attacks
        average over them.
    population_variant_outputs, population_reference_variant_outputs, calibration_variant_outputs:
        The same of the population records (the target's ``(A-1, z, C)``, the reference
        models' ``(K, A-1, z, C)``; RMIA) and of the calibration records (``(K, A-1, c,
        C)``; the thresholds, offline RMIA and LiRA).
    copies_outputs:
        The target's outputs on perturbed copies ``(R, n, C)``: the robustness attack.
    attacks:
        Which attacks (default: every one the arrays allow); one whose arrays are
        missing is refused, naming them.
    class_names, records, ids:
        Names of the classes, and the records' own row numbers and ids (for
        ``scores.csv`` and the report).
    seed, bootstrap, fprs:
        As for :func:`audit`.
    attack_settings:
        Each attack's settings by section, as ``attacks=`` takes them in :func:`audit`:
        ``{"lira": {"variance": "per-record"}, "shokri": {"learner": "nn"}}``; ``"queries":
        N`` for every attack that averages over queries (default: all the variants the
        arrays hold).
    out, overwrite:
        Write ``results.json``, ``scores.csv``, ``config.json`` and ``report.html``.
    show_records:
        How much of each record those files show: ``"values"``, ``"ids"`` (the
        default) or ``"none"`` (:mod:`miaudit.report.disclosure`).
    fail_on:
        As for :func:`audit`: :class:`miaudit.GateFailed` when the verdict reaches this
        level or the evaluation cannot rule it out.

    Raises
    ------
    miaudit.errors.MiauditError
        Arrays that are missing, mismatched, or not probabilities (without ``logits``),
        or an attack the arrays do not allow; class names, record numbers or ids
        that repeat (a name that names two things).
    """
    called = dict(locals())  # the arguments, before any other name is bound
    if fail_on is not None:
        from miaudit.verdict import check_gate_level

        check_gate_level(fail_on)
    from miaudit.attacks.suite import OUTPUT_ARRAYS
    from miaudit.evaluation import prepare_evaluation
    from miaudit.pipeline import evaluate_arrays
    from miaudit.report import prepare_out_dir, write_results

    given = {name: value for name, value in called.items() if name in OUTPUT_ARRAYS}
    run = prepare_evaluation(
        given, logits=logits, attacks=attacks, class_names=class_names, records=records,
        ids=ids, chosen={"seed": seed, "bootstrap": bootstrap, "fprs": fprs},
        attack_settings=attack_settings, show_records=show_records,
    )  # fmt: skip
    if out is not None:
        prepare_out_dir(out, overwrite=overwrite)
    result = evaluate_arrays(
        run.arrays, run.config, class_names=run.class_names, records=run.records, ids=run.ids,
        execution=execution,
    )  # fmt: skip
    result.skipped = run.skipped
    if out is not None:
        _remember(result, write_results(result, out))
    return _gated(result, fail_on)
