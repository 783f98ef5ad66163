"""``miaudit serve``: a saved model as an HTTP prediction API, the paper's MLaaS setting.

Position in the pipeline: a *target* seen from outside. The service takes raw
records in the data set's own columns (:mod:`miaudit.protocol`), encodes them as
the model was trained, and answers probability vectors through the deployed
output policy (:mod:`miaudit.policies`), so a mitigation is audited as deployed.

What a real service has, and the audit relies on: bearer-token authentication,
limits on batch and body size, validation that names the bad field (4xx, and the
service keeps serving), a per-token query counter in ``/v1/info``, and a clean
shutdown on SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
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

from miaudit import __version__
from miaudit.errors import ConfigError, ModelError
from miaudit.models import load_model
from miaudit.policies import OutputPolicy, apply_policies
from miaudit.protocol import PROTOCOL_VERSION, InputSchema, RecordError

#: Environment variable holding the service's token when ``--token`` is not given.
TOKEN_ENV = "MIAUDIT_TOKEN"
DEFAULT_MAX_BATCH = 1024
DEFAULT_MAX_BODY = 8 * 1024 * 1024


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
    def from_folder(cls, path: str | Path, policies: list[OutputPolicy]) -> PredictionService:
        """Load a target saved by ``miaudit train`` or ``miaudit audit --save-target``."""
        path = Path(path)
        model = load_model(path)
        info_file = path / "dataset.json"
        info = json.loads(info_file.read_text()) if info_file.is_file() else {}
        kind = info.get("kind")
        if kind is None or (kind == "tabular" and not info.get("encoder")):
            raise ModelError(
                f"{path} does not say which raw columns the model takes (no encoder in "
                f"{info_file.name}): save it again with this version's `miaudit train`"
            )
        schema = InputSchema(kind=kind, shape=tuple(model.input_shape), encoder=info.get("encoder"))
        names = model.class_names or [str(c) for c in range(model.n_classes)]
        digest = hashlib.sha256()
        for part in sorted(path.iterdir()):
            if part.is_file() and part.name in ("model.json", "weights.safetensors", "model.skops"):
                digest.update(part.read_bytes())
        return cls(model, schema, names, list(policies), digest.hexdigest()[:16])

    def answer(self, records: Any) -> dict[str, Any]:
        """The protocol's answer to a list of raw records (raises :class:`RecordError`)."""
        X = self.schema.encode(records)
        flat = np.asarray(X, dtype=np.float64).reshape(len(X), -1) if len(X) else None
        if flat is not None and not np.isfinite(flat).all():
            # Finite in the request (1e308) but not once standardised: no answer would be
            # a number, and JSON cannot carry NaN.
            row = int(np.flatnonzero(~np.isfinite(flat).all(axis=1))[0])
            raise RecordError(
                f"records[{row}]",
                "a value too large for the model (it overflows once encoded); send values in "
                "the data's range",
            )
        P = apply_policies(np.asarray(self.model.predict_proba(X), dtype=np.float64), self.policies)
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
    """Authentication and request limits of a service."""

    tokens: tuple[str, ...] = ()
    max_batch: int = DEFAULT_MAX_BATCH
    max_body_bytes: int = DEFAULT_MAX_BODY

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ConfigError(f"--max-batch {self.max_batch}: must be at least 1")
        if self.max_body_bytes < 1024:
            raise ConfigError(f"--max-body {self.max_body_bytes}: must be at least 1024 bytes")


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def create_app(service: PredictionService, limits: ServiceLimits | None = None) -> FastAPI:
    """The ASGI application serving ``service`` under ``limits``."""
    limits = limits or ServiceLimits()
    # No schema or documentation routes: every route there is answers only with a token.
    app = FastAPI(
        title="miaudit prediction service", version=__version__, docs_url=None, redoc_url=None,
        openapi_url=None,
    )  # fmt: skip
    # Counters live on the event loop's thread; prediction runs in a worker thread
    # but the count is taken after it returns, so no lock is needed.
    counts: dict[str, int] = {}
    app.state.counts = counts

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
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                return _error(413, f"body exceeds {limits.max_body_bytes} bytes")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks))
        except RecursionError:
            return _error(400, "the body is nested too deeply to be a request")
        except (ValueError, UnicodeDecodeError) as exc:
            # JSONDecodeError, and integers beyond Python's digit limit.
            return _error(400, f"the body is not JSON miaudit can read ({str(exc)[:200]})")
        if not isinstance(body, dict) or "records" not in body:
            return _error(422, "records: the body must be an object with a 'records' list")
        records = body["records"]
        if isinstance(records, list) and len(records) > limits.max_batch:
            return _error(
                413, f"records: a batch of {len(records)} exceeds the limit of {limits.max_batch}"
            )
        try:
            answer = await run_in_threadpool(service.answer, records)
        except RecordError as exc:
            return _error(422, str(exc))
        counts[who] = counts.get(who, 0) + len(records)
        # Encoded here rather than by FastAPI's generic encoder, which walks every float.
        return Response(json.dumps(answer).encode(), media_type="application/json")

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


def _server(app: FastAPI):
    import uvicorn

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

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
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
