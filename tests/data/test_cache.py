"""Tests for miaudit.data.cache: hits return the same data, changes and damage rebuild it."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import miaudit.data as data_api
from miaudit.data import cache, load_dataset
from miaudit.data.builtin import Builtin
from miaudit.data.cache import CACHE_ENV, cache_dir, entry_path
from miaudit.data.dataset import Dataset


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def write_csv(path: Path, n: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], n),
            "weight": rng.normal(size=n),
            "label": rng.choice(["a", "b"], n),
        }
    ).to_csv(path, index=False)
    return path


def entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def assert_same_dataset(a: Dataset, b: Dataset) -> None:
    for f in fields(Dataset):
        left, right = getattr(a, f.name), getattr(b, f.name)
        if isinstance(left, np.ndarray):
            assert left.dtype == right.dtype
            np.testing.assert_array_equal(left, right)
        else:
            assert left == right, f.name


def forbid_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("the data set was rebuilt instead of read from the cache")

    monkeypatch.setattr(data_api, "load_file", fail)


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv(CACHE_ENV)
    assert cache_dir() == tmp_path / "xdg" / "miaudit" / "datasets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "miaudit" / "datasets"


def test_second_load_is_read_back_identically(private_cache: Path, tmp_path: Path, monkeypatch):
    path = write_csv(tmp_path / "t.csv")
    first = load_dataset(str(path), label="label")
    assert len(entries(private_cache)) == 1
    forbid_rebuild(monkeypatch)
    second = load_dataset(str(path), label="label")
    assert_same_dataset(first, second)
    assert second.X.flags.writeable  # cached and fresh arrays behave alike


def test_options_are_part_of_the_key(private_cache: Path, tmp_path: Path):
    path = write_csv(tmp_path / "t.csv")
    plain = load_dataset(str(path), label="label")
    one_hot = load_dataset(str(path), label="label", categorical=["weight"])
    assert plain.n_features != one_hot.n_features
    assert len(entries(private_cache)) == 2


def test_changed_source_file_is_rebuilt_and_old_entry_removed(private_cache: Path, tmp_path: Path):
    path = write_csv(tmp_path / "t.csv", n=40)
    assert load_dataset(str(path), label="label").notes["rows_read"] == 40
    write_csv(path, n=50, seed=1)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    rebuilt = load_dataset(str(path), label="label")
    assert rebuilt.notes["rows_read"] == 50
    assert len(entries(private_cache)) == 1


def test_loader_version_is_part_of_the_key(tmp_path: Path, private_cache: Path):
    path = write_csv(tmp_path / "t.csv")
    assert entry_path("x", 1, {}, [path]) != entry_path("x", 2, {}, [path])
    assert entry_path("x", 1, {"label": "a"}, [path]) != entry_path("x", 1, {"label": "b"}, [path])
    assert entry_path("x", 1, {}, [path]).parent == private_cache


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: (e / "X.npy").write_bytes((e / "X.npy").read_bytes()[:200]),
        lambda e: (e / "y.npy").unlink(),
        lambda e: (e / "meta.json").write_text("{not json"),
        lambda e: (e / "meta.json").write_text('{"format": 1, "x_shape": [1], "fields": {}}'),
        # Same shape and dtype, new content: labels shuffled, features changed in place.
        lambda e: np.save(e / "y.npy", np.random.default_rng(0).permutation(np.load(e / "y.npy"))),
        lambda e: np.save(e / "X.npy", np.load(e / "X.npy")[::-1].copy()),
    ],
    ids=["truncated-X", "missing-y", "bad-json", "wrong-shape", "y-shuffled", "X-reordered"],
)
def test_damaged_entry_is_rebuilt(private_cache: Path, tmp_path: Path, damage):
    path = write_csv(tmp_path / "t.csv")
    first = load_dataset(str(path), label="label")
    (entry,) = entries(private_cache)
    damage(entry)
    assert cache.read_entry(entry) is None
    again = load_dataset(str(path), label="label")
    assert_same_dataset(first, again)
    assert cache.read_entry(entry) is not None


def test_interrupted_write_leaves_nothing_readable(
    private_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = write_csv(tmp_path / "t.csv")
    real_save = cache._save_array

    def dies_on_y(target: Path, array: np.ndarray) -> None:
        if target.name == "y.npy":
            raise OSError("disk full")
        real_save(target, array)

    monkeypatch.setattr(cache, "_save_array", dies_on_y)
    with pytest.warns(RuntimeWarning, match="could not write the data cache"):
        ds = load_dataset(str(path), label="label")
    assert ds.n_records > 0
    # Neither an entry nor a temporary folder: only the mark of a folder miaudit made.
    assert [p.name for p in private_cache.iterdir()] == [".miaudit-cache"]


def test_unwritable_cache_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    path = write_csv(tmp_path / "t.csv")
    with pytest.warns(RuntimeWarning, match=f"set {CACHE_ENV} to a writable folder"):
        ds = load_dataset(str(path), label="label")
    assert ds.n_records > 0


def test_use_cache_false_writes_nothing(private_cache: Path, tmp_path: Path):
    path = write_csv(tmp_path / "t.csv")
    load_dataset(str(path), label="label", use_cache=False)
    assert not private_cache.exists()


def test_builtin_set_round_trips_through_the_cache(private_cache: Path, monkeypatch):
    first = load_dataset("digits")
    monkeypatch.setattr(
        Builtin, "load", lambda *a: pytest.fail("rebuilt instead of read from the cache")
    )
    assert_same_dataset(first, load_dataset("digits"))
