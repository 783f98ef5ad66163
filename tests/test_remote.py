"""The HTTP target against a real server that injects faults, and the query cache."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import numpy as np
import pytest

from miaudit.data import load_dataset
from miaudit.errors import QueryBudgetError, TargetError
from miaudit.models import load_model
from miaudit.protocol import InputSchema, record_texts
from miaudit.remote import HttpTarget, QueryCache
from miaudit.serve import PredictionService, ServiceLimits, create_app, serve_in_thread


class FaultInjector:
    """ASGI wrapper around the real service: the next predict requests fail as planned.

    ``plan`` holds one fault per request: an HTTP status (answered with an error
    body), ``"slow"`` (answered after the client's timeout), ``"malformed"``,
    ``"width"``, ``"nan"`` or ``"sum"`` (answered 200 with a bad body).
    """

    def __init__(self, app) -> None:
        self.app = app
        self.plan: list = []
        self.requests = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/v1/predict":
            return await self.app(scope, receive, send)
        self.requests += 1
        if not self.plan:
            return await self.app(scope, receive, send)
        fault = self.plan.pop(0)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        n = len(json.loads(body)["records"])
        headers = [(b"content-type", b"application/json")]
        if fault == "drip":
            # A whole, valid answer, a few bytes at a time: each read is quick.
            whole = json.dumps({"probabilities": [[0.5, 0.5]] * n}).encode()
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for i in range(0, len(whole), 4):
                await send({"type": "http.response.body", "body": whole[i : i + 4],
                            "more_body": i + 4 < len(whole)})  # fmt: skip
                await asyncio.sleep(0.05)
            return
        if fault == "slow":
            await asyncio.sleep(4.0)
            status, payload = 200, json.dumps({"probabilities": [[0.5, 0.5]] * n}).encode()
        elif isinstance(fault, int):
            status, payload = fault, b'{"error": "injected"}'
            if fault == 429:
                headers.append((b"retry-after", b"0"))
        else:
            status = 200
            payload = {
                "malformed": b'{"probabilities": [[0.5, ',
                "width": json.dumps({"probabilities": [[0.2, 0.3, 0.5]] * n}).encode(),
                # json.dumps writes NaN as the bare token NaN, as a careless server would.
                "nan": json.dumps({"probabilities": [[float("nan"), 0.5]] * n}).encode(),
                "sum": json.dumps({"probabilities": [[0.9, 0.9]] * n}).encode(),
                # A hostile service: nesting no parser should follow, a 5,000-digit number.
                "nested": b'{"probabilities": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
                "huge-int": b'{"probabilities": [[' + b"9" * 5000 + b", 0]]}",
                "strings": json.dumps({"probabilities": [["0.5", "0.5"]] * n}).encode(),
                "booleans": json.dumps({"probabilities": [[True, False]] * n}).encode(),
                "huge": b'{"probabilities": ' + b" " * (17 * 2**20) + b"[]}",
            }[fault]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture(scope="module")
def adult():
    return load_dataset("adult")


@pytest.fixture(scope="module")
def faulty(saved_adult):
    service = PredictionService.from_folder(saved_adult, [])
    app = FaultInjector(create_app(service, ServiceLimits(tokens=("tok",), max_batch=100)))
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture
def make_target(faulty, adult, tmp_path):
    url, app = faulty
    app.plan.clear()
    made = []

    def make(**kw):
        kw.setdefault("token", "tok")
        kw.setdefault("cache_dir", tmp_path / "cache")
        kw.setdefault("backoff", 0.01)
        kw.setdefault("timeout", 1.5)
        target = HttpTarget(
            kw.pop("url", url), InputSchema.for_dataset(adult), adult.class_names, **kw
        )
        made.append(target)
        return target

    yield make
    for target in made:
        target.close()


def _truth(saved_adult, X):
    return load_model(saved_adult).predict_proba(X).astype(np.float64)


@pytest.mark.parametrize("faults", [[500, 503, 502], [429, 429], ["slow"], [504, "slow", 500]])
def test_recoverable_faults_are_retried(make_target, faulty, adult, saved_adult, faults):
    messages = []
    target = make_target(on_retry=messages.append, cache_dir=False)
    faulty[1].plan.extend(faults)
    X = adult.X[:250]
    P = target.predict_proba(X)
    np.testing.assert_allclose(P, _truth(saved_adult, X), rtol=0, atol=1e-12)
    assert target.retries_ == len(faults) == len(messages)
    # Every try is counted: a service may have received (and counted) a failed one.
    # (each fault fails the first request, of one batch, and its retries)
    assert target.queries_ == 250 + len(faults) * min(250, target.batch_size)
    assert "retrying in" in messages[0]


def test_a_service_that_stays_down_is_reported(make_target, faulty, adult):
    target = make_target(retries=2, cache_dir=False)
    faulty[1].plan.extend([500, 500, 500])
    # What the server last said comes with it: a traceback's last line says what failed.
    with pytest.raises(TargetError, match=r"answered 500 \(last said: injected\) after 3 tries"):
        target.predict_proba(adult.X[:10])


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("malformed", "malformed JSON"),
        ("width", "expected 2 probabilities"),
        ("nan", "NaN or infinite"),
        ("sum", "do not sum to 1"),
        ("nested", "nested too deeply"),
        ("huge-int", "malformed JSON"),
        ("strings", "not all numbers"),
        ("booleans", "not all numbers"),
        (302, r"answered a redirect \(302"),
        (422, r"refused the request \(422"),
    ],
)
def test_malformed_answers_are_reported_not_scored(make_target, faulty, adult, fault, message):
    target = make_target()
    faulty[1].plan.append(fault)
    with pytest.raises(TargetError, match=message):
        target.predict_proba(adult.X[:20])
    # Nothing of the bad answer was cached.
    assert len(target.cache) == 0


def test_wrong_token_and_unreachable_url(make_target, faulty):
    with pytest.raises(TargetError, match=r"refused the token .*--token"):
        make_target(token="wrong")
    with pytest.raises(TargetError, match="refused the token"):
        make_target(token=None)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(
        TargetError, match=r"could not be reached \(ConnectError.* after 2 tries: is the service"
    ):
        make_target(url=f"http://127.0.0.1:{port}", retries=1)
    with pytest.raises(TargetError, match="does not exist"):
        make_target(url=f"{faulty[0]}/nothing-here")


def test_a_service_for_other_data_is_refused(faulty, tmp_path):
    digits = load_dataset("digits")
    with pytest.raises(TargetError, match="audit it with the data set it was trained on"):
        HttpTarget(faulty[0], InputSchema.for_dataset(digits), digits.class_names, token="tok")


def test_cache_answers_repeats_and_survives_a_new_client(make_target, faulty, adult, saved_adult):
    X = adult.X[100:400]
    # Records that encode alike are one query (float32 merges a few raw values).
    distinct = len(set(record_texts(InputSchema.for_dataset(adult).to_records(X))))
    assert distinct > 290
    first = make_target()
    P1 = first.predict_proba(X)
    assert first.queries_ == distinct and first.cached_ == 0
    sent = faulty[1].requests
    second = make_target()
    P2 = second.predict_proba(X[::-1])
    assert second.queries_ == 0 and second.cached_ == 300
    assert faulty[1].requests == sent  # not a single request
    np.testing.assert_array_equal(P2, P1[::-1])
    # Partly new records: only the new ones are paid for.
    third = make_target()
    third.predict_proba(adult.X[300:500])
    assert third.queries_ == 100 and third.cached_ == 100


def test_cache_is_keyed_by_the_service_identity(saved_adult, adult, tmp_path):
    from miaudit.policies import parse_policy

    X = adult.X[:50]
    schema = InputSchema.for_dataset(adult)
    folders = set()
    for policies in ([], [parse_policy("round=1")]):
        service = PredictionService.from_folder(saved_adult, policies)
        app = create_app(service, ServiceLimits(tokens=("t",)))
        with (
            serve_in_thread(app) as url,
            HttpTarget(url, schema, adult.class_names, token="t", cache_dir=tmp_path) as t,
        ):
            t.predict_proba(X)
            # Another policy is another service: nothing is answered from the cache.
            assert t.queries_ == 50 and t.cached_ == 0
            folders.add(t.cache.folder)
    assert len(folders) == 2


def test_budget_runs_out_and_the_rerun_resumes(make_target, faulty, adult, saved_adult):
    X = adult.X[1000:1250]
    target = make_target(query_budget=120)
    with pytest.raises(QueryBudgetError, match=r"budget of 120 is spent .*query cache"):
        target.predict_proba(X)
    # Everything the budget paid for was kept.
    assert target.queries_ == 120 and len(target.cache) == 120
    rerun = make_target(query_budget=130)
    P = rerun.predict_proba(X)
    assert rerun.queries_ == 130 and rerun.cached_ == 120
    np.testing.assert_allclose(P, _truth(saved_adult, X), rtol=0, atol=1e-12)


def test_interrupt_keeps_what_was_paid_for(make_target, faulty, adult, monkeypatch):
    target = make_target(batch_size=50)
    calls = {"n": 0}
    real = target._predict

    def flaky(records):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(records)

    monkeypatch.setattr(target, "_predict", flaky)
    X = adult.X[2000:2200]
    with pytest.raises(KeyboardInterrupt):
        target.predict_proba(X)
    assert len(target.cache) == 100
    resumed = make_target(batch_size=50)
    resumed.predict_proba(X)
    assert resumed.cached_ == 100 and resumed.queries_ == 100


def test_corrupt_cache_chunks_are_set_aside_and_asked_again(make_target, adult):
    target = make_target()
    target.predict_proba(adult.X[3000:3040])
    folder = target.cache.folder
    chunk = next(folder.glob("chunk-*.npz"))
    chunk.write_bytes(chunk.read_bytes()[:100])  # truncated behind our back
    again = make_target()
    assert again.cache.skipped_chunks == [chunk.name]
    again.predict_proba(adult.X[3000:3040])
    assert again.queries_ == 40
    assert list(folder.glob("*.bad"))


def test_query_cache_compacts_many_chunks(tmp_path):
    cache = QueryCache(tmp_path, 2)
    rng = np.random.default_rng(0)
    keys = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)) for _ in range(70)]
    rows = rng.dirichlet([1, 1], 70)
    for i in range(70):
        cache.add([keys[i]], rows[i : i + 1])
    reopened = QueryCache(tmp_path, 2)
    assert len(list(tmp_path.glob("chunk-*.npz"))) == 1
    found, got = reopened.get(keys[::-1])
    assert found.all()
    np.testing.assert_array_equal(got, rows[::-1])


@pytest.mark.parametrize(
    "tamper",
    [
        # Rows moved by one: every answer still a probability, each on the wrong record.
        lambda keys, answers: {"keys": keys, "answers": np.roll(answers, 1, axis=0)},
        lambda keys, answers: {"keys": keys, "answers": np.full_like(answers, np.nan)},
        lambda keys, answers: {"keys": keys[::-1], "answers": answers},
    ],
    ids=["rows-rolled", "nan", "keys-reversed"],
)
def test_a_query_cache_chunk_edited_behind_our_back_is_never_used(make_target, adult, tamper):
    target = make_target()
    X = adult.X[3100:3140]
    truth = target.predict_proba(X)
    chunk = next(target.cache.folder.glob("chunk-*.npz"))
    with np.load(chunk) as f:
        edited = tamper(f["keys"], f["answers"])
    np.savez(chunk.with_suffix(""), **edited)  # the same name, valid .npz, new content
    again = make_target()
    assert again.cache.skipped_chunks == [chunk.name]
    np.testing.assert_array_equal(again.predict_proba(X), truth)
    assert again.queries_ == 40 and again.cached_ == 0


def test_query_cache_chunks_without_a_checksum_are_asked_again(tmp_path):
    cache = QueryCache(tmp_path, 2)
    key = bytes(range(32))
    cache.add([key], np.array([[0.25, 0.75]]))
    assert QueryCache(tmp_path, 2).get([key])[0].all()
    for check in tmp_path.glob("chunk-*.sha256"):
        check.unlink()  # as a chunk written before chunks had checksums
    reopened = QueryCache(tmp_path, 2)
    assert len(reopened.skipped_chunks) == 1 and not reopened.get([key])[0].any()


def test_an_address_with_credentials_is_refused_without_echoing_them(tmp_path, capsys):
    from miaudit.cli import main
    from miaudit.errors import ConfigError
    from miaudit.remote import check_url

    with pytest.raises(ConfigError, match=r"user:password@127\.0\.0\.1:9\).*--token") as err:
        check_url("http://alice:pa55word@127.0.0.1:9")
    assert "pa55word" not in str(err.value) and "alice" not in str(err.value)
    code = main(["audit", "--target-url", "http://alice:pa55word@127.0.0.1:9",
                 "--dataset", "digits", "--out", str(tmp_path / "r")])  # fmt: skip
    out = capsys.readouterr()
    assert code == 2 and "pa55word" not in out.out + out.err
    assert not (tmp_path / "r").exists() or "pa55word" not in "".join(
        p.read_text(errors="ignore") for p in (tmp_path / "r").rglob("*") if p.is_file()
    )


def test_infinite_settings_are_refused_before_any_work(tmp_path, capsys):
    from miaudit.cli import main

    for setting in (["--http-timeout", "inf"], ["--attack-setting", "rmia.gamma=inf"]):
        code = main(["audit", "--dataset", "digits", "--attacks", "rmia", *setting,
                     "--out", str(tmp_path / "r")])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and "finite" in err, err
        assert not (tmp_path / "r" / "results.json").exists()


def test_the_budget_counts_every_record_sent_retries_included(make_target, faulty, adult):
    # The first try times out after the service took the records; a retry of the same
    # 40 would make 80 sent against a budget of 60: refused before it is sent.
    target = make_target(query_budget=60, cache_dir=False)
    faulty[1].plan.append("slow")
    with pytest.raises(QueryBudgetError, match=r"budget of 60 is spent \(40 sent"):
        target.predict_proba(adult.X[:40])
    assert target.queries_ == 40
    enough = make_target(query_budget=80, cache_dir=False)
    faulty[1].plan.append("slow")
    enough.predict_proba(adult.X[:40])
    assert enough.queries_ == 80 == enough.query_budget


def test_a_token_that_cannot_be_a_header_is_one_line(make_target):
    from miaudit.errors import ConfigError

    with pytest.raises(ConfigError, match="printable ASCII"):
        make_target(token="pässwörd")


def test_an_answer_is_bounded_in_time_and_size(make_target, faulty, adult):
    # 20 records' answer dripping 4 bytes every 0.05 s takes ~6 s, far past the 1.5 s
    # timeout, though no single read waits that long: a timeout, retried, then reported.
    target = make_target(retries=1, cache_dir=False)
    faulty[1].plan.extend(["drip", "drip"])
    started = time.monotonic()
    with pytest.raises(TargetError, match="timed out after 2 tries"):
        target.predict_proba(adult.X[:20])
    assert time.monotonic() - started < 8
    # An answer larger than any answer to 20 records can be: refused, not read whole.
    faulty[1].plan.append("huge")
    with pytest.raises(TargetError, match=r"answered more than [\d,]+ bytes"):
        make_target(cache_dir=False).predict_proba(adult.X[:20])


def test_a_query_cache_on_a_full_disk_keeps_the_answers_paid_for(make_target, adult, monkeypatch):
    # Before: the first paid batch failed the audit with a traceback (the answers were
    # lost) and a temporary file stayed behind.
    import errno

    real = np.savez

    def full_disk(path, **arrays):
        real(path, **arrays)  # the temporary file is half written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    messages = []
    target = make_target(batch_size=20, on_retry=messages.append)
    monkeypatch.setattr(np, "savez", full_disk)
    X = adult.X[3200:3240]
    P = target.predict_proba(X)
    assert P.shape == (40, adult.n_classes) and target.queries_ == 40
    assert target.cache.unwritable == "No space left on device"
    assert len(messages) == 1 and "cannot be written (No space left on device)" in messages[0]
    assert not list(target.cache.folder.glob(".*tmp*"))
    assert target.describe()["query_cache_unwritable"] == "No space left on device"
    np.testing.assert_array_equal(target.predict_proba(X), P)  # from memory, not asked again
    assert target.queries_ == 40


def test_an_unwritable_out_is_refused_before_the_audit_and_a_full_disk_after_it(
    tmp_path, monkeypatch
):
    import errno
    import tempfile

    from miaudit.errors import ConfigError
    from miaudit.report import files

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as m:
        m.setattr(tempfile, "NamedTemporaryFile", refuse)
        with pytest.raises(ConfigError, match=r"cannot write into .*Read-only file system.*--out"):
            files.prepare_out_dir(tmp_path / "out")

    class Result:  # enough of an AuditResult for write_results to reach the disk
        def to_dict(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ConfigError, match=r"No space left on device.*job cache"):
        files.write_results(Result(), tmp_path / "out")
    assert not list(tmp_path.iterdir())  # no half-written folder left behind
