"""The signal stage's memory grows linearly in the reference models, with a small
constant: K models' outputs are read one model at a time, never copied whole to
float64 (bench/signal_memory.py measures the same at scale)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "bench" / "signal_memory.py"


def _bench():
    spec = importlib.util.spec_from_file_location("signal_memory", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_online_lira_memory_grows_linearly_in_the_models_with_a_small_constant():
    bench = _bench()
    n, c = 20_000, 20
    ks = [4, 8, 16, 32]
    peaks = [bench.lira_peak(k, n, c)[0] for k in ks]
    # Linear: the growth per model measured between 4 and 16 models predicts 32.
    slope = (peaks[2] - peaks[0]) / (ks[2] - ks[0])
    predicted = peaks[2] + slope * (ks[3] - ks[2])
    assert peaks[3] <= 1.15 * predicted + 2**20, (peaks, predicted)
    # The constant: about one float64 φ per model and record (8 bytes), where a float64
    # copy of the (K, n, C) outputs would take 8·C = 160 bytes and the float32 input 80.
    per_model_record = (peaks[3] - peaks[0]) / ((ks[3] - ks[0]) * n)
    assert per_model_record < 24, (peaks, per_model_record)
    assert np.all(np.diff(peaks) >= 0)
