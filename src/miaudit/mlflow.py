"""MLflow: audit a model that MLflow holds, and log an audit to an MLflow run.

Position: the edge, beside :mod:`miaudit.api` and :mod:`miaudit.cli`, which call it. An
optional extra (``pip install 'miaudit[mlflow]'``): :mod:`mlflow` is imported only when a
model's URI is audited or a result is logged, so miaudit without it imports and runs as
before, and a URI without it is one line naming the extra.

* :func:`open_target` — ``target="models:/NAME/VERSION"`` (``models:/NAME@ALIAS``,
  ``runs:/RUN_ID/PATH``; ``--target-model URI`` on the command line) loaded through
  MLflow's own loaders and handed over as the user's own model, whose ``members`` the user
  names. The scikit-learn flavour, where the model has it and the estimator has
  ``predict_proba``, is the estimator itself: the audit is the one of the same model in
  memory, bit for bit (its shadows are clones of it). Otherwise the pyfunc flavour: its
  ``predict`` is asked for a few records first; one label per record (a 1-D array, or one
  column) makes a label-only audit (the ``label-only`` output policy, said in one
  warning), and a 2-D array of one column per class is read as class probabilities, in
  the data's class order.
* :func:`restate` — the result of such an audit naming the URI: ``config.json``'s
  ``target_model`` and ``results.json``'s ``target.mlflow``.
* :func:`log_result` (``--mlflow``) — the verdict, the strongest attack's and every
  attack's AUC and TPR at each FPR as metrics, the level's name and the strongest attack
  as tags, and ``report.html``, ``results.json`` and ``scores.csv`` as artifacts (under
  ``miaudit/``), read back from the run's folder: what its files show of the records
  (``show_records``) is what is logged.

The tracking and registry URI are MLflow's own (``MLFLOW_TRACKING_URI``,
``mlflow.set_tracking_uri``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from miaudit.errors import ConfigError, MiauditError, ModelError, key

if TYPE_CHECKING:
    from miaudit.config import AuditConfig
    from miaudit.handover import Handover
    from miaudit.progress import Reporter
    from miaudit.result import AuditResult

__all__ = ["ARTIFACTS", "INSTALL", "MlflowTarget", "figures", "log_result", "open_target"]

#: The one line that says how to get MLflow.
INSTALL = "pip install 'miaudit[mlflow]'"
#: The run's files logged as artifacts, under :data:`ARTIFACT_PATH` of the MLflow run.
ARTIFACTS = ("report.html", "results.json", "scores.csv")
ARTIFACT_PATH = "miaudit"
#: Records a pyfunc model is asked for first, to tell labels from probabilities.
PROBE = 16


def require_mlflow(what: str):
    """The :mod:`mlflow` module, or one line saying how to install it."""
    try:
        import mlflow
    except ModuleNotFoundError as exc:
        if exc.name != "mlflow" and not str(exc.name or "").startswith("mlflow."):
            raise ConfigError(
                f"{what} needs MLflow, which cannot be imported (it needs {exc.name}): {INSTALL}"
            ) from None
        raise ConfigError(f"{what} needs MLflow, which is not installed: {INSTALL}") from None
    except ImportError as exc:
        raise ConfigError(
            f"{what} needs MLflow, which cannot be imported ({exc}): {INSTALL}"
        ) from None
    return mlflow


# --------------------------------------------------------------------------- the target


@dataclass
class MlflowTarget:
    """An MLflow model as it is audited: its ``uri``, the ``flavour`` it was loaded
    with (``sklearn`` or ``python_function``), what it answers (``probabilities`` or
    ``labels``), the object handed over as ``target=``, and its class's name."""

    uri: str
    flavour: str
    output: str
    model: Any
    kind: str
    kind_class: str

    def facts(self) -> dict[str, str]:
        """``results.json``'s ``target.mlflow``."""
        return {"uri": self.uri, "flavour": self.flavour, "output": self.output}


