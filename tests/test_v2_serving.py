"""Audits of a model behind the Open Inference Protocol (``--protocol v2``): a real
MLServer process (its scikit-learn runtime, in the environment ``make test`` builds,
``.venv-mlserver``) serves models the tests fit; the answers are the models' bit for bit,
the budget is counted, and wrong answers and addresses are refused in one line."""

from __future__ import annotations

import gzip
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

import miaudit
from miaudit.cli import main
from miaudit.data import load_dataset
from miaudit.errors import ConfigError, QueryBudgetError, TargetError
from miaudit.openinference import OpenInferenceTarget, split_model_url
from miaudit.protocol import InputSchema

ROOT = Path(__file__).resolve().parents[1]
MLSERVER = Path(os.environ.get("MIAUDIT_MLSERVER", ROOT / ".venv-mlserver" / "bin" / "mlserver"))
COMMON = {
    "dataset": "digits", "shadows": 2, "seed": 3, "shadow_size": 400,
    "target": {"model": "logistic-regression"},
}  # fmt: skip
ATTACKS = ["shokri", "loss", "lira-offline"]
needs_server = pytest.mark.skipif(
    not MLSERVER.exists(),
    reason=f"needs MLServer at {MLSERVER}: `make test` builds it (.venv-mlserver), or set "
    "MIAUDIT_MLSERVER to an mlserver executable with mlserver-sklearn",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raw(data, rows) -> np.ndarray:
    """The records as the server receives them (the raw columns' values), as numbers."""
    schema = InputSchema.for_dataset(data)
    return np.array([list(r.values()) for r in schema.to_records(data.X[rows])])


def _save(folder: Path, name: str, model, **settings) -> None:
    import joblib

    (folder / name).mkdir()
    joblib.dump(model, folder / name / "model.joblib")
    spec = {
        "name": name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"},
        **settings,
    }
    (folder / name / "model-settings.json").write_text(json.dumps(spec))


@pytest.fixture(scope="module")
def served(tmp_path_factory, stop_server):
    """Five models fitted on the records as the server receives them, served by one real
    MLServer on 127.0.0.1: digits (probabilities; and labels, as a model that declares the
    one output it answers), a text pipeline on SMS messages, a table with categories
    (Adult), and MNIST's images as flat pixels."""
    if not MLSERVER.exists():
        pytest.skip(f"needs MLServer at {MLSERVER}: `make test` builds it (.venv-mlserver)")
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    folder = tmp_path_factory.mktemp("v2")
    models = folder / "models"
    models.mkdir()
    data = load_dataset("digits")
    order = np.random.default_rng(0).permutation(data.n_records)
    members, non_members = np.sort(order[:600]), np.sort(order[600:1200])
    np.savez(folder / "membership.npz", members=members, non_members=non_members)
    digits = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    digits.fit(_raw(data, members), data.y[members])
    _save(models, "digits", digits)
    _save(models, "digits-labels", digits, outputs=[
        {"name": "predict", "datatype": "INT64", "shape": [-1, 1]}])  # fmt: skip

    sms = load_dataset("sms-spam")
    texts = [r["text"] for r in InputSchema.for_dataset(sms).to_records(sms.X[:800])]
    text_model = make_pipeline(TfidfVectorizer(), LogisticRegression(C=100, max_iter=2000))
    text_model.fit(texts[:400], sms.y[:400])
    _save(models, "sms", text_model)

    adult = load_dataset("adult")
    table = pd.DataFrame(InputSchema.for_dataset(adult).to_records(adult.X[:1500]))
    categories = list(table.select_dtypes(exclude="number").columns)
    adult_model = make_pipeline(
        ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), categories)],
                          remainder=StandardScaler()),
        LogisticRegression(max_iter=3000),
    )  # fmt: skip
    adult_model.fit(table.iloc[:1000], adult.y[:1000])
    _save(models, "adult", adult_model)

    mnist = load_dataset("mnist")
    images = np.random.default_rng(0).permutation(mnist.n_records)[:600]
    pixels = np.array(
        [r["pixels"] for r in InputSchema.for_dataset(mnist).to_records(mnist.X[images])]
    )
    image_model = LogisticRegression(max_iter=300).fit(pixels[:300], mnist.y[images[:300]])
    _save(models, "mnist", image_model)

    port = _free_port()
    (models / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": _free_port(),
        "metrics_port": _free_port(), "parallel_workers": 0,
    }))  # fmt: skip
    log = folder / "mlserver.log"
    with log.open("wb") as out:
        # One BLAS thread, as the comparisons in this process use: a float64 product over
        # hundreds of columns moves in its last bits with how threads split it.
        threads = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        process = subprocess.Popen(
            [str(MLSERVER), "start", str(models)], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=models, env={**os.environ, **threads},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlserver exited: {log.read_text()[-2000:]}")
            try:
                ready = [
                    httpx.get(f"{url}/v2/models/{m}/ready", timeout=2).status_code
                    for m in ("digits", "digits-labels", "sms", "adult", "mnist")
                ]
                if ready == [200] * 5:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlserver was not ready within 120 s: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield {
            "url": url, "data": data, "digits": digits, "members": members,
            "non_members": non_members, "membership": folder / "membership.npz",
            "sms": sms, "texts": texts, "text_model": text_model,
            "adult": adult, "table": table, "adult_model": adult_model,
            "mnist": mnist, "images": images, "pixels": pixels, "image_model": image_model,
        }  # fmt: skip
    finally:
        stop_server(process)


def _target(url, data, **kw):
    return OpenInferenceTarget(
        url, InputSchema.for_dataset(data), data.class_names, probe=data.X[:1], **kw
    )


@needs_server
def test_v2_answers_are_the_model_s_bit_for_bit(served):
    data, rows = served["data"], np.concatenate([served["members"], served["non_members"]])
    with _target(f"{served['url']}/v2/models/digits", data, cache_dir=False) as target:
        P = target.predict_proba(data.X[rows])
        assert not target.label_only and target.queries_ == len(rows) + 1  # + the probe
        facts = target.describe()
        with pytest.raises(QueryBudgetError, match="budget of 1300 is spent"):
            target.query_budget = 1300
            target.predict_proba(data.X[:500])
        assert target.queries_ == 1300
    np.testing.assert_array_equal(P, served["digits"].predict_proba(_raw(data, rows)))
    assert facts["protocol"] == "v2" and facts["tensor"] == "predict_proba"
    assert facts["model_name"] == "digits" and facts["model_version"] == "v1"
    assert facts["server"] == "mlserver 1.7.1"


@needs_server
def test_texts_images_and_tables_with_categories_travel_as_the_model_takes_them(served):
    sms, texts = served["sms"], served["texts"]
    with _target(f"{served['url']}/v2/models/sms/versions/v1", sms, cache_dir=False) as target:
        P = target.predict_proba(sms.X[:800])
    np.testing.assert_array_equal(P, served["text_model"].predict_proba(texts))
    adult = served["adult"]
    with _target(f"{served['url']}/v2/models/adult", adult, cache_dir=False) as target:
        P = target.predict_proba(adult.X[:1500])
    # One tensor per column (numbers as FP64, categories as BYTES), read by MLServer's
    # pandas codec into the DataFrame the pipeline was fitted on.
    np.testing.assert_array_equal(P, served["adult_model"].predict_proba(served["table"]))
    mnist = served["mnist"]
    with _target(f"{served['url']}/v2/models/mnist", mnist, cache_dir=False) as target:
        P = target.predict_proba(mnist.X[served["images"]])
    # The model declares no input shape: each image's pixels go flat, [n, 784]. The model
    # answers the requests sent (512 records, then 88), and 784 columns of float64 maths
    # move in their last bits with the rows in a product: compared batch for batch.
    model, pixels = served["image_model"], served["pixels"]
    with threadpool_limits(1):
        asked = np.concatenate([model.predict_proba(pixels[i : i + 512]) for i in (0, 512)])
    np.testing.assert_array_equal(P, asked)


class _InMemory:
    """The same model as the service, in this process, where the audit opens the service."""

    def __init__(self, model, data, label_only=False):
        self.model, self.data, self.label_only = model, data, label_only
        self.queries_, self.cached_, self.policy = 0, 0, []

    def predict_proba(self, X):
        self.queries_ += len(X)
        raw = np.array([list(r.values()) for r in InputSchema.for_dataset(self.data)
                        .to_records(X)])  # fmt: skip
        with threadpool_limits(1):  # as the server computes
            if self.label_only:
                return np.eye(10)[self.model.predict(raw)]
            return self.model.predict_proba(raw)

    def describe(self):
        return {"url": "memory"}

    def close(self):
        pass


def _audit_in_memory(monkeypatch, model, data, label_only=False, **kw):
    import miaudit.games.shokri as shokri

    with monkeypatch.context() as m:
        m.setattr(shokri, "open_remote", lambda *a, **k: _InMemory(model, data, label_only))
        return miaudit.audit(target_url="http://in-memory:1", **kw)


@needs_server
def test_an_audit_over_v2_equals_the_model_in_memory(served, tmp_path, monkeypatch):
    common = {**COMMON, "attacks": ATTACKS, "membership": str(served["membership"])}
    local = _audit_in_memory(monkeypatch, served["digits"], served["data"], **common)
    url = f"{served['url']}/v2/models/digits"
    cache = tmp_path / "q"
    remote = miaudit.audit(target_url=url, protocol="v2", query_cache=cache, **common)
    np.testing.assert_array_equal(remote.record_index, local.record_index)
    for name in ATTACKS:
        np.testing.assert_array_equal(remote.scores[name], local.scores[name], err_msg=name)
        assert remote.attacks[name].auc == local.attacks[name].auc
    tg = remote.target
    assert tg["protocol"] == "v2" and tg["output"] == "probabilities" and tg["url"] == url
    assert tg["queries"]["sent"] == 1201 and local.target["queries"]["sent"] == 1200
    # Resumed from the query cache: only the probe is asked again.
    again = miaudit.audit(
        target_url=url, protocol="v2", query_cache=cache, query_budget=1202, **common
    )
    assert again.target["queries"]["sent"] == 1 and again.target["queries"]["from_cache"] == 1200
    assert again.attacks["loss"].auc == local.attacks["loss"].auc
    # Chunks edited on disk fail their MACs: set aside, and their records asked again.
    chunks = sorted(cache.glob("v2-*/chunk-*.npz"))
    assert len(chunks) == 3  # batches of 512, 512 and 176 records
    for chunk in chunks:
        chunk.write_bytes(chunk.read_bytes()[:-8] + b"edited!!")
    third = miaudit.audit(target_url=url, protocol="v2", query_cache=cache, **common)
    assert third.target["queries"]["sent"] == 1201
    assert third.attacks["loss"].auc == local.attacks["loss"].auc
    # The probe is planned for (a model declaring no outputs may be asked twice): a budget
    # short of it is refused before anything trains.
    with pytest.raises(ConfigError, match=r"cannot cover the 1202 queries .* up to two\)"):
        miaudit.audit(target_url=url, protocol="v2", query_budget=1201, **common)


@needs_server
def test_a_model_that_declares_labels_gives_a_label_only_audit(served, monkeypatch):
    common = {**COMMON, "attacks": ["gap"], "membership": str(served["membership"])}
    local = _audit_in_memory(monkeypatch, served["digits"], served["data"], True, **common)
    remote = miaudit.audit(
        target_url=f"{served['url']}/v2/models/digits-labels", protocol="v2",
        query_cache=False, **common,
    )  # fmt: skip
    assert remote.target["output"] == "labels" and remote.target["tensor"] == "predict"
    assert remote.attacks["gap"].auc == local.attacks["gap"].auc


@needs_server
def test_a_model_the_server_does_not_serve_is_one_line_naming_those_it_does(
    served, capsys, error_line
):
    base = ["audit", "--dataset", "digits", "--membership", str(served["membership"]),
            "--quiet", "--protocol", "v2", "--http-retries", "0"]  # fmt: skip
    for address, said in [
        (f"{served['url']}/v2/models/digit", "'digit'"),
        (f"{served['url']}/v2/models/digits/versions/v9", "'digits' (version v9)"),
    ]:
        line = error_line(main([*base, "--target-url", address]), capsys.readouterr().err)
        assert f"{address} names a model the server does not serve: {said}" in line, line
        assert "it serves" in line and "digits (version v1)" in line and "sms" in line, line
    line = error_line(main([*base, "--target-url", served["url"]]), capsys.readouterr().err)
    assert "names no model" in line and f"{served['url']}/v2/models/NAME" in line, line
    assert "digits-labels (version v1)" in line, line


def test_a_url_that_is_no_v2_server_is_refused_in_one_line(saved_adult, capsys, error_line):
    from miaudit.serve import PredictionService, ServiceLimits, create_app, serve_in_thread

    base = ["audit", "--dataset", "adult", "--membership", str(saved_adult), "--quiet",
            "--protocol", "v2", "--http-retries", "0"]  # fmt: skip
    closed = f"http://127.0.0.1:{_free_port()}/v2/models/m"
    assert "could not be reached" in error_line(main([*base, "--target-url", closed]),
                                           capsys.readouterr().err)  # fmt: skip
    service = PredictionService.from_folder(saved_adult, [])
    with serve_in_thread(create_app(service, ServiceLimits(tokens=("tok",)))) as url:
        code = main([*base, "--target-url", f"{url}/v2/models/m", "--token", "tok"])
    line = error_line(code, capsys.readouterr().err)
    assert f"{url}/v2 and {url}/v2/models/m do not exist (404)" in line, line
    assert "Open Inference Protocol (v2)? Else drop --protocol v2" in line, line


def test_addresses_and_protocols_that_disagree_are_refused_before_anything_runs(tmp_path):
    common = {"dataset": "digits", "membership": str(tmp_path / "m.npz")}
    with pytest.raises(ConfigError, match=r"Open Inference Protocol .* add protocol=v2"):
        miaudit.audit(target_url="http://h:1/v2/models/m", **common)
    with pytest.raises(ConfigError, match=r"ends in /invocations: .* protocol=mlflow"):
        miaudit.audit(target_url="http://h:1/invocations", protocol="mlflow", **common)
    with pytest.raises(ConfigError, match="ends in /v1/predict"):
        miaudit.audit(target_url="http://h:1/v1/predict", **common)
    with pytest.raises(ConfigError, match=r"ends in /infer: give the model's address"):
        miaudit.audit(target_url="http://h:1/v2/models/m/infer", protocol="v2", **common)
    assert split_model_url("http://h:1/kserve/v2/models/a%20b/versions/3") == (
        "http://h:1/kserve", "a b", "3",
    )  # fmt: skip
    assert split_model_url("http://h:1/v2") == ("http://h:1", None, None)
    for address in ("http://h:1/v2/models/m/ready", "http://h:1/v2/models"):
        with pytest.raises(ConfigError, match="is not a model's address"):
            miaudit.audit(target_url=address, protocol="v2", **common)


DIGITS = load_dataset("digits")
_PROBE_ROW = [0.1] * 10


def _server(answer_outputs=None, *, metadata=None, status=200, body=None, seen=None, gzip_it=False):
    """A stand-in v2 server (an httpx transport) answering the probe's infer request."""

    def handle(request):
        if seen is not None:
            seen.append(request)
        path = request.url.path
        if path == "/v2":
            return httpx.Response(200, json={"name": "stand-in", "version": "0"})
        if path == "/v2/models/m":
            return httpx.Response(200, json=metadata or {"name": "m", "inputs": [], "outputs": []})
        content = body if body is not None else json.dumps({
            "model_name": "m",
            "outputs": answer_outputs if answer_outputs is not None else [
                {"name": "predict_proba", "datatype": "FP64", "shape": [1, 10],
                 "data": _PROBE_ROW}],
        }).encode()  # fmt: skip
        headers = {"content-type": "application/json"}
        if gzip_it:
            content, headers["content-encoding"] = gzip.compress(content), "gzip"
        return httpx.Response(status, content=content, headers=headers)

    return httpx.MockTransport(handle)


def _open(transport, **kw):
    return OpenInferenceTarget(
        "http://v2.test/v2/models/m", InputSchema.for_dataset(DIGITS), DIGITS.class_names,
        probe=DIGITS.X[:1], cache_dir=False, transport=transport, retries=0, **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("outputs", "body", "expected"),
    [
        (None, b"<html>", "not JSON"),
        (None, b'{"predictions": [[1.0]]}', "without an 'outputs' list"),
        (None, b'{"model_name": "other", "outputs": []}', "answered for model 'other'"),
        ([{"name": "predict_proba", "datatype": "FP64", "shape": [1, 10], "data": [0.5] * 10}],
         None, "do not sum to 1"),
        ([{"name": "predict_proba", "datatype": "INT64", "shape": [1, 10], "data": [0] * 10}],
         None, "none of them one probability per class (10) or one label per record"),
        ([{"name": "out", "datatype": "FP32", "shape": [1, 3], "data": [0.2, 0.3, 0.5]}],
         None, "answered outputs ['out'], none of them"),
        ([{"name": "predict_proba", "datatype": "FP64", "shape": [1, 10], "data": [0.1] * 9}],
         None, "data that does not fill its shape [1, 10]"),
        ([{"name": "predict", "datatype": "BYTES", "shape": [1], "data": ["cat"]}],
         None, "label 'cat', which is none of the data set's 10 classes"),
        ([{"name": "a", "datatype": "FP64", "shape": [1, 10], "data": _PROBE_ROW},
          {"name": "b", "datatype": "FP64", "shape": [1, 10], "data": _PROBE_ROW}],
         None, "2 outputs that could each be the model's probabilities (a, b)"),
    ],
)  # fmt: skip
def test_malformed_answers_are_refused_naming_the_address(outputs, body, expected):
    with pytest.raises(TargetError) as caught:
        _open(_server(outputs, body=body))
    message = str(caught.value)
    assert expected in message, message
    assert "http://v2.test/v2/models/m" in message and "\n" not in message


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ([{"name": "a", "datatype": "FP32", "shape": [-1, 64]},
          {"name": "b", "datatype": "FP32", "shape": [-1, 64]}], "takes 2 inputs ['a', 'b']"),
        ([{"name": "x", "datatype": "BYTES", "shape": [-1, 64]}], "takes 'BYTES' tensors"),
        ([{"name": "x", "datatype": "FP32", "shape": [-1, 10]}],
         "takes records of shape [10], but these have 64 values each"),
        ([{"name": "x", "datatype": "FP32", "shape": [-1, -8, -8]}],
         "declares its input's shape as [-1, -8, -8]"),
        ([{"name": "x", "datatype": "FP32", "shape": [-1, -1, 64]}],
         "takes records of shape [-1, 64], free in more than the batch"),
        ([{"name": "x", "datatype": "FP32", "shape": "[-1, 64]"}],
         "declares its input's shape as '[-1, 64]'"),
    ],
)  # fmt: skip
def test_inputs_the_records_do_not_fit_are_refused_before_any_query(inputs, expected):
    seen = []
    with pytest.raises(TargetError, match=re.escape(expected)):
        _open(_server(metadata={"name": "m", "inputs": inputs, "outputs": []}, seen=seen))
    assert not [r for r in seen if r.url.path.endswith("/infer")]


