"""A model behind a prediction API as a target: ``audit --target-url URL``.

Position in the pipeline: ``target``. :class:`HttpTarget` has the same
``predict_proba(X) -> P`` as a local target; underneath it turns encoded records
into raw JSON rows (:mod:`miaudit.protocol`; a text record is its text), sends
them in batches (of at most the service's ``max_batch`` records and
``max_body_bytes`` bytes) over one kept-alive connection, retries what can be
retried (timeouts, refused connections, 429 and 5xx, with exponential backoff and
``Retry-After``), refuses to exceed the query budget, and validates every answer
before it reaches an attack.

Every answered query is kept in a :class:`QueryCache` on disk, keyed by the record
sent and by the service's identity (URL, model id, policy), so an interrupted
audit resumes without paying again for what it already asked. Its chunks are
authenticated by a MAC under the user's cache key (:mod:`miaudit.cache_key`): answers
written by anyone without the key are never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import time
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

from miaudit.cache_key import EntryMac, load_key, read_regular, write_private
from miaudit.data.cache import claim_cache, user_cache_dir
from miaudit.errors import ConfigError, QueryBudgetError, TargetError, key
from miaudit.files import check_npy_sizes, private_dir
from miaudit.protocol import (
    PROTOCOL_VERSION,
    InputSchema,
    integer_labels,
    label_rows,
    parse_answer,
    probability_rows,
    record_keys,
    record_texts,
    request_body,
)

#: Environment variable naming the query cache folder.
QUERY_CACHE_ENV = "MIAUDIT_QUERY_CACHE"
_RETRY_STATUS = {429, 500, 502, 503, 504}
# Chunks beyond this many are merged into one when the cache is opened.
_MAX_CHUNKS = 64
# An answer's size bound: a probability as JSON takes ~25 bytes; the slack holds
# /v1/info's schema and error bodies.
_ANSWER_BYTES_PER_VALUE = 64
_ANSWER_SLACK = 16 * 2**20


def clean(text: Any, limit: int = 200) -> str:
    """A server's words, fit for one line of a terminal: control characters (newlines,
    escape sequences) dropped, spaces collapsed, at most ``limit`` characters."""
    text = "".join(c if c.isprintable() else " " for c in str(text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _said(response: httpx.Response) -> str:
    """What a refusing server said, in one short line: its JSON ``error``, ``detail`` or
    ``message``, else the last line of its text (a traceback's says what failed)."""
    try:
        body = response.json()
        detail = next(
            (
                body[k]
                for k in ("error", "detail", "message")
                if isinstance(body, dict) and body.get(k)
            ),
            None,
        )
    except (ValueError, UnicodeDecodeError, RecursionError):
        detail = None
    if detail is None:
        lines = [ln.strip() for ln in response.text.splitlines() if ln.strip()]
        detail = lines[-1] if lines else ""
    return clean(detail)


def cache_folder_name(prefix: str, url: str, parts: dict[str, Any]) -> str:
    """A service's query-cache folder name: ``prefix``, its host and port, and a digest of
    ``parts`` (what makes two services' answers differ)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
    host = urlsplit(url).netloc.replace(":", "_").replace("[", "").replace("]", "")
    return f"{prefix}{host}-{digest}"


def query_cache_root() -> Path:
    """``$MIAUDIT_QUERY_CACHE``, else ``$XDG_CACHE_HOME/miaudit/queries``, else ``~/.cache/...``."""
    return user_cache_dir("queries", QUERY_CACHE_ENV)


def check_url(url: str) -> str:
    """The URL without a trailing slash, or a :class:`ConfigError` saying what is wrong."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        # Never echoed, never written: results, config, report and cache folder names
        # would all carry the password.
        host = parts.netloc.rsplit("@", 1)[1]
        raise ConfigError(
            f"{key('target_url')}: the address holds credentials (user:password@{host}); "
            "give the service's address without them, and its token separately (--token, or "
            "token= in Python)"
        )
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{key('target_url', repr(url))} is not an http(s) URL: give the service's base "
            "address, "
            "e.g. http://127.0.0.1:8000"
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            f"{key('target_url', repr(url))}: give the base address without '?' or '#'"
        )
    return url.rstrip("/")


