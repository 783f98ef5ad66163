"""Tests for miaudit.data.files: users' CSV, Parquet and .npz files, and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from miaudit.data.encode import TabularEncoder
from miaudit.data.files import load_file
from miaudit.errors import DataError


def people(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "sex": rng.choice(["Female", "Male"], n),
            "smoker": rng.choice([True, False], n),
            "zip": rng.choice([5000, 7000, 9000], n),
            "income": rng.normal(50_000, 10_000, n).round(2),
            "outcome": rng.choice(["high", "low", "medium"], n),
        }
    )


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    people().to_csv(path, index=False)
    return path


def test_csv_types_decide_categorical_columns(csv_file: Path):
    ds = load_file(csv_file, label="outcome")
    assert ds.name == "people"
    assert ds.kind == "tabular"
    assert ds.feature_names == ["age", "sex", "smoker", "zip", "income"]
    assert ds.categorical == ["sex", "smoker"]
    assert ds.class_names == ["high", "low", "medium"]
    assert ds.encoded_feature_names == [
        "age",
        "sex=Female",
        "sex=Male",
        "smoker=False",
        "smoker=True",
        "zip",
        "income",
    ]
    # The arrays are the shared encoder's output on the raw table (an independent path).
    df = people()
    expected = TabularEncoder(categorical=["sex", "smoker"]).fit_transform(
        df.drop(columns="outcome")
    )
    np.testing.assert_array_equal(ds.X, expected)
    assert [ds.class_names[k] for k in ds.y] == df.outcome.tolist()
    assert TabularEncoder.from_dict(ds.encoder).encoded_feature_names == ds.encoded_feature_names


def test_categorical_override_one_hots_numeric_codes(csv_file: Path):
    ds = load_file(csv_file, label="outcome", categorical=["zip"])
    assert ds.categorical == ["sex", "smoker", "zip"]
    assert {"zip=5000", "zip=7000", "zip=9000"} <= set(ds.encoded_feature_names)


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_parquet_matches_csv(tmp_path: Path, csv_file: Path, suffix: str):
    path = tmp_path / f"people{suffix}"
    people().to_parquet(path)
    from_parquet = load_file(path, label="outcome")
    from_csv = load_file(csv_file, label="outcome")
    np.testing.assert_array_equal(from_parquet.X, from_csv.X)
    np.testing.assert_array_equal(from_parquet.y, from_csv.y)
    assert from_parquet.encoded_feature_names == from_csv.encoded_feature_names


def test_gzipped_csv(tmp_path: Path):
    path = tmp_path / "people.csv.gz"
    people().to_csv(path, index=False)
    assert load_file(path, label="outcome").name == "people"


def test_numeric_labels_and_duplicates(tmp_path: Path):
    df = people().assign(outcome=lambda d: d.zip)
    path = tmp_path / "dup.csv"
    pd.concat([df, df.iloc[:4]]).to_csv(path, index=False)
    ds = load_file(path, label="outcome")
    assert ds.class_names == ["5000", "7000", "9000"]
    assert ds.notes["duplicates_dropped"] == 4
    assert ds.n_records == len(df)


def test_npz_table(tmp_path: Path):
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(25, 3)), rng.choice([2, 7], 25)
    path = tmp_path / "vectors.npz"
    np.savez(path, X=X, y=y, feature_names=np.array(["a", "b", "c"]))
    ds = load_file(path)
    assert ds.kind == "tabular"
    assert ds.feature_names == ["a", "b", "c"]
    assert ds.class_names == ["2", "7"]
    np.testing.assert_allclose(ds.X, (X - X.mean(0)) / X.std(0), rtol=1e-5, atol=1e-6)
    np.savez(path, X=X, y=y)
    assert load_file(path).feature_names == ["x0", "x1", "x2"]


def test_npz_images(tmp_path: Path):
    rng = np.random.default_rng(4)
    gray = rng.integers(0, 256, size=(15, 6, 6), dtype=np.uint8)
    gray[0, 0, 0] = 255
    path = tmp_path / "gray.npz"
    np.savez(path, X=gray, y=np.arange(15) % 3)
    ds = load_file(path)
    assert ds.kind == "image"
    assert ds.input_shape == (1, 6, 6)
    np.testing.assert_allclose(ds.X[:, 0], gray / 255.0, rtol=1e-6)
    assert ds.encoder is None

    colour = rng.random((15, 3, 4, 4)).astype(np.float32)
    np.savez(path, X=colour, y=np.arange(15) % 3)
    ds = load_file(path)
    assert ds.input_shape == (3, 4, 4)
    np.testing.assert_array_equal(ds.X, colour)


# ----------------------------------------------------------------------------- errors


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return path


def test_file_not_found(tmp_path: Path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found; check the path"):
        load_file(tmp_path / "nope.csv", label="y")


def test_unknown_extension(tmp_path: Path):
    path = write(tmp_path, "data.txt", "a,b\n1,2\n")
    with pytest.raises(DataError, match=r"data\.txt: unknown file type '\.txt'.*\.csv.*\.npz"):
        load_file(path, label="b")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("bad.csv", "a,b\n1,2\n1,2,3,4\n", r"bad\.csv: cannot parse as CSV.*header row"),
        ("bad.csv", b"\xff\xfe\x00garbage\xff", r"bad\.csv: cannot parse as CSV"),
        ("empty.csv", "", r"empty\.csv: the file is empty"),
        ("bad.parquet", b"not parquet at all", r"bad\.parquet: cannot parse as PARQUET"),
        ("bad.npz", b"not a zip", r"bad\.npz: cannot read it as NumPy arrays.*numpy\.savez"),
    ],
)
def test_unparseable_files(tmp_path: Path, name: str, content, match: str):
    with pytest.raises(DataError, match=match):
        load_file(write(tmp_path, name, content), label=None if name.endswith(".npz") else "a")


def test_label_column_missing_lists_columns(csv_file: Path):
    with pytest.raises(DataError, match=r"no label column 'target'; columns are: age, sex, smoker"):
        load_file(csv_file, label="target")
    with pytest.raises(DataError, match=r"name the label column with label=.*outcome"):
        load_file(csv_file)


def test_unknown_categorical_column(csv_file: Path):
    with pytest.raises(DataError, match=r"categorical column\(s\) \['postcode'\]"):
        load_file(csv_file, label="outcome", categorical=["postcode"])


def test_nan_in_numeric_feature(tmp_path: Path):
    df = people()
    df.loc[[2, 5, 9], "income"] = np.nan
    path = tmp_path / "gaps.csv"
    df.to_csv(path, index=False)
    with pytest.raises(
        DataError, match=r"gaps\.csv: numeric column 'income' has 3 missing.*impute"
    ):
        load_file(path, label="outcome")


def test_nan_is_reported_before_duplicates_are_dropped(tmp_path: Path):
    path = tmp_path / "repeats.csv"
    pd.DataFrame({"a": [1.0, np.nan] * 50, "y": [0, 1] * 50}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"repeats\.csv: numeric column 'a' has 50 missing \(NaN\)"):
        load_file(path, label="y")


def test_nan_in_label(tmp_path: Path):
    df = people()
    df.loc[4, "outcome"] = None
    path = tmp_path / "nolabel.csv"
    df.to_csv(path, index=False)
    with pytest.raises(
        DataError, match=r"nolabel\.csv \(label 'outcome'\): the label has 1 missing"
    ):
        load_file(path, label="outcome")


def test_single_class(tmp_path: Path):
    path = tmp_path / "one.csv"
    people().assign(outcome="low").to_csv(path, index=False)
    with pytest.raises(DataError, match=r"one\.csv.*single class \('low'\).*at least 2 classes"):
        load_file(path, label="outcome")


def test_too_few_records(tmp_path: Path):
    path = tmp_path / "tiny.csv"
    people(5).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"tiny\.csv: only 5 record\(s\); .*at least 10"):
        load_file(path, label="outcome")


def test_npz_missing_arrays(tmp_path: Path):
    path = tmp_path / "arrays.npz"
    np.savez(path, X=np.zeros((20, 2)), labels=np.zeros(20))
    with pytest.raises(DataError, match=r"arrays\.npz: no array 'y' \(found X, labels\)"):
        load_file(path)
    np.savez(path, features=np.zeros((20, 2)))
    with pytest.raises(DataError, match=r"no array 'X' or 'y'"):
        load_file(path)


def test_npz_mismatched_lengths(tmp_path: Path):
    path = tmp_path / "arrays.npz"
    np.savez(path, X=np.zeros((20, 2)), y=np.zeros(19))
    with pytest.raises(DataError, match=r"X has 20 rows but y has shape \(19,\)"):
        load_file(path)


def test_npz_refuses_object_arrays_and_label_names(tmp_path: Path):
    path = tmp_path / "objects.npz"
    np.savez(path, X=np.array([[{}]] * 20, dtype=object), y=np.zeros(20))
    with pytest.raises(
        DataError,
        match=r"objects\.npz: cannot read it as NumPy arrays \(X\.npy holds Python objects",
    ):
        load_file(path)
    np.savez(path, X=np.zeros((20, 2)), y=np.arange(20) % 2)
    with pytest.raises(DataError, match="labels in array 'y'; leave label unset"):
        load_file(path, label="target")


def test_identifier_column_is_refused(tmp_path: Path):
    n = 1200
    df = pd.DataFrame(
        {"id": [f"user{i}" for i in range(n)], "v": np.arange(n), "c": np.arange(n) % 2}
    )
    path = tmp_path / "ids.csv"
    df.to_csv(path, index=False)
    with pytest.raises(
        DataError, match=r"ids\.csv: categorical column 'id' has 1,200 distinct.*drop"
    ):
        load_file(path, label="c")


def test_a_huge_header_line_stays_out_of_the_one_line_error(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("a" * 2_000_000 + ",b\n1,2\n3,4\n")
    with pytest.raises(DataError) as err:
        load_file(path, label="label")
    assert len(str(err.value)) < 1_000 and "2,000,000 characters" in str(err.value)


@pytest.mark.parametrize(
    ("cell", "kind"),
    [([1.0, 2.0], "lists"), ({"a": 1, "b": "x"}, "structs")],
    ids=["list", "struct"],
)
def test_parquet_list_or_struct_columns_are_one_line(tmp_path: Path, cell, kind):
    # Before: a traceback (unhashable values) from deep in the encoder.
    df = people()
    df["nested"] = [cell] * len(df)
    path = tmp_path / "nested.parquet"
    df.to_parquet(path)
    with pytest.raises(DataError, match=rf"column 'nested' holds {kind} \(row 0\).*flatten"):
        load_file(path, label="outcome")
