"""evaluate(): the attacks on arrays computed elsewhere, and an audit's own arrays given back."""

from __future__ import annotations

import json

import numpy as np
import pytest

import miaudit
from miaudit.attacks.registry import ATTACKS
from miaudit.attacks.threshold import THRESHOLD_ATTACKS
from miaudit.cli import main
from miaudit.errors import ConfigError
from miaudit.jobs import Execution
from miaudit.splits import balanced_memberships

THRESHOLD_NAMES = [a.name for a in THRESHOLD_ATTACKS]

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
    # Outputs alone: every signal attack (its ROC needs no threshold) and the gap attack.
    shadowless = [n for n in ATTACKS if n in THRESHOLD_NAMES or n == "gap"]
    assert list(only.attacks) == shadowless
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
    assert config["evaluate"]["attacks"] == shadowless
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


def test_members_as_booleans_or_0_1_numbers_give_the_same_result():
    rng = np.random.default_rng(2)
    outputs, labels, members, reference, ref_members = _arrays(rng)
    results = [
        miaudit.evaluate(outputs, labels, members.astype(kind), reference_outputs=reference,
                         reference_members=ref_members.astype(kind), bootstrap=20).to_dict()
        for kind in (bool, np.int64, np.float64, np.float32)
    ]  # fmt: skip
    for result in results[1:]:
        assert result["attacks"] == results[0]["attacks"]
        assert result["most_exposed"] == results[0]["most_exposed"]
    as_list = miaudit.evaluate(outputs, labels, members.astype(float).tolist(), bootstrap=20)
    assert as_list.member.tolist() == members.tolist()


@pytest.mark.parametrize(
    ("members", "match"),
    [
        (np.array([1.0, 0.0, 0.5, 0.0]), r"members: entry 2 is 0.5; give 1 \(or True\)"),
        (np.array([1.0, np.nan, 1.0, 0.0]), "members: entry 1 is NaN; give 1"),
        (np.array([1, "0", 1, 0], dtype=object), "members: mixes int and str values; give 1"),
        (np.array(["1", "0", "1", "0"]), "members: text values; give 1"),
        (np.array([True, False, True]), r"members: shape \(3,\); expected \(4,\)"),
    ],
)
def test_members_that_are_no_mask_are_one_line(members, match):
    arrays = {"outputs": np.full((4, 3), 1 / 3), "labels": np.array([0, 1, 2, 0]),
              "members": members}  # fmt: skip
    with pytest.raises(ConfigError, match=match) as caught:
        miaudit.evaluate(arrays)
    assert "\n" not in str(caught.value)


# --------------------------------------------------------------------------- outputs alone


