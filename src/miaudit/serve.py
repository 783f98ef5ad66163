"""``miaudit serve``: a saved model as an HTTP prediction API, the paper's MLaaS setting.

Position in the pipeline: a *target* seen from outside. The service takes raw
records in the data set's own columns (:mod:`miaudit.protocol`), encodes them as
the model was trained, and answers probability vectors through the deployed
output policy (:mod:`miaudit.policies`), so a mitigation is audited as deployed.

Text records travel as their texts (``{"text": "..."}``): a user's own model (a
scikit-learn ``Pipeline`` of a ``TfidfVectorizer``, say) receives the texts, a saved
``tfidf-lr`` target the hashed token ids it was trained on.

What a real service has, and the audit relies on: bearer-token authentication,
limits on batch and body size, validation that names the bad field (4xx, and the
service keeps serving), a per-token query counter in ``/v1/info``, and a clean
shutdown on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import resource
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from miaudit import __version__
from miaudit.data.kinds.text import MAX_TOKENS
from miaudit.errors import ConfigError, DataError, ModelError
from miaudit.files import read_json_object
from miaudit.models import load_model
from miaudit.policies import OutputPolicy, apply_policies
from miaudit.protocol import PROTOCOL_VERSION, InputSchema, RecordError

#: Environment variable holding the service's token when ``--token`` is not given.
TOKEN_ENV = "MIAUDIT_TOKEN"
DEFAULT_MAX_BATCH = 1024
DEFAULT_MAX_BODY = 8 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 100
#: File descriptors kept free of connections (the model, logs, worker threads).
_RESERVED_FDS = 32


def check_service_memory(n_classes: int, max_batch: int) -> None:
    """Refuse, before anything is built, a service whose answers cannot fit in memory
    (a ``model.json`` declaring 100 million classes)."""
    from miaudit.resources import refuse_past_memory

    # Per class: its name, and per record of a batch its probability as float64, in
    # the policy's copy and as JSON text (about 24 bytes).
    need = n_classes * (64 + max_batch * (8 + 8 + 24))
    refuse_past_memory(
        need,
        f"a service of {n_classes:,} classes answering batches of {max_batch}",
        "lower --max-batch, or check n_classes in the model's model.json",
        ModelError,
    )


@dataclass
class PredictionService:
    """A model, the records it takes, its classes and its deployed output policy."""

    model: Any
    schema: InputSchema
    class_names: list[str]
    policies: list[OutputPolicy] = field(default_factory=list)
    model_id: str = ""

    def __post_init__(self) -> None:
        labels = [p for p in self.policies if p.label_only]
        if labels and len(self.policies) > 1:
            raise ConfigError(
                "--label-only answers only the label, so other policies change nothing: "
                "drop --top-k, --round and --temperature"
            )

    @property
    def label_only(self) -> bool:
        return any(p.label_only for p in self.policies)

    @classmethod
    def from_folder(
        cls, path: str | Path, policies: list[OutputPolicy], max_batch: int = DEFAULT_MAX_BATCH
    ) -> PredictionService:
        """Load a target saved by ``miaudit train`` or ``miaudit audit --save-target``.

        ``dataset.json`` says which records the model takes: ``kind`` ``tabular`` with
        its ``encoder``, ``image``, or ``text`` with ``text_tokens`` (the token ids per
        text the model reads, ``input_shape`` less the handle column). A table's
        ``n_records`` (the records the encoder was fitted on) tells which categorical
        columns name records: ``/v1/info`` withholds their values.
        """
        path = Path(path)
        model = load_model(path)
        info_file = path / "dataset.json"
        again = "save it again with this version's `miaudit train`"
        info = read_json_object(info_file, ModelError, again) if info_file.is_file() else {}
        kind = info.get("kind")
        if kind == "text":
            schema = cls._text_schema(model, info.get("text_tokens"), info_file, again)
            check_service_memory(model.n_classes, max_batch)
            return cls._of_folder(path, model, schema, policies)
        if kind not in ("tabular", "image") or (
            kind == "tabular" and not isinstance(info.get("encoder"), dict)
        ):
            raise ModelError(
                f"{path} does not say which raw columns the model takes (no kind and encoder "
                f"in {info_file.name}): {again}"
            )
        schema = InputSchema(kind=kind, shape=tuple(model.input_shape), encoder=info.get("encoder"))
        try:
            schema.to_json()  # builds the encoder once: a damaged one fails here
        except DataError as exc:
            raise ModelError(f"{info_file}: {exc}; {again}") from None
        if kind == "tabular":
            n_records = info.get("n_records")
            if type(n_records) is not int or n_records < 1:
                # Without it no column can be told to name records, and publishing an
                # identifier's every value would list the data set's records.
                raise ModelError(
                    f"{info_file} does not say how many records the encoder was fitted on "
                    f"(n_records, got {n_records!r}), so the service cannot tell which columns "
                    f"name records: {again}"
                )
            schema = schema.withholding(n_records)
        width = int(np.prod(model.input_shape))
        if kind == "tabular" and schema._encoder().n_encoded != width:
            raise ModelError(
                f"{info_file}: the encoder makes {schema._encoder().n_encoded} features but the "
                f"model takes {width}: the files come from different models; {again}"
            )
        check_service_memory(model.n_classes, max_batch)
        return cls._of_folder(path, model, schema, policies)

    @classmethod
    def _of_folder(cls, path: Path, model, schema: InputSchema, policies) -> PredictionService:
        names = model.class_names or [str(c) for c in range(model.n_classes)]
        digest = hashlib.sha256()
        for part in sorted(path.iterdir()):
            if part.is_file() and part.name in ("model.json", "weights.safetensors", "model.skops"):
                digest.update(part.read_bytes())
        return cls(model, schema, names, list(policies), digest.hexdigest()[:16])

    @staticmethod
    def _text_schema(model, tokens: Any, info_file: Path, again: str) -> InputSchema:
        """A saved text target's schema: the texts are hashed into ``tokens`` token ids,
        as the data set's were when the model trained on them."""
        if type(tokens) is not int or not 1 <= tokens <= MAX_TOKENS:
            raise ModelError(
                f"{info_file} does not say how many tokens of a text the model reads "
                f"(text_tokens: 1 to {MAX_TOKENS}, got {tokens!r}): {again}"
            )
        shape = tuple(model.input_shape)
        if shape != (1 + tokens,):
            raise ModelError(
                f"{info_file}: text_tokens is {tokens} but the model takes records of shape "
                f"{shape}, not ({1 + tokens},): the files come from different models; {again}"
            )
        return InputSchema(kind="text", shape=shape, reads="tokens", tokens=tokens)

    def answer(self, records: Any) -> dict[str, Any]:
        """The protocol's answer to a list of raw records (raises :class:`RecordError`)."""
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            X = self.schema.encode(records)
        # Texts (for a model that reads them) are strings: nothing to overflow.
        numeric = len(X) and not (isinstance(X, np.ndarray) and X.dtype == object)
        flat = np.asarray(X, dtype=np.float64).reshape(len(X), -1) if numeric else None
        if flat is not None and not np.isfinite(flat).all():
            # Finite in the request (1e308) but not once standardised: no answer would be
            # a number, and JSON cannot carry NaN.
            row = int(np.flatnonzero(~np.isfinite(flat).all(axis=1))[0])
            raise RecordError(
                f"records[{row}]",
                "a value too large for the model (it overflows once encoded); send values in "
                "the data's range",
            )
        if not len(X):
            # An empty batch has an empty answer; many models (scikit-learn's) refuse to
            # predict for no record at all.
            P = np.zeros((0, len(self.class_names)))
        else:
            P = np.asarray(self.model.predict_proba(X), dtype=np.float64)
        P = apply_policies(P, self.policies)
        if not np.isfinite(P).all():
            row = int(np.flatnonzero(~np.isfinite(P).all(axis=1))[0])
            raise RecordError(f"records[{row}]", "the model gives no finite answer for this record")
        if self.label_only:
            return {"labels": [self.class_names[k] for k in P.argmax(axis=1)]}
        return {"probabilities": P.tolist()}

    def info(self) -> dict[str, Any]:
        return {
            "protocol": PROTOCOL_VERSION,
            "server": f"miaudit {__version__}",
            "model_id": self.model_id,
            "classes": list(self.class_names),
            "input": self.schema.to_json(),
            "output": "labels" if self.label_only else "probabilities",
            "policy": [p.spec for p in self.policies],
        }