@pytest.mark.parametrize(("field", "value"), [("inputs", 5), ("outputs", True), ("inputs", "x")])
def test_metadata_that_is_no_list_of_tensors_is_one_line(field, value):
    metadata = {"name": "m", "inputs": [], "outputs": [], field: value}
    with pytest.raises(TargetError, match=f"describes the model's {field} as"):
        _open(_server(metadata=metadata))


def test_images_declared_flat_or_channels_first_are_taken():
    schema = InputSchema(kind="image", shape=(1, 4, 4))
    for shape, sent in (
        ([-1, 16], [1, 16]),
        ([-1, 1, 4, 4], [1, 1, 4, 4]),
        ([-1, 4, 4], [1, 4, 4]),
    ):
        seen = []
        metadata = {"name": "m", "inputs": [{"name": "x", "datatype": "FP32", "shape": shape}]}
        OpenInferenceTarget(
            "http://v2.test/v2/models/m", schema, [str(k) for k in range(10)],
            probe=np.zeros((1, 1, 4, 4), dtype=np.float32), cache_dir=False, retries=0,
            transport=_server(metadata=metadata, seen=seen),
        ).close()  # fmt: skip
        (infer,) = [r for r in seen if r.url.path.endswith("/infer")]
        assert json.loads(infer.content)["inputs"][0]["shape"] == sent, shape


