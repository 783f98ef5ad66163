"""A leakage gate for CI: ``--fail-on LEVEL`` (``fail_on=``) and ``compare
--fail-on-increase`` exit with documented statuses, write their files first, and never
pass an evaluation that cannot rule the level out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import miaudit
from miaudit.cli import main
from miaudit.errors import ConfigError, GateFailed
from miaudit.jobs import Execution
from miaudit.verdict import GATE_FAILED, GATE_UNDECIDED

N = 600  # evaluated records: 300 members, 300 non-members


def _outputs(leak: float, seed: int = 0) -> dict[str, np.ndarray]:
    """A target's outputs on ``N`` records, half of them members: each record's true
    class gets ``0.5 + leak`` more for members than for non-members (``leak=0``: the
    outputs say nothing of membership), around a probability drawn alike for both."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, N)
    members = np.r_[np.ones(N // 2, np.int8), np.zeros(N // 2, np.int8)]
    p_true = rng.uniform(0.2, 0.5, N) + leak * members
    outputs = np.full((N, 10), 0.0)
    outputs[np.arange(N), labels] = p_true
    rest = (1 - p_true) / 9
    outputs += (outputs == 0) * rest[:, None]
    return {"outputs": outputs, "labels": labels, "members": members}


def _npz(tmp_path, name: str, arrays: dict[str, np.ndarray]):
    path = tmp_path / f"{name}.npz"
    np.savez(path, **arrays)
    return path


def _evaluate(tmp_path, name, arrays, *flags: str) -> int:
    return main(["evaluate", str(_npz(tmp_path, name, arrays)), "--attacks", "loss",
                 "--out", str(tmp_path / name), *flags])  # fmt: skip


def test_a_planted_leak_fails_the_gate_with_its_status_after_writing_the_files(tmp_path, capsys):
    assert _evaluate(tmp_path, "leaky", _outputs(0.45), "--fail-on", "high") == GATE_FAILED
    err = capsys.readouterr().err
    assert "gate FAILED" in err and "--fail-on high" in err
    results = json.loads((tmp_path / "leaky" / "results.json").read_text())
    assert results["verdict"]["level"] in ("high", "severe")
    assert (tmp_path / "leaky" / "report.html").is_file()


def test_a_target_that_leaks_nothing_passes_the_gate(tmp_path, capsys):
    assert _evaluate(tmp_path, "quiet", _outputs(0.0), "--fail-on", "high") == 0
    out = capsys.readouterr().out
    assert "gate passed" in out and "rules high out" in out


def test_the_gate_counts_a_verdict_of_at_least_a_level(tmp_path):
    """A verdict at or above the gate's level fails it, whichever level is asked."""
    leaky = miaudit.evaluate(**_outputs(0.45), attacks=["loss"])
    for level in ("low", "moderate", "high"):
        assert leaky.gate(level).outcome == "failed", level
    assert leaky.level in ("high", "severe")


def test_an_evaluation_too_small_to_rule_the_level_out_neither_passes_nor_crashes(tmp_path, capsys):
    """A real audit of 40 members and 40 non-members: no attack could show "severe" with
    so few, so the gate says the level is undecided (status 4) and how many records
    would decide it; the files are written."""
    code = main([
        "audit", "--dataset", "digits", "--target-size", "40", "--shadows", "1",
        "--model", "logistic-regression", "--attacks", "loss", "--no-job-cache",
        "--out", str(tmp_path / "small"), "--fail-on", "severe", "--quiet",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == GATE_UNDECIDED, err
    assert "gate UNDECIDED" in err and "cannot rule out severe" in err
    assert "non-members would decide it: evaluate more records" in err
    assert (tmp_path / "small" / "results.json").is_file()


def test_observed_rates_that_reach_the_level_unconfirmed_are_undecided():
    """Rates that reach a level without the confidence to show it leave it open: 15 of
    3,000 members stand out above every non-member but one (a likelihood ratio of 15 at
    one false positive), far too few to show "high" with 95 % confidence."""
    rng = np.random.default_rng(1)
    n = 3000
    labels = rng.integers(0, 10, 2 * n)
    members = np.r_[np.ones(n, np.int8), np.zeros(n, np.int8)]
    p_true = rng.uniform(0.2, 0.5, 2 * n)
    p_true[:15] = 0.95  # members the model is sure of
    p_true[n] = 0.99  # and one non-member above them all
    outputs = np.tile(((1 - p_true) / 9)[:, None], (1, 10))
    outputs[np.arange(2 * n), labels] = p_true
    result = miaudit.evaluate(outputs, labels, members, attacks=["loss"])
    outcome = result.gate("high")
    assert result.level in ("not detected", "low")
    assert outcome.outcome == "undecided" and outcome.status == GATE_UNDECIDED
    assert "observed rates reach it" in outcome.message
    assert outcome.nonmembers_needed is None or outcome.nonmembers_needed > n


def test_python_raises_the_documented_exception_after_writing(tmp_path):
    """``fail_on=`` of a user's memorising model: :class:`miaudit.GateFailed`, status 3,
    with the result, and the run folder written."""
    X, y = load_digits(return_X_y=True)
    mask = np.zeros(len(X), bool)
    mask[np.random.default_rng(0).permutation(len(X))[:400]] = True
    memorised = {row.tobytes(): label for row, label in zip(X[mask], y[mask], strict=True)}

    class Memoriser:
        """Certain of every record it was trained on, unsure of every other."""

        classes_ = np.arange(10)

        def predict_proba(self, rows):
            P = np.full((len(rows), 10), 0.1)
            for i, row in enumerate(np.asarray(rows, dtype=X.dtype)):
                if row.tobytes() in memorised:
                    P[i] = 1e-4
                    P[i, memorised[row.tobytes()]] = 1 - 9e-4
            return P

    with pytest.raises(GateFailed) as caught:
        miaudit.audit(
            target=Memoriser(), data=(X, y), members=mask, trainer=LogisticRegression(),
            shadows=2, attacks=["loss"], out=tmp_path / "run", fail_on="moderate",
            execution=Execution(job_cache=False),
        )  # fmt: skip
    assert caught.value.status == GATE_FAILED
    assert caught.value.result.level in ("moderate", "high", "severe")
    assert "fail_on=moderate" in str(caught.value)
    assert (tmp_path / "run" / "results.json").is_file()
    assert miaudit.GateFailed is GateFailed


@pytest.mark.parametrize("level", ["not detected", "extreme", "High"])
def test_a_level_that_cannot_fail_is_refused_in_one_line_before_anything_runs(level):
    with pytest.raises(ConfigError, match="give one of low, moderate, high, severe"):
        miaudit.evaluate(**_outputs(0.0), fail_on=level)
    assert main(["evaluate", "missing.npz", "--fail-on", level]) == 2


def test_compare_fails_on_an_increase_beyond_noise_only(tmp_path, capsys):
    """The same records before and after: a model that leaks more fails the regression
    gate (status 3); one that leaks less passes it."""
    assert _evaluate(tmp_path, "before", _outputs(0.0)) == 0
    assert _evaluate(tmp_path, "after", _outputs(0.45)) == 0
    capsys.readouterr()
    worse = main(["compare", str(tmp_path / "before"), str(tmp_path / "after"), "--bootstrap",
                  "200", "--fail-on-increase", "--out", str(tmp_path / "c1")])  # fmt: skip
    err = capsys.readouterr().err
    assert worse == GATE_FAILED and "gate FAILED" in err and "beyond noise" in err
    assert (tmp_path / "c1" / "compare.json").is_file()
    better = main(["compare", str(tmp_path / "after"), str(tmp_path / "before"), "--bootstrap",
                   "200", "--fail-on-increase", "--out", str(tmp_path / "c2")])  # fmt: skip
    assert better == 0 and "gate passed" in capsys.readouterr().out