class PredictedLabels:
    """A model whose ``predict`` answers one class label per record, as a target: each
    label becomes a one-hot row of the data's classes (what a label-only service
    answers, :mod:`miaudit.protocol`)."""

    def __init__(self, predict, classes, who: str) -> None:
        self.predict_fn, self.classes, self.who = predict, classes, who

    def predict_proba(self, X: Any) -> np.ndarray:
        labels = _labels(_as_array(self.predict_fn(X)), len(X), self.who)
        try:
            values, inverse = np.unique(labels, return_inverse=True)
        except TypeError:  # labels of several kinds that do not sort: one at a time
            values, inverse = labels, np.arange(len(labels))
        codes = self.classes.codes_of(values, self.who)[np.ravel(inverse)]
        out = np.zeros((len(labels), self.classes.n_classes))
        out[np.arange(len(labels)), codes] = 1.0
        return out


class PredictedProbabilities:
    """A model whose ``predict`` answers one row of class probabilities per record, its
    columns in the data's class order (checked as a user's model is)."""

    def __init__(self, predict, who: str) -> None:
        self.predict_fn, self.who = predict, who

    def predict_proba(self, X: Any) -> np.ndarray:
        return _as_array(self.predict_fn(X))


def _as_array(answer: Any) -> np.ndarray:
    """A model's answer (an array, a pandas table or column, a list) as an array."""
    to_numpy = getattr(answer, "to_numpy", None)
    return np.asarray(to_numpy() if callable(to_numpy) else answer)


def _labels(answer: np.ndarray, n: int, who: str) -> np.ndarray:
    if answer.ndim == 2 and answer.shape[1] == 1:
        answer = answer[:, 0]
    if answer.ndim != 1 or len(answer) != n:
        raise ModelError(
            f"{who} answered an array of shape {answer.shape} for {n} records; expected one "
            "label per record"
        )
    return answer


def open_named(
    config: AuditConfig, handed: Handover, reporter: Reporter
) -> tuple[AuditConfig, Handover, MlflowTarget | None]:
    """:func:`open_target` where ``config.target_model`` is an MLflow model's URI; else
    the configuration and the handover as they were, and ``None``. The API and the
    command line both open the target here, before the pipeline."""
    from miaudit.config import is_mlflow_uri

    if not is_mlflow_uri(config.target_model):
        return config, handed, None
    return open_target(config, handed, reporter)


def open_target(
    config: AuditConfig, handed: Handover, reporter: Reporter
) -> tuple[AuditConfig, Handover, MlflowTarget]:
    """The MLflow model ``config.target_model`` names, loaded and handed over as the
    user's own model; the configuration it is audited with (without ``target_model``,
    and with the ``label-only`` policy for a model that answers labels).

    Raises
    ------
    ConfigError
        MLflow not installed; no such model, version, alias, run or path; another
        target given too.
    ModelError
        A model whose flavours give no predictions, or whose predictions are neither
        labels nor class probabilities.
    """
    uri = str(config.target_model)
    what = key("target_model", uri)
    if handed.target is not None:
        raise ConfigError(f"{what} and target= both name the target: pass one")
    mlflow = require_mlflow(what)
    flavours = _flavours(mlflow, uri, what)
    model, predict = None, None
    if "sklearn" in flavours:
        import mlflow.sklearn

        model = _load(mlflow.sklearn.load_model, uri, what, "scikit-learn")
        if hasattr(model, "predict_proba"):
            kind = type(model)
            found = MlflowTarget(
                uri, "sklearn", "probabilities", model, kind.__name__,
                f"{kind.__module__}.{kind.__qualname__}",
            )  # fmt: skip
            return _opened(config, handed, found)
        predict = getattr(model, "predict", None)
    flavour = "sklearn"
    if predict is None:
        if "python_function" not in flavours:
            raise ModelError(
                f"{what}: its flavours ({', '.join(sorted(flavours)) or 'none'}) give no "
                "predictions miaudit can ask for: log the model with the scikit-learn "
                "flavour (mlflow.sklearn.log_model) or as a pyfunc model "
                "(mlflow.pyfunc.log_model)"
            )
        import mlflow.pyfunc

        model = _load(mlflow.pyfunc.load_model, uri, what, "pyfunc")
        predict, flavour = model.predict, "python_function"
    return _labels_or_probabilities(config, handed, reporter, uri, flavour, model, predict)


def _handed(handed: Handover, target: Any) -> Handover:
    return dataclasses.replace(handed, target=target)


