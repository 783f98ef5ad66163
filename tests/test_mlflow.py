"""MLflow (issue 30, item 3): a model MLflow holds audited by its URI, and an audit logged to
an MLflow run, against a real local tracking store.

The store is an SQLite database (the model registry needs one) with its artifacts in a
temporary folder, set for this module through ``mlflow.set_tracking_uri`` and
``MLFLOW_TRACKING_URI``: never the user's own store. The model is a logistic regression
on scikit-learn's digits (the built-in ``digits`` table), logged with the scikit-learn
flavour and registered as ``digits-lr`` version 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip(
    "mlflow", reason="MLflow is not installed: pip install 'miaudit[mlflow]' (the dev extra has it)"
)

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import mlflow.sklearn
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

import miaudit
from miaudit.attacks.registry import get_attack
from miaudit.cli import main
from miaudit.config import make_config
from miaudit.errors import MiauditError
from miaudit.handover import Handover
from miaudit.jobs import Execution
from miaudit.mlflow import log_result, open_target
from miaudit.progress import Reporter
from miaudit.verdict import LEVELS

MEMBERS = 400
#: The settings of every audit here: small, and each run trains its own shadows.
COMMON = {"label": "digit", "shadows": 2, "seed": 3, "bootstrap": 100}
#: What differs between two runs of one audit: the clock and the run's identity.
PER_RUN = ("timings_s", "run_id", "scores_sha256")


class LabelsOnly(mlflow.pyfunc.PythonModel):
    """A pyfunc model whose predict answers one label per record."""

    def __init__(self, model) -> None:
        self.model = model

    def predict(self, context, model_input, params=None):
        return self.model.predict(model_input)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A local tracking store and registry, and this module's experiment in it."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    # The environment is put back as it was when the module ends (mlflow.set_tracking_uri
    # and set_experiment write MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_ID into it).
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", uri)
        env.delenv("MLFLOW_RUN_ID", raising=False)
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.create_experiment(
            "miaudit-tests", artifact_location=(root / "artifacts").as_uri()
        )
        env.setenv("MLFLOW_EXPERIMENT_ID", experiment)
        mlflow.set_experiment(experiment_id=experiment)
        yield {"root": root, "uri": uri, "experiment": experiment}
        mlflow.set_tracking_uri(None)  # MLflow reads the environment again


@pytest.fixture(scope="module")
def digits(store):
    """The digits table, the target's members, the fitted model, and where MLflow keeps
    it: registered as digits-lr version 1, logged in a run at ``model``; a pyfunc
    model answering labels at ``labels``; and at ``weird`` a model of no known flavour."""
    frame = miaudit.load_frame("digits")
    members = np.random.default_rng(0).choice(len(frame), MEMBERS, replace=False)
    train = frame.iloc[members]
    model = LogisticRegression(max_iter=2000, C=10.0)
    model.fit(train.drop(columns="digit"), train["digit"])
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name="digits-lr",
            pip_requirements=["scikit-learn"],
        )
        mlflow.pyfunc.log_model(
            name="labels", python_model=LabelsOnly(model), pip_requirements=["scikit-learn"]
        )
        weird = store["root"] / "weird"
        weird.mkdir()
        (weird / "MLmodel").write_text("artifact_path: weird\nflavors:\n  onnxish:\n    v: 1\n")
        mlflow.log_artifacts(str(weird), "weird")
    return {"frame": frame, "members": members, "model": model, "run": run.info.run_id}


def _audit(target, digits, out=None, **settings):
    return miaudit.audit(
        target=target, data=digits["frame"], members=digits["members"], out=out,
        execution=Execution(job_cache=False), **{**COMMON, **settings},
    )  # fmt: skip


def _results(folder: Path) -> dict:
    results = json.loads((folder / "results.json").read_text())
    for field in PER_RUN:
        results.pop(field)
    return results


# ------------------------------------------------------------------ (a) the same model


def test_a_registered_or_logged_model_gives_the_audit_of_the_model_in_memory(digits, tmp_path):
    memory = _audit(digits["model"], digits, tmp_path / "memory")
    runs = {
        "models:/digits-lr/1": _audit("models:/digits-lr/1", digits, tmp_path / "registry"),
        f"runs:/{digits['run']}/model": _audit(
            f"runs:/{digits['run']}/model", digits, tmp_path / "run"
        ),
    }
    expected = _results(tmp_path / "memory")
    for (uri, result), folder in zip(runs.items(), ("registry", "run"), strict=True):
        got = _results(tmp_path / folder)
        assert got["target"].pop("mlflow") == {
            "uri": uri, "flavour": "sklearn", "output": "probabilities",
        }  # fmt: skip
        # The target's outputs, every attack's figures, the verdict: bit for bit.
        assert got == expected
        assert (tmp_path / folder / "scores.csv").read_bytes() == (
            tmp_path / "memory" / "scores.csv"
        ).read_bytes()
        ours, theirs = result.outputs(), memory.outputs()
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert np.array_equal(ours[name], theirs[name]), name
        for name in memory.attacks:
            assert np.array_equal(result.scores[name], memory.scores[name]), name
        # config.json names the model: repeating the run loads it again.
        config = json.loads((tmp_path / folder / "config.json").read_text())
        assert config["target_model"] == uri
    assert expected["target"]["class"] == "sklearn.linear_model._logistic.LogisticRegression"


def test_an_alias_loads_the_version_it_points_to(digits):
    MlflowClient().set_registered_model_alias("digits-lr", "champion", "1")
    config = make_config({"dataset": "digits", "target_model": "models:/digits-lr@champion"})
    run_with, handed, found = open_target(config, Handover(), Reporter())
    assert run_with.target_model is None  # the model is handed over as your own
    assert (found.uri, found.flavour, found.output) == (
        "models:/digits-lr@champion", "sklearn", "probabilities",
    )  # fmt: skip
    records = digits["frame"].drop(columns="digit")
    assert type(handed.target) is LogisticRegression
    assert np.array_equal(
        handed.target.predict_proba(records), digits["model"].predict_proba(records)
    )


# ------------------------------------------------------------------ (b) the log


def _expected_metrics(results: dict) -> dict[str, float]:
    """What results.json says, as the metrics the run must hold."""
    out = {"miaudit.verdict.level": float(LEVELS.index(results["verdict"]["level"]))}
    strongest = results["strongest_attack"]
    for label, name in [("strongest", strongest), *((n, n) for n in results["attacks"])]:
        figures = results["attacks"][name]
        out[f"miaudit.{label}.auc"] = figures["auc"]
        for fpr, tpr in figures["tpr_at_fpr"].items():
            if tpr is not None:
                out[f"miaudit.{label}.tpr_at_fpr_{fpr}"] = tpr
    return out


def _artifacts(run_id: str, into: Path) -> Path:
    return Path(mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="miaudit", dst_path=str(into)
    ))  # fmt: skip


def test_the_logged_metrics_and_files_are_the_run_folders(digits, tmp_path):
    result = _audit("models:/digits-lr/1", digits, tmp_path / "out")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    with mlflow.start_run() as active:  # the active run is the one logged to
        run_id = log_result(result)
    assert run_id == active.info.run_id
    logged = MlflowClient().get_run(run_id).data
    assert logged.metrics == _expected_metrics(results)
    assert logged.metrics["miaudit.loss.auc"] == results["attacks"]["loss"]["auc"]
    assert logged.tags["miaudit.verdict.level"] == results["verdict"]["level"] == result.level
    assert logged.tags["miaudit.strongest_attack"] == results["strongest_attack"]
    assert logged.tags["miaudit.run_id"] == results["run_id"]
    # The files out= wrote, byte for byte (not written again).
    got = _artifacts(run_id, tmp_path / "got")
    assert sorted(p.name for p in got.iterdir()) == ["report.html", "results.json", "scores.csv"]
    for name in ("report.html", "results.json", "scores.csv"):
        assert (got / name).read_bytes() == (tmp_path / "out" / name).read_bytes(), name


def test_a_result_without_a_folder_is_written_for_the_log_and_shows_what_it_allows(
    digits, tmp_path
):
    result = _audit(digits["model"], digits, show_records="none")
    client = MlflowClient()
    run_id = client.create_run(mlflow.get_experiment_by_name("miaudit-tests").experiment_id)
    run_id = run_id.info.run_id
    assert log_result(result, run_id=run_id) == run_id  # run_id=: that run
    got = _artifacts(run_id, tmp_path / "got")
    logged = json.loads((got / "results.json").read_text())
    expected = json.loads(json.dumps(result.to_dict()))
    assert {k: v for k, v in logged.items() if k not in PER_RUN} == {
        k: v for k, v in expected.items() if k not in PER_RUN
    }
    assert logged["records_shown"] == "none"
    assert all("record" not in r and "id" not in r for r in logged["most_exposed"]["records"])
    scores = pd.read_csv(got / "scores.csv")
    assert "record" not in scores.columns and "id" not in scores.columns
    assert client.get_run(run_id).data.metrics == _expected_metrics(logged)


def test_without_an_active_run_the_run_mlflow_run_id_names_else_a_new_one_is_logged(
    digits, tmp_path, store, monkeypatch
):
    result = _audit(digits["model"], digits, tmp_path / "out")
    assert mlflow.active_run() is None
    client = MlflowClient()
    # A new run of the current experiment, ended once logged.
    run_id = log_result(tmp_path / "out")  # a run folder's path is logged as it is
    run = client.get_run(run_id)
    assert run.info.experiment_id == store["experiment"]
    assert run.info.status == "FINISHED"
    assert mlflow.active_run() is None
    assert run.data.tags["miaudit.verdict.level"] == result.level
    # The run MLFLOW_RUN_ID names (a CI job's, say): logged to, and left as it was.
    theirs = client.create_run(store["experiment"]).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", theirs)
    assert log_result(tmp_path / "out") == theirs
    assert client.get_run(theirs).info.status == "RUNNING"
    assert client.get_run(theirs).data.metrics == run.data.metrics
    monkeypatch.setenv("MLFLOW_RUN_ID", "f" * 32)
    with pytest.raises(MiauditError, match=r"^MLFLOW_RUN_ID f{32}: no such run in the MLflow"):
        log_result(tmp_path / "out")


# ------------------------------------------------------------------ (c) bad input


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("models:/no-such-model/1", "Registered Model with name=no-such-model not found"),
        ("models:/digits-lr/9", "version=9"),
        ("models:/digits-lr@retired", "alias retired not found"),
        ("runs:/0123456789abcdef0123456789abcdef/model", "Run with id=0123456789abcdef"),
        ("runs:/{run}/no-such-path", "MLmodel"),
    ],
    ids=["model", "version", "alias", "run", "path"],
)
def test_a_uri_that_names_nothing_is_one_line_naming_it_and_the_fix(digits, uri, says):
    uri = uri.format(run=digits["run"])
    with pytest.raises(MiauditError) as caught:
        _audit(uri, digits)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"target_model={uri}: no such model in the MLflow store at sqlite")
    assert says in message
    assert "MLFLOW_TRACKING_URI" in message


def test_a_malformed_uri_is_one_line_saying_how_to_write_one(digits):
    with pytest.raises(MiauditError) as caught:
        _audit("models:/", digits)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("target_model=models:/: not a model URI MLflow reads")
    assert message.endswith("write models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/PATH")


def test_a_flavour_that_gives_no_predictions_is_one_line(digits):
    with pytest.raises(MiauditError) as caught:
        _audit(f"runs:/{digits['run']}/weird", digits)
    message = str(caught.value)
    assert "\n" not in message
    assert "its flavours (onnxish) give no predictions" in message
    assert "mlflow.pyfunc.log_model" in message


def test_the_command_line_says_a_bad_uri_in_one_line_with_exit_status_2(digits, tmp_path, capsys):
    np.save(tmp_path / "members.npy", digits["members"])
    code = main([
        "audit", "--dataset", "digits", "--target-model", "models:/digits-lr/9",
        "--members", str(tmp_path / "members.npy"), "--quiet", "--out", str(tmp_path / "out"),
    ])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("miaudit: error: --target-model models:/digits-lr/9: no such model")
    assert len(err.splitlines()) == 1


def test_without_mlflow_a_uri_and_mlflow_are_one_line_naming_the_extra(
    digits, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow: ModuleNotFoundError
    with pytest.raises(MiauditError) as caught:
        _audit("models:/digits-lr/1", digits)
    assert str(caught.value) == (
        "target_model=models:/digits-lr/1 needs MLflow, which is not installed: "
        "pip install 'miaudit[mlflow]'"
    )
    code = main(["audit", "--dataset", "digits", "--mlflow", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "miaudit: error: --mlflow needs MLflow, which is not installed: " + (
        "pip install 'miaudit[mlflow]'"
    )
    assert not (tmp_path / "o").exists()  # refused before the audit ran


def test_miaudit_imports_mlflow_only_when_it_is_used():
    probe = (
        "import sys, miaudit, miaudit.mlflow, miaudit.api, miaudit.cli;"
        "print('mlflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# ------------------------------------------------------------------ (d) labels only


def test_a_pyfunc_model_answering_labels_is_audited_label_only_and_says_so(digits):
    uri = f"runs:/{digits['run']}/labels"
    with pytest.warns(UserWarning) as warned:
        result = _audit(uri, digits, trainer=LogisticRegression(max_iter=2000, C=10.0))
    about = [str(w.message) for w in warned if uri in str(w.message)]
    assert len(about) == 1
    assert "answers labels only" in about[0] and "label-only" in about[0]
    tg = result.target
    assert tg["defense"] == ["label-only"]
    assert tg["mlflow"] == {"uri": uri, "flavour": "python_function", "output": "labels"}
    assert tg["model"] == "LabelsOnly"
    assert result.attacks, "some attack ran"
    for name in result.attacks:  # only attacks that read labels
        assert not get_attack(name)().needs().probabilities, name
    # The target's answers are its labels, one-hot.
    outputs = result.outputs()["outputs"]
    assert set(np.unique(outputs)) <= {0.0, 1.0}
    assert (outputs.sum(axis=1) == 1).all()
    rows = digits["frame"].iloc[result.record_index].drop(columns="digit")
    assert np.array_equal(outputs.argmax(axis=1), digits["model"].predict(rows))


# ------------------------------------------------------------------ (e) the command line


def test_the_command_line_audits_a_registered_model_and_logs_to_the_store(
    digits, tmp_path, store, capsys
):
    np.save(tmp_path / "members.npy", digits["members"])
    out = tmp_path / "out"
    code = main([
        "audit", "--dataset", "digits", "--target-model", "models:/digits-lr/1",
        "--members", str(tmp_path / "members.npy"), "--shadows", "2", "--seed", "3",
        "--bootstrap", "100", "--no-job-cache", "--quiet", "--out", str(out), "--mlflow",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["target"]["mlflow"]["uri"] == "models:/digits-lr/1"
    runs = MlflowClient().search_runs(
        [store["experiment"]], f"tags.`miaudit.run_id` = '{results['run_id']}'"
    )
    assert len(runs) == 1
    run = runs[0]
    assert f"logged {out} to the MLflow run {run.info.run_id}" in err
    assert run.data.metrics == _expected_metrics(results)
    got = _artifacts(run.info.run_id, tmp_path / "got")
    for name in ("report.html", "results.json", "scores.csv"):
        assert (got / name).read_bytes() == (out / name).read_bytes(), name
