"""The paper's experiments (``miaudit experiment``): every quick sweep writes its table,
plot, summary and page, with the findings that are robust at that size; reruns train
nothing; bad names and sizes are one line."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser

import pytest

from miaudit.cli import main
from miaudit.errors import ConfigError, DataError
from miaudit.experiments import EXPERIMENTS, get_experiment
from miaudit.experiments.base import Point, check_sizes


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """``miaudit experiment all --quick``, run once for every test here."""
    out = tmp_path_factory.mktemp("experiments")
    assert main(["experiment", "all", "--quick", "--out", str(out)]) == 0
    return out


def _table(out, name):
    return json.loads((out / name / "table.json").read_text())


@pytest.mark.slow
def test_every_experiment_writes_its_table_plot_summary_and_page(quick):
    for name, exp in EXPERIMENTS.items():
        folder = quick / name
        table = _table(quick, name)
        rows = table["rows"]
        assert [r["point"] for r in rows] == [p.label for p in exp.points(True)]
        with open(folder / "table.csv") as f:
            assert [r["point"] for r in csv.DictReader(f)] == [r["point"] for r in rows]
        assert (folder / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in (folder / "plot.svg").read_text()
        summary = (folder / "summary.md").read_text()
        assert table["finding"]["sentence"] in summary and "## The paper" in summary
        page = (folder / "report.html").read_text()
        HTMLParser().feed(page)  # parses
        assert "<svg" in page  # inline, and nothing fetched from elsewhere:
        assert not any(ref in page for ref in ('src="http', 'href="http', "url(http", "<link"))
    index = (quick / "index.html").read_text()
    assert all(f"{name}/report.html" in index for name in EXPERIMENTS)


@pytest.mark.slow
def test_quick_findings_that_are_robust_at_that_size(quick):
    # shadows: 16 shadows are not worse than 1 by more than 1's interval.
    shadows = _table(quick, "shadows")["rows"]
    assert shadows[-1]["tpr_at_1pct_fpr"] >= shadows[0]["tpr_ci_low"]
    # classes: more classes leak more, in both series.
    classes = _table(quick, "classes")["rows"]
    for series in ("census", "purchase-style"):
        part = sorted((r for r in classes if r["series"] == series), key=lambda r: r["x"])
        assert part[-1]["auc"] > part[0]["auc"]
    # overfitting: the gap and the attack rise together.
    over = _table(quick, "overfitting")["rows"]
    assert over[-1]["gap"] > over[0]["gap"] and over[-1]["auc"] > over[0]["auc"]
    # mitigations: labels only leave no more than the full output allows; DP-SGD at
    # epsilon 1 leaks less than no defence, and its claim is checked.
    mit = {r["point"]: r for r in _table(quick, "mitigations")["rows"]}
    assert mit["label-only"]["best_auc"] <= mit["none"]["best_auc"]
    assert mit["DP-SGD ε=1"]["auc"] < mit["none"]["auc"]
    assert mit["DP-SGD ε=1"]["claimed_epsilon"] == 1.0
    assert mit["DP-SGD ε=1"]["epsilon_lower_bound"] <= 1.0
    # synthesis: hill climbing spent queries on every synthetic record.
    synth = {r["point"]: r for r in _table(quick, "synthesis")["rows"]}
    assert synth["synthetic"]["queries_per_record"] > 1


@pytest.mark.slow
def test_a_rerun_trains_nothing(quick, capsys):
    before = _table(quick, "shadows")
    assert main(["experiment", "shadows", "--quick", "--out", str(quick / "again")]) == 0
    again = _table(quick / "again", "shadows")
    facts = ("seconds", "models_trained")
    for a, b in zip(before["rows"], again["rows"], strict=True):
        assert {k: v for k, v in a.items() if k not in facts} == {
            k: v for k, v in b.items() if k not in facts
        }
        assert b["models_trained"] == 0


def test_an_unknown_experiment_names_the_nearest(capsys):
    with pytest.raises(ConfigError, match="did you mean 'shadows'"):
        get_experiment("shadow", EXPERIMENTS)
    assert main(["experiment", "mitigation", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'mitigations'" in err and "Traceback" not in err


def test_a_sweep_point_the_data_cannot_supply_stops_before_training():
    exp = EXPERIMENTS["size"]
    points = [Point("2,500", 2500, {"dataset": "digits", "target_size": 2500})]
    with pytest.raises(DataError) as err:
        check_sizes(exp, points)
    message = str(err.value)
    assert "point '2,500'" in message and "at most 449 fit" in message
