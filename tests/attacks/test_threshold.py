"""Threshold attacks: thresholds from shadows only, global and per class."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.attacks.registry import get_attack
from miaudit.attacks.threshold import ThresholdAttack, best_threshold
from miaudit.signals import member_signal


def test_best_threshold_separates_and_sits_between_values():
    s = np.array([0.1, 0.2, 0.3, 0.8, 0.9, 1.0])
    m = np.array([0, 0, 0, 1, 1, 1], bool)
    t = best_threshold(s, m)
    assert 0.3 < t < 0.8
    assert ((s >= t) == m).all()


def _threshold_by_ordering_records():
    """best_threshold as it was first written, records ordered (bench/attack_stage.py
    times it beside the new one)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "attack_stage.py"
    spec = importlib.util.spec_from_file_location("attack_stage", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.threshold_by_order


def test_best_threshold_is_the_one_ordering_the_records_gives_ties_and_ends_included():
    rng = np.random.default_rng(7)
    cases = [(np.array([0.5, 0.5, 0.5]), np.array([1, 0, 1], bool))]  # one value
    cases.append((np.array([3.0, 2.0, 1.0]), np.array([0, 0, 1], bool)))  # members lowest
    cases.append((np.array([1.0, 2.0, 3.0]), np.array([0, 1, 1], bool)))  # members highest
    for n in (2, 5, 40, 1000, 20_000):
        for levels in (2, 7, None):  # heavy ties, some ties, continuous
            s = rng.normal(size=n) if levels is None else rng.integers(0, levels, n) * 0.5
            m = rng.random(n) < rng.uniform(0.1, 0.9)
            if 0 < m.sum() < n:
                cases.append((s + 0.3 * m * rng.random(), m))
    by_order = _threshold_by_ordering_records()
    for s, m in cases:
        assert best_threshold(s, m) == by_order(s, m), (s, m)


def _shadow_like(rng, n=4000):
    # Two classes whose members are confident at different levels: class 1's members
    # sit where class 0's non-members do, so one global threshold cannot fit both.
    y = rng.integers(0, 2, n)
    member = rng.random(n) < 0.5
    level = np.where(y == 0, np.where(member, 0.95, 0.8), np.where(member, 0.8, 0.6))
    conf = np.clip(level + rng.normal(0, 0.03, n), 0.51, 0.999)
    P = np.zeros((n, 2))
    P[np.arange(n), y] = conf
    P[np.arange(n), 1 - y] = 1 - conf
    return P, y, member


def test_class_thresholds_beat_a_global_one_when_classes_differ():
    rng = np.random.default_rng(0)
    P, y, m = _shadow_like(rng)
    Pt, yt, mt = _shadow_like(rng)
    glob = ThresholdAttack(signal="confidence").fit(P, y, m)
    per = ThresholdAttack(signal="confidence", thresholds="class").fit(P, y, m)
    acc_g = ((glob.score(Pt, yt) >= glob.decision_threshold) == mt).mean()
    acc_c = ((per.score(Pt, yt) >= per.decision_threshold) == mt).mean()
    assert acc_c > 0.95 and acc_c > acc_g + 0.1
    # The confidence signal is p_y - 1 (see member_signal).
    np.testing.assert_allclose(per.thresholds_ + 1, [0.875, 0.7], atol=0.03)


def test_scores_are_the_oriented_signal_and_margins():
    rng = np.random.default_rng(1)
    P, y, m = _shadow_like(rng, 500)
    for name in ("loss", "entropy", "mentr"):
        a = ThresholdAttack(signal=name).fit(P, y, m)
        np.testing.assert_array_equal(a.score(P, y), member_signal(name, P, y))
        c = ThresholdAttack(signal=name, thresholds="class").fit(P, y, m)
        np.testing.assert_allclose(c.score(P, y), member_signal(name, P, y) - c.thresholds_[y])


def test_registry_names_and_small_classes_fall_back():
    assert get_attack("mentr-class").thresholds == "class"
    assert get_attack("loss").signal == "loss" and get_attack("loss").thresholds == "global"
    P = np.array([[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.2, 0.2, 0.6]] * 10)
    y = np.array([0, 0, 2] * 10)
    m = np.array([1, 0, 1] * 10, bool)
    a = ThresholdAttack(signal="confidence", thresholds="class").fit(P, y, m)
    assert 2 in a.fallback_classes_ and 1 in a.fallback_classes_
    assert a.thresholds_[2] == a.global_threshold_


def test_unfitted_and_bad_options():
    from miaudit.errors import ConfigError

    with pytest.raises(ConfigError, match="not fitted"):
        ThresholdAttack().score(np.full((1, 2), 0.5), [0])
    with pytest.raises(ConfigError, match="signal"):
        ThresholdAttack(signal="nope")


def _inputs(rng, n_rows=3000, n_eval=400, c=5):
    from miaudit.attacks.base import AttackInputs

    def outputs(n):
        y = rng.integers(0, c, n)
        member = rng.random(n) < 0.5
        logits = rng.normal(size=(n, c))
        logits[np.arange(n), y] += 1.0 + 2.0 * member
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32), y, member

    own, own_y, own_m = outputs(n_rows)
    target, y, _ = outputs(n_eval)
    return AttackInputs(
        own_probs=own, own_labels=own_y, own_member=own_m, target_probs=target, labels=y,
        n_eval=n_eval, class_names=[str(i) for i in range(c)],
    )  # fmt: skip