def test_a_server_refusing_predict_proba_by_name_is_asked_for_its_default_output():
    asked = []

    def handle(request):
        if request.url.path.endswith("/infer"):
            body = json.loads(request.content)
            asked.append(body.get("outputs"))
            if body.get("outputs"):
                return httpx.Response(400, json={"error": "no predict_proba here"})
            return httpx.Response(
                200,
                json={
                    "model_name": "m",
                    "outputs": [
                        {"name": "predict", "datatype": "INT64", "shape": [1, 1], "data": [3]}
                    ],
                },
            )
        return _server().handle_request(request)

    with _open(httpx.MockTransport(handle)) as target:
        assert target.label_only and target.queries_ == 2  # both tries count
        assert target.describe()["integer_labels"] == "names"
    assert asked == [[{"name": "predict_proba"}], None]
    with pytest.raises(QueryBudgetError, match="budget of 1 is spent"):
        _open(httpx.MockTransport(handle), query_budget=1)


def test_a_ragged_answer_is_refused_rather_than_cut_into_rows():
    ragged = [{"name": "predict_proba", "datatype": "FP64", "shape": [1, 10],
               "data": [[0.1], [0.1] * 9]}]  # fmt: skip
    with pytest.raises(TargetError, match="does not fill its shape"):
        _open(_server(ragged))
    nested = [{"name": "predict_proba", "datatype": "FP64", "shape": [1, 10], "data": [_PROBE_ROW]}]
    with _open(_server(nested)) as target:
        assert not target.label_only


