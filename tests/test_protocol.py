"""The wire format: raw records both ways, and validation of what a service answers."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from miaudit.data import load_dataset
from miaudit.errors import TargetError
from miaudit.protocol import (
    InputSchema,
    RecordError,
    parse_answer,
    record_keys,
    record_texts,
    request_body,
)


@pytest.fixture(scope="module")
def adult():
    return load_dataset("adult")


def test_tabular_records_round_trip_exactly(adult):
    schema = InputSchema.for_dataset(adult)
    rng = np.random.default_rng(0)
    X = adult.X[rng.choice(adult.n_records, 500, replace=False)]
    records = schema.to_records(X)
    # Raw values, in the data set's own columns: categories as strings, numbers as numbers.
    assert list(records[0]) == adult.feature_names
    assert all(isinstance(records[0][c], str) for c in adult.categorical)
    # JSON in between, as on the wire; encoding gives back the very same inputs.
    again = schema.encode(json.loads(json.dumps(records)))
    np.testing.assert_array_equal(again, X)


def test_image_records_round_trip_exactly():
    mnist = load_dataset("mnist")
    schema = InputSchema.for_dataset(mnist)
    X = mnist.X[:50]
    records = json.loads(json.dumps(schema.to_records(X)))
    assert list(records[0]) == ["pixels"] and len(records[0]["pixels"]) == 784
    np.testing.assert_array_equal(schema.encode(records), X)
    assert schema.to_json() == {"kind": "image", "shape": [1, 28, 28], "field": "pixels"}


def test_unseen_category_is_refused_and_null_encodes_as_zeros(adult):
    schema = InputSchema.for_dataset(adult)
    record = schema.to_records(adult.X[:1])[0]
    with pytest.raises(RecordError, match=r"'Space-agency' is none of the column's 9 categ"):
        schema.encode([{**record, "workclass": "Space-agency"}])
    # null is no category (adult's workclass has no empty cells): the block a record
    # with none decodes to.
    X = schema.encode([{**record, "workclass": None}])
    block = [i for i, n in enumerate(adult.encoded_feature_names) if n.startswith("workclass=")]
    assert X[0, block].sum() == 0
    assert schema.to_records(X)[0]["workclass"] is None


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda r: r.pop("age"), "records[1].age", "is missing"),
        (lambda r: r.update(agee=3), "records[1].agee", "is not a field"),
        (lambda r: r.update(age="39"), "records[1].age", "finite number"),
        (lambda r: r.update(age=float("nan")), "records[1].age", "finite number"),
        (lambda r: r.update(age=True), "records[1].age", "finite number"),
        (lambda r: r.update(sex=1), "records[1].sex", "a category"),
    ],
)
def test_bad_records_name_the_field(adult, change, field, message):
    schema = InputSchema.for_dataset(adult)
    records = schema.to_records(adult.X[:2])
    change(records[1])
    with pytest.raises(RecordError, match=message) as err:
        schema.encode(records)
    assert err.value.field == field


def test_bad_containers_and_pixels_are_refused():
    mnist = load_dataset("mnist")
    schema = InputSchema.for_dataset(mnist)
    with pytest.raises(RecordError, match="must be a list"):
        schema.encode({"pixels": []})
    with pytest.raises(RecordError, match=r"records\[0\]: must be an object"):
        schema.encode([[0.0] * 784])
    with pytest.raises(RecordError, match="784 numbers, got 3"):
        schema.encode([{"pixels": [0, 0, 0]}])
    with pytest.raises(RecordError, match=r"in \[0, 1\]") as err:
        schema.encode([{"pixels": [0.5] * 784}, {"pixels": [2.0] * 784}])
    assert err.value.field == "records[1].pixels"
    with pytest.raises(RecordError, match="only numbers") as err:
        schema.encode([{"pixels": [0.5] * 784}, {"pixels": ["x"] * 784}])
    assert err.value.field == "records[1].pixels"


def test_schema_differences(adult):
    schema = InputSchema.for_dataset(adult)
    spec = schema.to_json()
    assert schema.differences(spec) is None
    assert "columns" in schema.differences({**spec, "columns": spec["columns"][1:]})
    renamed = json.loads(json.dumps(spec))
    renamed["columns"][1]["categories"] = ["a", "b"]
    assert "workclass" in schema.differences(renamed)
    assert "image" in schema.differences({"kind": "image", "shape": [1, 28, 28]})
    assert schema.differences(None) is not None


def test_record_keys_identify_content_and_texts_make_the_body():
    a, b = {"x": 1.0, "s": "a"}, {"x": 1.0000001, "s": "a"}
    texts = record_texts([a, dict(a), b])
    keys = record_keys(texts)
    assert keys[0] == keys[1] != keys[2]
    assert json.loads(request_body(texts)) == {"records": [a, a, b]}
    with pytest.raises(ValueError):
        record_texts([{"x": float("nan")}])


CLASSES = ["no", "yes"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"probabilities": [[0.5, 0.5]', "malformed JSON"),
        (b'{"probs": [[0.5, 0.5], [0.5, 0.5]]}', "without the 'probabilities'"),
        (b'{"probabilities": [[0.5, 0.5]]}', "1 probabilities for 2 records"),
        (b'{"probabilities": [[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]]}', "expected 2 probabilities"),
        (b'{"probabilities": [[0.5, 0.5], [0.5]]}', "expected 2 probabilities"),
        (b'{"probabilities": [[NaN, 0.5], [0.5, 0.5]]}', "NaN or infinite"),
        (b'{"probabilities": [[1.5, -0.5], [0.5, 0.5]]}', "negative"),
        (b'{"probabilities": [[2.0, 3.0], [0.5, 0.5]]}', "do not sum to 1"),
        (b'{"probabilities": [["a", "b"], [0.5, 0.5]]}', "not all numbers"),
    ],
)
def test_malformed_answers_are_named(body, message):
    with pytest.raises(TargetError, match=message):
        parse_answer(body, 2, CLASSES, label_only=False, source="svc")


def test_label_answers_become_one_hot_rows():
    P = parse_answer(b'{"labels": ["yes", "no", "yes"]}', 3, CLASSES, label_only=True, source="s")
    np.testing.assert_array_equal(P, [[0, 1], [1, 0], [0, 1]])
    with pytest.raises(TargetError, match="'maybe', which is not a class"):
        parse_answer(b'{"labels": ["maybe"]}', 1, CLASSES, label_only=True, source="s")
    ok = parse_answer(b'{"probabilities": [[0.25, 0.75]]}', 1, CLASSES, label_only=False, source="")
    np.testing.assert_array_equal(ok, [[0.25, 0.75]])


@pytest.mark.parametrize(
    ("value", "shown"),
    [("0.5", "'0.5'"), (True, "True"), ([0.5], "[0.5]"), (None, "None")],
    ids=["string", "boolean", "nested-list", "null"],
)
def test_pixels_take_json_numbers_only_as_tabular_fields_do(value, shown):
    # Before: NumPy converted "0.5" and True to numbers, and the record was answered.
    schema = InputSchema.for_dataset(load_dataset("mnist"))
    pixels = [0.5] * 784
    pixels[3] = value
    with pytest.raises(RecordError, match=rf"only numbers, not {re.escape(shown)}") as err:
        schema.encode([{"pixels": [0.5] * 784}, {"pixels": pixels}])
    assert err.value.field == "records[1].pixels"
