"""Records as people read them: the user's values back from the encoding, images as PNG."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from miaudit.data.describe import describe_records, png_data_uri
from miaudit.data.encode import TabularEncoder


def test_numbers_come_back_as_the_user_wrote_them_not_at_float32_noise():
    table = pd.DataFrame({
        "age": [39, 50, 38, 97, 17],
        "amount": [12345.67, 0.5, 99999.0, 1.25, 250.0],
        "city": ["Oslo", "Lima", "Oslo", "Atlantis", "Lima"],
    })  # fmt: skip
    enc = TabularEncoder(categorical=["city"]).fit(table)
    X = enc.transform(table).astype(np.float32)
    plain = enc.inverse_transform(X)
    assert (plain["age"] != table["age"]).any()  # the float32 noise the report must not show
    back = enc.readable(X)
    assert back["age"].tolist() == [39, 50, 38, 97, 17]
    assert back["amount"].tolist() == [12345.67, 0.5, 99999, 1.25, 250]
    assert back["city"].tolist() == table["city"].tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-10**6, 10**6), min_size=2, max_size=30),
       st.integers(0, 2))  # fmt: skip
def test_numbers_with_few_decimals_round_trip(values, decimals):
    numbers = [v / 10**decimals for v in values]
    table = pd.DataFrame({"x": numbers})
    enc = TabularEncoder().fit(table)
    back = enc.readable(enc.transform(table).astype(np.float32))["x"].tolist()
    # Exact where float32 keeps that many digits of the standardised value.
    for got, want in zip(back, numbers, strict=True):
        assert abs(got - want) <= max(1e-6, 2e-7 * abs(want))


def test_an_image_record_becomes_a_png_with_its_pixels():
    from PIL import Image

    rng = np.random.default_rng(0)
    for shape in ((1, 8, 6), (3, 5, 7)):
        x = rng.integers(0, 256, shape) / 255.0
        uri = png_data_uri(x)
        assert uri.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        got = np.asarray(image, dtype=float)
        want = np.rint(x * 255).transpose(1, 2, 0).squeeze()
        np.testing.assert_array_equal(got, want)


def test_describe_records_takes_the_users_own_frame_when_there_is_one():
    from miaudit.data import load_dataset

    data = load_dataset("digits")
    described = describe_records(data, np.array([3, 0]))
    # No frame handed over: decoded from the encoding, whole numbers as integers.
    assert set(described[0]) == {"values"} and len(described[0]["values"]) == 64
    assert all(isinstance(v, int) for v in described[0]["values"].values())
    from miaudit.data import load_frame

    frame = load_frame("digits")
    for index, got in zip((3, 0), described, strict=True):
        row = frame.iloc[int(data.rows[index])]
        assert got["values"] == {c: int(row[c]) for c in got["values"]}