def _opened(config: AuditConfig, handed: Handover, found: MlflowTarget):
    """The configuration without the URI (the user's own model is handed over), the
    handover with the model, and what was found."""
    return config.model_copy(update={"target_model": None}), _handed(handed, found.model), found


def _flavours(mlflow, uri: str, what: str) -> dict[str, Any]:
    """The flavours the model's ``MLmodel`` file lists, or one line for a URI that
    names nothing (no such model, version, alias, run or path)."""
    from mlflow.models import get_model_info

    try:
        return dict(get_model_info(uri).flavors)
    except Exception as exc:  # MlflowException, OSError: all said as one line
        raise ConfigError(f"{what}: {_missing(mlflow, uri, exc)}") from None


def _load(loader, uri: str, what: str, flavour: str):
    try:
        return loader(uri)
    except MiauditError:
        raise
    except Exception as exc:
        raise ModelError(
            f"{what}: MLflow cannot load its {flavour} flavour ({type(exc).__name__}: "
            f"{_first_line(exc)}): load it with mlflow.{flavour.replace('scikit-learn', 'sklearn')}"
            ".load_model to see why (a library missing or of another version?)"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:299] + "…"


def _missing(mlflow, uri: str, exc: BaseException) -> str:
    """What a URI that loads nothing names (no such model, a malformed URI, a store out
    of reach), and the fix."""
    store = mlflow.get_registry_uri() if uri.startswith("models:/") else mlflow.get_tracking_uri()
    reason = _first_line(exc)
    if "Not a proper" in reason:
        return (
            f"not a model URI MLflow reads ({reason}): write models:/NAME/VERSION, "
            "models:/NAME@ALIAS or runs:/RUN_ID/PATH"
        )
    if "failed with exception" in reason or isinstance(exc, ConnectionError):
        return (
            f"cannot reach the MLflow store at {store} ({reason}): check MLFLOW_TRACKING_URI "
            "(or mlflow.set_tracking_uri) and that its server is up"
        )
    if uri.startswith("models:/"):
        fix = (
            "check the name and the version or alias (MlflowClient().search_model_versions), "
            "and MLFLOW_TRACKING_URI (or mlflow.set_tracking_uri) for the store that holds it"
        )
    else:
        fix = (
            "check the run's id and the model's artifact path in it (runs:/RUN_ID/PATH, the "
            "name= it was logged with), and MLFLOW_TRACKING_URI (or mlflow.set_tracking_uri) "
            "for the store that holds it"
        )
    return f"no such model in the MLflow store at {store} ({reason}): {fix}"


def _labels_or_probabilities(config, handed, reporter, uri, flavour, model, predict):
    """A model that answers through ``predict``: asked for a few records to tell labels
    from probabilities, and handed over as one or the other."""
    from miaudit.handover import audit_data, class_map, records_for

    what = key("target_model", uri)
    who = f"the MLflow model {uri}"
    # The records as the user's model reads them (the user's own rows and columns).
    data = audit_data(config, _handed(handed, predict))
    classes = class_map(data)
    sample = records_for("raw", data, who)(data.X[: min(PROBE, data.n_records)])
    try:
        answer = _as_array(predict(sample))
    except MiauditError:
        raise
    except Exception as exc:
        raise ModelError(
            f"{what}: its predict raised {type(exc).__name__} on the data's records: "
            f"{_first_line(exc)} (was it trained on these columns?)"
        ) from None
    n = len(sample)
    kind = _kind_of(model)
    if answer.ndim == 1 or (answer.ndim == 2 and answer.shape[1] == 1):
        target = PredictedLabels(predict, classes, who)
        found = MlflowTarget(uri, flavour, "labels", target, *kind)
        if not any(spec == "label-only" for spec in config.defense):
            config = config.model_copy(update={"defense": [*config.defense, "label-only"]})
        reporter.warn(
            f"{uri} answers labels only ({_why_labels(flavour)}): audited as a label-only "
            f"target, as with {key('defense', 'label-only')}; only attacks that read labels run"
        )
    elif answer.ndim == 2 and answer.shape[1] == classes.n_classes and answer.dtype.kind in "fiub":
        target = PredictedProbabilities(predict, who)
        found = MlflowTarget(uri, flavour, "probabilities", target, *kind)
    else:
        raise ModelError(
            f"{what}: its predict answered an array of shape {answer.shape} ({answer.dtype}) "
            f"for {n} records: neither one label per record nor one probability per class "
            f"({classes.n_classes}); log a model whose predict answers either"
        )
    return _opened(config, handed, found)