def test_a_hostile_server_s_words_reach_the_terminal_as_one_clean_line():
    evil = "evil\n\x1b[31mRED\x1b[0m" + "x" * 300

    def handle(request):
        if request.url.path == "/v2/repository/index":
            return httpx.Response(200, json=[{"name": evil, "version": "1"}])
        if request.url.path == "/v2":
            return httpx.Response(200, json={"name": evil, "version": "\x1b[2J"})
        return httpx.Response(404, json={"error": "not found"})

    with pytest.raises(TargetError) as caught:
        _open(httpx.MockTransport(handle))
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message and len(message) < 400, message
    assert "it serves evil [31mRED" in message


def test_images_in_another_order_of_axes_are_refused_before_any_query():
    schema = InputSchema(kind="image", shape=(3, 4, 4))
    metadata = {"name": "m", "inputs": [{"name": "x", "datatype": "FP32",
                                         "shape": [-1, 4, 4, 3]}], "outputs": []}  # fmt: skip
    seen = []
    with pytest.raises(TargetError, match=re.escape("takes images of shape [4, 4, 3]; these")):
        OpenInferenceTarget(
            "http://v2.test/v2/models/m", schema, [str(k) for k in range(10)],
            probe=np.zeros((1, 3, 4, 4), dtype=np.float32), cache_dir=False, retries=0,
            transport=_server(metadata=metadata, seen=seen),
        )  # fmt: skip
    assert not [r for r in seen if r.url.path.endswith("/infer")]


