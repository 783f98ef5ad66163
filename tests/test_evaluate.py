"""evaluate(): the attacks on arrays computed elsewhere, and an audit's own arrays given back."""

from __future__ import annotations

import json

import numpy as np
import pytest

import miaudit
from miaudit.attacks.registry import ATTACKS
from miaudit.cli import main
from miaudit.errors import ConfigError
from miaudit.jobs import Execution
from miaudit.splits import balanced_memberships

FAST = {"model": "mlp", "epochs": 25, "batch_size": 32, "lr": 0.003}


@pytest.mark.parametrize(
    "case",
    [
        # Every attack that needs no target to ask (boundary does): online shadows,
        # LiRA's extra queries, robustness's copies, QMIA's public records.
        {"target_size": 150, "shadows": 8, "seed": 3,
         "attacks": {"run": [n for n in ATTACKS if n != "boundary"], "lira": {"queries": 2},
                     "robustness": {"copies": 2}, "qmia": {"public": 500}}},
        # The default attacks: disjoint shadows, RMIA-offline's calibration records.
        {"target_size": 150, "shadows": 4, "seed": 5, "fprs": [0.02]},
        # Three queries per record for every attack that averages over them: the
        # variants of the calibration records (offline) and of the population (online).
        {"target_size": 150, "shadows": 4, "seed": 5,
         "attacks": {"run": ["default", "loss-class", "lira-offline"], "queries": 3}},
        {"target_size": 150, "shadows": 6, "seed": 4,
         "attacks": {"run": ["lira", "rmia", "loss", "mentr-class"], "queries": 3}},
        # The recipe game, scikit-learn reference models.
        {"target_size": 200, "shadows": 4, "seed": 2, "game": "recipe",
         "target": {"model": "logistic-regression"},
         "attacks": ["shokri", "loss", "lira", "lira-offline", "rmia", "rmia-offline", "gap"]},
    ],
)  # fmt: skip
def test_evaluate_on_an_audits_arrays_gives_its_metrics_bit_for_bit(case, tmp_path):
    settings = {"dataset": "digits", "target": FAST, **case}
    audit = miaudit.audit(settings, execution=Execution(job_cache=False))
    expected = audit.to_dict()
    from_file = miaudit.evaluate(audit.save_outputs(tmp_path / "outputs.npz"))
    from_arrays = miaudit.evaluate(audit.outputs(), **audit.evaluate_settings())
    for result in (from_file, from_arrays):
        got = result.to_dict()
        assert list(got["attacks"]) == list(expected["attacks"])
        assert got["attacks"] == expected["attacks"]
        # The same records, ranks and scores; outputs alone carry no record's values.
        assert got["most_exposed"] == _without_values(expected["most_exposed"])
        for name, scores in audit.scores.items():
            assert np.array_equal(result.scores[name], scores)


def test_attacks_that_ask_the_target_are_not_replayed_from_outputs(tmp_path):
    audit = miaudit.audit(
        dataset="digits", target=FAST, target_size=150, shadows=2, seed=1,
        attacks={"run": ["gap", "boundary"], "boundary": {"directions": 2, "steps": 4}},
    )  # fmt: skip
    assert audit.evaluate_settings()["attacks"] == ["gap"]
    again = miaudit.evaluate(audit.outputs(), **audit.evaluate_settings())
    assert list(again.attacks) == ["gap"]
    with pytest.raises(ConfigError, match="boundary needs the target itself"):
        miaudit.evaluate(audit.outputs(), attacks=["boundary"])