def _planted(seed: int, n: int = 2000, classes: int = 5, leak: float = 2.0):
    """Outputs of a model far surer of its members (``leak``) than of other records."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    members = np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)]
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), labels] += 1.0 + leak * members
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True), labels, members


def test_outputs_alone_run_every_signal_attack_at_full_strength(tmp_path):
    from sklearn.metrics import roc_auc_score

    from miaudit.metrics import OPTIMISTIC_THRESHOLD
    from miaudit.report.findings import LEVELS

    outputs, labels, members = _planted(0)
    result = miaudit.evaluate(outputs, labels, members, bootstrap=50, out=tmp_path / "r")
    # The loss attack's AUC is that of the negative loss itself, computed independently.
    neg_loss = np.log(outputs[np.arange(len(labels)), labels])
    assert result.attacks["loss"].auc == pytest.approx(roc_auc_score(members, neg_loss), abs=1e-9)
    assert result.attacks["loss"].auc > 0.8
    level = result.verdict().level
    assert LEVELS.index(level) > LEVELS.index("low"), result.verdict().sentence
    d = json.loads((tmp_path / "r" / "results.json").read_text())
    assert d["verdict"]["level"] == level
    # No shadows: the decision threshold comes from the evaluated records, and says so.
    for name in THRESHOLD_NAMES:
        assert d["attacks"][name]["threshold_from"] == OPTIMISTIC_THRESHOLD
    assert "threshold_from" not in d["attacks"]["gap"]
    # Every attack that could not run is listed with what it needs, in the files and
    # the page, and the advice never says all is well while they are missing.
    skipped = d["skipped_attacks"]
    assert set(skipped) == set(ATTACKS) - set(result.attacks)
    assert skipped["lira"] == "reference_outputs and reference_members"
    assert skipped["shokri"] == "shadow_outputs, shadow_labels and shadow_members"
    page = (tmp_path / "r" / "report.html").read_text()
    assert "Attacks not run." in page and "lira: needs reference_outputs" in page
    assert "Nothing measured in this audit calls for a change" not in page
    # The advice names the skipped attacks that weaken the verdict, not the label-only
    # ones (boundary asks the target itself and is never the strongest).
    from miaudit.report.findings import recommendations
    from miaudit.report.run import load_run

    run = load_run(tmp_path / "r")
    (skip,) = [a for a in recommendations(run, result.verdict()) if a.tags == ("skipped",)]
    assert "lira" in skip.action and "shokri" in skip.action and "boundary" not in skip.action
    assert "boundary" in skipped and "did not run" in result.verdict().weakened[-1]
    assert "boundary" not in result.verdict().weakened[-1]
    assert "optimistic" in page
    # Asked for by name, a signal attack runs on outputs alone.
    loss = miaudit.evaluate(outputs, labels, members, attacks=["loss"], bootstrap=0)
    assert loss.attacks["loss"].auc == result.attacks["loss"].auc


def test_outputs_alone_of_a_model_that_never_saw_the_records_report_chance():
    from miaudit.report.findings import LEVELS

    # Both halves unseen: "members" are no more familiar to the model than the others.
    outputs, labels, members = _planted(1, n=3000, leak=0.0)
    result = miaudit.evaluate(outputs, labels, members, bootstrap=50)
    found = result.verdict()
    assert found.level == "not detected", found.sentence
    assert max(m.auc for m in result.attacks.values()) < 0.56
    assert LEVELS.index(found.level) == 0


def test_without_shadows_the_class_variants_centre_each_class_without_reading_membership():
    outputs, labels, members = _planted(2)
    a = miaudit.evaluate(outputs, labels, members, attacks=["loss-class"], bootstrap=0)
    flipped = miaudit.evaluate(outputs, labels, 1 - members, attacks=["loss-class"], bootstrap=0)
    # The scores do not depend on who is a member (only the metrics do).
    assert np.array_equal(a.scores["loss-class"], flipped.scores["loss-class"])
    neg_loss = np.log(outputs[np.arange(len(labels)), labels])
    centred = neg_loss - np.array([np.median(neg_loss[labels == c]) for c in range(5)])[labels]
    assert np.allclose(a.scores["loss-class"], centred)


def test_the_leakier_of_two_real_models_never_gets_the_lower_level():
    """The issue's case: a random forest that leaks more (higher AUC and TPR at 1 % FPR)
    than a gradient-boosted model on the same split of a real data set, with fewer than
    1,000 non-members, must not get the lower level. The models are bench/verdict_levels.py's,
    smaller."""
    import importlib.util
    from pathlib import Path

    from miaudit.report.findings import LEVELS

    path = Path(__file__).resolve().parents[1] / "bench" / "verdict_levels.py"
    spec = importlib.util.spec_from_file_location("verdict_levels", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # 2,400 records: 1,800 members, 600 non-members.
    y, train, outputs = bench.two_models(records=2400, trees=60, boosting_rounds=20)
    assert (~train).sum() == 600
    found = {}
    for name, P in outputs.items():
        result = miaudit.evaluate(P, y, train, bootstrap=0)
        best = result.attacks[result.strongest]
        found[name] = (best.auc, best.tpr_at_fpr["0.01"], result.verdict())
    (auc_f, tpr_f, forest), (auc_b, tpr_b, boosting) = (
        found["random forest"],
        found["gradient boosting"],
    )
    assert auc_f > auc_b and tpr_f > tpr_b  # the forest is the leakier
    assert LEVELS.index(forest.level) >= LEVELS.index(boosting.level), (
        forest.sentence,
        boosting.sentence,
    )
    assert forest.ratio > boosting.ratio
