"""The signal stage's memory grows linearly in the reference models, with a small
constant: K models' outputs are read one model at a time, never copied whole to
float64 (bench/signal_memory.py measures the same at scale)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "signal_memory.py"


def _bench():
    spec = importlib.util.spec_from_file_location("signal_memory", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_online_lira_memory_grows_linearly_in_the_models_with_a_small_constant(monkeypatch):
    from miaudit import signals

    # One block at a time: with a thread per core the peak would also count however
    # many blocks' temporaries happened to be in flight together.
    monkeypatch.setattr(signals, "_cores", lambda: 1)
    bench = _bench()
    n, c = 20_000, 20
    # From 16 models on, the (K, n) arrays dominate the peak (below it, one block's
    # temporaries of fixed size do).
    ks = [16, 32, 64]
    peaks = [bench.lira_peak(k, n, c)[0] for k in ks]
    # Linear: the growth per model between 16 and 32 models predicts 64.
    slope = (peaks[1] - peaks[0]) / (ks[1] - ks[0])
    predicted = peaks[1] + slope * (ks[2] - ks[1])
    assert peaks[2] <= 1.15 * predicted + 2 * 2**20, (peaks, predicted)
    # The constant: a few float64 numbers per model and record (φ and the Gaussians'
    # work arrays, about 26 bytes measured), where the code before copied the (K, n, C)
    # outputs to float64 and more: 356 bytes measured at these sizes.
    per_model_record = (peaks[2] - peaks[0]) / ((ks[2] - ks[0]) * n)
    assert per_model_record < 40, (peaks, per_model_record)
