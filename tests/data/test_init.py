"""Tests for miaudit.data's public entry points: load_dataset and list_datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import miaudit.data as data_api
from miaudit.data import BUILTIN_DATASETS, Dataset, TabularEncoder, list_datasets, load_dataset
from miaudit.errors import DataError


def test_public_names():
    assert set(data_api.__all__) >= {
        "BUILTIN_DATASETS",
        "Dataset",
        "DatasetInfo",
        "TabularEncoder",
        "list_datasets",
        "load_dataset",
    }
    assert data_api.Dataset is Dataset and data_api.TabularEncoder is TabularEncoder
    assert "census-occupation" in BUILTIN_DATASETS and "digits" in BUILTIN_DATASETS


def test_unknown_name_lists_builtins_and_file_types():
    with pytest.raises(
        DataError, match=r"unknown data set 'purchase100'.*census, census-occupation"
    ):
        load_dataset("purchase100")
    with pytest.raises(DataError, match=r"\.csv, \.csv\.gz, \.parquet, \.pq, \.npz file"):
        load_dataset("purchase100")


@pytest.mark.parametrize("text", ["data/train.csv", "train.parquet", "sub/dir/x"])
def test_missing_path_is_file_not_found(text: str):
    with pytest.raises(DataError, match=r"file not found; check the path"):
        load_dataset(text, label="y")


def test_categorical_is_for_user_files_only():
    with pytest.raises(DataError, match=r"categorical= applies to user files"):
        load_dataset("adult", categorical=["sex"])


def test_user_file_by_str_or_path(tmp_path: Path):
    path = tmp_path / "points.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.normal(size=(30, 4)), y=rng.integers(0, 3, 30))
    by_str = load_dataset(str(path))
    by_path = load_dataset(path)
    assert by_str.name == by_path.name == "points"
    assert by_str.fingerprint() == by_path.fingerprint()


def test_digits_is_the_fast_tabular_set():
    ds = load_dataset("digits")
    assert (ds.name, ds.kind, ds.n_records, ds.n_features, ds.n_classes) == (
        "digits",
        "tabular",
        1797,
        64,
        10,
    )
    assert ds.summary()["n_records"] == 1797


def test_listing_reports_installation_on_disk(monkeypatch, tmp_path: Path):
    before = {i.name: i.installed for i in list_datasets()}
    monkeypatch.setenv("MIAUDIT_FASHION_MNIST_DIR", str(tmp_path))
    after = {i.name: i.installed for i in list_datasets()}
    assert after["fashion-mnist"] is False
    assert {k: v for k, v in after.items() if k != "fashion-mnist"} == {
        k: v for k, v in before.items() if k != "fashion-mnist"
    }
