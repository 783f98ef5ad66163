"""scores.csv joins back to the user's data: labels as the user wrote them, class codes
beside them, ids as given, and ranks that tied records share; the page agrees, and old
run folders still read."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_helpers import unseal
from sklearn.tree import DecisionTreeClassifier

import miaudit
from miaudit.cli import main
from miaudit.report.compare import compare_runs
from miaudit.report.html import _exposed_html
from miaudit.report.run import Run, label_values, load_run


@pytest.fixture(scope="module")
def user_run(tmp_path_factory):
    """An audit of the user's own tree on the user's own table: labels 1, 2, 3 (not
    0-based), ids of their own. A fully grown tree is certain of its training records,
    so the top scores tie."""
    rng = np.random.default_rng(4)
    n = 1500
    table = pd.DataFrame({
        "patient": 70_000 + 13 * np.arange(n),  # ids as the user numbers them
        "age": rng.integers(20, 80, n).astype(float),
        "dose": rng.normal(5, 2, n).round(2),
        "weight": rng.normal(70, 12, n).round(1),
    })  # fmt: skip
    # A label 1, 2 or 3, partly from the features so a model can learn it.
    table["income"] = 1 + ((table["dose"] > 5).astype(int) + (rng.random(n) < 0.3)).clip(0, 2)
    members = np.arange(0, n, 5)
    features = table.drop(columns=["patient", "income"])
    tree = DecisionTreeClassifier(random_state=0).fit(
        features.iloc[members], table["income"].iloc[members]
    )
    out = tmp_path_factory.mktemp("join") / "run"
    result = miaudit.audit(
        target=tree, data=table, label="income", id_column="patient",
        members=table["patient"].iloc[members], shadows=2, attacks=["loss", "gap"],
        bootstrap=50, seed=2, out=out,
    )  # fmt: skip
    return table, members, result, out


def test_scores_csv_joins_back_by_id_and_by_row(user_run):
    table, members, result, out = user_run
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["record", "id", "label", "class_index", "member",
                                    "score_loss", "score_gap", "exposure_rank"]  # fmt: skip
    is_member = np.zeros(len(table), dtype=int)
    is_member[members] = 1
    truth = table.assign(member=is_member)
    # By id: every record's label and membership are the user's, values and dtype alike.
    by_id = scores.merge(truth, left_on="id", right_on="patient", validate="one_to_one")
    assert len(by_id) == len(scores)
    assert by_id["label"].dtype == table["income"].dtype == np.int64
    assert (by_id["label"] == by_id["income"]).all()
    assert (by_id["member_x"] == by_id["member_y"]).all()
    # By row: the same, and the row holds that id.
    by_row = table.iloc[scores["record"]]
    assert list(by_row["patient"]) == list(scores["id"])
    assert list(by_row["income"]) == list(scores["label"])
    assert list(is_member[scores["record"]]) == list(scores["member"])
    assert set(scores["label"]) == {1, 2, 3}
    # class_index is the class's position among the class names, 0-based.
    names = result.dataset["class_names"]
    assert names == ["1", "2", "3"]
    assert [names[c] for c in scores["class_index"]] == [str(v) for v in scores["label"]]


def test_exposure_rank_is_shared_by_ties(user_run):
    _, _, result, out = user_run
    scores = pd.read_csv(out / "scores.csv")
    s = scores[f"score_{result.strongest}"].to_numpy()
    higher = (s[None, :] > s[:, None]).sum(axis=1)
    assert np.array_equal(scores["exposure_rank"].to_numpy(), 1 + higher)
    # The tree's certainty leaves many records tied at the top: they share rank 1.
    top = s == s.max()
    assert top.sum() > 1 and (scores["exposure_rank"][top] == 1).all()
    assert (scores["exposure_rank"][~top] == 1 + top.sum()).any()
    # results.json's most exposed records carry the same rank as the file.
    records = json.loads((out / "results.json").read_text())["most_exposed"]["records"]
    rank_of = dict(zip(scores["record"], scores["exposure_rank"], strict=True))
    for r in records:
        assert r["rank"] == rank_of[r["record"]]
        assert r["tied"] == int((s == s[scores["record"] == r["record"]][0]).sum())


def test_to_frame_is_what_scores_csv_holds(user_run):
    _, _, result, out = user_run
    written = pd.read_csv(out / "scores.csv")
    frame = result.to_frame()
    assert frame["member"].dtype == bool
    pd.testing.assert_frame_equal(frame.assign(member=frame["member"].astype(np.int64)), written)
    pd.testing.assert_frame_equal(result.to_frame(label_names=False), written)


def test_the_page_shows_the_labels_the_file_holds(user_run):
    *_, out = user_run
    scores = pd.read_csv(out / "scores.csv").set_index("record")
    # User text is isolated in <bdi> (report.html._u): read the cells without it.
    page = re.sub("</?bdi>", "", (out / "report.html").read_text())
    exposed = page[page.index("Whose privacy is at stake") :]
    rows = re.findall(r"<tr><td>([^<]*)(?:<small>[^<]*</small>)?</td><td>(\d+)</td><td>(\d+)"
                      r"</td><td>([^<]*)</td>", exposed)  # fmt: skip
    assert len(rows) == 20
    for rank, record, ident, label in rows:
        # One column at a time: a whole row would be read as floats.
        row = {c: scores.at[int(record), c] for c in ("exposure_rank", "id", "label")}
        assert int(rank.rstrip("= ")) == row["exposure_rank"]
        assert int(ident) == row["id"] and label == str(row["label"])


def test_built_in_labels_are_load_frames_values(digits_runs):
    scores = pd.read_csv(digits_runs[0] / "scores.csv")
    frame = miaudit.load_frame("digits")
    assert list(frame["digit"].iloc[scores["record"]]) == list(scores["label"])
    assert (scores["class_index"] == scores["label"]).all()  # digits 0..9 are codes too


def _as_format_2(run: Path, to: Path) -> Path:
    """``run`` as miaudit wrote it before class_index: results format 2, class codes in
    ``label``."""
    shutil.copytree(run, to)
    d = json.loads((to / "results.json").read_text())
    d["results_format"] = 2
    d.pop("run_id"), d.pop("scores_sha256")  # not written then
    (to / "results.json").write_text(json.dumps(d))
    scores = pd.read_csv(to / "scores.csv")
    scores["label"] = scores.pop("class_index")
    scores.to_csv(to / "scores.csv", index=False)
    return to


def test_an_older_run_folder_is_drawn_and_compared_as_before(user_run, tmp_path):
    _, _, _, out = user_run
    old = _as_format_2(out, tmp_path / "old")
    run = load_run(old)
    assert np.array_equal(run.class_index, load_run(out).class_index)
    assert main(["report", str(old), "--out", str(tmp_path / "old.html")]) == 0
    assert main(["report", str(out), "--out", str(tmp_path / "new.html")]) == 0
    assert (tmp_path / "old.html").read_text() == (tmp_path / "new.html").read_text()
    (change,) = compare_runs([load_run(out), run]).changes
    assert change.paired


def test_a_new_run_without_class_index_is_refused(user_run, tmp_path, capsys):
    _, _, _, out = user_run
    bad = unseal(shutil.copytree(out, tmp_path / "bad"))
    pd.read_csv(bad / "scores.csv").drop(columns="class_index").to_csv(
        bad / "scores.csv", index=False
    )
    assert main(["report", str(bad)]) == 2
    assert "scores.csv: no column 'class_index'" in capsys.readouterr().err


def test_label_values_read_class_names_back_as_the_users_values():
    for names, want in [
        (["1", "2", "3"], [1, 2, 3]),
        (["0.5", "1.5"], [0.5, 1.5]),
        (["1", "2.5"], [1.0, 2.5]),
        (["False", "True"], [False, True]),
        (["<=50K", ">50K"], ["<=50K", ">50K"]),
        (["007", "8"], ["007", "8"]),  # not the text 7 writes: the user wrote text
        (["inf", "1"], ["inf", "1"]),
    ]:
        got = label_values(names)
        assert list(got) == want and [type(v) for v in got.tolist()] == [type(v) for v in want]


def _page_scores(scores: list[float]) -> list[str]:
    records = [{"rank": i + 1, "tied": 1, "record": i, "label": "1", "member": True,
                "score": s} for i, s in enumerate(scores)]  # fmt: skip
    table = _exposed_html({"most_exposed": {"attack": "loss", "records": records}})
    return re.findall(r"<td class=num>([^<]*)</td>", table)


def test_the_page_tells_close_scores_apart():
    # Six significant digits write all three as 0.999973.
    close = [0.99997312, 0.99997304, 0.9999730001]
    assert len({f"{s:.6g}" for s in close}) == 1
    shown = _page_scores(close)
    assert len(set(shown)) == 3
    assert [float(t) for t in shown] == sorted((float(t) for t in shown), reverse=True)
    # Scores that differ in the sixth digit keep six; equal ones read alike.
    assert _page_scores([0.5, 0.25, 0.25]) == ["0.5", "0.25", "0.25"]
    assert _page_scores([1 + 2**-52, 1.0]) == ["1.0000000000000002", "1"]


def test_a_run_in_memory_reads_class_codes_from_class_index():
    results = {"results_format": 3, "dataset": {"class_names": ["a", "b"]}}
    run = Run(results, pd.DataFrame({"label": ["b", "a"], "class_index": [1, 0]}))
    assert list(run.class_index) == [1, 0]
    old = Run({**results, "results_format": 2}, pd.DataFrame({"label": [1, 0]}))
    assert list(old.class_index) == [1, 0]