def test_declared_inputs_shape_and_name_the_tensor_sent():
    seen = []
    metadata = {"name": "m", "inputs": [{"name": "pixels", "datatype": "FP32",
                                         "shape": [-1, 8, 8]}], "outputs": []}  # fmt: skip
    with _open(_server(metadata=metadata, seen=seen)) as target:
        assert target.queries_ == 1 and not target.label_only
    (request,) = [r for r in seen if r.url.path.endswith("/infer")]
    tensor = json.loads(request.content)["inputs"][0]
    assert tensor["name"] == "pixels" and tensor["datatype"] == "FP32"
    assert tensor["shape"] == [1, 8, 8] and len(tensor["data"]) == 64
    assert json.loads(request.content)["outputs"] == [{"name": "predict_proba"}]


def test_the_token_travels_as_a_bearer_header_and_gzip_answers_are_read():
    seen = []
    with _open(_server(seen=seen, gzip_it=True), token="t0k") as target:
        assert target.queries_ == 1
    assert {r.headers.get("authorization") for r in seen} == {"Bearer t0k"}


def test_every_try_counts_against_the_budget():
    tries = []

    def handle(request):
        if request.url.path.endswith("/infer"):
            tries.append(1)
            if len(tries) == 1:
                return httpx.Response(503, json={"error": "busy"})
        return _server().handle_request(request)

    with OpenInferenceTarget(
        "http://v2.test/v2/models/m", InputSchema.for_dataset(DIGITS), DIGITS.class_names,
        probe=DIGITS.X[:1], cache_dir=False, transport=httpx.MockTransport(handle),
        retries=1, backoff=0.01,
    ) as target:  # fmt: skip
        assert target.queries_ == 2 and target.retries_ == 1
    with pytest.raises(TargetError, match=r"answered 503 \(last said: busy\) after 1 tries"):
        OpenInferenceTarget(
            "http://v2.test/v2/models/m", InputSchema.for_dataset(DIGITS), DIGITS.class_names,
            probe=DIGITS.X[:1], cache_dir=False, retries=0,
            transport=httpx.MockTransport(lambda r: httpx.Response(503, json={"error": "busy"})
                                          if r.url.path.endswith("/infer")
                                          else _server().handle_request(r)),
        )  # fmt: skip


def test_an_answer_larger_than_an_answer_can_be_is_refused():
    huge = b'{"model_name": "m", "outputs": [' + b" " * (20 * 2**20) + b"]}"
    with pytest.raises(TargetError, match=r"answered more than [\d,]+ bytes.*Open Inference"):
        _open(_server(body=huge))


def test_integer_labels_are_names_where_classes_are_named_by_integers_else_positions():
    from miaudit.protocol import integer_labels, label_rows

    assert integer_labels(["<=50K", ">50K"]) == "positions"
    np.testing.assert_array_equal(label_rows([1, ">50K", 0], ["<=50K", ">50K"], "s"),
                                  [[0, 1], [0, 1], [1, 0]])  # fmt: skip
    assert integer_labels(["1", "2", "3"]) == "names"
    np.testing.assert_array_equal(label_rows([1, 3], ["1", "2", "3"], "s"), [[1, 0, 0], [0, 0, 1]])
    for wrong in (0, 2.0, True, None, [1]):
        with pytest.raises(TargetError, match="which is none of the data set's 3 classes"):
            label_rows([wrong], ["1", "2", "3"], "s")
    with pytest.raises(TargetError, match="label 2, which is none"):
        label_rows([2], ["<=50K", ">50K"], "s")
