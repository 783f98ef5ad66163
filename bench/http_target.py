"""Queries per second through the HTTP target, and its overhead over the in-process target.

Where it sits: the ``target`` stage. An audit of a prediction API (``audit
--target-url``) sends the same records an in-process audit would hand to
``predict_proba``; this script measures, in one run, what the HTTP path costs:

- ``in-process``: :class:`~miaudit.target.LocalTarget` on the loaded model;
- ``http b=B``: :class:`~miaudit.remote.HttpTarget` against ``miaudit serve`` running
  as its own process on 127.0.0.1 (JSON encoding, the socket, the server's
  validation and encoding of raw records), batches of ``B`` records, no cache;
- ``cache hit``: the same records again, answered from the on-disk query cache.

Each way is timed ``--repeats`` times, alternating, and the fastest run is kept
(other processes on a shared machine only ever add time). The target is an MLP
trained on census-income (occupation), the default data set: 362 encoded
features from 40 raw columns, 46 classes.

Run: ``.venv/bin/python bench/http_target.py [--records 10000] [--repeats 3]``.

Measured on the 2-core development VM (server and client share the two cores)::

    path            seconds   queries/s  vs in-process
    in-process        0.018     567,862           1.0x
    http b=128        1.345       7,435          76.4x
    http b=512        0.933      10,716          53.0x
    http b=1024       0.898      11,139          51.0x
    cache hit         0.251      39,894          14.2x

The HTTP path costs about 90 µs per record at the default batch of 512, most of
it turning rows into JSON and back on both sides; an audit's 20,000 evaluation
queries take about 2 s, small beside shadow training.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from miaudit.config import make_config
from miaudit.data import load_dataset
from miaudit.models import load_model
from miaudit.pipeline import train_target_only
from miaudit.protocol import InputSchema
from miaudit.remote import HttpTarget
from miaudit.target import LocalTarget

TOKEN = "bench-token"


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", default="128,512,1024")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="miaudit-bench-http-"))
    config = make_config({"dataset": "census", "target_size": 2000, "target": {"epochs": 5}})
    train_target_only(config, work / "target")
    data = load_dataset("census")
    X = data.X[np.random.default_rng(0).choice(data.n_records, args.records, replace=False)]
    local = LocalTarget(load_model(work / "target"), data.n_classes)

    server = subprocess.Popen(
        [sys.executable, "-m", "miaudit.cli", "serve", str(work / "target"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "MIAUDIT_TOKEN": TOKEN},
    )
    try:
        line = server.stdout.readline()
        url = line.split(" on ")[1].split(";")[0]
        schema = InputSchema.for_dataset(data)
        batches = [int(b) for b in args.batches.split(",")]
        clients = {
            b: HttpTarget(url, schema, data.class_names, token=TOKEN, cache_dir=False, batch_size=b)
            for b in batches
        }
        cached = HttpTarget(url, schema, data.class_names, token=TOKEN, cache_dir=work / "cache")
        cached.predict_proba(X)  # fill the cache
        reference = local.predict_proba(X)
        for client in clients.values():
            assert np.array_equal(client.predict_proba(X), reference), "HTTP answers differ"

        timings = {"in-process": [], **{f"http b={b}": [] for b in batches}, "cache hit": []}
        for _ in range(args.repeats):
            timings["in-process"].append(best_of(1, lambda: local.predict_proba(X)))
            for b, client in clients.items():
                timings[f"http b={b}"].append(best_of(1, lambda c=client: c.predict_proba(X)))
            timings["cache hit"].append(best_of(1, lambda: cached.predict_proba(X)))
        base = min(timings["in-process"])
        print(f"{args.records} census records, 46 classes, server: miaudit serve (own process)")
        print(f"{'path':<14} {'seconds':>8} {'queries/s':>11} {'vs in-process':>14}")
        for name, ts in timings.items():
            t = min(ts)
            print(f"{name:<14} {t:8.3f} {args.records / t:11,.0f} {t / base:13.1f}x")
        for client in [*clients.values(), cached]:
            client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
