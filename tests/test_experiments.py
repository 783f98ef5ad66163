"""The paper's experiments (``miaudit experiment``): every quick sweep writes its table,
plot, summary and page, with the findings that are robust at that size; reruns train
nothing; bad names and sizes are one line. ``all`` runs every experiment this machine can
and lists the others with why (exit status 1); the ones that need Debian's
``dataset-fashion-mnist`` skip here where it is absent, saying so."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser

import pytest

from miaudit.cli import main
from miaudit.data.builtin import FASHION_ENV
from miaudit.errors import ConfigError, DataError
from miaudit.experiments import EXPERIMENTS, Experiment, get_experiment
from miaudit.experiments.base import Point, check_sizes


def fashion_mnist_missing() -> str | None:
    """Why Fashion-MNIST cannot be used here, naming the Debian package (``None``: it can).
    Checked on disk at each call, so ``$MIAUDIT_FASHION_MNIST_DIR`` counts."""
    from miaudit.data import list_datasets

    (info,) = [i for i in list_datasets() if i.name == "fashion-mnist"]
    if info.installed:
        return None
    return f"Fashion-MNIST is not installed here (looked in {info.where}): {info.install}"


def _needs_fashion(exp: Experiment) -> bool:
    return any(p.settings.get("dataset") == "fashion-mnist" for p in exp.points(True))


#: Experiments this machine cannot run, and why (what ``all`` lists at its end).
MISSING = {
    name: why
    for name, exp in EXPERIMENTS.items()
    if _needs_fashion(exp) and (why := fashion_mnist_missing()) is not None
}


#: Every experiment, those this machine cannot run skipped with why.
EACH = [
    pytest.param(name, marks=pytest.mark.skip(reason=MISSING[name])) if name in MISSING else name
    for name in EXPERIMENTS
]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """``miaudit experiment all --quick``, run once for every test here: 0 when every
    experiment ran, 1 when some could not (their data not installed here)."""
    out = tmp_path_factory.mktemp("experiments")
    assert main(["experiment", "all", "--quick", "--out", str(out)]) == (1 if MISSING else 0)
    return out


def _table(out, name):
    return json.loads((out / name / "table.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", EACH)
def test_every_experiment_writes_its_table_plot_summary_and_page(quick, name):
    exp = EXPERIMENTS[name]
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
    assert f"{name}/report.html" in (quick / "index.html").read_text()


@pytest.mark.slow
def test_the_index_says_quick_and_lists_what_could_not_run(quick):
    index = (quick / "index.html").read_text()
    HTMLParser().feed(index)
    assert "miaudit experiment all --quick" in index
    for name in MISSING:
        assert f"{name}/report.html" not in index and not (quick / name).exists()
    assert ("Not run here" in index) == bool(MISSING)
    if MISSING:
        assert "dataset-fashion-mnist" in index


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


class _Tiny(Experiment):
    """A one-audit sweep of seconds: ``all``'s orchestration without the real sweeps."""

    name = "tiny"
    title = "A one-audit stand-in (digits)"
    paper = "None: a stand-in for the tests."

    def points(self, quick: bool) -> list[Point]:
        settings = {"dataset": "digits", "target_size": 100, "shadows": 1,
                    "target": {"epochs": 2}, "attacks": {"run": ["shokri"]}}  # fmt: skip
        return [Point("100", None, settings)]

    def finding(self, rows):
        return None, "a stand-in finds nothing."


def test_without_fashion_mnist_all_runs_the_rest_and_lists_what_it_could_not(
    tmp_path, monkeypatch, capsys
):
    # Fashion-MNIST absent, as on a machine without the Debian package, even where it is.
    monkeypatch.setenv(FASHION_ENV, str(tmp_path / "no-fashion"))
    (tmp_path / "no-fashion").mkdir()
    why = fashion_mnist_missing()
    assert why is not None and "dataset-fashion-mnist" in why
    # The image experiment first: stopping there would leave the other unrun.
    registry = {"size": EXPERIMENTS["size"], "tiny": _Tiny()}
    monkeypatch.setattr("miaudit.experiments.EXPERIMENTS", registry)
    out = tmp_path / "out"
    assert main(["experiment", "all", "--quick", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "tiny: the paper's finding cannot tell" in captured.out
    lines = captured.err.splitlines()
    assert lines[0] == "miaudit: 1 of 2 experiments could not run here (exit status 1):"
    (size_line,) = lines[1:]
    assert size_line.startswith("miaudit:   size: data set 'fashion-mnist': not found")
    assert "apt-get install dataset-fashion-mnist" in size_line and "Traceback" not in captured.err
    assert (out / "tiny" / "report.html").is_file() and not (out / "size").exists()
    index = (out / "index.html").read_text()
    HTMLParser().feed(index)
    assert "<code>miaudit experiment all --quick</code>" in index and "1 of 2" in index
    assert "tiny/report.html" in index and "size/report.html" not in index
    assert "Not run here" in index and "dataset-fashion-mnist" in index


def test_one_experiment_that_cannot_run_is_the_commands_one_line_error(tmp_path, monkeypatch,
                                                                       capsys):  # fmt: skip
    monkeypatch.setenv(FASHION_ENV, str(tmp_path))
    assert main(["experiment", "size", "--quick", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install dataset-fashion-mnist" in err
    assert not (tmp_path / "out").exists()


def test_nothing_runnable_still_writes_the_index(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(FASHION_ENV, str(tmp_path))
    monkeypatch.setattr("miaudit.experiments.EXPERIMENTS", {"size": EXPERIMENTS["size"]})
    out = tmp_path / "out"
    assert main(["experiment", "all", "--out", str(out)]) == 1
    index = (out / "index.html").read_text()
    assert "0 of 1 experiments ran" in index and "the full versions" in index
    assert "--quick" not in index
