"""The user's own records beside the encoded ones, and naming the target's members."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from miaudit.data.records import memory_dataset, resolve_members
from miaudit.errors import DataError


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    n = 60
    table = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "height": rng.normal(170, 10, n).round(1),
            "city": pd.Categorical(rng.choice(["Oslo", "Lima", "Pune"], n)),
            "smoker": rng.choice([True, False], n),
            "code": rng.choice([7, 12, 30], n),
            "label": rng.choice(["a", "b"], n),
        }
    )
    return pd.concat([table, table.iloc[:5]], ignore_index=True)  # 5 duplicate rows


def test_the_data_sets_rows_come_back_exactly_and_made_ones_in_the_users_form(frame):
    data = memory_dataset(frame, "label", categorical=["code"])
    raw = data.raw
    assert data.n_records == 60 and list(data.rows) == list(range(60))
    features = frame.drop(columns="label")
    back = raw.decode(data.X[[3, 0, 59]])
    pd.testing.assert_frame_equal(back, features.iloc[[3, 0, 59]].reset_index(drop=True))
    # A record miaudit made: a shifted age, another city, a changed code.
    made = data.X[:2].copy()
    made[0, 0] += 0.37
    decoded = raw.decode(made)
    assert decoded.dtypes.equals(features.dtypes)
    assert decoded.loc[0, "age"] != features.loc[0, "age"]
    assert float(decoded.loc[0, "age"]).is_integer()
    pd.testing.assert_series_equal(decoded.iloc[1], features.iloc[1], check_names=False)
    assert decoded["code"].isin([7, 12, 30]).all()  # categories back to their own values
    assert set(raw.labels(data.y[:3])) <= {"a", "b"}


def test_images_come_back_in_their_dtype_and_shape():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(30, 6, 6), dtype=np.uint8)
    data = memory_dataset((images, np.arange(30) % 3))
    assert data.X.shape == (30, 1, 6, 6)
    np.testing.assert_array_equal(data.raw.decode(data.X), images)
    flipped = data.X[:, :, :, ::-1]
    np.testing.assert_array_equal(data.raw.decode(flipped), images[:, :, ::-1])


def test_members_by_mask_rows_or_ids_and_duplicates_are_one_record(frame):
    data = memory_dataset(frame.assign(pid=[f"p{i}" for i in range(len(frame))]), "label",
                          id_column="pid")  # fmt: skip
    rng = np.random.default_rng(0)
    # Row 62 is a copy of row 2: naming either names record 2.
    by_rows = resolve_members(data, [62, 10], [2, 20, 30, 40], rng)
    assert list(by_rows[0]) == [2, 10]
    assert list(by_rows[2]) == [20, 30, 40]  # record 2 is a member: dropped from non-members
    assert by_rows[3]["non_members_dropped_as_duplicates_of_members"] == 1
    by_ids = resolve_members(data, ["p62", "p10"], None, rng)
    assert list(by_ids[0]) == [2, 10] and len(by_ids[2]) == 2
    mask = np.zeros(len(frame), bool)
    mask[[62, 10]] = True
    assert list(resolve_members(data, mask, None, rng)[0]) == [2, 10]
    with pytest.raises(DataError, match="id 'p99' is not an id of data"):
        resolve_members(data, ["p99"], None, rng)
    with pytest.raises(DataError, match="id 'p1' is named twice"):
        resolve_members(data, ["p1", "p1"], None, rng)


def test_without_non_members_the_evaluation_is_balanced_and_a_pool_is_left(frame):
    data = memory_dataset(frame, "label")
    rng = np.random.default_rng(0)
    members, evaluated, non, facts = resolve_members(data, np.arange(40), None, rng)
    assert len(members) == 40 and len(non) == len(evaluated) == 10  # 20 others: half of them
    assert facts == {"members_given": 40, "members_evaluated": 10}
    assert not set(non) & set(members)
    with pytest.raises(DataError, match="needs non-members too"):
        resolve_members(data, np.arange(60), None, rng)
