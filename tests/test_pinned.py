"""Pinned results: fixed small audits of the built-in recipes give the bytes they gave.

Refactors of the model, job and split stages must not change a built-in audit's
numbers. Each case below runs a small audit with the job cache off and compares
``results.json`` (minus ``timings_s``) and ``scores.csv`` with the copy pinned in
``tests/pinned/``. Float arithmetic is exact only on the machine class and library
versions it was pinned with, so the comparison runs where those match (the
fingerprint stored beside the results) and is skipped elsewhere, saying why.

To pin again after a change that is meant to alter results (say what changed and by
how much in the commit): ``MIAUDIT_PIN=1 pytest tests/test_pinned.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import pytest

import miaudit
from miaudit.jobs import Execution

PINNED = Path(__file__).parent / "pinned" / "results.json"
FAST = {"model": "mlp", "epochs": 30, "batch_size": 32, "lr": 0.003}
#: Every attack miaudit had when these were pinned, in the order "all" gave then (later
#: attacks join "all" without changing these cases).
EVERY = [
    "shokri", "loss", "loss-class", "confidence", "confidence-class", "entropy",
    "entropy-class", "mentr", "mentr-class", "lira", "lira-offline", "rmia", "rmia-offline",
    "gap", "robustness",
]  # fmt: skip

CASES: dict[str, dict] = {
    "digits-offline": {
        "dataset": "digits", "target_size": 200, "shadows": 4, "target": FAST, "seed": 7,
        "attacks": ["default", "confidence-class", "entropy", "mentr"],
    },
    "digits-online": {
        "dataset": "digits", "target_size": 150, "shadows": 8, "target": FAST, "seed": 3,
        "attacks": {"run": EVERY, "lira": {"queries": 2}, "robustness": {"copies": 2}},
    },
    "digits-noisy-top-k": {
        "dataset": "digits", "target_size": 150, "shadows": 3, "target": FAST, "seed": 5,
        "shadow_data": "noisy", "defense": ["top-k=3"],
    },
    "digits-recipe-game-sklearn": {
        "dataset": "digits", "target_size": 300, "shadows": 4, "seed": 2, "game": "recipe",
        "target": {"model": "logistic-regression"},
        "attacks": ["shokri", "loss", "lira-offline", "rmia-offline", "gap"],
    },
    "digits-recipe-game-all": {
        "dataset": "digits", "target_size": 200, "shadows": 8, "target": FAST, "seed": 9,
        "game": "recipe",
        "attacks": {"run": EVERY, "lira": {"queries": 2}, "robustness": {"copies": 2},
                    "rmia": {"population": 300}},
    },
    "digits-label-only": {
        "dataset": "digits", "target_size": 150, "shadows": 2, "target": FAST, "seed": 8,
        "defense": ["label-only"], "attacks": ["shokri", "gap", "robustness"],
    },
    "digits-forest-shadows": {
        "dataset": "digits", "target_size": 150, "shadows": 2, "target": FAST, "seed": 1,
        "shadow": {"model": "random-forest", "n_estimators": 20},
        "attacks": ["shokri", "loss", "lira-offline"],
    },
    "digits-saved-target": {
        "dataset": "digits", "shadows": 2, "seed": 6, "attacks": ["shokri", "loss", "gap"],
        "_train": {"dataset": "digits", "target_size": 150, "target": FAST, "seed": 6},
    },
    "mnist-cnn": {
        "dataset": "mnist", "target_size": 120, "shadows": 2, "seed": 4,
        "target": {"epochs": 2, "filters": 4, "hidden": 16},
    },
}  # fmt: skip


def fingerprint() -> dict[str, str]:
    """What float results depend on beyond the code: libraries and the CPU's kernels."""
    import numpy
    import sklearn
    import torch

    cpu = ""
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "machine": platform.machine(),
        "cpu": cpu,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


def run_case(name: str, tmp: Path) -> dict:
    from miaudit.config import make_config
    from miaudit.pipeline import train_target_only

    out = tmp / name
    settings = dict(CASES[name])
    if "_train" in settings:  # a target saved by `miaudit train`, then audited
        train_target_only(make_config(settings.pop("_train")), tmp / "model")
        settings["target_model"] = str(tmp / "model")
    miaudit.audit(settings, out=out, execution=Execution(job_cache=False))
    results = json.loads((out / "results.json").read_text())
    results.pop("timings_s"), results.pop("run_id")  # a new id for every run written
    # Paths of this machine (where the data set's files are installed, the saved model's
    # temporary folder) are not results.
    results["dataset"]["source"] = "<installed files>"
    if "_train" in CASES[name]:
        results["target"]["source"] = "<saved model>"
    scores = hashlib.sha256((out / "scores.csv").read_bytes()).hexdigest()
    return {"results": results, "scores_sha256": scores}


def _pinned() -> dict:
    return json.loads(PINNED.read_text()) if PINNED.is_file() else {}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_built_in_audit_matches_its_pinned_result(name, tmp_path):
    if os.environ.get("MIAUDIT_PIN") == "1":
        pinned = _pinned()
        pinned["fingerprint"] = fingerprint()
        pinned.setdefault("cases", {})[name] = run_case(name, tmp_path)
        PINNED.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n")
        pytest.skip("pinned anew")
    pinned = _pinned()
    if pinned.get("fingerprint") != fingerprint():
        pytest.skip(
            f"pinned on {pinned.get('fingerprint')}, this is {fingerprint()}: float results "
            "are only comparable bit for bit on the same machine class and libraries"
        )
    got = run_case(name, tmp_path)
    want = pinned["cases"][name]
    assert got["results"] == want["results"]
    assert got["scores_sha256"] == want["scores_sha256"]