class QueryCache:
    """Answered queries of one service, on disk: record digest -> answer row.

    Each answered batch is one ``.npz`` chunk written under a temporary name and
    renamed, then its MAC beside it (``.sha256``, the name kept from when it held a plain
    checksum; written last, as the job cache does): an HMAC-SHA256 under the user's
    cache key of the service's folder name, the chunk's name and its bytes. A chunk
    counts only with a MAC that verifies. A chunk that does not verify or read back
    (edited, truncated, rows moved, moved from another service's folder, written by
    someone without the key or before chunks had MACs) is set aside as ``.bad`` and its
    records are simply asked again: an answer is never used unverified.
    """

    def __init__(self, folder: str | Path, width: int) -> None:
        self.folder = Path(folder)
        self.width = width
        self._index: dict[bytes, int] = {}
        self._rows: list[np.ndarray] = []
        self._n = 0
        self.skipped_chunks: list[str] = []
        #: Why answers are no longer written to disk (``None`` while they are).
        self.unwritable: str | None = None
        self._mac_key: bytes | None = None
        self._load()

    def __len__(self) -> int:
        return self._n

    def _key(self) -> bytes:
        """The cache key (:func:`~miaudit.cache_key.load_key`), read once."""
        if self._mac_key is None:
            self._mac_key = load_key()
        return self._mac_key

    def _mac(self, name: str) -> EntryMac:
        """The MAC of the chunk ``name`` of this service's folder."""
        return EntryMac("queries", f"{self.folder.name}/{name}", self._key())

    def _load(self) -> None:
        if not self.folder.is_dir():
            return
        chunks = sorted(self.folder.glob("chunk-*.npz"))
        for path in chunks:
            check = path.with_suffix(".sha256")
            mac = self._mac(path.name)
            try:
                # Read once; verified and parsed from the same bytes.
                blob = bytes(read_regular(path))
                if not check.is_file() or not mac.add(blob).matches(read_regular(check)):
                    raise ValueError("no MAC, or it does not verify")
                check_npy_sizes(blob, ValueError, "set aside", str(path))
                with np.load(io.BytesIO(blob), allow_pickle=False) as f:
                    keys, rows = f["keys"], f["answers"]
                if keys.ndim != 2 or keys.shape[1] != 32 or rows.shape != (len(keys), self.width):
                    raise ValueError("shapes do not match")
                if not (np.isfinite(rows).all() and (rows >= 0).all() and (rows <= 1 + 1e-6).all()):
                    raise ValueError("answers that are not probabilities")
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                self.skipped_chunks.append(path.name)
                with contextlib.suppress(OSError):  # another user's, in a shared folder
                    path.replace(path.with_suffix(".bad"))
                    check.unlink(missing_ok=True)
                continue
            self._remember([bytes(k) for k in keys], rows)
        if len(chunks) > _MAX_CHUNKS:
            self._compact(chunks)

    def _remember(self, keys: list[bytes], rows: np.ndarray) -> None:
        self._rows.append(np.asarray(rows, dtype=np.float64))
        for i, row_key in enumerate(keys):
            self._index[row_key] = self._n + i
        self._n += len(keys)

    def _compact(self, chunks: list[Path]) -> None:
        keys = sorted(self._index, key=self._index.get)
        self._write(keys, self.rows(keys))
        for path in chunks:
            path.unlink(missing_ok=True)
            path.with_suffix(".sha256").unlink(missing_ok=True)

    def rows(self, keys: list[bytes]) -> np.ndarray:
        everything = np.concatenate(self._rows) if len(self._rows) > 1 else self._rows[0]
        self._rows = [everything]
        return everything[[self._index[k] for k in keys]]

    def get(self, keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """``(found mask, rows)``: the cached answers of the records that have one."""
        found = np.array([k in self._index for k in keys], dtype=bool)
        rows = np.zeros((len(keys), self.width))
        if found.any():
            rows[found] = self.rows([k for k, f in zip(keys, found, strict=True) if f])
        return found, rows

    def add(self, keys: list[bytes], rows: np.ndarray) -> None:
        """Store answered queries (on disk first, then in memory). A disk that cannot take
        them (full, read-only) costs the cache, never the answers: they are kept in memory
        for this run and :attr:`unwritable` says why."""
        if not keys:
            return
        if self.unwritable is None:
            try:
                self._write(keys, rows)
            except OSError as exc:
                self.unwritable = exc.strerror or str(exc)
                for tmp in self.folder.glob(".chunk-*.tmp.*"):
                    tmp.unlink(missing_ok=True)
        self._remember(keys, rows)

    def _write(self, keys: list[bytes], rows: np.ndarray) -> None:
        self._key()  # first: a refused key file is an error, not an unwritable cache
        claim_cache(self.folder.parent, "queries")
        private_dir(self.folder)
        name = f"chunk-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        tmp = self.folder / f".{name}.tmp.npz"
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32)
        buffer = io.BytesIO()
        np.savez(buffer, keys=key_array, answers=np.asarray(rows, dtype=np.float64))
        blob = buffer.getvalue()
        tmp_check = self.folder / f".{name}.tmp.sha256"
        try:
            write_private(tmp, blob)
            os.replace(tmp, self.folder / f"{name}.npz")
            # The MAC last: a chunk without one is never read.
            mac = self._mac(f"{name}.npz").add(blob)
            write_private(tmp_check, (mac.hexdigest() + "\n").encode())
            os.replace(tmp_check, self.folder / f"{name}.sha256")
        except BaseException:
            # Interrupted too (Ctrl-C, SIGTERM): no temporary file is left behind.
            for path in (tmp, tmp_check):
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            raise


