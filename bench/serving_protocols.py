"""One audit, four ways to reach the model: in memory, from MLflow's registry, over
MLflow's scoring server (``--protocol mlflow``) and over the Open Inference Protocol
(``--protocol v2``, MLServer).

Where it sits: the whole pipeline with a remote ``target``. One scikit-learn
``Pipeline`` (a ``ColumnTransformer`` one-hot encoding Adult's categories and scaling
its numbers, then a random forest of 100 trees) is fitted on the raw records of
``--members`` Adult rows, logged with ``mlflow.sklearn.log_model`` to an SQLite store
in a temporary folder and registered as ``adult-rf`` version 1. The same audit (the
same records and membership, the same 8 shadows from the job cache, the same attacks
and seed) is then run four times, differing only in how the target's answers are
reached:

- in memory: the fitted pipeline, asked in this process;
- registry: ``mlflow.sklearn.load_model("models:/adult-rf/1")``, asked in this process;
- MLflow server: ``mlflow models serve -m models:/adult-rf/1 --env-manager local`` on
  127.0.0.1, audited with ``protocol="mlflow"`` (``dataframe_split`` of the raw columns);
- v2: MLServer 1.7.1 (``.venv-mlserver``, which ``make test`` builds) serving the
  registry's model, audited with ``protocol="v2"`` (one tensor per column).

The first two stand in for the service where the audit opens it (as the tests do), so
all four play the same game: a remote target's (the shadows are the attacker's guess of
the recipe). ``target="models:/…"`` in Python is a different game, the user's own
model's, whose shadows are clones of the pipeline: the README's table beside it measures
that one. No query cache: every run asks every evaluated record. Seconds are the median
of ``--repeats`` audits of each way, interleaved.

Run: ``.venv/bin/python bench/serving_protocols.py [--members 5000] [--repeats 3]``
(needs the dev extra's mlflow and ``make test``'s ``.venv-mlserver``; about two minutes
on two cores).

Measured on the 2-core development VM, the same for all four ways (every attack's
scores equal, to the bit): rmia-offline strongest, AUC 0.7900, TPR 1.74 % / 9.16 % /
40.48 % at 0.1 % / 1 % / 10 % FPR, moderate. Queries sent: 12,000 in this process,
11,937 over each server (repeated rows sent once, and the probe). Seconds per audit
(three each, interleaved): in memory 0.45 0.43 0.43; registry 0.43 0.43 0.45; MLflow's
server 1.38 1.50 1.24; v2 1.21 1.18 1.23.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
MLSERVER = ROOT / ".venv-mlserver" / "bin" / "mlserver"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{url}: the server exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"{url} was not up within 180 s:\n{log.read_text()[-2000:]}")


@contextmanager
def _serving(command: list[str], ready: str, log: Path, **kw):
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw
        )
    try:
        _wait(ready, process, log)
        yield
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            process.wait(timeout=30)


class _InProcess:
    """A model asked in this process, where the audit opens its service."""

    def __init__(self, model, schema):
        self.model, self.schema = model, schema
        self.queries_, self.cached_, self.policy, self.label_only = 0, 0, [], False

    def predict_proba(self, X):
        self.queries_ += len(X)
        return self.model.predict_proba(pd.DataFrame(self.schema.to_records(X)))

    def describe(self):
        return {"url": "in this process"}

    def close(self):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--shadows", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not MLSERVER.exists():
        sys.exit(f"needs MLServer at {MLSERVER}: run `make test` once (it builds .venv-mlserver)")

    import joblib
    import mlflow
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    import miaudit
    import miaudit.games.shokri as shokri
    from miaudit.data import load_dataset
    from miaudit.protocol import InputSchema

    folder = Path(tempfile.mkdtemp(prefix="miaudit-serving-"))
    data = load_dataset("adult")
    schema = InputSchema.for_dataset(data)
    order = np.random.default_rng(0).permutation(data.n_records)
    members = np.sort(order[: args.members])
    non_members = np.sort(order[args.members : 2 * args.members])
    np.savez(folder / "membership.npz", members=members, non_members=non_members)
    table = pd.DataFrame(schema.to_records(data.X[members]))
    categories = list(table.select_dtypes(exclude="number").columns)
    pipeline = make_pipeline(
        ColumnTransformer(
            [("categories", OneHotEncoder(handle_unknown="ignore"), categories)],
            remainder=StandardScaler(),
        ),
        RandomForestClassifier(n_estimators=100, random_state=0),
    ).fit(table, data.y[members])

    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    experiment = mlflow.create_experiment("bench", artifact_location=(folder / "a").as_uri())
    started = time.perf_counter()
    with mlflow.start_run(experiment_id=experiment):
        mlflow.sklearn.log_model(
            pipeline, name="model", pyfunc_predict_fn="predict_proba",
            registered_model_name="adult-rf", serialization_format="cloudpickle",
        )  # fmt: skip
    logged = time.perf_counter() - started
    registry = mlflow.sklearn.load_model("models:/adult-rf/1")
    (folder / "v2" / "adult").mkdir(parents=True)
    joblib.dump(registry, folder / "v2" / "adult" / "model.joblib")
    (folder / "v2" / "adult" / "model-settings.json").write_text(json.dumps({
        "name": "adult", "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }))  # fmt: skip
    v2_port, mlflow_port = _port(), _port()
    (folder / "v2" / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": v2_port, "grpc_port": _port(),
        "metrics_port": _port(), "parallel_workers": 0,
    }))  # fmt: skip

    common = {
        "dataset": "adult", "membership": str(folder / "membership.npz"),
        "shadows": args.shadows, "target": {"model": "random-forest"}, "seed": 0,
        "query_cache": False,
    }  # fmt: skip
    os.environ["MIAUDIT_JOB_CACHE"] = str(folder / "jobs")
    mlflow_url, v2_url = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{v2_port}"

    def in_process(model):
        def run():
            with mock.patch.object(
                shokri, "open_remote", lambda *a, **k: _InProcess(model, schema)
            ):
                return miaudit.audit(target_url="http://in-process:1", **common)

        return run

    ways = {
        "in memory": in_process(pipeline),
        "from the registry": in_process(registry),
        "over MLflow's server": lambda: miaudit.audit(
            target_url=mlflow_url, protocol="mlflow", **common
        ),
        "over v2 (MLServer)": lambda: miaudit.audit(
            target_url=f"{v2_url}/v2/models/adult", protocol="v2", **common
        ),
    }
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    serve_mlflow = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/adult-rf/1",
        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(mlflow_port),
    ]  # fmt: skip
    with (
        _serving(serve_mlflow, f"{mlflow_url}/ping", folder / "mlflow.log", env=env),
        _serving([str(MLSERVER), "start", str(folder / "v2")],
                 f"{v2_url}/v2/models/adult/ready", folder / "mlserver.log", cwd=folder / "v2"),
    ):  # fmt: skip
        ways["in memory"]()  # trains the shadows into the job cache, once
        results, seconds = {}, {name: [] for name in ways}
        for _ in range(args.repeats):
            for name, run in ways.items():
                started = time.perf_counter()
                result = run()
                seconds[name].append(time.perf_counter() - started)
                results.setdefault(name, result)

    base = results["in memory"]
    print(
        f"adult: a ColumnTransformer + random forest of 100 trees on {args.members:,} raw "
        f"records, {args.members:,} members and {args.members:,} non-members evaluated, "
        f"{args.shadows} shadows (from the job cache), the default attacks, seed 0; "
        f"logging and registering the model took {logged:.1f} s\n"
    )
    rows = {
        "strongest attack, AUC": lambda r: f"{r.strongest}, {r.attacks[r.strongest].auc:.4f}",
        "TPR at 0.1 % / 1 % / 10 % FPR": lambda r: " / ".join(
            "–" if r.attacks[r.strongest].tpr_at_fpr.get(k) is None
            else f"{100 * r.attacks[r.strongest].tpr_at_fpr[k]:.2f} %"
            for k in ("0.001", "0.01", "0.1")
        ),
        "verdict": lambda r: r.level,
        "queries sent": lambda r: f"{r.target['queries']['sent']:,}",
        "every attack's scores equal in memory's": lambda r: "yes" if all(
            np.array_equal(r.scores[a], base.scores[a]) for a in base.scores) else "NO",
        "seconds per audit (median)": lambda r: None,
    }  # fmt: skip
    print("| | " + " | ".join(ways) + " |")
    print("|---" * (len(ways) + 1) + "|")
    for label, cell in rows.items():
        cells = [
            f"{np.median(seconds[name]):.2f}" if cell(results[name]) is None
            else cell(results[name]) for name in ways
        ]  # fmt: skip
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\nall seconds: {json.dumps({k: [round(s, 2) for s in v] for k, v in seconds.items()})}")


if __name__ == "__main__":
    main()
