"""Run folders the report's tests share: a small digits audit and its label-only twin."""

from __future__ import annotations

import pytest

import miaudit
from miaudit.jobs import Execution

#: An over-fitted digits MLP: leakage clearly above chance at 1 % FPR.
SMALL = {
    "dataset": "digits", "target_size": 400, "shadows": 2, "seed": 5, "bootstrap": 300,
    "target": {"model": "mlp", "epochs": 60, "batch_size": 32, "lr": 0.003},
    "attacks": ["shokri", "loss", "lira-offline", "gap"],
    # The page drawn in full: the records' values (thumbnails) too.
    "show_records": "values",
}  # fmt: skip


@pytest.fixture(scope="session")
def digits_runs(tmp_path_factory):
    """``(base, label_only)``: run folders of the same audit without and with the
    label-only output policy (same records, same seed)."""
    root = tmp_path_factory.mktemp("runs")
    base = root / "digits"
    miaudit.audit(SMALL, out=base, execution=Execution(job_cache=False))
    label_only = root / "digits-label-only"
    miaudit.audit({**SMALL, "defense": ["label-only"], "attacks": ["shokri", "gap"]},
                  out=label_only, execution=Execution(job_cache=False))  # fmt: skip
    return base, label_only
