"""The user's own records beside the encoded ones, and naming the target's members."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from miaudit.data.memory import memory_dataset
from miaudit.data.records import resolve_members
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


# The membership rule: a mask (booleans, 0/1 integers or floats), row positions or ids,
# whichever one reading fits; several fitting readings are refused and members_as settles.


@pytest.fixture
def with_int_ids(frame):
    """The frame with an integer id column that is a shuffle of the row positions."""
    shuffled = np.random.default_rng(3).permutation(len(frame))
    return frame.assign(pid=shuffled), shuffled


def _resolved(data, members, non_members=None, members_as=None):
    out = resolve_members(data, members, non_members, np.random.default_rng(0), members_as)
    return [list(map(int, part)) for part in out[:3]]


def test_boolean_integer_and_float_masks_name_the_same_records(frame):
    data = memory_dataset(frame, "label")
    mask = np.zeros(len(frame), bool)
    mask[[62, 10, 33, 40]] = True  # row 62 is a copy of row 2
    others = np.zeros(len(frame), bool)
    others[[20, 30, 2]] = True  # record 2 is a member (as row 62): dropped
    expected = _resolved(data, np.array([62, 10, 33, 40]), np.array([20, 30, 2]))
    assert expected[0] == [2, 10, 33, 40] and expected[2] == [20, 30]
    for kind in (bool, np.int64, np.int8, np.uint8, np.float64, np.float32):
        assert _resolved(data, mask.astype(kind), others.astype(kind)) == expected, kind
    # As a list, a pandas column, or a list of Python floats: the same.
    assert _resolved(data, mask.astype(int).tolist(), pd.Series(others)) == expected
    assert _resolved(data, [float(v) for v in mask], others.astype(float).tolist()) == expected
    # Without non-members the draw is the same too.
    drawn = _resolved(data, mask)
    for kind in (np.int64, np.float64):
        assert _resolved(data, mask.astype(kind)) == drawn


def test_integer_ids_that_are_also_row_positions_are_refused_naming_both(with_int_ids):
    table, pid = with_int_ids
    data = memory_dataset(table, "label", id_column="pid")
    rows = np.array([5, 17, 30, 44])
    with pytest.raises(DataError) as caught:
        _resolved(data, rows)
    message = str(caught.value)
    assert message == (
        "members: reads both as row positions and as ids; say which with "
        "members_as=positions or members_as=ids"
    )
    by_position = _resolved(data, rows, members_as="positions")
    assert by_position[0] == [5, 17, 30, 44]  # the rows themselves
    by_id = _resolved(data, rows, members_as="ids")
    named = [int(np.flatnonzero(pid == r)[0]) for r in rows]  # the rows with those ids
    assert by_id[0] == sorted(int(data.raw.source_rows[r]) for r in named)
    assert by_id[0] != by_position[0]
    # Non-members are read by the same rule, and the same keyword settles them.
    mask = np.isin(np.arange(len(table)), [50, 51])
    with pytest.raises(DataError, match="non_members: reads both as row positions and as ids"):
        _resolved(data, mask, rows)
    assert _resolved(data, [50, 51], rows, members_as="positions")[2] == [5, 17, 30, 44]
    # Ids beyond the row positions, or positions that are no ids, read one way only.
    data_far = memory_dataset(table.assign(pid=pid + 1000), "label", id_column="pid")
    assert _resolved(data_far, rows)[0] == [5, 17, 30, 44]
    assert _resolved(data_far, pid[rows] + 1000)[0] == [5, 17, 30, 44]


def test_a_mask_is_never_taken_as_ids(with_int_ids):
    table, _ = with_int_ids
    data = memory_dataset(table, "label", id_column="pid")
    mask = np.zeros(len(table), np.int64)
    mask[[3, 9]] = 1
    # Ids 0 and 1 exist, but a 0/1 array with one entry per row reads only as a mask.
    assert _resolved(data, mask)[0] == [3, 9]
    assert _resolved(data, mask, members_as="mask")[0] == [3, 9]
    for members_as in ("ids", "positions"):
        with pytest.raises(DataError) as caught:
            _resolved(data, mask, members_as=members_as)
        message = str(caught.value)
        assert "it reads as a 0/1 mask: pass members_as=mask" in message
        assert f"(members_as={members_as})" in message and "\n" not in message
    with pytest.raises(DataError, match="booleans are no row positions"):
        _resolved(data, mask.astype(bool), members_as="positions")


def test_a_0_1_array_over_two_rows_is_refused_naming_both_readings():
    from miaudit.data.records import named_rows

    with pytest.raises(DataError) as caught:
        named_rows([0, 1], "members", 2)
    assert str(caught.value) == (
        "members: reads both as a 0/1 mask and as row positions; say which with "
        "members_as=mask or members_as=positions"
    )
    assert list(named_rows([0, 1], "members", 2, read_as="mask")) == [1]
    assert list(named_rows([0, 1], "members", 2, read_as="positions")) == [0, 1]
    assert list(named_rows([False, True], "members", 2)) == [1]  # booleans: only a mask


@pytest.mark.parametrize(
    ("members", "message"),
    [
        (np.ones(4, bool), "members: a mask of 4 entries for 65 rows; give one entry per row"),
        (np.ones(4), "members: a float array is a 0/1 mask: 4 entries for 65 rows; give one 0"),
        (np.r_[0.5, np.zeros(64)], "a float array is a 0/1 mask: entry 0 is 0.5, neither 0 nor 1"),
        (np.r_[np.zeros(64), 7.0], r"entry 64 is 7.0, neither 0 nor 1; .* ids as integers"),
        (np.r_[1.0, np.nan, np.zeros(63)], "members: entry 1 is NaN; give a 0/1 mask"),
        (pd.Series([1, None, 0], dtype=object), "members: entry 1 is missing"),
        (pd.array([1, pd.NA, 0], dtype="Int64"), "members: entry 1 is (NaN|missing)"),
        ([1, "p2"], "members: mixes int and str values; give a 0/1 mask"),
        (np.array([True, 3], dtype=object), "members: mixes bool and int values"),
        ([{"row": 1}], "members: dict values name no rows"),
        (np.zeros((65, 2), bool), r"members: shape \(65, 2\); give a 1-D mask"),
        (np.ones(64, np.int64), r"members: names no rows: as a 0/1 mask, 64 entries for 65 "
         r"rows; as row positions, row 1 is named 64 times; as ids, the data has none "
         r"\(pass id_column\)"),
        ([3, 70], "as row positions, row 70 is not a row of data .it has 65 rows."),
        (["p1"], r"members: text names ids: the data has none \(pass id_column\)"),
    ],
)  # fmt: skip
def test_bad_members_are_one_line_naming_them(frame, members, message):
    data = memory_dataset(frame, "label")
    with pytest.raises(DataError, match=message) as caught:
        _resolved(data, members)
    assert "\n" not in str(caught.value)


def test_ids_that_are_text_or_integers_take_their_own_kind(frame, with_int_ids):
    text = memory_dataset(frame.assign(pid=[f"p{i}" for i in range(65)]), "label",
                          id_column="pid")  # fmt: skip
    # Integers are row positions here: no text id is written as a number.
    assert _resolved(text, [62, 10])[0] == [2, 10]
    with pytest.raises(DataError, match="members: text names ids: id 'p3' is named twice"):
        _resolved(text, ["p3", "p3"])
    digits = memory_dataset(frame.assign(pid=[str(100 + i) for i in range(65)]), "label",
                            id_column="pid")  # fmt: skip
    assert _resolved(digits, [110, 162])[0] == [2, 10]  # numbers name ids written alike
    table, _ = with_int_ids
    numbered = memory_dataset(table, "label", id_column="pid")
    with pytest.raises(DataError, match="'p1' is not an id: the ids are integers"):
        _resolved(numbered, ["p1"])
    with pytest.raises(DataError, match=r"members_as=rows: use mask, positions or ids"):
        _resolved(numbered, [1], members_as="rows")


def test_membership_mask_reads_booleans_and_0_1_numbers_alike():
    from miaudit.data.records import membership_mask

    want = np.array([[True, False], [False, True]])
    for given in (want, want.astype(int), want.astype(float), want.astype(int).tolist()):
        np.testing.assert_array_equal(membership_mask(given, "m", (2, 2)), want)
    with pytest.raises(DataError, match=r"m: shape \(4,\); expected \(2, 2\)"):
        membership_mask(want.ravel(), "m", (2, 2))
    with pytest.raises(DataError, match=r"m: entry \(1, 0\) is 0.5; give 1 \(or True\)"):
        membership_mask([[1, 0], [0.5, 1]], "m", (2, 2))
