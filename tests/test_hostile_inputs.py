"""Hostile and careless input (issue 28): one line naming the input and the fix, exit
status 2 from the CLI, a :class:`MiauditError` from Python; never a traceback, never a
silent substitution. And ``scores.csv`` is safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import re
import textwrap

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import miaudit
from miaudit.cli import main
from miaudit.data.build import UnencodableError
from miaudit.data.kinds import table_categoricals
from miaudit.data.memory import memory_dataset
from miaudit.errors import ConfigError, DataError, ModelError
from miaudit.report.files import (
    escape_cell,
    escape_cells,
    unescape_cell,
    unescape_cells,
)

QUICK = ["--shadows", "1", "--attacks", "loss", "--bootstrap", "20", "--quiet"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------- item 3


@pytest.mark.parametrize(
    ("flag", "attribute", "says"),
    [
        ("--target-python", "model", "model is None, not a fitted model: "),
        ("--target-python", "name", "name is a str ('mlp'), not a fitted model: "),
        ("--target-python", "number", "number is an int (3), not a fitted model: "),
        ("--target-python", "kind", "kind is the class LogisticRegression, not a fitted model"),
        ("--trainer-python", "model", "model is None, not a trainer: "),
        ("--trainer-python", "number", "number is an int (3), not a trainer: "),
    ],
)
def test_a_python_attribute_that_is_no_model_is_refused_not_read_as_none_given(
    tmp_path, capsys, flag, attribute, says
):
    module = tmp_path / "mod.py"
    module.write_text(
        textwrap.dedent("""
        from sklearn.linear_model import LogisticRegression

        model = None
        name = "mlp"
        number = 3
        kind = LogisticRegression
        if __name__ == "__main__":
            model = "fitted here, which an import never runs"
    """)
    )
    out = tmp_path / "r"
    # Without --members: before, a None target audited miaudit's own MLP, exit 0.
    code = main(["audit", "--dataset", "digits", flag, f"{module}:{attribute}", *QUICK,
                 "--out", str(out)])  # fmt: skip
    assert code == 2
    err = _one_line_error(capsys)
    assert f"{flag} {module}:{attribute} is " in err and says in err
    assert not out.exists()
    # Python: the same refusal, naming the setting as Python writes it.
    setting = {"--target-python": "target_python", "--trainer-python": "trainer_python"}[flag]
    with pytest.raises(ConfigError, match=f"{setting} .*{re.escape(says[len(attribute) :])}"):
        miaudit.audit(
            dataset="digits", shadows=1, attacks=["loss"], **{setting: f"{module}:{attribute}"}
        )


def test_a_none_target_says_where_it_is_most_likely_fitted(tmp_path, capsys):
    module = tmp_path / "late.py"
    module.write_text("model = None\n")
    assert main(["audit", "--dataset", "digits", "--target-python", f"{module}:model",
                 "--members", str(tmp_path / "none.npy"), *QUICK]) == 2  # fmt: skip
    assert "if __name__ == '__main__'" in _one_line_error(capsys)


# --------------------------------------------------------------------------- item 4


def _ages(n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    age = rng.integers(18, 90, n).astype(object)
    age[5], age[77], age[1500] = "4o", "n/a ", "thirty"
    return pd.DataFrame({
        "age": age,
        "hours": rng.normal(40, 5, n).round(1),
        "job": rng.choice(["clerk", "nurse", "driver"], n),
        "y": rng.integers(0, 2, n),
    })  # fmt: skip


def test_a_numeric_column_with_typos_is_refused_naming_the_cells(tmp_path, capsys):
    path = tmp_path / "ages.csv"
    _ages().to_csv(path, index=False)
    # Before: 'age' silently became a categorical column of one category per age.
    assert main(["audit", "--dataset", str(path), "--label", "y", *QUICK,
                 "--out", str(tmp_path / "r")]) == 2  # fmt: skip
    err = _one_line_error(capsys)
    assert (
        f"{path}: column 'age' holds numbers, but 3 of its 2,000 cells are not (row 5: '4o', "
        "row 77: 'n/a ', row 1500: 'thirty')"
    ) in err
    assert "fix those cells" in err and "add 'age' to --categorical" in err
    with pytest.raises(UnencodableError, match=r"add 'age' to categorical\)$"):
        miaudit.load_dataset(path, label="y")
    # Declared categorical, it is one: the user said so.
    data = miaudit.load_dataset(path, label="y", categorical=["age"])
    assert "age" in data.categorical
    # In memory: the same refusal; the user's own model still reads the rows as given.
    with pytest.raises(UnencodableError, match="column 'age' holds numbers, but 3 of"):
        memory_dataset(_ages(), "y")
    held = memory_dataset(_ages(), "y", hold=True)
    assert held.raw.held and "column 'age' holds numbers" in held.notes["held_because"]


def test_real_categorical_columns_are_not_taken_for_numbers_with_typos():
    n = 400
    frame = pd.DataFrame({
        "zip": [f"{i % 50:05d}" for i in range(n)],  # numbers all: codes kept as text
        "diag": [str(250 + i % 30) if i % 10 else f"V{i % 7}" for i in range(n)],  # 10 % codes
        "kids": ["0", "1", "2", "3", "4+"] * (n // 5),  # 20 % "4+"
        "city": ["Lyon", "Oslo"] * (n // 2),
        "flag": [True, False, None, True] * (n // 4),
        "y": [0, 1] * (n // 2),
    })  # fmt: skip
    assert table_categoricals(frame, "y", None) == ["zip", "diag", "kids", "city", "flag"]
    # Not a column of numbers: one text cell beside nothing else.
    sparse = pd.DataFrame({"note": ["x"] + [None] * 30, "y": [0, 1] * 15 + [0]})
    assert table_categoricals(sparse, "y", None) == ["note"]


def test_the_built_in_tables_are_not_caught(tmp_path):
    frame = miaudit.load_frame("adult")
    numeric = {"age", "capital-gain", "capital-loss", "hours-per-week", "education-num"}
    chosen = table_categoricals(frame, "income", None)
    assert not set(chosen) & numeric and len(chosen) == 8
    # Written to a CSV and read back (columns as text): still not caught.
    path = tmp_path / "adult.csv"
    frame.iloc[:3000].to_csv(path, index=False)
    assert len(table_categoricals(pd.read_csv(path), "income", None)) == 8


# --------------------------------------------------------------------------- item 12


def test_a_header_that_names_the_label_twice_is_refused(tmp_path, capsys):
    path = tmp_path / "twice.csv"
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(200, 2)).round(3), rng.integers(0, 2, 200)
    lines = ["a,b,y,y", *(f"{a},{b},{c},{c}" for (a, b), c in zip(X, y, strict=True))]
    path.write_text("\n".join(lines) + "\n")
    # Before: pandas read the copy as a feature 'y.1', the label itself, exit 0.
    assert main(["audit", "--dataset", str(path), "--label", "y", *QUICK]) == 2
    err = _one_line_error(capsys)
    assert (
        f"{path}: the header names the label column 'y' twice (columns 3 and 4; pandas would "
        "read the second as 'y.1'): give every column its own name, or drop the copy"
    ) in err
    # A user's own column named "y.1" beside "y" is a name of its own.
    path.write_text(path.read_text().replace("a,b,y,y", "a,b,y,y.1", 1))
    assert "y.1" in miaudit.load_dataset(path, label="y").feature_names


def test_a_header_without_rows_is_refused(tmp_path, capsys):
    path = tmp_path / "header.csv"
    path.write_text("a,b,y\n")
    # Before: IndexError from the label encoder, a traceback.
    assert main(["audit", "--dataset", str(path), "--label", "y", *QUICK]) == 2
    err = _one_line_error(capsys)
    assert f"{path}: the table has a header (a, b, y) but no rows; supply the records" in err


def test_a_dataframe_with_columns_but_no_rows_is_refused():
    empty = pd.DataFrame({"a": [], "b": [], "y": []})
    with pytest.raises(
        DataError, match=r"^data: the DataFrame has columns \(a, b, y\) but no rows"
    ):
        miaudit.audit(data=empty, label="y", shadows=1, attacks=["loss"])
    for pair in [(np.zeros((0, 3)), np.zeros(0)), (np.zeros((0, 8, 8)), np.zeros(0))]:
        with pytest.raises(DataError, match=r"^data=\(X, y\): X holds no records"):
            miaudit.audit(data=pair, shadows=1, attacks=["loss"])


def _digits_arrays():
    data = miaudit.load_dataset("digits")
    return data.X.astype(np.float64), data.y


def test_a_target_that_answers_text_is_refused_naming_predict():
    X, y = _digits_arrays()
    frame = pd.DataFrame(X[:, :8], columns=[f"p{i}" for i in range(8)]).assign(y=y % 2)
    members = np.arange(100)
    # Before: ValueError "could not convert string to float", a traceback.
    with pytest.raises(ModelError) as caught:
        miaudit.audit(
            target=lambda records: np.array([["a", "b"]] * len(records)),
            data=frame, label="y", members=members, shadows=1, attacks=["loss"],
        )  # fmt: skip
    assert str(caught.value).startswith(
        "the target answered str values such as 'a', not probabilities: it must return one row "
        "of class probabilities (numbers) per record"
    )
    assert "\n" not in str(caught.value)
    # A Pipeline whose predict_proba is its predict: text labels, then numbers.
    text = frame.assign(y=np.where(frame["y"] == 1, "odd", "even"))
    for table in (text, frame):
        features = table.drop(columns="y")
        pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200))
        pipe.fit(features.iloc[members], table["y"].iloc[members])
        pipe.predict_proba = pipe.predict
        with pytest.raises(ModelError, match=r"predict_proba, not .*predict") as caught:
            miaudit.audit(target=pipe, data=table, label="y", members=members, shadows=1,
                          attacks=["loss"])  # fmt: skip
        said = str(caught.value)
        assert "\n" not in said
        if table is text:  # before: "raised ValueError: could not convert string to float"
            assert said.startswith("the target (Pipeline) answered str values such as 'even'")
        else:
            assert "one value per record: class labels? pass predict_proba, not predict" in said


def test_a_target_module_that_answers_text_exits_2(tmp_path, capsys):
    module = tmp_path / "texty.py"
    module.write_text(textwrap.dedent("""
        import numpy as np

        def model(records):
            return np.array([["x"] * 10] * len(records))
    """))  # fmt: skip
    np.save(tmp_path / "members.npy", np.arange(200))
    assert main(["audit", "--dataset", "digits", "--target-python", f"{module}:model",
                 "--members", str(tmp_path / "members.npy"), *QUICK]) == 2  # fmt: skip
    assert "answered str values such as 'x', not probabilities" in _one_line_error(capsys)


# --------------------------------------------------------------------------- item 16

HOSTILE = ["=1+2", "+SUM(A1)", "-x", "@cmd", "\tTAB", "\rCR", "'quoted", "plain", "-3"]


def test_cells_are_escaped_the_owasp_way_and_read_back_exactly():
    for value in HOSTILE:
        assert unescape_cell(escape_cell(value)) == value
    assert [escape_cell(v) for v in HOSTILE[:4]] == ["'=1+2", "'+SUM(A1)", "'-x", "'@cmd"]
    assert escape_cell("plain") == "plain" and escape_cell(-3) == -3 and escape_cell(-0.5) == -0.5
    frame = pd.DataFrame({"id": HOSTILE, "label": HOSTILE, "score": np.linspace(-2, 2, 9)})
    written = escape_cells(frame)
    assert written["score"].equals(frame["score"])
    assert written["id"].tolist()[:3] == ["'=1+2", "'+SUM(A1)", "'-x"]
    assert unescape_cells(written).equals(frame)


def test_scores_csv_holds_no_formula_and_reads_back_to_the_ids(tmp_path):
    X, y = _digits_arrays()
    labels = -(y + 1)  # negative numbers: a column of numbers, never escaped
    fitted = LogisticRegression(max_iter=200).fit(X[:300], labels[:300])
    starts = ["=1+2", "+SUM(A1)", "-x", "@cmd", "\tcmd", "'q"]
    ids = np.array([f"{starts[i % len(starts)]}{i}" for i in range(len(X))])
    out = tmp_path / "r"
    result = miaudit.audit(target=fitted, data=(X, labels), ids=ids, members=np.arange(300),
                           shadows=1, attacks=["loss"], bootstrap=20, seed=1, out=out)  # fmt: skip
    with open(out / "scores.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    wanted = result.to_frame(label_names=False)
    assert [r["id"] for r in rows] == ["'" + i for i in wanted["id"]]  # every id escaped
    assert not any(r["id"][0] in "=+-@\t\r" for r in rows)
    assert all(r["label"].startswith("-") and int(r["label"]) < 0 for r in rows)
    scores = [float(r["score_loss"]) for r in rows]  # numbers, written as numbers
    assert any(s < 0 for s in scores) and all(r["score_loss"][0] != "'" for r in rows)
    back = unescape_cells(pd.read_csv(out / "scores.csv"))
    assert back["id"].tolist() == wanted["id"].tolist()
    assert back["label"].tolist() == wanted["label"].tolist()
    np.testing.assert_array_equal(back["score_loss"].to_numpy(), wanted["score_loss"].to_numpy())
    # The ids of results.json are the ids read back.
    exposed = result.to_dict()["most_exposed"]["records"]
    by_record = dict(zip(back["record"], back["id"], strict=True))
    assert all(by_record[r["record"]] == r["id"] for r in exposed)
