"""Audits of a model behind MLflow's scoring server (``--protocol mlflow``): the same
answers as the model in memory, the budget counted, wrong answers refused in one line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow", reason="the MLflow tests need mlflow installed")

import miaudit  # noqa: E402
from miaudit.cli import main  # noqa: E402
from miaudit.data import load_dataset  # noqa: E402
from miaudit.errors import QueryBudgetError, TargetError  # noqa: E402
from miaudit.protocol import InputSchema  # noqa: E402
from miaudit.remote import MlflowServingTarget  # noqa: E402

COMMON = {
    "dataset": "digits", "shadows": 2, "seed": 3, "shadow_size": 400,
    "target": {"model": "logistic-regression"},
}  # fmt: skip
ATTACKS = ["shokri", "loss", "lira-offline"]
TRUSTED = ["miaudit.data.encode.TabularEncoder", "miaudit.data.encode.TabularEncoder.transform"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(uri: str, tracking: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking,
        # `mlflow models serve` runs uvicorn from PATH: this interpreter's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager",
        "local", "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process, f"http://127.0.0.1:{port}"


def _wait(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow models serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow models serve did not answer /ping within 120 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory, stop_server):
    """A logistic regression on 600 digits records, logged twice to an SQLite tracking
    store (answering probabilities, and labels), and a text pipeline on SMS messages,
    served by three real MLflow servers."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from miaudit.data.encode import TabularEncoder

    folder = tmp_path_factory.mktemp("mlflow")
    data = load_dataset("digits")
    order = np.random.default_rng(0).permutation(data.n_records)
    members, non_members = np.sort(order[:600]), np.sort(order[600:1200])
    np.savez(folder / "membership.npz", members=members, non_members=non_members)
    model = LogisticRegression(max_iter=2000).fit(data.X[members], data.y[members])
    # The server takes the raw columns miaudit sends, and encodes them as the audit does.
    encoder = TabularEncoder.from_dict(data.encoder)
    pipeline = Pipeline([("encode", FunctionTransformer(encoder.transform)), ("model", model)])
    sms = load_dataset("sms-spam")
    texts = [r["text"] for r in InputSchema.for_dataset(sms).to_records(sms.X[:800])]
    text_model = make_pipeline(TfidfVectorizer(), LogisticRegression(C=100, max_iter=2000))
    text_model.fit(texts[:400], sms.y[:400])
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    uris = {}
    try:
        # Artifacts in tmp_path too (by default they go to ./mlruns).
        experiment = mlflow.create_experiment(
            "miaudit-test", artifact_location=(folder / "artifacts").as_uri()
        )
        with mlflow.start_run(experiment_id=experiment):
            for fn in ("predict_proba", "predict"):
                info = mlflow.sklearn.log_model(
                    pipeline, name=fn, pyfunc_predict_fn=fn, skops_trusted_types=TRUSTED
                )
                uris[fn] = info.model_uri
            info = mlflow.sklearn.log_model(
                text_model, name="sms", pyfunc_predict_fn="predict_proba"
            )
            uris["sms"] = info.model_uri
    finally:
        mlflow.set_tracking_uri(None)
    started = {fn: _start(uri, tracking, folder / f"{fn}.log") for fn, uri in uris.items()}
    try:
        for fn, (process, url) in started.items():
            _wait(process, url, folder / f"{fn}.log")
        yield {
            "data": data, "model": model, "membership": folder / "membership.npz",
            "proba": started["predict_proba"][1], "labels": started["predict"][1],
            "members": members, "non_members": non_members, "sms_url": started["sms"][1],
            "sms": sms, "texts": texts, "text_model": text_model,
        }  # fmt: skip
    finally:
        for process, _ in started.values():
            stop_server(process)


def test_texts_travel_as_the_pipeline_takes_them(served):
    sms = served["sms"]
    with MlflowServingTarget(
        served["sms_url"], InputSchema.for_dataset(sms), sms.class_names,
        probe=sms.X[:1], cache_dir=False,
    ) as target:  # fmt: skip
        P = target.predict_proba(sms.X[:800])
    # {"inputs": [text, ...]}: the array of strings a scikit-learn text pipeline reads.
    np.testing.assert_array_equal(P, served["text_model"].predict_proba(served["texts"]))


