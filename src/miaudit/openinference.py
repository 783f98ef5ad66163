"""A model behind the Open Inference Protocol (KServe's v2) as a target: ``--protocol v2``.

Position in the pipeline: ``target``, beside :class:`~miaudit.remote.HttpTarget`, whose
guarantees it keeps (the budget counted on every try, deadlines, answer-size caps,
retries, the authenticated query cache, a bearer token). The v2 protocol is spoken by
KServe, Triton, MLServer and Seldon: ``GET /v2/models/{name}[/versions/{v}]`` describes
a model (its inputs' and outputs' names, datatypes and shapes, any of which a server may
leave out), and ``POST …/infer`` takes named tensors and answers named tensors::

    {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [n, d], "data": [...]}]}
    -> {"model_name": ..., "outputs": [{"name": ..., "datatype": ..., "shape": ..., "data": ...}]}

The model's address names it: ``--target-url http://host:port/v2/models/NAME`` (and
``/versions/VERSION``). The records go as one tensor of ``n`` records: a table's numbers
as ``[n, columns]`` (a table with categories: one tensor per column, named after it, as
MLServer's pandas codec reads them), an image's pixels in the model's declared shape or
flat, a text as ``BYTES``. What comes back is read from the first record the audit
evaluates, asked on its own (a query, counted against the budget): an output of one
probability per class (by name where there are several) or, failing that, one label per
record (a label-only audit, said so). A server that declares no outputs (MLServer's
scikit-learn runtime) is asked for ``predict_proba`` by name first, then for what it
answers by default.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import numpy as np

from miaudit.errors import ConfigError, TargetError, key
from miaudit.protocol import (
    InputSchema,
    _short,
    integer_labels,
    label_rows,
    probability_rows,
    record_texts,
)
from miaudit.remote import HttpTarget, _said, cache_folder_name, check_url, clean

#: Outputs that hold probabilities, by the names servers give them, in order of trust.
PROBABILITY_NAMES = (
    "predict_proba", "probabilities", "probability", "probs", "proba", "output_probability",
)  # fmt: skip
_FLOATS = ("FP16", "FP32", "FP64", "BF16")
_INTEGERS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_FIX = (
    "serve a classifier answering one probability per class (MLServer's scikit-learn "
    "runtime: the output predict_proba) or one label per record, trained on this data set's "
    "records"
)
_MODEL_PATH = re.compile(
    r"(?P<base>.*?)/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
)


def split_model_url(url: str) -> tuple[str, str | None, str | None]:
    """``(base, name, version)`` of a v2 model's address
    (``http://host:port[/prefix]/v2/models/NAME[/versions/V]``, the name and version
    percent-decoded); ``name`` is ``None`` where the address names no model (the server's
    base). A :class:`ConfigError` for a path under ``/v2/models`` that is no model's."""
    url = check_url(url)
    parts = urlsplit(url)
    found = _MODEL_PATH.fullmatch(parts.path)
    if found is None:
        if "/v2/models" in parts.path:
            raise ConfigError(
                f"{key('target_url', url)} is not a model's address: give "
                "http://host:port/v2/models/NAME (or …/NAME/versions/VERSION)"
            )
        base = url[: -len("/v2")] if parts.path.endswith("/v2") else url
        return base, None, None
    prefix = f"{parts.scheme}://{parts.netloc}{found['base']}"
    version = found["version"]
    return prefix, unquote(found["name"]), None if version is None else unquote(version)