@dataclass(frozen=True)
class ServiceLimits:
    """Authentication, request limits and the defences against slow or heavy clients.

    ``max_connections`` open connections at most (fewer where the process's
    file-descriptor limit allows fewer): a connection past it displaces the one
    that has waited longest for its request headers, or is closed when every
    connection is busy. A client has ``header_timeout`` seconds to send a
    request's headers (from connecting, or from the previous answer) and
    ``body_timeout`` seconds to send its body or read an answer; it is then
    dropped, with one line in the log. ``workers`` requests are parsed and
    answered at once, off the event loop; the bodies received and not yet
    answered hold at most ``max_pending_bytes`` (default eight bodies), and a
    request past it is answered 503 with ``Retry-After``.
    """

    tokens: tuple[str, ...] = ()
    max_batch: int = DEFAULT_MAX_BATCH
    max_body_bytes: int = DEFAULT_MAX_BODY
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    workers: int = 2
    max_pending_bytes: int = 0

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ConfigError(f"--max-batch {self.max_batch}: must be at least 1")
        if self.max_body_bytes < 1024:
            raise ConfigError(f"--max-body {self.max_body_bytes}: must be at least 1024 bytes")
        if self.max_connections < 4:
            raise ConfigError(f"--max-connections {self.max_connections}: must be at least 4")
        for name in ("header_timeout", "body_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                flag = name.replace("_", "-")
                raise ConfigError(f"--{flag} {value}: must be a positive number of seconds")
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: must be at least 1")
        if not self.max_pending_bytes:
            object.__setattr__(self, "max_pending_bytes", 8 * self.max_body_bytes)
        if self.max_pending_bytes < self.max_body_bytes:
            raise ConfigError(
                f"max_pending_bytes {self.max_pending_bytes}: must hold at least one body "
                f"({self.max_body_bytes} bytes)"
            )


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def _items_per_record(schema: InputSchema) -> int:
    """JSON items (lists, objects, commas, colons) of one valid record and its separator."""
    if schema.kind == "image":
        # {"pixels": [p, ..., p]}, : an object, a list, a colon, P - 1 commas, a comma.
        return int(np.prod(schema.shape)) + 3
    if schema.kind == "text":
        # {"text": "..."}, : an object, a colon, a comma (the text is one string, whatever
        # it holds; the body's size bounds its length).
        return 3
    # {"a": v, ...}, : an object, F colons, F - 1 commas, a comma.
    return 2 * len(schema.fields) + 1


_STRUCTURE = (b"[", b"{", b",", b":")


def structural_items(body: bytes, limit: int) -> int:
    """The lists, objects, commas and colons of a JSON text outside its strings.

    What :func:`json.loads` will build objects for, counted without building
    them: C loops over the bytes, a few milliseconds for 8 MiB, where parsing
    millions of empty lists holds the interpreter for seconds. A count past
    ``limit`` may stop early (it is then only known to be past it).
    """
    raw = sum(body.count(c) for c in _STRUCTURE)
    if raw <= limit or b'"' not in body:
        return raw
    # Strings may hold any of these characters: count again without them. Escapes go
    # first, left to right as JSON reads them, so only the quotes around strings remain.
    plain = body.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    strings = plain.count(b'"') // 2
    if strings > limit:  # every string is an item of its own
        return strings
    outside = b"".join(plain.split(b'"')[::2])
    return sum(outside.count(c) for c in _STRUCTURE)


def create_app(service: PredictionService, limits: ServiceLimits | None = None) -> FastAPI:
    """The ASGI application serving ``service`` under ``limits``."""
    limits = limits or ServiceLimits()
    # No schema or documentation routes: every route there is answers only with a token.
    app = FastAPI(
        title="miaudit prediction service", version=__version__, docs_url=None, redoc_url=None,
        openapi_url=None,
    )  # fmt: skip
    app.state.limits = limits
    # Counters and the pending-bytes tally live on the event loop's thread; parsing and
    # prediction run in worker threads and report back, so no lock is needed.
    counts: dict[str, int] = {}
    app.state.counts = counts
    pending = {"bytes": 0}
    working = asyncio.Semaphore(limits.workers)
    item_limit = limits.max_batch * _items_per_record(service.schema) + 64

    def caller(request: Request) -> tuple[str | None, JSONResponse | None]:
        """The caller's token id (a digest, never the token), or the refusal to send."""
        if not limits.tokens:
            return "anonymous", None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None, _error(
                401,
                "missing bearer token: send the header 'Authorization: Bearer <token>'",
                **{"WWW-Authenticate": "Bearer"},
            )
        if not any(hmac.compare_digest(token.encode(), t.encode()) for t in limits.tokens):
            return None, _error(
                401, "the token was refused", **{"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        return hashlib.sha256(token.encode()).hexdigest()[:12], None

    def respond(raw: bytes) -> tuple[int, bytes | str, int]:
        """(status, answer or error message, records answered) for a whole body.

        Runs in a worker thread. The body's structure is counted before it is
        parsed, so a body that cannot be a batch of ``max_batch`` records (millions
        of empty lists, say) is refused without building millions of objects.
        """
        items = structural_items(raw, item_limit)
        if items > item_limit:
            return (
                413,
                f"records: the body holds more JSON items ({items:,} lists, objects, commas "
                f"and colons) than a batch of {limits.max_batch} records with the fields of "
                f"/v1/info can ({item_limit:,}): send at most {limits.max_batch} records, each "
                "with exactly those fields",
                0,
            )
        try:
            body = json.loads(raw)
        except RecursionError:
            return 400, "the body is nested too deeply to be a request", 0
        except (ValueError, UnicodeDecodeError) as exc:
            # JSONDecodeError, and integers beyond Python's digit limit.
            return 400, f"the body is not JSON miaudit can read ({str(exc)[:200]})", 0
        if not isinstance(body, dict) or "records" not in body:
            return 422, "records: the body must be an object with a 'records' list", 0
        records = body["records"]
        if isinstance(records, list) and len(records) > limits.max_batch:
            return (
                413,
                f"records: a batch of {len(records)} exceeds the limit of {limits.max_batch}",
                0,
            )
        try:
            answer = service.answer(records)
        except RecordError as exc:
            return 422, str(exc), 0
        # Encoded here rather than by FastAPI's generic encoder, which walks every float.
        return 200, json.dumps(answer).encode(), len(records)

    @app.get("/v1/info")
    async def info(request: Request):
        who, refusal = caller(request)
        if refusal is not None:
            return refusal
        return {
            **service.info(),
            "max_batch": limits.max_batch,
            "max_body_bytes": limits.max_body_bytes,
            "queries": {"token": counts.get(who, 0), "total": sum(counts.values())},
        }

    @app.post("/v1/predict")
    async def predict(request: Request):
        who, refusal = caller(request)
        if refusal is not None:
            return refusal
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            return _error(413, f"body of {declared} bytes exceeds {limits.max_body_bytes}")
        chunks, held = [], 0
        try:
            async for chunk in request.stream():
                if held + len(chunk) > limits.max_body_bytes:
                    return _error(413, f"body exceeds {limits.max_body_bytes} bytes")
                # A large body may fill three quarters of the room for pending bodies: the
                # rest is kept for small requests, which a flood of large ones cannot starve.
                room = limits.max_pending_bytes
                if held + len(chunk) > room // 16:
                    room -= room // 4
                if pending["bytes"] + len(chunk) > room:
                    return _error(
                        503,
                        f"the service is busy ({pending['bytes'] / 2**20:.1f} MiB of requests "
                        "waiting for an answer): retry in a second",
                        **{"Retry-After": "1"},
                    )
                pending["bytes"] += len(chunk)
                held += len(chunk)
                chunks.append(chunk)
            async with working:
                status, answer, n = await run_in_threadpool(respond, b"".join(chunks))
        except ClientDisconnect:
            # The client left (or was dropped for sending too slowly): nobody to answer.
            return Response(status_code=400)
        finally:
            pending["bytes"] -= held
        if status != 200:
            return _error(status, answer)
        counts[who] = counts.get(who, 0) + n
        return Response(answer, media_type="application/json")

    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (``port=0`` picks a free one), bound before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port"
        ) from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


_log = logging.getLogger("uvicorn.error")


#: Connections accepted at once, before the cap is applied to them.
_ACCEPT_BURST = 32


def connection_cap(wanted: int) -> int:
    """The most connections the process's file-descriptor limit leaves room for.

    Room is kept for descriptors of its own and for two bursts of connections
    accepted before the cap displaces or closes them.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(4, min(wanted, soft - _RESERVED_FDS - 2 * _ACCEPT_BURST))


def _guarded_protocol(limits: ServiceLimits, cap: int) -> type:
    """uvicorn's HTTP/1.1 protocol with deadlines and a connection cap.

    uvicorn bounds neither how long a client may take over its request headers
    (any byte cancels the keep-alive timer) nor how many connections are open,
    so a few hundred clients trickling headers hold every file descriptor before
    a token is checked. Here each connection gets a deadline for its headers
    (from connecting or from the previous answer), then one for its body and
    for reading the answer; and past ``cap`` connections a new one displaces the
    connection that has waited longest for its headers. Every client dropped is
    one line in the log.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedProtocol(H11Protocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._timer: asyncio.TimerHandle | None = None
            self._seen = None  # the request cycle whose headers have arrived
            self._waiting_since = self.loop.time()
            self._answered = 0
            live = [c for c in self.connections if not c.transport.is_closing()]
            if len(live) > cap:
                idle = [c for c in live if c is not self and c._waiting()]
                if idle:
                    # Clients that were answered before are kept over those never answered;
                    # among equals the one waiting longest goes.
                    oldest = min(idle, key=lambda c: (c._answered > 0, c._waiting_since))
                    oldest._drop(f"{cap} connections are open and it was waiting for headers")
                else:
                    self._drop(f"{cap} connections are open, all busy with requests")
                    return
            self._arm(limits.header_timeout, "no request headers")

        def _waiting(self) -> bool:
            """Between requests: headers not (yet) received, nothing to answer."""
            return self.cycle is None or self.cycle.response_complete

        def _arm(self, seconds: float, what: str) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, self._drop, f"{what} within {seconds:g} s")

        def _disarm(self) -> None:
            if getattr(self, "_timer", None) is not None:
                self._timer.cancel()
                self._timer = None

        def _drop(self, why: str) -> None:
            self._disarm()
            if self.transport.is_closing():
                return
            who = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            _log.warning("dropped %s: %s", who, why)
            self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.transport.is_closing() or self.cycle is None:
                return
            if self.cycle is not self._seen:  # a request's headers arrived
                self._seen = self.cycle
                if self.cycle.more_body:
                    self._arm(limits.body_timeout, "no whole request body")
                else:
                    self._disarm()
            elif not self.cycle.more_body and self._timer is not None and not self._writing:
                self._disarm()

        _writing = False

        def on_response_complete(self) -> None:
            self._writing = False
            self._answered += 1
            super().on_response_complete()
            # (A pipelined request may have begun in there, with its own deadline.)
            if self._waiting() and not self.transport.is_closing():
                self._waiting_since = self.loop.time()
                self._arm(limits.header_timeout, "no request headers")

        def pause_writing(self) -> None:
            super().pause_writing()
            # A client that stops reading its answer holds the request open.
            self._writing = True
            self._arm(limits.body_timeout, "the answer not read")

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._writing:
                self._writing = False
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedProtocol


class _OneLinePerSecond(logging.Filter):
    """asyncio logs a traceback for each connection it cannot accept (no file
    descriptor left): keep one line a second, saying how many were refused."""

    def __init__(self) -> None:
        super().__init__()
        self.last, self.skipped = 0.0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "socket.accept() out of system resource" not in str(record.msg):
            return True
        now = time.monotonic()
        if now - self.last < 1:
            self.skipped += 1
            return False
        record.exc_info = record.exc_text = None
        record.msg = (
            f"could not accept a connection: no file descriptor left "
            f"({self.skipped + 1} refused in the last second)"
        )
        record.args = ()
        self.last, self.skipped = now, 0
        return True


_accept_filter = _OneLinePerSecond()


def _server(app: FastAPI):
    import uvicorn

    # (An app wrapped by middleware has no state of its own: the default limits apply.)
    limits = getattr(getattr(app, "state", None), "limits", None) or ServiceLimits()
    cap = connection_cap(limits.max_connections)
    if cap < limits.max_connections:
        _log.warning(
            "the file-descriptor limit leaves room for %d connections, not %d: raise it "
            "(ulimit -n) or pass --max-connections %d",
            cap, limits.max_connections, cap,
        )  # fmt: skip
    logger = logging.getLogger("asyncio")
    if _accept_filter not in logger.filters:
        logger.addFilter(_accept_filter)

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            # SIGINT and SIGTERM both mean "finish what is in flight, then stop": unlike
            # uvicorn's own handling, the signal is not raised again afterwards, so the
            # command returns normally and can say how many queries it answered.
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app,
        http=_guarded_protocol(limits, cap),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        # Connections asyncio accepts in one go, before the cap applies to them.
        backlog=_ACCEPT_BURST,
    )
    return Server(config)


def run(app: FastAPI, sock: socket.socket) -> None:
    """Serve until SIGINT/SIGTERM, finishing requests in flight (uvicorn's shutdown)."""
    _server(app).run(sockets=[sock])


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` on a real socket in a background thread; yields its URL.

    For tests, benchmarks and notebooks: the server is the one ``miaudit serve``
    runs, on an ephemeral port of ``host``, and is shut down on exit.
    """
    sock = bind(host, port)
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the prediction server did not start")
        time.sleep(0.01)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