class HttpTarget:
    """A prediction service that speaks miaudit's protocol, as a target.

    Parameters
    ----------
    url:
        The service's base address (``http://host:port``).
    schema:
        The records the audit has (:meth:`InputSchema.for_dataset`); the service's
        own schema must accept them.
    class_names:
        The data set's classes; the service must predict the same ones, in order.
    token:
        Bearer token (never written anywhere by miaudit).
    query_budget:
        Most queries this target may send (answers from the cache are free).
    cache_dir:
        Root of the query cache (:func:`query_cache_root` by default); ``False``
        turns the cache off.
    batch_size:
        Records per request (at most the service's ``max_batch``, and fewer where
        long records, texts, would make a body past its ``max_body_bytes``).
    timeout, retries, backoff:
        Seconds per request; how many times to retry a request that timed out,
        could not connect, or was answered 429/5xx; first wait between tries
        (doubled each time, with jitter; a ``Retry-After`` header wins).
    on_retry:
        Called with a one-line message before each retry (progress reporting).
    transport:
        An ``httpx`` transport, for tests.
    """

    #: What the service is, as messages ask ("is this …?").
    speaks = "a miaudit prediction API"

    def __init__(
        self,
        url: str,
        schema: InputSchema,
        class_names: list[str],
        *,
        token: str | None = None,
        query_budget: int | None = None,
        cache_dir: str | Path | bool | None = None,
        batch_size: int = 512,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.5,
        on_retry: Callable[[str], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = check_url(url)
        self.timeout = float(timeout)
        if token is not None and not (token.isascii() and token.isprintable() and token.strip()):
            raise ConfigError(
                "--token: a bearer token is printable ASCII (letters, digits, punctuation) "
                "without spaces around it; this one is not"
            )
        self.schema = schema
        self.class_names = [str(c) for c in class_names]
        self.query_budget = query_budget
        self.retries = retries
        self.backoff = backoff
        self.on_retry = on_retry
        self.queries_ = 0
        self.cached_ = 0
        self.retries_ = 0
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_keepalive_connections=4),
        )
        # Before the set-up's requests: a budget spent by them reads it (_refuse).
        self.cache: QueryCache | None = None
        try:
            self.info = self._fetch_info()
        except BaseException:
            self._client.close()
            raise
        self.label_only = self.info.get("output") == "labels"
        self.policy = [str(p) for p in self.info.get("policy") or []]
        limit = self.info.get("max_batch")
        self.batch_size = max(1, min(batch_size, limit if isinstance(limit, int) else batch_size))
        if cache_dir is not False:
            root = query_cache_root() if cache_dir in (None, True) else Path(cache_dir)
            self.cache = QueryCache(root / self.identity(), len(self.class_names))

    # ------------------------------------------------------------------ set-up
    def _fetch_info(self) -> dict[str, Any]:
        response = self._request("GET", "/v1/info")
        try:
            info = response.json()
        except (ValueError, UnicodeDecodeError, RecursionError):
            # Not JSON, integers beyond Python's digit limit, or nesting too deep.
            raise TargetError(
                f"{self.url}/v1/info answered something that is not JSON: is this a miaudit "
                "prediction API (see the README's 'Prediction API')?"
            ) from None
        if not isinstance(info, dict) or not isinstance(info.get("classes"), list):
            raise TargetError(f"{self.url}/v1/info does not list the service's classes")
        if info.get("protocol") != PROTOCOL_VERSION:
            raise TargetError(
                f"{self.url} speaks protocol {info.get('protocol')!r}; this miaudit speaks "
                f"{PROTOCOL_VERSION}"
            )
        classes = [str(c) for c in info["classes"]]
        if classes != self.class_names:
            raise TargetError(
                f"{self.url} predicts {len(classes)} classes {classes[:5]}…, but the data set "
                f"has {len(self.class_names)} {self.class_names[:5]}…: audit it with the data "
                "set it was trained on"
            )
        problem = self.schema.differences(info.get("input"))
        if problem:
            raise TargetError(
                f"{self.url} does not take this data set's records: {problem}; audit it with "
                "the data set it was trained on"
            )
        return info

    def identity(self) -> str:
        """The query cache's folder name: what makes two services' answers differ."""
        parts = {
            "url": self.url,
            "model_id": self.info.get("model_id"),
            "policy": self.policy,
            "output": self.info.get("output"),
            "classes": self.class_names,
            "protocol": PROTOCOL_VERSION,
        }
        return cache_folder_name("", self.url, parts)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpTarget:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ queries
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Answers to the records ``X`` (encoded, as the audit holds them): ``(n, C)``."""
        texts = record_texts(self.schema.to_records(X))
        keys = record_keys(texts)
        n, C = len(texts), len(self.class_names)
        if self.cache is not None:
            found, P = self.cache.get(keys)
        else:
            found, P = np.zeros(n, dtype=bool), np.zeros((n, C))
        self.cached_ += int(found.sum())
        # A record asked twice in one call is sent once.
        todo: dict[bytes, list[int]] = {}
        for i in np.flatnonzero(~found):
            todo.setdefault(keys[i], []).append(int(i))
        pending = list(todo)
        for start, stop in self._batches([len(texts[todo[k][0]]) for k in pending]):
            batch = pending[start:stop]
            allowed = len(batch)
            if self.query_budget is not None:
                # Spend what is left of the budget before refusing, so the rerun pays less.
                allowed = max(0, min(allowed, self.query_budget - self.queries_))
            if allowed:
                sent = batch[:allowed]
                # Counted per request sent, retries included (see _request).
                answer = self._predict([texts[todo[k][0]] for k in sent])
                if self.cache is not None:
                    lost = self.cache.unwritable
                    self.cache.add(sent, answer)
                    if lost is None and self.cache.unwritable and self.on_retry is not None:
                        self.on_retry(
                            f"the query cache {self.cache.folder} cannot be written "
                            f"({self.cache.unwritable}): answers are kept for this run only"
                        )
                for key, row in zip(sent, answer, strict=True):
                    P[todo[key]] = row
            if allowed < len(batch):
                self._refuse(len(pending) - start - allowed)
        return P

    def _batches(self, sizes: list[int]) -> list[tuple[int, int]]:
        """``(start, stop)`` of each request for records of JSON ``sizes`` (in bytes): at
        most :attr:`batch_size` records, in a body of at most the ``max_body_bytes`` the
        service publishes (texts vary in length; a table's or an image's records do not
        come near it)."""
        limit = self.info.get("max_body_bytes")
        room = limit - len(request_body([])) if type(limit) is int else None
        out, start = [], 0
        while start < len(sizes):
            stop = min(len(sizes), start + self.batch_size)
            if room is not None:
                used, end = -1, start  # n records take n - 1 commas
                while end < stop and used + 1 + sizes[end] <= room:
                    used += 1 + sizes[end]
                    end += 1
                if end == start:
                    raise TargetError(
                        f"a record is {sizes[start]:,} bytes as JSON, more than the {limit:,} "
                        f"bytes {self.url} takes in a request: it cannot be asked (the "
                        "service's --max-body)"
                    )
                stop = end
            out.append((start, stop))
            start = stop
        return out

    def _refuse(self, n: int) -> None:
        kept = (
            f"the {self.queries_} answered queries are kept in the query cache "
            f"({self.cache.folder}), so rerunning with a larger {key('query_budget')} goes on "
            "from there"
            if self.cache is not None and self.queries_
            else f"raise {key('query_budget')}"
        )
        raise QueryBudgetError(
            f"the query budget of {self.query_budget} is spent ({self.queries_} sent to "
            f"{self.url}, {n} more needed now): {kept}"
        )

    def _predict(self, texts: list[bytes]) -> np.ndarray:
        response = self._request(
            "POST",
            "/v1/predict",
            records=len(texts),
            content=request_body(texts),
            headers={"Content-Type": "application/json"},
        )
        return parse_answer(
            response.content,
            len(texts),
            self.class_names,
            label_only=self.label_only,
            source=f"{self.url}/v1/predict",
        )

    def _request(
        self, method: str, path: str, *, records: int = 0, accept: tuple[int, ...] = (), **kw
    ) -> httpx.Response:
        """One request, retried as configured. ``records`` it carries count against the
        budget on every try: a request that timed out may still have reached the service,
        which counts it, so a retry that would pass the budget is refused. A response of
        a status in ``accept`` is returned as it is, not refused."""
        where = f"{self.url}{path}"
        for attempt in range(self.retries + 1):
            wait = self.backoff * 2**attempt * (0.5 + random.random())
            if records:
                if self.query_budget is not None and self.queries_ + records > self.query_budget:
                    self._refuse(records)
                self.queries_ += records
            try:
                response = self._bounded(method, path, records, **kw)
            except httpx.TimeoutException:
                problem = "timed out"
            except httpx.TransportError as exc:
                problem = f"could not be reached ({type(exc).__name__}: {exc})"
            else:
                if 300 <= response.status_code < 400:
                    # Redirects are not followed, and their bodies are not answers.
                    raise TargetError(
                        f"{where} answered a redirect ({response.status_code}"
                        + (f" to {clean(response.headers['location'], 120)}"
                           if "location" in response.headers else "")
                        + "): give the service's own address"
                    )  # fmt: skip
                if response.status_code < 400 or response.status_code in accept:
                    return response
                if response.status_code not in _RETRY_STATUS:
                    raise TargetError(self._refusal(where, response))
                problem = f"answered {response.status_code}"
                after = response.headers.get("retry-after", "")
                if after.replace(".", "", 1).isdigit():
                    wait = min(float(after), 60.0)
            if attempt == self.retries:
                said = _said(response) if problem.startswith("answered") else ""
                problem += f" (last said: {said})" if said else ""
                hint = (
                    "is the service running, and is the URL right?"
                    if "reached" in problem
                    else f"try again later, or raise {key('http.retries')} / {key('http.timeout')}"
                )
                raise TargetError(f"{where} {problem} after {self.retries + 1} tries: {hint}")
            self.retries_ += 1
            if self.on_retry is not None:
                self.on_retry(
                    f"{where} {problem}; retrying in {wait:.1f} s "
                    f"(try {attempt + 2} of {self.retries + 1})"
                )
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _bounded(self, method: str, path: str, records: int, **kw) -> httpx.Response:
        """The response to one request, read within ``timeout`` seconds in all (not per
        read: an answer dripping a byte a second is a timeout) and at most as many bytes
        as an answer to ``records`` records can take (:data:`_ANSWER_BYTES_PER_VALUE`
        per probability, plus :data:`_ANSWER_SLACK`)."""
        limit = _ANSWER_SLACK + _ANSWER_BYTES_PER_VALUE * records * len(self.class_names or [1])
        deadline = time.monotonic() + self.timeout
        with self._client.stream(method, path, **kw) as response:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise TargetError(
                        f"{self.url}{path} answered more than {limit:,} bytes, more than an "
                        f"answer to {records or 'this'} request can take: is this {self.speaks}?"
                    )
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(f"no whole answer within {self.timeout} s")
                chunks.append(chunk)
        # The bytes read are decoded (gzip, deflate): the headers that described them as
        # they came over the wire no longer do.
        headers = [
            (k, v) for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]  # fmt: skip
        return httpx.Response(
            response.status_code, headers=headers, content=b"".join(chunks),
            request=response.request,
        )  # fmt: skip

    @staticmethod
    def _refusal(where: str, response: httpx.Response) -> str:
        detail = _said(response)
        status = response.status_code
        if status in (401, 403):
            return (
                f"{where} refused the token ({status}: {detail}): pass the service's token "
                "with --token or the MIAUDIT_TOKEN environment variable"
            )
        if status == 404:
            return f"{where} does not exist (404): is this a miaudit prediction API?"
        return f"{where} refused the request ({status}: {detail})"

    def describe(self) -> dict[str, Any]:
        """The ``target`` facts of ``results.json`` (the URL, never the token)."""
        return {
            "url": self.url,
            "model_id": self.info.get("model_id"),
            "output": self.info.get("output"),
            "policy": self.policy,
            "server": self.info.get("server"),
            **(
                {"query_cache_unwritable": self.cache.unwritable}
                if self.cache is not None and self.cache.unwritable
                else {}
            ),
        }


#: What ``--protocol`` names: the wire format a remote target speaks.
PROTOCOLS = ("miaudit", "mlflow")
_MLFLOW_FIX = (
    "serve a classifier that answers one probability per class (log scikit-learn models "
    "with mlflow.sklearn.log_model(..., pyfunc_predict_fn='predict_proba')) or one label "
    "per record, trained on this data set's columns"
)


class MlflowServingTarget(HttpTarget):
    """A model behind MLflow's scoring server (``mlflow models serve``), as a target.

    The same guarantees as :class:`HttpTarget` (budget counted on every try, deadlines,
    answer-size caps, retries, the authenticated query cache, a bearer token), over
    MLflow's wire format: ``POST /invocations`` with
    ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`` (the raw records in
    the data set's columns, as ``miaudit serve`` receives them) answered
    ``{"predictions": ...}``: per-class probability rows (in the order of the data set's
    classes) or one label per record (a label-only target).

    The server publishes neither its classes nor whether it answers labels, and nothing
    that identifies its model: ``GET /ping`` checks it is up, then one record, ``probe``
    (one the audit evaluates), is asked on its own (one query, counted against the
    budget). Its answer says whether the service answers labels and checks the answer's
    shape, and its digest is part of the query cache's identity, so answers of another
    model behind the same URL are not reused (a label-only answer is a weak fingerprint:
    one of the classes). The answer is not used as the record's: a model's float32 maths
    move with the batch a record comes in, so the record is asked again in its batch (one
    more query), and the audit's answers are bit for bit the model's to those batches.
    """

    speaks = "an MLflow scoring server (mlflow models serve)"

    def __init__(self, url: str, schema: InputSchema, class_names: list[str], *,
                 probe: np.ndarray, **kw) -> None:  # fmt: skip
        self._probe = np.asarray(probe)[:1]
        if len(self._probe) != 1:
            raise ConfigError("an MLflow target needs one record to probe the service with")
        super().__init__(url, schema, class_names, **kw)

    # ------------------------------------------------------------------ set-up
    def _fetch_info(self) -> dict[str, Any]:
        self._request("GET", "/ping")
        self.label_only = False
        body = self._post(record_texts(self.schema.to_records(self._probe)))
        answer = self._answer_json(body)
        first = answer[0] if len(answer) == 1 else None
        # A scalar label, or a row of numbers (a one-element list of a label-only
        # pyfunc is not told apart from a one-class row: there are at least 2 classes).
        self.label_only = not isinstance(first, list)
        row = self._parse(body, 1)
        return {
            "output": "labels" if self.label_only else "probabilities",
            "server": "mlflow",
            "policy": [],
            "model_id": None,
            "answer_sha256": hashlib.sha256(row.tobytes()).hexdigest(),
        }

    def identity(self) -> str:
        """The query cache's folder name: the URL, the protocol, the classes and columns,
        and the digest of the probe's answer (MLflow names no model)."""
        parts = {
            "url": self.url,
            "protocol": "mlflow",
            "output": self.info.get("output"),
            "classes": self.class_names,
            "columns": self.schema.fields,
            "answer": self.info.get("answer_sha256"),
        }
        return cache_folder_name("mlflow-", self.url, parts)

    # ------------------------------------------------------------------ queries
    def _predict(self, texts: list[bytes]) -> np.ndarray:
        return self._parse(self._post(texts), len(texts))

    def _post(self, texts: list[bytes]) -> bytes:
        """The body of ``POST /invocations`` for records already turned into JSON text: a
        table's as ``dataframe_split`` in its columns; texts, and images' flat pixels, as
        ``inputs`` (the array a scikit-learn text pipeline or image model takes)."""
        dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
        values = (list(json.loads(t).values()) for t in texts)
        if self.schema.kind == "tabular":
            rows = b",".join(dumps(v).encode() for v in values)
            body = (
                b'{"dataframe_split":{"columns":' + dumps(self.schema.fields).encode()
                + b',"data":[' + rows + b"]}}"
            )  # fmt: skip
        else:
            # One field per record: the text, or the flat list of pixels.
            body = b'{"inputs":[' + b",".join(dumps(v[0]).encode() for v in values) + b"]}"
        response = self._request(
            "POST", "/invocations", records=len(texts), content=body,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        return response.content

    def _answer_json(self, body: bytes) -> Any:
        where = f"{self.url}/invocations"
        try:
            answer = json.loads(body)
        except RecursionError:
            raise TargetError(f"{where} answered JSON nested too deeply to be an answer") from None
        except (ValueError, UnicodeDecodeError):
            raise TargetError(
                f"{where} answered something that is not JSON: is this an MLflow scoring "
                "server (mlflow models serve)? Else drop --protocol mlflow"
            ) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("predictions"), list):
            raise TargetError(
                f"{where} answered without a 'predictions' list: is this an MLflow scoring "
                "server (mlflow models serve)? Else drop --protocol mlflow"
            )
        return answer["predictions"]

    def _parse(self, body: bytes, n: int) -> np.ndarray:
        """An ``(n, C)`` array of the answer's probability rows (labels: one-hot rows),
        or a :class:`TargetError` naming the URL, what is wrong, and the fix."""
        where = f"{self.url}/invocations"
        rows = self._answer_json(body)
        C = len(self.class_names)
        wrong = f"{where} answered"
        if len(rows) != n:
            raise TargetError(f"{wrong} {len(rows)} predictions for {n} records: {_MLFLOW_FIX}")
        if self.label_only:
            return label_rows(rows, self.class_names, where, _MLFLOW_FIX)
        return probability_rows(rows, n, C, where, _MLFLOW_FIX)

    @staticmethod
    def _refusal(where: str, response: httpx.Response) -> str:
        status = response.status_code
        if status == 404:
            return (
                f"{where} does not exist (404): is this an MLflow scoring server (mlflow "
                "models serve)? Else drop --protocol mlflow"
            )
        if status in (401, 403):
            return HttpTarget._refusal(where, response)
        return f"{where} refused the request ({status}: {_said(response)})"

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "protocol": "mlflow",
            **({"integer_labels": integer_labels(self.class_names)} if self.label_only else {}),
        }
