"""`miaudit serve`: a real server on 127.0.0.1, its limits, policies and shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miaudit.data import load_dataset
from miaudit.errors import ConfigError, ModelError
from miaudit.models import load_model
from miaudit.policies import PolicyTarget, parse_policy
from miaudit.protocol import InputSchema
from miaudit.remote import HttpTarget
from miaudit.serve import PredictionService, ServiceLimits, create_app, serve_in_thread
from miaudit.target import LocalTarget


@pytest.fixture(scope="module")
def adult():
    return load_dataset("adult")


@pytest.fixture(scope="module")
def server(saved_adult):
    service = PredictionService.from_folder(saved_adult, [])
    limits = ServiceLimits(tokens=("alpha", "beta"), max_batch=50, max_body_bytes=64 * 1024)
    with serve_in_thread(create_app(service, limits)) as url:
        yield url


def _client(url, token="alpha"):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _records(data, n, start=0):
    return InputSchema.for_dataset(data).to_records(data.X[start : start + n])


def test_token_is_required_and_checked(server):
    r = httpx.get(f"{server}/v1/info")
    assert r.status_code == 401 and "Bearer" in r.json()["error"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = httpx.post(f"{server}/v1/predict", json={"records": []})
    assert r.status_code == 401
    r = httpx.get(f"{server}/v1/info", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and "refused" in r.json()["error"]


def test_info_describes_the_service_and_counts_queries_per_token(server, adult):
    with _client(server, "alpha") as a, _client(server, "beta") as b:
        info = a.get("/v1/info").json()
        assert info["protocol"] == 1
        assert info["classes"] == adult.class_names
        assert info["output"] == "probabilities" and info["policy"] == []
        assert info["max_batch"] == 50
        assert InputSchema.for_dataset(adult).differences(info["input"]) is None
        before_a, before_b = info["queries"]["token"], b.get("/v1/info").json()["queries"]["token"]
        assert a.post("/v1/predict", json={"records": _records(adult, 7)}).status_code == 200
        assert b.post("/v1/predict", json={"records": _records(adult, 3)}).status_code == 200
        assert a.get("/v1/info").json()["queries"]["token"] == before_a + 7
        assert b.get("/v1/info").json()["queries"]["token"] == before_b + 3
        # The token itself is never echoed.
        assert "alpha" not in json.dumps(a.get("/v1/info").json())


def test_bad_requests_get_4xx_and_the_server_keeps_serving(server, adult):
    with _client(server) as c:
        good = {"records": _records(adult, 2)}
        bad = {"records": _records(adult, 2)}
        bad["records"][1]["age"] = "old"
        r = c.post("/v1/predict", json=bad)
        assert r.status_code == 422 and r.json()["error"].startswith("records[1].age:")
        r = c.post(
            "/v1/predict", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and "not JSON" in r.json()["error"]
        assert c.post("/v1/predict", json={"rows": []}).status_code == 422
        r = c.post("/v1/predict", json={"records": _records(adult, 51)})
        assert r.status_code == 413 and "limit of 50" in r.json()["error"]
        r = c.post("/v1/predict", content=b" " * (65 * 1024))
        assert r.status_code == 413 and "exceeds" in r.json()["error"]

        # A chunked body (no Content-Length) is measured as it arrives.
        def chunks():
            for _ in range(70):
                yield b" " * 1024

        assert c.post("/v1/predict", content=chunks()).status_code == 413
        r = c.post("/v1/predict", json=good)
        assert r.status_code == 200 and len(r.json()["probabilities"]) == 2


POLICIES = [
    [],
    ["top-k=1"],
    ["top-k=3"],
    ["round=1"],
    ["round=3"],
    ["temperature=5"],
    ["temperature=0.5", "top-k=1", "round=2"],
    ["label-only"],
]


@pytest.mark.parametrize("specs", POLICIES, ids=lambda s: ",".join(s) or "none")
def test_served_and_local_policies_answer_identically(saved_adult, adult, specs, tmp_path):
    policies = [parse_policy(s) for s in specs]
    service = PredictionService.from_folder(saved_adult, policies)
    X = adult.X[np.random.default_rng(1).choice(adult.n_records, 300, replace=False)]
    local = PolicyTarget(LocalTarget(load_model(saved_adult), adult.n_classes), policies)
    with (
        serve_in_thread(create_app(service, ServiceLimits(tokens=("t",)))) as url,
        HttpTarget(
            url, InputSchema.for_dataset(adult), adult.class_names, token="t", cache_dir=tmp_path
        ) as remote,
    ):
        assert remote.policy == [p.spec for p in policies]
        assert remote.label_only == ("label-only" in specs)
        served = remote.predict_proba(X)
        if remote.label_only:
            raw = httpx.post(
                f"{url}/v1/predict",
                json={"records": _records(adult, 2)},
                headers={"Authorization": "Bearer t"},
            ).json()
            assert set(raw) == {"labels"} and set(raw["labels"]) <= set(adult.class_names)
    np.testing.assert_array_equal(served, local.predict_proba(X))


@settings(max_examples=25, deadline=None)
@given(
    policy=st.sampled_from(["top-k=1", "round=2", "temperature=3", "label-only"]),
    start=st.integers(0, 40_000),
)
def test_served_answers_keep_the_target_contract(saved_adult, adult, policy, start):
    service = PredictionService.from_folder(saved_adult, [parse_policy(policy)])
    answer = service.answer(_records(adult, 5, start))
    if policy == "label-only":
        assert set(answer) == {"labels"} and set(answer["labels"]) <= set(adult.class_names)
    else:
        P = np.asarray(answer["probabilities"])
        assert P.shape == (5, 2) and (P >= 0).all()
        np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)


def test_service_refuses_a_folder_without_an_encoder(saved_adult, tmp_path):
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(saved_adult, copy)
    info = json.loads((copy / "dataset.json").read_text())
    del info["encoder"]
    (copy / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match="save it again"):
        PredictionService.from_folder(copy, [])
    with pytest.raises(ConfigError, match="label-only"):
        PredictionService.from_folder(
            saved_adult, [parse_policy("label-only"), parse_policy("round=1")]
        )
    with pytest.raises(ConfigError, match="max-batch"):
        ServiceLimits(max_batch=0)


def _start_cli(args, env=None):
    proc = subprocess.Popen(
        [sys.executable, "-m", "miaudit.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_serves_on_a_free_port_and_shuts_down_cleanly(saved_adult, adult, sig):
    proc = _start_cli([str(saved_adult), "--port", "0", "--top-k", "1"], {"MIAUDIT_TOKEN": "env-t"})
    try:
        line = proc.stdout.readline()
        assert "output policy: top-k=1" in line, line + proc.stderr.read()
        url = line.split(" on ")[1].split(";")[0]
        with _client(url, "env-t") as c:
            r = c.post("/v1/predict", json={"records": _records(adult, 4)})
            assert r.status_code == 200
            assert all(sorted(row)[0] == 0.0 for row in r.json()["probabilities"])
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped after answering 4 queries" in out


def test_cli_refuses_to_serve_without_a_token(saved_adult):
    env = {k: v for k, v in os.environ.items() if k != "MIAUDIT_TOKEN"}
    proc = subprocess.run(
        [sys.executable, "-m", "miaudit.cli", "serve", str(saved_adult)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("miaudit: error: no token")
    assert "Traceback" not in proc.stderr


def test_no_route_answers_without_the_token(server):
    for path in ("/openapi.json", "/redoc", "/docs"):
        assert httpx.get(f"{server}{path}").status_code in (401, 404), path
    assert httpx.get(f"{server}/openapi.json").status_code == 404


def test_serving_without_a_token_warns(saved_adult):
    proc = _start_cli([str(saved_adult), "--port", "0", "--no-auth"], {"MIAUDIT_TOKEN": ""})
    try:
        line = proc.stdout.readline()
        assert "serving" in line
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "warning: serving without a token" in err and "NOT the loopback" not in err


def test_hostile_bodies_get_4xx_and_answers_stay_valid_json(server, adult):
    with _client(server) as c:
        nested = b'{"records": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
        r = c.post("/v1/predict", content=nested, headers={"content-type": "application/json"})
        # Refused from its structure alone: 20,000 lists are more than 50 records hold.
        assert r.status_code == 413 and "JSON items" in r.json()["error"], r.text
        huge = b'{"records": [' + b"9" * 5000 + b"]}"
        r = c.post("/v1/predict", content=huge, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        for value in (1e308, -1e308):
            record = _records(adult, 1)[0]
            record["age"] = value
            r = c.post("/v1/predict", json={"records": [record]})
            assert r.status_code == 422 and r.json()["error"].startswith("records[0]"), r.text
            json.loads(r.text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
        r = c.post("/v1/predict", json={"records": _records(adult, 2)})
        assert r.status_code == 200  # and it keeps serving


def test_a_model_declaring_a_hundred_million_classes_is_refused_before_serving(tmp_path):
    # Before: the service built 100 million class names and died with MemoryError.
    from miaudit.config import make_config
    from miaudit.pipeline import train_target_only

    settings = {"dataset": "digits", "target_size": 100, "target": {"model": "logistic-regression"}}
    train_target_only(make_config(settings), tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["n_classes"] = 100_000_000
    meta.pop("class_names", None)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    message = r"100,000,000 classes .* would take about [\d,.]+ GiB, more than this machine's"
    with pytest.raises(ModelError, match=message):
        PredictionService.from_folder(tmp_path, [])