def _why_labels(flavour: str) -> str:
    if flavour == "sklearn":
        return "its scikit-learn estimator has no predict_proba; its predict gives labels"
    return "it has no scikit-learn flavour; its pyfunc predict gives one label per record"


def _kind_of(model: Any) -> tuple[str, str]:
    """The name and class of what a pyfunc model wraps (the user's own Python model, the
    flavour's model), else of the pyfunc model."""
    inner = model
    for unwrap in ("unwrap_python_model", "get_raw_model"):
        try:
            inner = getattr(model, unwrap)()
            break
        except Exception:  # not a Python model, or no raw model: the next, else the pyfunc
            continue
    kind = type(inner)
    return kind.__name__, f"{kind.__module__}.{kind.__qualname__}"


def restate(result: AuditResult, target: MlflowTarget) -> AuditResult:
    """``result`` naming the MLflow model it audited: ``config.json``'s ``target_model``
    (repeating the run loads the model again) and ``results.json``'s ``target.mlflow``
    (its URI, flavour and output); a pyfunc model named by what it wraps."""
    result.config = result.config.model_copy(update={"target_model": target.uri})
    details = {**result.target.details, "mlflow": target.facts()}
    changes: dict[str, Any] = {"details": details}
    if target.flavour != "sklearn" or target.output != "probabilities":
        changes["model"] = target.kind
        details["class"] = target.kind_class
    result.target = dataclasses.replace(result.target, **changes)
    return result


# --------------------------------------------------------------------------- the log

#: The folder each result was written to by :func:`miaudit.audit` or
#: :func:`miaudit.evaluate` (``out=``) in this session, by the result's id.
_WRITTEN: dict[int, tuple[weakref.ref, Path]] = {}


def remember_folder(result: Any, folder: str | Path) -> None:
    """Note where ``result`` was written (``out=``), so that :func:`log_result` logs
    those files rather than writing them again."""
    ident = id(result)
    _WRITTEN[ident] = (weakref.ref(result, lambda _: _WRITTEN.pop(ident, None)), Path(folder))


def _folder_of(result: Any) -> Path | None:
    """The folder ``result`` was written to, where it still holds that result (the same
    ``results.json`` but for the run's id and the scores' digest)."""
    entry = _WRITTEN.get(id(result))
    if entry is None or entry[0]() is not result:
        return None
    folder = entry[1]
    try:
        written = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for field in ("run_id", "scores_sha256"):
        written.pop(field, None)
    return folder if written == json.loads(json.dumps(result.to_dict())) else None


def figures(results: dict[str, Any], level: str) -> dict[str, float]:
    """The metrics logged of a run's ``results.json``: ``miaudit.verdict.level`` (0 not
    detected, 1 low, 2 moderate, 3 high, 4 severe), and the strongest attack's
    (``miaudit.strongest.…``) and every attack's (``miaudit.<attack>.…``) ``auc`` and
    ``tpr_at_fpr_<fpr>``. A figure the run does not hold (``null``) is left out."""
    from miaudit.verdict import LEVELS

    out: dict[str, float] = {"miaudit.verdict.level": float(LEVELS.index(level))}
    attacks = results.get("attacks") or {}
    strongest = results.get("strongest_attack")
    named = [(name, name) for name in attacks]
    if strongest in attacks:
        named.insert(0, ("strongest", strongest))
    for label, name in named:
        figures_of = attacks[name]
        values = {"auc": figures_of.get("auc")}
        for fpr, tpr in (figures_of.get("tpr_at_fpr") or {}).items():
            values[f"tpr_at_fpr_{fpr}"] = tpr
        for metric, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[_metric_key(f"miaudit.{label}.{metric}")] = float(value)
    return out


def _metric_key(name: str) -> str:
    """``name`` as MLflow takes a key: alphanumerics, ``_ - . / :`` and spaces."""
    return "".join(c if c.isalnum() or c in "_-./: " else "_" for c in name)


