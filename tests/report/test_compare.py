"""miaudit compare and miaudit report: runs side by side, and bad run folders."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from report_helpers import unseal

import miaudit
from miaudit.cli import main
from miaudit.metrics import tpr_at_fpr
from miaudit.report.compare import compare_runs
from miaudit.report.findings import LEVELS
from miaudit.report.run import load_run


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_run_against_itself_shows_no_difference(digits_runs, tmp_path, capsys):
    base = digits_runs[0]
    code, out, _ = _cli(capsys, "compare", base, base, "--out", tmp_path / "c")
    assert code == 0
    saved = json.loads((tmp_path / "c" / "compare.json").read_text())
    (change,) = saved["changes"]
    assert change["paired"] and change["change"] == 0.0 and change["interval"] == [0.0, 0.0]
    assert change["beyond_noise"] is False
    assert all(c[0]["change"] == 0.0 for c in saved["per_attack"].values())
    assert "no difference" in out and "baseline" in out
    assert (tmp_path / "c" / "compare.html").is_file()
    # A comparison already there is kept unless asked.
    code, _, err = _cli(capsys, "compare", base, base, "--out", tmp_path / "c")
    assert code == 2 and "already holds a comparison" in err and "--overwrite" in err
    assert _cli(capsys, "compare", base, base, "--out", tmp_path / "c", "--overwrite")[0] == 0


def test_label_only_reports_the_measured_drop(digits_runs):
    base, label_only = (load_run(p) for p in digits_runs)
    cmp = compare_runs([base, label_only])
    (change,) = cmp.changes
    f = cmp.fpr
    key = f"{f:g}"
    expected = (
        label_only.results["attacks"][label_only.results["strongest_attack"]]["tpr_at_fpr"][key]
        - base.results["attacks"][base.results["strongest_attack"]]["tpr_at_fpr"][key]
    )
    assert change.paired and change.delta == pytest.approx(expected, abs=1e-12)
    assert change.delta < 0 and change.interval[1] < 0 and change.beyond_noise
    # Per attack, on the attacks both runs have, from the scores themselves.
    shokri = cmp.per_attack["shokri"][0]
    assert shokri.delta == pytest.approx(
        tpr_at_fpr(label_only.score("shokri"), label_only.member, f)
        - tpr_at_fpr(base.score("shokri"), base.member, f)
    )
    base_level, label_level = (LEVELS.index(v.level) for v in cmp.verdicts)
    assert label_level <= base_level


def test_runs_on_other_records_are_compared_unpaired(digits_runs, tmp_path, capsys):
    other = unseal(shutil.copytree(digits_runs[0], tmp_path / "other"))
    scores = pd.read_csv(other / "scores.csv")
    scores["record"] += 100_000  # the same scores, said of other records
    scores.to_csv(other / "scores.csv", index=False)
    cmp = compare_runs([load_run(digits_runs[0]), load_run(other)])
    (change,) = cmp.changes
    assert not change.paired and change.delta == 0.0
    assert change.interval[0] < 0 < change.interval[1] and not change.beyond_noise
    assert "compared unpaired" in cmp.notes[0]
    code, out, _ = _cli(capsys, "compare", digits_runs[0], other, "--out", tmp_path / "c")
    assert code == 0 and "compared unpaired" in out and "within noise" in out


def _damaged(src, tmp_path, name, edit):
    run = unseal(shutil.copytree(src, tmp_path / name))  # its scores.csv is edited below
    edit(run)
    return run


def _short_intervals(d):
    """Intervals of one number: the right types, the wrong shape (caught while drawing)."""
    for a in d["attacks"].values():
        a["tpr_at_fpr_ci"] = {k: [0.1] for k in a["tpr_at_fpr_ci"]}


def _results(run, change):
    d = json.loads((run / "results.json").read_text())
    change(d)
    (run / "results.json").write_text(json.dumps(d))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: (r / "results.json").write_text('{"attacks": {'),
         r"results.json: damaged, not JSON"),
        (lambda r: (r / "results.json").write_text("[1, 2]"),
         r"results.json: damaged, holds a list"),
        (lambda r: _results(r, lambda d: d.pop("ranking")),
         r"results.json: no 'ranking' section \(written by miaudit .*older than this one: run "
         r"the audit again\)"),
        (lambda r: _results(r, lambda d: d["attacks"]["loss"].pop("tpr_at_fpr")),
         r"attack 'loss' has no 'tpr_at_fpr'"),
        (lambda r: _results(r, lambda d: d.update(results_format=99)),
         r"results format 99, newer than this miaudit reads \(3\): upgrade miaudit"),
        (lambda r: (r / "scores.csv").unlink(), r"scores.csv: missing"),
        (lambda r: (r / "scores.csv").write_text("record,label\n1,2\n"),
         r"scores.csv: no column 'member'"),
        (lambda r: pd.read_csv(r / "scores.csv").iloc[:50].to_csv(r / "scores.csv", index=False),
         r"scores.csv: holds \d+ members and \d+ non-members, but results.json evaluated"),
        (lambda r: _results(r, _short_intervals),
         r"damaged or written by another miaudit \(IndexError"),
        (lambda r: _results(r, lambda d: d.update(results_format="2")),
         r"results_format is \"2\", not a whole number"),
        (lambda r: _results(r, lambda d: d.update(ranking=[])), r"ranking is \[\], not a table"),
        (lambda r: _results(r, lambda d: d.update(target={})),
         r"target.n_train is null, not a whole number"),
        (lambda r: _results(r, lambda d: d["most_exposed"].pop("records")),
         r"most_exposed.records is null, not a list"),
        (lambda r: _results(r, lambda d: d["attacks"]["loss"].update(auc=None)),
         r"attacks.loss.auc is null, not a whole number or a number"),
        (lambda r: pd.read_csv(r / "scores.csv").iloc[:0].to_csv(r / "scores.csv", index=False),
         r"scores.csv: damaged: no records, only a header"),
        (lambda r: pd.read_csv(r / "scores.csv").assign(class_index=1.5).to_csv(
            r / "scores.csv", index=False),
         r"scores.csv: damaged: a class index that is not one of the data set's classes"),
        (lambda r: pd.read_csv(r / "scores.csv").assign(class_index="x").to_csv(
            r / "scores.csv", index=False),
         r"scores.csv: damaged: column 'class_index' holds text, not numbers"),
    ],
)  # fmt: skip
def test_a_damaged_or_older_run_is_one_line_and_exit_status_2(digits_runs, tmp_path, capsys,
                                                              edit, message):  # fmt: skip
    import re

    run = _damaged(digits_runs[0], tmp_path, "bad", edit)
    for args in (("report", run), ("compare", digits_runs[0], run, "--out", tmp_path / "c")):
        code, _, err = _cli(capsys, *args)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert re.search(message, err), err
        assert str(run) in err


def test_compare_refuses_runs_on_different_data(digits_runs, tmp_path, capsys):
    rng = np.random.default_rng(0)
    y, member = rng.integers(0, 10, 600), rng.random(600) < 0.5
    probs = rng.dirichlet(np.ones(10), 600)
    miaudit.evaluate(probs, y, member, out=tmp_path / "outputs", bootstrap=50)
    code, _, err = _cli(capsys, "compare", digits_runs[0], tmp_path / "outputs")
    assert code == 2
    assert "audit different data sets" in err and "compare runs on one data set" in err
    code, _, err = _cli(capsys, "compare", digits_runs[0])
    assert code == 2 and "at least two run folders" in err
    code, _, err = _cli(capsys, "report", tmp_path / "nowhere")
    assert code == 2 and "no such run folder" in err
    code, _, err = _cli(capsys, "report", digits_runs[0], "--levels", "3,2,1")
    assert code == 2 and "--levels 3,2,1" in err


def test_runs_numbered_alike_are_paired_only_when_their_labels_agree(digits_runs, tmp_path):
    other = unseal(shutil.copytree(digits_runs[0], tmp_path / "other"))
    scores = pd.read_csv(other / "scores.csv")
    # The same numbers and membership, but other records (their labels differ).
    for column in ("label", "class_index"):
        scores[column] = np.roll(scores[column].to_numpy(), 1)
    scores.to_csv(other / "scores.csv", index=False)
    (change,) = compare_runs([load_run(digits_runs[0]), load_run(other)]).changes
    assert not change.paired