def _arrays(rng, n=400, classes=3, models=4):
    """Outputs of an imaginary leaky model: members get more confident true-class answers."""
    labels = rng.integers(0, classes, n)
    members = np.r_[np.ones(n // 2, np.int8), np.zeros(n - n // 2, np.int8)]
    onehot = np.eye(classes)[labels]

    def probs(boost):
        boost = np.asarray(boost, dtype=float)
        logits = rng.normal(size=(*boost.shape, classes)) + (1.0 + boost)[..., None] * onehot
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    # Each record IN for half of the reference models, as online LiRA and RMIA draw them.
    ref_members = balanced_memberships(models, n, rng)
    return probs(2.0 * members), labels, members, probs(2.0 * ref_members), ref_members


def test_evaluate_runs_what_the_arrays_allow_and_refuses_the_rest(tmp_path):
    rng = np.random.default_rng(0)
    outputs, labels, members, reference, ref_members = _arrays(rng)
    only = miaudit.evaluate(outputs, labels, members, bootstrap=50)
    assert list(only.attacks) == ["gap"]
    with pytest.raises(ConfigError, match=r"lira needs reference_outputs and reference_members"):
        miaudit.evaluate(outputs, labels, members, attacks=["lira"])
    online = miaudit.evaluate(outputs, labels, members, reference_outputs=reference,
                              reference_members=ref_members, bootstrap=50)  # fmt: skip
    assert {"lira", "lira-offline", "gap"} <= set(online.attacks)
    assert "rmia" not in online.attacks  # no population records
    assert online.attacks["lira"].auc > 0.8  # members really are more confident here
    # More queries than the arrays hold variants for: refused, saying which arrays.
    with pytest.raises(ConfigError, match=r"lira needs variant_outputs and reference_varia"):
        miaudit.evaluate(outputs, labels, members, reference_outputs=reference,
                         reference_members=ref_members, attacks=["lira"],
                         attack_settings={"queries": 3})  # fmt: skip
    # Logits: the same result as their softmax.
    logits = np.log(outputs) + 3.0
    same = miaudit.evaluate(logits, labels, members, logits=True, attacks=["gap"], bootstrap=50)
    assert same.attacks["gap"].auc == only.attacks["gap"].auc
    # Results written like an audit's, with a config.json that evaluate takes back.
    miaudit.evaluate(outputs, labels, members, bootstrap=50, out=tmp_path / "r")
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["evaluate"]["attacks"] == ["gap"]
    assert (tmp_path / "r" / "report.html").read_text().count("outputs computed elsewhere") == 1


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"outputs": np.full((4, 3), 0.5)}, r"sums to 1.5, not 1: pass logits=True"),
        ({"labels": np.array([0, 1, 2])}, r"labels: shape \(3,\); expected \(4,\)"),
        ({"labels": np.array([0, 1, 2, 3])}, "classes 0 .. 3, but the outputs have 3 columns"),
        ({"members": np.array([1, 1, 1, 1])}, "give both members"),
        ({"members": np.array([2, 0, 1, 0])}, "give 1 .* for members"),
        ({"outputs": np.full((4, 3), np.nan)}, "NaN or infinite"),
        ({"reference_outputs": np.full((2, 4, 3), 1 / 3)}, "needs reference_members too"),
        ({"reference_outputs": np.full((2, 5, 3), 1 / 3), "reference_members": np.zeros((2, 5))},
         r"reference_outputs: shape \(2, 5, 3\); expected \(\?, 4, 3\)"),
        ({"population_outputs": np.full((2, 3), 1 / 3)}, "needs population_labels"),
        ({"bogus": 1}, "unknown array 'bogus'"),
    ],
)  # fmt: skip
def test_bad_arrays_are_refused_naming_them(change, match):
    arrays = {
        "outputs": np.full((4, 3), 1 / 3), "labels": np.array([0, 1, 2, 0]),
        "members": np.array([1, 0, 1, 0]), **change,
    }  # fmt: skip
    with pytest.raises(ConfigError, match=match) as caught:
        miaudit.evaluate(arrays)
    assert "\n" not in str(caught.value)


def test_evaluate_command_line(tmp_path, capsys):
    rng = np.random.default_rng(1)
    outputs, labels, members, reference, ref_members = _arrays(rng)
    np.savez(tmp_path / "mine.npz", outputs=np.log(outputs), labels=labels, members=members,
             reference_outputs=np.log(reference), reference_members=ref_members)  # fmt: skip
    code = main(["evaluate", str(tmp_path / "mine.npz"), "--logits", "--attacks", "lira,gap",
                 "--bootstrap", "50", "--out", str(tmp_path / "r")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert list(results["attacks"]) == ["lira", "gap"]
    assert results["target"]["n_train"] == int(members.sum())
    assert results["attacks"]["lira"]["variance"] == "global"
    code = main(["evaluate", str(tmp_path / "mine.npz"), "--logits", "--attacks", "lira",
                 "--attack-setting", "lira.variance=per-record", "--bootstrap", "0",
                 "--out", str(tmp_path / "p")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "p" / "results.json").read_text())
    assert results["attacks"]["lira"]["variance"] == "per-record"
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "mine.npz"), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "pass logits=True (--logits)" in err and err.count("\n") == 1
    assert not (tmp_path / "s").exists()


def test_evaluate_asks_for_as_many_queries_as_told(tmp_path):
    # An audit that asked 3 queries of every attack: its file gives them back, and a
    # later evaluation may ask fewer of all the attacks at once.
    audit = miaudit.audit(
        dataset="digits", target_size=150, shadows=6, seed=4, target=FAST,
        attacks={"run": ["lira", "rmia", "loss"], "queries": 3},
        execution=Execution(job_cache=False),
    )  # fmt: skip
    path = audit.save_outputs(tmp_path / "outputs.npz")
    again = miaudit.evaluate(path)
    assert {n: again.attack_notes[n]["queries_per_record"] for n in ("lira", "rmia", "loss")} == {
        "lira": 3,
        "rmia": 3,
        "loss": 3,
    }
    fewer = miaudit.evaluate(path, attack_settings={"queries": 2, "lira": {"queries": 1}})
    assert fewer.attack_notes["rmia"]["queries_per_record"] == 2
    assert fewer.attack_notes["loss"]["queries_per_record"] == 2
    assert fewer.attack_notes["lira"]["queries_per_record"] == 1
    # A file without word on queries (arrays made elsewhere): all the variants it holds.
    arrays = audit.outputs()
    plain = miaudit.evaluate(arrays, attacks=["lira"])
    assert plain.attack_notes["lira"]["queries_per_record"] == 3


def _without_values(exposed: dict) -> dict:
    """``most_exposed`` without the decoded values only an audit of the data has."""
    return {**exposed, "records": [
        {k: v for k, v in r.items() if k not in ("values", "image")} for r in exposed["records"]
    ]}  # fmt: skip