def log_result(result: Any, run_id: str | None = None) -> str:
    """Log an audit to an MLflow run and return the run's id.

    ``result`` is an :class:`~miaudit.result.AuditResult` (its files are those
    ``out=`` wrote, else written to a temporary folder first with
    :func:`miaudit.report.write_results`) or a run folder's path. The run is ``run_id``;
    else the active run (``mlflow.start_run()``); else the run ``MLFLOW_RUN_ID`` names;
    else a new run in the current experiment (``MLFLOW_EXPERIMENT_NAME`` or
    ``MLFLOW_EXPERIMENT_ID``, ``mlflow.set_experiment``, else MLflow's default), ended
    once logged. The store is MLflow's own (``MLFLOW_TRACKING_URI``,
    ``mlflow.set_tracking_uri``).

    Logged: the metrics of :func:`figures`; the tags ``miaudit.verdict.level`` (the
    level's name), ``miaudit.strongest_attack``, ``miaudit.records_shown``,
    ``miaudit.run_id`` and ``miaudit.version``; ``report.html``, ``results.json`` and
    ``scores.csv`` under the artifact path ``miaudit/``. What the files show of the
    records (``show_records``) is what is logged.

    Raises
    ------
    miaudit.errors.MiauditError
        MLflow not installed; a folder that is no complete run; no such run; a store
        that refuses the log (one line each).
    """
    mlflow = require_mlflow("miaudit.mlflow.log_result")
    if isinstance(result, str | Path):
        return _log_folder(mlflow, Path(result), run_id)
    folder = _folder_of(result)
    if folder is not None:
        return _log_folder(mlflow, folder, run_id)
    from miaudit.report import write_results

    with tempfile.TemporaryDirectory(prefix="miaudit-mlflow-") as tmp:
        return _log_folder(mlflow, write_results(result, Path(tmp) / "run"), run_id)


def _log_folder(mlflow, folder: Path, run_id: str | None) -> str:
    from mlflow.entities import Metric, RunTag

    from miaudit.report.run import load_run
    from miaudit.verdict import verdict
    from miaudit.version import __version__

    run = load_run(folder)  # one line for a folder that is no complete run
    results = run.results
    # The verdict as the page draws it: from the files, as the report reads them.
    level = verdict(run).level
    metrics = figures(results, level)
    tags = {
        "miaudit.verdict.level": level,
        "miaudit.strongest_attack": str(results.get("strongest_attack")),
        "miaudit.records_shown": str(results.get("records_shown", "values")),
        "miaudit.run_id": str(results.get("run_id", "")),
        "miaudit.version": __version__,
    }
    client = mlflow.MlflowClient()
    chosen, created = _which_run(mlflow, client, run_id)
    status = "FAILED"
    try:
        now = int(time.time() * 1000)
        client.log_batch(
            chosen,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        for name in ARTIFACTS:
            client.log_artifact(chosen, str(folder / name), artifact_path=ARTIFACT_PATH)
        status = "FINISHED"
    except MiauditError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"logging {folder} to the MLflow run {chosen} at {mlflow.get_tracking_uri()} "
            f"failed ({type(exc).__name__}: {_first_line(exc)}): the run folder is kept; "
            "check MLFLOW_TRACKING_URI and the store's artifact location"
        ) from None
    finally:
        if created:
            mlflow.end_run(status=status)
    return chosen


def _which_run(mlflow, client, run_id: str | None) -> tuple[str, bool]:
    """The run to log to (see :func:`log_result`), and whether it was started here."""
    given, what = run_id, "run_id="
    if given is None:
        active = mlflow.active_run()
        if active is not None:
            return active.info.run_id, False
        given, what = os.environ.get("MLFLOW_RUN_ID") or None, "MLFLOW_RUN_ID"
    if given is not None:
        try:
            client.get_run(given)
        except Exception as exc:
            raise ConfigError(
                f"{what} {given}: no such run in the MLflow store at "
                f"{mlflow.get_tracking_uri()} ({_first_line(exc)}): pass an existing run's "
                "id, or none to start a new run"
            ) from None
        return given, False
    try:
        started = mlflow.start_run(run_name="miaudit audit")
    except Exception as exc:
        raise ConfigError(
            f"cannot start an MLflow run at {mlflow.get_tracking_uri()} ({type(exc).__name__}: "
            f"{_first_line(exc)}): check MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME"
        ) from None
    return started.info.run_id, True