def _run(name, inputs):
    from miaudit.attacks.suite import run_attack
    from miaudit.jobs import Execution

    return run_attack(get_attack(name)(), inputs, Execution(job_cache=False))


def test_a_signals_global_and_class_attacks_share_it_and_score_as_if_alone(monkeypatch):
    """loss and loss-class read the same signal of every shadow row: the second takes
    the first's, and both score exactly as each does on inputs of its own."""
    from miaudit.attacks import threshold

    names = ["loss", "loss-class", "mentr", "mentr-class", "confidence"]
    alone = {n: _run(n, _inputs(np.random.default_rng(3))) for n in names}
    shadow_rows = []
    real = threshold.member_signal

    def counting(name, P, y):
        if len(P) == 3000:
            shadow_rows.append(name)
        return real(name, P, y)

    checks = []
    real_check = threshold.check_prediction_signals

    def counting_checks(P, y, *args, **kwargs):
        if len(P) == 3000:
            checks.append(len(P))
        return real_check(P, y, *args, **kwargs)

    monkeypatch.setattr(threshold, "member_signal", counting)
    monkeypatch.setattr(threshold, "check_prediction_signals", counting_checks)
    inputs = _inputs(np.random.default_rng(3))
    together = {n: _run(n, inputs) for n in names}
    assert shadow_rows == ["loss", "mentr", "confidence"]
    assert len(checks) == 1  # the outputs are checked once for every threshold attack
    for n in names:
        np.testing.assert_array_equal(together[n].scores, alone[n].scores)
        assert together[n].threshold == alone[n].threshold
        assert together[n].notes == alone[n].notes
    # New shadow outputs (another array, not the one read) are read afresh.
    inputs.own_probs = inputs.own_probs[::-1].copy()
    again = _run("loss-class", inputs)
    assert shadow_rows[-1] == "loss"
    assert not np.array_equal(again.scores, together["loss-class"].scores)


def test_threshold_attacks_never_copy_the_shadows_outputs_to_float64(monkeypatch):
    """The shadows' outputs are read in float64 a block at a time: the attack's memory
    grows by a few float64 numbers per shadow row, not by a float64 copy of all C
    probabilities (46 x 8 bytes a row at census, and the check's boolean masks)."""
    import tracemalloc

    from miaudit import signals

    monkeypatch.setattr(signals, "_cores", lambda: 1)  # one block's temporaries at a time
    c = 46

    def peak(n_rows: int) -> int:
        inputs = _inputs(np.random.default_rng(0), n_rows=n_rows, c=c)
        tracemalloc.start()
        try:
            _run("loss-class", inputs)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(40_000), peak(120_000)
    per_row = (large - small) / 80_000
    # 12 bytes measured: one block's temporaries (a fixed size) set the peak at these
    # sizes, and the float64 numbers kept per row (the signal, its order and cumulative
    # counts) grow under it. The code before copied every row's C probabilities to
    # float64 and built boolean masks of them: 384 bytes.
    assert per_row < 100, per_row
