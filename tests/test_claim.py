"""Checking a privacy claim (miaudit.claim, --game canaries): the one-run bound's
formula by hand, and DP-SGD targets whose empirical ε stays below what they claim,
where the same audit of a model without noise refutes the claim."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.special import ndtr

import miaudit
from miaudit import claim
from miaudit.errors import ConfigError, DataError
from miaudit.jobs import Execution
from miaudit.metrics import epsilon_lower_bound_cp
from miaudit.models import dp


def test_the_one_run_p_value_matches_a_hand_computed_example():
    # m = 10 canaries, 4 guesses, all right, eps = ln 3: q = 3/4.
    # delta = 0: P[Bin(4, 3/4) >= 4] = (3/4)^4.
    assert claim.one_run_p_value(10, 4, 4, math.log(3), 0.0) == pytest.approx(0.31640625)
    # delta = 1e-3: + 2 m delta max_i P[4 - i <= Bin < 4] / i; the max is at i = 1,
    # P[Bin = 3] = 4 (3/4)^3 (1/4) = 0.421875: 0.31640625 + 20e-3 * 0.421875.
    assert claim.one_run_p_value(10, 4, 4, math.log(3), 1e-3) == pytest.approx(0.32484375)
    # Three right of four, delta = 0: P[Bin(4, 3/4) >= 3] = 0.421875 + 0.31640625.
    assert claim.one_run_p_value(10, 4, 3, math.log(3), 0.0) == pytest.approx(0.73828125)


def test_the_one_run_bound_is_the_largest_epsilon_rejected():
    # All r guesses right and delta = 0: the p-value is q^r, so the bound solves
    # q^r = significance, i.e. eps = logit(significance^(1/r)).
    for r in (10, 100, 1000):
        q = 0.05 ** (1 / r)
        expected = math.log(q / (1 - q))
        assert claim.one_run_epsilon(r, r, r, 0.0) == pytest.approx(expected, abs=2e-4)
    # Half right is chance: nothing is rejected.
    assert claim.one_run_epsilon(1000, 200, 100, 1e-5) == 0.0
    # More canaries at the same accuracy bound more; delta only weakens a bound.
    assert claim.one_run_epsilon(1000, 200, 180, 0) < claim.one_run_epsilon(5000, 2000, 1800, 0)
    assert claim.one_run_epsilon(1000, 200, 180, 1e-3) < claim.one_run_epsilon(1000, 200, 180, 0)


def test_the_audit_guesses_the_extremes_and_corrects_for_the_guesses_tried():
    rng = np.random.default_rng(0)
    member = rng.random(1000) < 0.5
    scores = member + rng.normal(0, 0.3, 1000)
    out = claim.one_run_audit(scores, member, 1e-5)
    best = next(t for t in out["tried"] if t["guesses"] == out["guesses"])
    k = best["k"]
    order = np.argsort(scores)
    assert best["correct"] == member[order[-k:]].sum() + (~member[order[:k]]).sum()
    # Each k is tested at 0.05 / (number of k): the same counts alone would bound more.
    alone = claim.one_run_epsilon(1000, 2 * k, best["correct"], 1e-5)
    assert 0 < out["epsilon"] < alone <= out["ceiling"] + 1
    # Scores that carry nothing bound nothing.
    assert claim.one_run_audit(rng.normal(size=1000), member, 1e-5)["epsilon"] == 0.0


def test_gdp_and_clopper_pearson():
    # AUC of mu-GDP is Phi(mu / sqrt 2); its epsilon at delta solves the trade-off.
    mu = claim.gdp_mu(ndtr(1.0 / math.sqrt(2)))
    assert mu == pytest.approx(1.0, abs=1e-9)
    eps = claim.gdp_epsilon(1.0, 1e-5)
    delta = ndtr(-eps / mu + mu / 2) - math.exp(eps) * ndtr(-eps / mu - mu / 2)
    assert delta == pytest.approx(1e-5, rel=1e-3) and 3 < eps < 6
    assert claim.gdp_epsilon(claim.gdp_mu(0.4), 1e-5) == 0.0
    # The Clopper-Pearson audit is the bound of its best operating point. Non-members
    # score i/499, members 0.501 + 1.5 i/499 (i = 0..499; no ties). At 1 % FPR the
    # operating point passes 5 non-members and every member above the 6th highest
    # non-member, 494/499: i >= 163, 337 of them; at 10 %, 50 non-members and the
    # members above 449/499: i >= 133, 367.
    member = np.r_[np.ones(500, bool), np.zeros(500, bool)]
    scores = np.r_[0.501 + np.linspace(0, 1.5, 500), np.linspace(0, 1, 500)]
    out = claim.clopper_pearson_audit(scores, member, [0.01, 0.1], 0.0)
    level = 1 - 0.05 / 4  # two FPRs, each bound two-sided
    at_1 = epsilon_lower_bound_cp(337, 500, 5, 500, level)
    at_10 = epsilon_lower_bound_cp(367, 500, 50, 500, level)
    assert out["epsilon"] == pytest.approx(max(at_1, at_10)) and out["epsilon"] > 1
    assert out["fpr"] == ("0.01" if at_1 > at_10 else "0.1")


CANARY_AUDIT = {
    "dataset": "census-occupation",
    "target_size": 2000,
    "shadows": 1,
    "game": "canaries",
    "canaries": 1000,
    "canary_kind": "mislabelled",
    "attacks": {"run": ["loss"]},
    "bootstrap": 0,
}


def _canary_bounds(dp_epsilon: float | None, seed: int) -> dict:
    target = {"epochs": 30}
    if dp_epsilon is not None:
        target.update(dp_epsilon=dp_epsilon, dp_delta=1e-5)
    result = miaudit.audit(
        **CANARY_AUDIT, target=target, seed=seed, execution=Execution(job_cache=False)
    )
    return result.privacy_claim


@pytest.mark.slow
@pytest.mark.parametrize("epsilon", [1.0, 4.0])
def test_a_dp_sgd_targets_empirical_epsilon_never_exceeds_its_claim(epsilon):
    for seed in (0, 1):
        found = _canary_bounds(epsilon, seed)
        assert found["claimed"]["epsilon"] == epsilon and found["consistent"]
        loss = found["attacks"]["loss"]
        assert loss["one_run"]["epsilon"] <= epsilon
        assert loss["clopper_pearson"]["epsilon"] <= epsilon


@pytest.mark.slow
def test_without_dp_or_without_its_noise_the_canaries_refute_epsilon_one(monkeypatch):
    # Measured: 3.98 (one run, 399 of 400 guesses right) and 2.84 (Clopper-Pearson).
    plain = _canary_bounds(None, 0)["attacks"]["loss"]
    assert plain["one_run"]["epsilon"] > 3 and plain["clopper_pearson"]["epsilon"] > 2
    # The same DP-SGD training with its noise switched off: the audit says the claim fails.
    planned = dp.plan
    monkeypatch.setattr(
        dp, "plan", lambda r, n: dataclasses.replace(planned(r, n), noise_multiplier=0.0)
    )
    found = _canary_bounds(1.0, 0)
    assert not found["consistent"] and found["lower_bound"]["epsilon"] > 1.5


def test_the_canary_game_writes_its_claim_and_canaries(tmp_path):
    result = miaudit.audit(
        dataset="digits", target_size=300, shadows=2, game="canaries", canaries=200,
        target={"epochs": 5, "dp_epsilon": 8.0}, attacks={"run": ["loss", "lira-offline"]},
        bootstrap=0, execution=Execution(job_cache=False),
    )  # fmt: skip
    d = result.to_dict()
    assert d["target"]["canaries"]["count"] == 200 == len(result.member)
    assert d["target"]["n_train"] == 300 + int(result.member.sum())
    claimed = d["privacy_claim"]["claimed"]
    assert claimed["epsilon"] == 8.0 and claimed["delta"] == 1 / (2 * d["target"]["n_train"])
    assert set(d["privacy_claim"]["attacks"]) == {"loss", "lira-offline"}
    for entry in d["privacy_claim"]["attacks"].values():
        assert set(entry) == {"one_run", "clopper_pearson", "gdp"}
        assert entry["one_run"]["canaries"] == 200
    json.dumps(d)  # results.json can hold it


def test_a_shokri_audit_has_no_privacy_claim_unless_its_target_makes_one():
    settings = dict(dataset="digits", target_size=200, shadows=2, bootstrap=0,
                    attacks={"run": ["loss"]}, execution=Execution(job_cache=False))  # fmt: skip
    assert miaudit.audit(**settings, target={"epochs": 2}).privacy_claim is None
    found = miaudit.audit(**settings, target={"epochs": 2, "dp_epsilon": 2.0}).privacy_claim
    assert "one_run" not in found["attacks"]["loss"]  # a balanced split is not the canary game
    assert found["claimed"]["epsilon"] == 2.0


@pytest.mark.parametrize(
    ("settings", "error", "says"),
    [
        ({"game": "canaries", "canaries": 2000}, DataError, "use canaries=449 or less"),
        ({"canaries": 100}, ConfigError, "add game=canaries"),
        ({"game": "canaries", "save_target": "x"}, ConfigError, "trains its own target"),
        ({"game": "canaries", "canaries": 1}, ConfigError, "canaries"),
    ],
)
def test_bad_canary_settings_are_one_line(settings, error, says):
    with pytest.raises(error) as err:
        miaudit.audit(dataset="digits", shadows=2, **settings,
                      execution=Execution(job_cache=False))  # fmt: skip
    assert says in str(err.value) and "\n" not in str(err.value)


def test_bad_canary_flags_exit_2(capsys):
    from miaudit.cli import main

    code = main(["audit", "--dataset", "digits", "--game", "canaries", "--canaries", "5000"])
    err = capsys.readouterr().err
    assert code == 2 and "--canaries 5000" in err and "Traceback" not in err
