"""Tests for miaudit.data.encode: the laws of the tabular encoder and its errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miaudit.data.encode import MISSING_CATEGORY, TabularEncoder
from miaudit.errors import DataError

CATEGORY_VALUES = st.sampled_from(["a", "b", "Z", "é", "?", "10", "9", "", "nan"]) | st.text(
    max_size=4
)
NUMBERS = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False) | st.integers(-1000, 1000)


@st.composite
def tables(draw: st.DrawFn) -> tuple[pd.DataFrame, list[str]]:
    """A raw table of 1-40 rows with categorical and numeric columns in any order."""
    n = draw(st.integers(1, 40))
    n_cat = draw(st.integers(0, 3))
    n_num = draw(st.integers(0 if n_cat else 1, 3))
    columns: dict[str, list] = {}
    for j in range(n_cat):
        columns[f"c{j}"] = draw(st.lists(CATEGORY_VALUES, min_size=n, max_size=n))
    for j in range(n_num):
        columns[f"n{j}"] = [float(v) for v in draw(st.lists(NUMBERS, min_size=n, max_size=n))]
    order = draw(st.permutations(list(columns)))
    df = pd.DataFrame({c: columns[c] for c in order})
    return df, [c for c in order if c.startswith("c")]


def assert_same_table(decoded: pd.DataFrame, original: pd.DataFrame, categorical: list[str]):
    assert list(decoded.columns) == list(original.columns)
    for col in original.columns:
        if col in categorical:
            assert decoded[col].tolist() == original[col].astype(str).tolist()
        else:
            x = original[col].to_numpy(dtype=np.float64)
            # float32 keeps ~7 digits of the standardised value: error <= 1e-7 * |x - mean|.
            atol = 1e-6 * (np.abs(x).max() + 1.0)
            np.testing.assert_allclose(decoded[col].to_numpy(), x, rtol=0, atol=atol)


@settings(max_examples=60, deadline=None)
@given(tables())
def test_inverse_transform_recovers_the_table(table):
    df, categorical = table
    encoder = TabularEncoder(categorical=categorical).fit(df)
    assert_same_table(encoder.inverse_transform(encoder.transform(df)), df, categorical)


@settings(max_examples=60, deadline=None)
@given(tables())
def test_encoded_layout_invariants(table):
    df, categorical = table
    encoder = TabularEncoder(categorical=categorical)
    X = encoder.fit_transform(df)
    assert X.dtype == np.float32
    assert X.shape == (len(df), encoder.n_encoded) == (len(df), len(encoder.encoded_feature_names))
    names = encoder.encoded_feature_names
    for col in df.columns:
        if col in categorical:
            block = [i for i, nm in enumerate(names) if nm.startswith(f"{col}=")]
            cats = [names[i].split("=", 1)[1] for i in block]
            assert cats == sorted(set(df[col].astype(str)))
            # Every fitted record has exactly one active category per column.
            assert np.array_equal(X[:, block].sum(axis=1), np.ones(len(df)))
            assert set(np.unique(X[:, block])) <= {0.0, 1.0}
        else:
            z = X[:, names.index(col)].astype(np.float64)
            if df[col].std(ddof=0) > 0:
                assert abs(z.mean()) < 1e-4
                assert z.std() == pytest.approx(1.0, abs=1e-4)
            else:
                assert np.all(z == 0)


@settings(max_examples=40, deadline=None)
@given(tables(), st.randoms(use_true_random=False))
def test_rows_are_encoded_independently(table, rnd):
    df, categorical = table
    encoder = TabularEncoder(categorical=categorical).fit(df)
    order = list(range(len(df)))
    rnd.shuffle(order)
    shuffled = df.iloc[order].reset_index(drop=True)
    assert np.array_equal(encoder.transform(shuffled), encoder.transform(df)[order])


@settings(max_examples=40, deadline=None)
@given(tables())
def test_json_round_trip_encodes_identically(table):
    df, categorical = table
    encoder = TabularEncoder(categorical=categorical).fit(df)
    restored = TabularEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    assert restored.to_dict() == encoder.to_dict()
    assert restored.encoded_feature_names == encoder.encoded_feature_names
    assert np.array_equal(restored.transform(df), encoder.transform(df))


def small_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30, 40, 50, 60],
            "sex": ["Male", "Female", "Female", "Male"],
            "city": ["Oslo", "Bergen", "?", "Oslo"],
        }
    )


def test_names_order_and_values_on_a_known_table():
    encoder = TabularEncoder(categorical=["sex", "city"]).fit(small_table())
    assert encoder.encoded_feature_names == [
        "age",
        "sex=Female",
        "sex=Male",
        "city=?",
        "city=Bergen",
        "city=Oslo",
    ]
    X = encoder.transform(small_table())
    # ages 30..60: mean 45, population std sqrt(125)
    np.testing.assert_allclose(X[:, 0], (np.array([30, 40, 50, 60]) - 45) / np.sqrt(125), 1e-6)
    np.testing.assert_array_equal(X[0, 1:], [0, 1, 0, 0, 1])
    np.testing.assert_array_equal(X[2, 1:], [1, 0, 1, 0, 0])


def test_unseen_category_encodes_as_zeros_for_that_column_only():
    encoder = TabularEncoder(categorical=["sex", "city"]).fit(small_table())
    new = pd.DataFrame({"age": [45], "sex": ["Female"], "city": ["Trondheim"]})
    X = encoder.transform(new)
    np.testing.assert_array_equal(X[0], [0, 1, 0, 0, 0, 0])
    assert encoder.inverse_transform(X)["city"].tolist() == [None]


def test_columns_are_matched_by_name_and_extra_columns_ignored():
    encoder = TabularEncoder(categorical=["sex", "city"]).fit(small_table())
    reordered = small_table()[["city", "sex", "age"]].assign(extra=1)
    assert np.array_equal(encoder.transform(reordered), encoder.transform(small_table()))


def test_numbers_as_categories_match_their_string_form():
    # A server that receives {"zip": 5000} must encode it like the training "5000".
    encoder = TabularEncoder(categorical=["zip"]).fit(pd.DataFrame({"zip": ["5000", "7000"]}))
    X = encoder.transform(pd.DataFrame({"zip": [7000, 5000]}))
    np.testing.assert_array_equal(X, [[0, 1], [1, 0]])


def test_missing_categorical_is_its_own_category():
    df = pd.DataFrame({"c": ["x", None, np.nan, "y"]})
    encoder = TabularEncoder(categorical=["c"]).fit(df)
    assert encoder.categories_["c"] == sorted(["x", "y", MISSING_CATEGORY])
    X = encoder.transform(df)
    assert X[1].tolist() == X[2].tolist() != X[0].tolist()


def test_constant_numeric_column_has_unit_scale():
    encoder = TabularEncoder().fit(pd.DataFrame({"k": [7.0, 7.0, 7.0]}))
    assert encoder.scale_["k"] == 1.0
    assert encoder.transform(pd.DataFrame({"k": [8.0]}))[0, 0] == 1.0


def test_nan_in_numeric_column_names_column_count_and_fix():
    df = pd.DataFrame({"age": [1.0, np.nan, np.nan, 4.0], "sex": ["a", "b", "a", "b"]})
    with pytest.raises(DataError, match=r"'age' has 2 missing \(NaN\) or infinite.*drop or impute"):
        TabularEncoder(categorical=["sex"]).fit(df)


def test_infinite_values_are_reported_as_such():
    with pytest.raises(DataError, match=r"'x' has 1 missing \(NaN\) or infinite"):
        TabularEncoder().fit(pd.DataFrame({"x": [1.0, np.inf]}))


def test_text_in_numeric_column_at_transform_time():
    encoder = TabularEncoder().fit(pd.DataFrame({"age": [1, 2]}))
    with pytest.raises(DataError, match=r"'age' has 1 non-numeric value.*'old'"):
        encoder.transform(pd.DataFrame({"age": [3, "old"]}))


def test_absent_columns_are_errors():
    with pytest.raises(DataError, match=r"categorical column\(s\) \['zip'\] are not in the table"):
        TabularEncoder(categorical=["zip"]).fit(small_table())
    encoder = TabularEncoder(categorical=["sex", "city"]).fit(small_table())
    with pytest.raises(DataError, match=r"lacks column\(s\) \['city'\]"):
        encoder.transform(small_table().drop(columns=["city"]))


def test_empty_table_and_unfitted_use_are_errors():
    with pytest.raises(DataError, match="empty table"):
        TabularEncoder().fit(pd.DataFrame({"a": []}))
    with pytest.raises(DataError, match="not fitted"):
        TabularEncoder().transform(small_table())


def test_from_dict_rejects_foreign_or_newer_descriptions():
    spec = TabularEncoder(categorical=["sex", "city"]).fit(small_table()).to_dict()
    with pytest.raises(DataError, match="not a miaudit tabular encoder"):
        TabularEncoder.from_dict({"columns": []})
    with pytest.raises(DataError, match="version 99 is not supported"):
        TabularEncoder.from_dict({**spec, "version": 99})
    with pytest.raises(DataError, match="malformed"):
        TabularEncoder.from_dict({**spec, "numeric": {"age": {"mean": 1.0}}})


def test_inverse_transform_checks_width():
    encoder = TabularEncoder(categorical=["sex", "city"]).fit(small_table())
    with pytest.raises(DataError, match="width 6"):
        encoder.inverse_transform(np.zeros((2, 5)))