class OpenInferenceTarget(HttpTarget):
    """A model behind a server speaking the Open Inference Protocol (v2), as a target.

    Parameters
    ----------
    url:
        The model's address, ``http://host:port/v2/models/NAME`` (``/versions/V``).
    probe:
        One record the audit evaluates (encoded, as the audit holds them): asked on its
        own to learn what the model answers. Its answer keys the query cache; the record
        is asked again in its batch (a model's float32 maths move with the batch).

    Everything else is as for :class:`~miaudit.remote.HttpTarget`.
    """

    speaks = "a server speaking the Open Inference Protocol (v2)"

    def __init__(self, url: str, schema: InputSchema, class_names: list[str], *,
                 probe: np.ndarray, **kw) -> None:  # fmt: skip
        base, self.model, self.version = split_model_url(url)
        self.model_url = check_url(url)
        self._probe = np.asarray(probe)[:1]
        if len(self._probe) != 1:
            raise ConfigError("a v2 target needs one record to probe the model with")
        path = "" if self.model is None else f"/v2/models/{quote(self.model, safe='')}"
        if self.version is not None:
            path += f"/versions/{quote(self.version, safe='')}"
        self._path = path
        super().__init__(base, schema, class_names, **kw)

    # ------------------------------------------------------------------ set-up
    def _served(self) -> str:
        """The models the server lists (MLServer's repository extension), as a clause of
        a message; empty where it lists none."""
        try:
            response = self._bounded("POST", "/v2/repository/index", 0, json={})
            models = response.json() if response.status_code == 200 else []
            names = [
                clean(m["name"], 60)
                + (f" (version {clean(m['version'], 30)})" if m.get("version") else "")
                for m in models
                if isinstance(m, dict) and isinstance(m.get("name"), str)
            ]
        except (httpx.HTTPError, TargetError, ValueError, TypeError, UnicodeDecodeError,
                RecursionError):  # fmt: skip
            return ""
        return f"; it serves {', '.join(names[:10])}" if names else ""

    def _fetch_info(self) -> dict[str, Any]:
        if self.model is None:
            self._request("GET", "/v2/health/ready")
            raise TargetError(
                f"{key('target_url', self.url)} names no model: give the model's address, "
                f"{self.url}/v2/models/NAME (and /versions/VERSION){self._served()}"
            )
        server = self._request("GET", "/v2", accept=(404,))
        # Every v2 server describes itself at /v2: one that does not is likely no v2 server.
        self._no_root = server.status_code == 404
        about = self._json(server.content, "/v2") if server.status_code == 200 else {}
        meta = self._json(self._request("GET", self._path).content, self._path)
        if not isinstance(meta, dict):
            raise TargetError(f"{self.url}{self._path} does not describe a model: {_FIX}")
        if meta.get("name") not in (None, self.model):
            raise TargetError(
                f"{self.url}{self._path} describes model {_short(meta.get('name'))}, not "
                f"{self.model!r}: give the model's own address"
            )
        for field in ("inputs", "outputs"):
            if meta.get(field) is not None and not isinstance(meta[field], list):
                raise TargetError(
                    f"{self.url}{self._path} describes the model's {field} as "
                    f"{_short(meta[field])}, not a list of tensors: is this a server speaking "
                    "the Open Inference Protocol (v2)? Else drop --protocol v2"
                )
        self._plan_inputs(meta.get("inputs") or [])
        declared = [o["name"] for o in meta.get("outputs") or [] if isinstance(o, dict)
                    and isinstance(o.get("name"), str)]  # fmt: skip
        self.label_only = False
        self._outputs = self._choose_output(declared)
        return {
            "output": "labels" if self.label_only else "probabilities",
            "server": clean(" ".join(str(about.get(k, "")) for k in ("name", "version")), 80)
            if isinstance(about, dict)
            else "",
            "policy": [],
            "model_id": None,
            "metadata_sha256": hashlib.sha256(
                json.dumps(meta, sort_keys=True, default=str).encode()
            ).hexdigest(),
        }

    def _plan_inputs(self, inputs: list) -> None:
        """How records become tensors, from the inputs the model declares (none: one
        tensor ``input-0`` of the records as they are)."""
        schema = self.schema
        where = f"{self.url}{self._path}"
        declared = [i for i in inputs if isinstance(i, dict) and isinstance(i.get("name"), str)]
        record = schema.to_records(self._probe)[0]
        self._by_column = schema.kind == "tabular" and any(
            not isinstance(v, (int, float)) for v in record.values()
        )
        if self._by_column:
            wanted = list(schema.fields)
            names = [i["name"] for i in declared]
            if declared and sorted(names) != sorted(wanted):
                raise TargetError(
                    f"{where} takes inputs {[clean(n, 40) for n in names[:6]]}, but this data "
                    "set's records have the "
                    f"columns {wanted[:6]} (a table with categories goes as one tensor per "
                    f"column): {_FIX}"
                )
            self._input = None
            return
        if len(declared) > 1:
            raise TargetError(
                f"{where} takes {len(declared)} inputs "
                f"{[clean(i['name'], 40) for i in declared][:6]}; "
                f"these {schema.kind} records go as one tensor: {_FIX}"
            )
        one = declared[0] if declared else {}
        self._input = one.get("name", "input-0")
        datatype = one.get("datatype")
        text = schema.kind == "text"
        if text and datatype not in (None, "BYTES"):
            raise TargetError(
                f"{where} takes {_short(datatype)} tensors, but text records go as BYTES: {_FIX}"
            )
        if not text and datatype not in (None, *_FLOATS, *_INTEGERS):
            raise TargetError(
                f"{where} takes {_short(datatype)} tensors, but these {schema.kind} records "
                f"are numbers: {_FIX}"
            )
        self._datatype = "BYTES" if text else datatype or "FP64"
        width = 1 if text else int(np.prod(schema.shape)) if schema.kind == "image" else len(
            record)  # fmt: skip
        shape = one.get("shape")
        self._shape = [] if text else [width]
        if shape is None:
            return
        if not (isinstance(shape, list) and len(shape) >= 2
                and all(type(d) is int and (d > 0 or d == -1) for d in shape)):  # fmt: skip
            raise TargetError(
                f"{where} declares its input's shape as {_short(shape)}, not a batch "
                f"dimension and the record's (whole numbers, -1 where free): {_FIX}"
            )
        dims = shape[1:]
        if text:
            self._shape = [1] if dims == [1] else []
        elif len(dims) == 1 and dims[0] in (-1, width):
            pass  # flat records, as they are held
        elif -1 in dims:
            raise TargetError(
                f"{where} takes records of shape {dims}, free in more than the batch: these "
                f"are {width} values each; serve a model of a fixed or a flat record shape: "
                f"{_FIX}"
            )
        elif int(np.prod(dims)) != width:
            raise TargetError(
                f"{where} takes records of shape {dims}, but these have {width} values each: {_FIX}"
            )
        else:
            # An image's pixels are held channels first: a model declaring another order
            # (channels last, of more than one channel) would read them wrongly.
            ones = [d for d in dims if d != 1]
            if schema.kind == "image" and ones != [d for d in schema.shape if d != 1]:
                raise TargetError(
                    f"{where} takes images of shape {dims}; these are held as "
                    f"{list(schema.shape)} (channels, height, width): serve a model that "
                    f"takes them so, or flat ([n, {width}]): {_FIX}"
                )
            self._shape = dims

    def _choose_output(self, declared: list[str]) -> list[dict[str, str]] | None:
        """The ``outputs`` to ask for, learnt from the probe's answer; sets
        :attr:`label_only`, :attr:`_output` and :attr:`_probe_answer`."""
        record = record_texts(self.schema.to_records(self._probe))
        tries: list[list[dict[str, str]] | None] = []
        if not declared:
            # MLServer's scikit-learn runtime declares nothing and answers labels unless
            # asked for its probabilities by name.
            tries.append([{"name": "predict_proba"}])
        tries.append(None)
        for outputs in tries:
            answer = self._infer(record, outputs, probing=outputs is not None)
            if answer is None:
                continue
            found = self._pick(answer)
            if found is not None:
                self._output, self.label_only = found
                self._probe_answer = self._read(answer, 1)
                return outputs
        names = [clean(o.get("name"), 40) for o in answer if isinstance(o, dict)]
        raise TargetError(
            f"{self.url}{self._path}/infer answered outputs {names[:6]}, none of them one "
            f"probability per class ({len(self.class_names)}) or one label per record: {_FIX}"
        )

    def _pick(self, outputs: list) -> tuple[str, bool] | None:
        """The output of probabilities (by name where several qualify) else of labels, in
        the answer to one record; ``None`` where none is either."""
        C = len(self.class_names)
        probs, labels = [], []
        for o in outputs:
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                continue
            shape, datatype = o.get("shape"), o.get("datatype")
            if shape == [1, C] and datatype in _FLOATS:
                probs.append(o["name"])
            elif shape in ([1], [1, 1]) and datatype in (*_INTEGERS, "BYTES"):
                labels.append(o["name"])
        for found, label_only in ((probs, False), (labels, True)):
            if len(found) > 1:
                named = [n for n in PROBABILITY_NAMES if n in found]
                if label_only or not named:
                    raise TargetError(
                        f"{self.url}{self._path}/infer answered {len(found)} outputs that "
                        f"could each be the model's {'labels' if label_only else 'probabilities'}"
                        f" ({', '.join(clean(n, 40) for n in found[:6])}): serve a model with one"
                    )
                return named[0], label_only
            if found:
                return found[0], label_only
        return None

    # ------------------------------------------------------------------ queries
    def identity(self) -> str:
        """The query cache's folder name: the model's address, the protocol, its metadata,
        the output read, the classes and columns, and the digest of the probe's answer."""
        parts = {
            "url": self.model_url,
            "protocol": "v2",
            "metadata": self.info.get("metadata_sha256"),
            "output": [self.info.get("output"), self._output],
            "version": self.version or self._answered_version,
            "classes": self.class_names,
            "columns": self.schema.fields,
            "answer": hashlib.sha256(self._probe_answer.tobytes()).hexdigest(),
        }
        return cache_folder_name("v2-", self.url, parts)

    def _predict(self, texts: list[bytes]) -> np.ndarray:
        return self._read(self._infer(texts, self._outputs), len(texts))

    def _tensors(self, texts: list[bytes]) -> dict[str, Any]:
        """The request's body for records already turned into JSON text."""
        records = [json.loads(t) for t in texts]
        n = len(records)
        if self._by_column:
            inputs = []
            for name in self.schema.fields:
                values = [r[name] for r in records]
                numbers = all(type(v) in (int, float) for v in values)
                if not numbers and any(v is None for v in values):
                    raise TargetError(
                        f"a record has no category in column {name!r}, which a v2 BYTES "
                        f"tensor cannot carry: audit {self.url} with records that all have one"
                    )
                inputs.append({
                    "name": name, "datatype": "FP64" if numbers else "BYTES", "shape": [n, 1],
                    "data": values,
                })  # fmt: skip
            return {"inputs": inputs, "parameters": {"content_type": "pd"}}
        if self.schema.kind == "text":
            tensor = {"datatype": "BYTES", "shape": [n, *self._shape],
                      "data": [r["text"] for r in records],
                      "parameters": {"content_type": "str"}}  # fmt: skip
        else:
            field = "pixels" if self.schema.kind == "image" else None
            flat = [v for r in records for v in (r[field] if field else r.values())]
            if self._datatype in _INTEGERS:
                if not all(float(v).is_integer() for v in flat):
                    raise TargetError(
                        f"{self.url}{self._path} takes {self._datatype} tensors, but these "
                        f"records hold fractions: {_FIX}"
                    )
                flat = [int(v) for v in flat]
            tensor = {"datatype": self._datatype, "shape": [n, *self._shape], "data": flat}
        return {"inputs": [{"name": self._input, **tensor}]}

    def _infer(self, texts: list[bytes], outputs, *, probing: bool = False) -> list | None:
        """The answer's ``outputs`` list to ``POST …/infer`` of these records; ``None``
        where ``probing`` and the server refused the outputs asked for (400 or 422)."""
        body = self._tensors(texts)
        if outputs is not None:
            body["outputs"] = outputs
        dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
        path = f"{self._path}/infer"
        response = self._request(
            "POST", path, records=len(texts), content=dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            accept=(400, 422) if probing else (),
        )  # fmt: skip
        if response.status_code >= 400:
            return None
        answer = self._json(response.content, path)
        if not isinstance(answer, dict) or not isinstance(answer.get("outputs"), list):
            raise TargetError(
                f"{self.url}{path} answered without an 'outputs' list: is this a server "
                "speaking the Open Inference Protocol (v2)? Else drop --protocol v2"
            )
        version = answer.get("model_version")
        self._answered_version = version if isinstance(version, str) else None
        if answer.get("model_name") not in (None, self.model):
            raise TargetError(
                f"{self.url}{path} answered for model {_short(answer.get('model_name'))}, not "
                f"{self.model!r}: give the model's own address"
            )
        return answer["outputs"]

    def _json(self, body: bytes, path: str) -> Any:
        try:
            return json.loads(body)
        except RecursionError:
            raise TargetError(
                f"{self.url}{path} answered JSON nested too deeply to be an answer"
            ) from None
        except (ValueError, UnicodeDecodeError):
            raise TargetError(
                f"{self.url}{path} answered something that is not JSON: is this a server "
                "speaking the Open Inference Protocol (v2)? Else drop --protocol v2"
            ) from None

    def _read(self, outputs: list, n: int) -> np.ndarray:
        """The ``(n, C)`` rows of the chosen output (labels: one-hot), or a
        :class:`TargetError` naming the address, what is wrong, and the fix."""
        where = f"{self.url}{self._path}/infer"
        C = len(self.class_names)
        tensor = next(
            (o for o in outputs if isinstance(o, dict) and o.get("name") == self._output), None
        )
        if tensor is None:
            names = [clean(o.get("name"), 40) for o in outputs if isinstance(o, dict)]
            raise TargetError(
                f"{where} answered outputs {names[:6]} without {self._output!r}, which it "
                f"answered before: {_FIX}"
            )
        datatype, shape = tensor.get("datatype"), tensor.get("shape")
        wanted = ([n], [n, 1]) if self.label_only else ([n, C],)
        if shape not in wanted:
            raise TargetError(
                f"{where} answered {self._output!r} of shape {_short(shape)} for {n} records; "
                f"expected {list(wanted[0])}: {_FIX}"
            )
        kinds = (*_INTEGERS, "BYTES") if self.label_only else _FLOATS
        if datatype not in kinds:
            expected = "an integer datatype or BYTES" if self.label_only else "FP16/32/64 or BF16"
            raise TargetError(
                f"{where} answered {self._output!r} as {_short(datatype)}; expected {expected}: "
                f"{_FIX}"
            )
        data = tensor.get("data")
        flat = _flatten(data, shape) if isinstance(data, list) else None
        if flat is None or len(flat) != n * (1 if self.label_only else C):
            raise TargetError(
                f"{where} answered {self._output!r} with data that does not fill its shape "
                f"{shape}: {_FIX}"
            )
        if self.label_only:
            if datatype == "BYTES" and not all(type(v) is str for v in flat):
                raise TargetError(f"{where} answered BYTES labels that are not strings: {_FIX}")
            if datatype != "BYTES" and not all(type(v) is int for v in flat):
                raise TargetError(
                    f"{where} answered {datatype} labels that are not integers: {_FIX}"
                )
            return label_rows(flat, self.class_names, where, _FIX)
        rows = [flat[i * C : (i + 1) * C] for i in range(n)]
        return probability_rows(rows, n, C, where, _FIX)

    def _refusal(self, where: str, response: httpx.Response) -> str:  # type: ignore[override]
        status = response.status_code
        if status in (401, 403):
            return HttpTarget._refusal(where, response)
        if status == 404 and where == f"{self.url}{self._path}":
            version = f" (version {self.version})" if self.version else ""
            served = self._served()
            if getattr(self, "_no_root", False) and not served:
                return (
                    f"{self.url}/v2 and {where} do not exist (404): is this a server speaking "
                    "the Open Inference Protocol (v2)? Else drop --protocol v2"
                )
            return (
                f"{self.model_url} names a model the server does not serve: "
                f"{self.model!r}{version}{served}; give its name in "
                f"{key('target_url')}"
            )
        if status == 404:
            return (
                f"{where} does not exist (404): is this a server speaking the Open Inference "
                "Protocol (v2)? Else drop --protocol v2"
            )
        return f"{where} refused the request ({status}: {_said(response)})"

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "url": self.model_url,
            "protocol": "v2",
            "model_name": self.model,
            "model_version": self.version or self._answered_version,
            "tensor": self._output,
            **({"integer_labels": integer_labels(self.class_names)} if self.label_only else {}),
        }


def _flatten(data: list, shape: list[int]) -> list | None:
    """A tensor's data as one flat list (row-major): given flat, or nested exactly as
    ``shape`` says; ``None`` where it is neither (a ragged nesting could move values
    from one record to another)."""
    if not any(isinstance(v, list) for v in data):
        return data
    out: list = []

    def walk(item: Any, dims: list[int]) -> bool:
        if not dims:
            if isinstance(item, list):
                return False
            out.append(item)
            return True
        return (isinstance(item, list) and len(item) == dims[0]
                and all(walk(v, dims[1:]) for v in item))  # fmt: skip

    return out if walk(data, list(shape)) else None