class _InMemory:
    """The same model as the service, in this process, where the audit opens the service."""

    def __init__(self, model, label_only=False):
        self.model, self.label_only, self.queries_, self.cached_ = model, label_only, 0, 0
        self.policy = []

    def predict_proba(self, X):
        self.queries_ += len(X)
        if self.label_only:
            return np.eye(10)[self.model.predict(X)]
        return np.asarray(self.model.predict_proba(X), dtype=np.float64)

    def describe(self):
        return {"url": "memory"}

    def close(self):
        pass


def _audit_in_memory(monkeypatch, model, label_only=False, **kw):
    import miaudit.games.shokri as shokri

    with monkeypatch.context() as m:
        m.setattr(shokri, "open_remote", lambda *a, **k: _InMemory(model, label_only))
        return miaudit.audit(target_url="http://in-memory:1", **kw)


def test_mlflow_answers_are_the_model_s_bit_for_bit(served):
    data, model = served["data"], served["model"]
    rows = np.concatenate([served["members"], served["non_members"]])
    with MlflowServingTarget(
        served["proba"], InputSchema.for_dataset(data), data.class_names,
        probe=data.X[:1], cache_dir=False,
    ) as target:  # fmt: skip
        P = target.predict_proba(data.X[rows])
        assert not target.label_only and target.queries_ == len(rows) + 1  # + the probe
        with pytest.raises(QueryBudgetError, match="budget of 1300 is spent"):
            target.query_budget = 1300
            target.predict_proba(data.X[:500])
        assert target.queries_ == 1300
    # float32 probabilities, written by MLflow as float64 JSON, read back exactly.
    np.testing.assert_array_equal(P, model.predict_proba(data.X[rows]).astype(np.float64))


def test_an_audit_over_mlflow_equals_the_model_in_memory(served, tmp_path, monkeypatch):
    membership = str(served["membership"])
    common = {**COMMON, "attacks": ATTACKS, "membership": membership}
    local = _audit_in_memory(monkeypatch, served["model"], **common)
    remote = miaudit.audit(
        target_url=served["proba"], protocol="mlflow", query_cache=tmp_path / "q", **common
    )
    np.testing.assert_array_equal(remote.record_index, local.record_index)
    # Bit for bit, the probe's record too: its answer of one (a float32 model's last bits
    # move with the batch) is not used; it is asked again in its batch.
    for name in ATTACKS:
        np.testing.assert_array_equal(remote.scores[name], local.scores[name], err_msg=name)
        assert remote.attacks[name].auc == local.attacks[name].auc
    tg = remote.target
    assert tg["protocol"] == "mlflow" and tg["output"] == "probabilities"
    # Every evaluated record once, and the probe on its own.
    assert local.target["queries"]["sent"] == 1200
    assert tg["queries"]["sent"] == 1201
    # Resumed from the query cache: only the probe is asked again.
    again = miaudit.audit(
        target_url=served["proba"], protocol="mlflow", query_cache=tmp_path / "q",
        query_budget=1201, **common,
    )  # fmt: skip
    assert again.target["queries"]["sent"] == 1
    assert again.target["queries"]["from_cache"] == 1200
    assert again.attacks["loss"].auc == local.attacks["loss"].auc


def test_a_labels_only_server_gives_a_label_only_audit(served, monkeypatch):
    common = {**COMMON, "attacks": ["gap"], "membership": str(served["membership"])}
    local = _audit_in_memory(monkeypatch, served["model"], label_only=True, **common)
    remote = miaudit.audit(
        target_url=served["labels"], protocol="mlflow", query_cache=False, **common
    )
    assert remote.target["output"] == "labels"
    assert remote.attacks["gap"].auc == local.attacks["gap"].auc


