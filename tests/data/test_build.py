"""Tests for miaudit.data.build: the policies every loader shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miaudit.data.build import MIN_RECORDS, encode_labels
from miaudit.data.encode import TabularEncoder
from miaudit.data.kinds import arrays_dataset, image_dataset, table_dataset
from miaudit.errors import DataError


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-5, 5) | st.sampled_from(["x", "y"]), min_size=2, max_size=40))
def test_labels_map_to_codes_of_sorted_names(values):
    if len({str(v) for v in values}) < 2:
        with pytest.raises(DataError, match="single class"):
            encode_labels(pd.Series(values, dtype=object), what="t")
        return
    codes, names = encode_labels(pd.Series(values, dtype=object), what="t")
    assert codes.dtype == np.int64
    assert [names[c] for c in codes] == [str(v) for v in values]
    assert sorted(set(codes)) == list(range(len(names)))


def test_numeric_labels_sort_as_numbers_and_whole_floats_read_as_ints():
    codes, names = encode_labels(np.array([10.0, 2.0, 1.0, 2.0]), what="t")
    assert names == ["1", "2", "10"]
    assert codes.tolist() == [2, 1, 0, 1]
    _, names = encode_labels(pd.Series([0.5, 1.5]), what="t")
    assert names == ["0.5", "1.5"]
    _, names = encode_labels(pd.Series([True, False]), what="t")
    assert names == ["False", "True"]


def test_missing_labels_are_an_error():
    with pytest.raises(
        DataError, match=r"t: the label has 1 missing \(NaN\) value.*drop those rows"
    ):
        encode_labels(pd.Series(["a", None, "b"]), what="t")


def make_table(n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "colour": rng.choice(["red", "blue"], n),
            "size": rng.normal(size=n),
            "label": rng.choice(["cat", "dog"], n),
        }
    )


def test_duplicates_dropped_first_kept_and_counted():
    df = make_table()
    doubled = pd.concat([df, df.iloc[[3, 5, 5]]], ignore_index=True)
    # Same features, other label: a different record, kept.
    conflicting = doubled.iloc[[0]].assign(label="cat" if doubled.label[0] == "dog" else "dog")
    table = pd.concat([doubled, conflicting], ignore_index=True)
    ds = table_dataset(table, "label", categorical=["colour"], name="t", source="s", what="t")
    assert ds.notes["duplicates_dropped"] == 3
    assert ds.notes["rows_read"] == len(table)
    assert ds.n_records == len(df) + 1
    # The kept records are the first occurrences, in file order.
    expected = TabularEncoder(categorical=["colour"]).fit_transform(
        pd.concat([df, conflicting]).drop(columns="label")
    )
    np.testing.assert_array_equal(ds.X, expected)
    assert len(np.unique(np.column_stack([ds.X, ds.y]), axis=0)) == ds.n_records


def test_keeping_duplicates_on_request():
    df = make_table()
    table = pd.concat([df, df], ignore_index=True)
    ds = table_dataset(
        table,
        "label",
        categorical=["colour"],
        name="t",
        source="s",
        what="t",
        drop_duplicates=False,
    )
    assert ds.n_records == 2 * len(df)
    assert ds.notes["duplicates_dropped"] == 0


def test_too_few_records_after_duplicates():
    df = pd.concat([make_table(MIN_RECORDS - 2)] * 3, ignore_index=True)
    with pytest.raises(DataError, match=r"only 8 record\(s\) after dropping 16 duplicate"):
        table_dataset(df, "label", categorical=["colour"], name="t", source="s", what="t")


def test_image_scaling_and_shape():
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, size=(20, 5, 6), dtype=np.uint8)
    raw[0, 0, 0] = 255
    ds = image_dataset(raw, np.arange(20) % 2, name="i", source="s", what="i")
    assert ds.X.shape == (20, 1, 5, 6) and ds.X.dtype == np.float32
    np.testing.assert_allclose(ds.X[:, 0], raw / 255.0, rtol=1e-6)
    # Wider than 8 bits: never guessed (dividing by 255 or the maximum silently changes
    # what every model sees); the user says what white is.
    wide = rng.integers(0, 1000, size=(20, 2, 3, 3)).astype(np.uint16)
    wide[0, 0, 0, 0] = 1000
    with pytest.raises(DataError, match=r"uint16 images with values up to 1000; pass pixel_scale"):
        image_dataset(wide, np.arange(20) % 2, name="i", source="s", what="i")
    labels = np.arange(20) % 2
    scaled = image_dataset(wide, labels, name="i", source="s", what="i", pixel_scale=1000)
    np.testing.assert_allclose(scaled.X, wide / 1000.0, rtol=1e-6)
    assert scaled.notes["pixel_scale"] == 1000.0
    with pytest.raises(DataError, match="pixel scale 500 leaves values above 1"):
        image_dataset(wide, np.arange(20) % 2, name="i", source="s", what="i", pixel_scale=500)
    floats = rng.random((20, 4, 4)) * 255
    with pytest.raises(DataError, match="float64 images with values up to"):
        image_dataset(floats, np.arange(20) % 2, name="i", source="s", what="i")
    # uint8 with values above 1 means 0-255; a 0/1 uint8 image stays as it is.
    binary = rng.integers(0, 2, size=(20, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(
        image_dataset(binary, np.arange(20) % 2, name="i", source="s", what="i").X[:, 0], binary
    )
    unit = rng.random((20, 3, 4, 4))
    np.testing.assert_allclose(
        image_dataset(unit, np.arange(20) % 2, name="i", source="s", what="i").X, unit, rtol=1e-6
    )


def test_image_duplicates_need_same_pixels_and_label():
    rng = np.random.default_rng(2)
    raw = rng.integers(0, 256, size=(12, 4, 4), dtype=np.uint8)
    images = np.concatenate([raw, raw[:2], raw[2:3]])
    labels = np.concatenate([np.arange(12) % 3, [0, 0], [1]])  # raw[1] has label 1: differs
    ds = image_dataset(images, labels, name="i", source="s", what="i")
    assert ds.notes["duplicates_dropped"] == 1
    assert ds.n_records == 14


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((20, 4)), r"\(n, h, w\) or \(n, c, h, w\)"),
        (np.zeros((20, 8, 8, 3)), "channels-last"),
        (-np.ones((20, 4, 4)), "negative values"),
        (np.full((20, 4, 4), np.nan), "NaN or infinite"),
    ],
)
def test_image_errors(images, match):
    labels = np.arange(len(images)) % 2
    with pytest.raises(DataError, match=match):
        image_dataset(images, labels, name="i", source="s", what="i", drop_duplicates=False)


def test_image_label_count_must_match():
    with pytest.raises(DataError, match="20 images but 3 labels"):
        image_dataset(np.zeros((20, 4, 4)), np.arange(3), name="i", source="s", what="i")


def test_a_measurement_as_label_and_complex_arrays_are_refused():

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    with pytest.raises(DataError, match=r"400 distinct fractional numbers .* a measurement"):
        encode_labels(rng.normal(size=400), what="t")
    with pytest.raises(DataError, match=r"t: X holds complex numbers"):
        arrays_dataset(X + 1j, np.arange(400) % 2, name="t", source="t", what="t")
    # A few fractional classes still read as classes.
    assert encode_labels(pd.Series([0.5, 1.5, 0.5]), what="t")[1] == ["0.5", "1.5"]
