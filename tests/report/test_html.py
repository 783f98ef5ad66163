"""The report when no attack beats chance, and when one does only at its own threshold."""

from __future__ import annotations


def _outputs(leak: float, n: int = 4000, C: int = 4, seed: int = 0):
    """Target outputs on n records, half members; members' true class raised by ``leak``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    member = rng.random(n) < 0.5
    logits = rng.normal(0, 1, (n, C))
    logits[np.arange(n), y] += 1.0 + leak * member
    P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return P, y, member


def test_the_report_says_when_no_attack_is_distinguishable_from_chance(tmp_path):
    import json

    import miaudit

    # Outputs alone with no leak in them: every attack is at chance.
    result = miaudit.evaluate(*_outputs(leak=0.0), out=tmp_path / "none")
    page = (tmp_path / "none" / "report.html").read_text()
    ranking = json.loads((tmp_path / "none" / "results.json").read_text())["ranking"]
    assert ranking["distinguishable_from_chance"] is False
    assert "No attack is distinguishable from chance" in page
    assert "no attack is distinguishable from chance" in result.summary()
    # A leak the gap attack sees at its own threshold (far above 1 % FPR): not "chance".
    leaky = miaudit.evaluate(*_outputs(leak=3.0), attacks=["gap"], out=tmp_path / "leaky")
    page = (tmp_path / "leaky" / "report.html").read_text()
    ranking = leaky.ranking()
    assert ranking["distinguishable_from_chance"] is True and ranking["above_chance"] == []
    assert ranking["above_chance_at_threshold"] == ["gap"]
    assert "No attack is distinguishable from chance" not in page
    assert "beat chance only at their own decision threshold" in page