def test_a_wrong_shaped_answer_is_refused_in_one_line(served, capsys):
    data = served["data"]
    # The service answers 10 probabilities per record; these "data" have 5 classes.
    with pytest.raises(TargetError) as caught:
        MlflowServingTarget(
            served["proba"], InputSchema.for_dataset(data), data.class_names[:5],
            probe=data.X[:1], cache_dir=False,
        )  # fmt: skip
    message = str(caught.value)
    assert "\n" not in message and served["proba"] in message
    assert "a row of 10 values; expected 5 probabilities" in message and "predict_proba" in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html>", "not JSON"),
        (b'{"probabilities": [[1.0]]}', "without a 'predictions' list"),
        (b'{"predictions": [[0.5, 0.6, 0, 0, 0, 0, 0, 0, 0, 0]]}', "do not sum to 1"),
        (b'{"predictions": [[0.5, 0.5]]}', "a row of 2 values; expected 10 probabilities"),
        (b'{"predictions": ["cat"]}', "label 'cat', which is none of the data set's 10"),
        (b'{"predictions": [3.0]}', "label 3.0, which is none"),
        (b'{"predictions": [{"0": 1.0}]}', "label {'0': 1.0}"),
        (b'{"predictions": [[1, 0, 0, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]]}',
         "2 predictions for 1 records"),
    ],
)  # fmt: skip
def test_malformed_answers_are_refused_naming_the_url(body, expected):
    data = load_dataset("digits")

    def answer(request):
        return httpx.Response(200, content=body if request.url.path == "/invocations" else b"")

    with pytest.raises(TargetError) as caught:
        MlflowServingTarget(
            "http://mlflow.test", InputSchema.for_dataset(data), data.class_names,
            probe=data.X[:1], cache_dir=False, transport=httpx.MockTransport(answer),
        )  # fmt: skip
    message = str(caught.value)
    assert expected in message and "http://mlflow.test/invocations" in message
    assert "\n" not in message


def test_images_go_as_inputs_of_flat_pixels():
    mnist = load_dataset("mnist")
    bodies = []

    def answer(request):
        bodies.append(json.loads(request.content) if request.content else None)
        n = len(bodies[-1]["inputs"]) if bodies[-1] else 0
        return httpx.Response(200, json={"predictions": [[0.1] * 10] * n})

    with MlflowServingTarget(
        "http://mlflow.test", InputSchema.for_dataset(mnist), mnist.class_names,
        probe=mnist.X[:1], cache_dir=False, transport=httpx.MockTransport(answer),
    ) as target:  # fmt: skip
        target.predict_proba(mnist.X[:3])
    sent = np.array(bodies[-1]["inputs"])
    assert sent.shape == (3, 784) and set(bodies[-1]) == {"inputs"}
    np.testing.assert_allclose(sent, mnist.X[:3].reshape(3, -1), rtol=0, atol=1e-6)


def test_the_token_travels_as_a_bearer_header():
    data = load_dataset("digits")
    seen = []

    def answer(request):
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, content=b'{"predictions": [7]}')

    with MlflowServingTarget(
        "http://mlflow.test", InputSchema.for_dataset(data), data.class_names, token="t0k",
        probe=data.X[:1], cache_dir=False, transport=httpx.MockTransport(answer),
    ) as target:  # fmt: skip
        assert target.label_only and target.queries_ == 1
    assert seen == ["Bearer t0k", "Bearer t0k"]


def test_a_url_that_is_no_mlflow_server_is_refused_in_one_line(saved_adult, capsys, error_line):
    from miaudit.serve import PredictionService, ServiceLimits, create_app, serve_in_thread

    base = ["audit", "--dataset", "adult", "--membership", str(saved_adult), "--quiet",
            "--protocol", "mlflow", "--http-retries", "0"]  # fmt: skip
    code = main([*base, "--target-url", f"http://127.0.0.1:{_free_port()}"])
    assert "could not be reached" in error_line(code, capsys.readouterr().err)
    service = PredictionService.from_folder(saved_adult, [])
    with serve_in_thread(create_app(service, ServiceLimits(tokens=("tok",)))) as url:
        code = main([*base, "--target-url", url, "--token", "tok"])
    line = error_line(code, capsys.readouterr().err)
    assert f"{url}/ping" in line and "MLflow scoring server" in line, line


def test_protocol_needs_a_target_url():
    with pytest.raises(miaudit.errors.ConfigError, match="use it with target_url"):
        miaudit.audit(dataset="digits", protocol="mlflow")
