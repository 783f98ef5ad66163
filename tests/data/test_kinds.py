"""Kinds of record (miaudit.data.kinds): text, opaque objects and tables held as given."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from miaudit.data.build import UnencodableError
from miaudit.data.kinds import KINDS, content_digest, kind_of
from miaudit.data.kinds.text import (
    MAX_TEXT_CHARS,
    TEXT_BUCKETS,
    dropped_words,
    token_ids,
    tokens,
    word_variant,
)
from miaudit.data.memory import memory_dataset, record_kind_of_pair
from miaudit.errors import DataError

TEXTS = [f"message number {i} about {w}" for i, w in enumerate(["cats", "dogs", "rain"] * 8)]
LABELS = ["spam" if i % 3 == 0 else "ham" for i in range(len(TEXTS))]


def test_text_records_are_held_by_handle_and_come_back_exactly():
    texts = [*TEXTS, TEXTS[0]]  # a duplicate (same text, same label)
    data = memory_dataset((texts, [*LABELS, LABELS[0]]))
    assert data.kind == "text" and kind_of(data).name == "text"
    assert data.n_records == len(TEXTS) and data.notes["duplicates_dropped"] == 1
    assert data.class_names == ["ham", "spam"]
    # Column 0 names the record; the token ids follow.
    np.testing.assert_array_equal(data.X[:, 0], np.arange(data.n_records))
    length = data.notes["text_tokens"]
    assert length == max(len(tokens(t)) for t in TEXTS)
    np.testing.assert_array_equal(data.X[:, 1:], token_ids(TEXTS, length)[0])
    assert ((data.X[:, 1:] >= 0) & (data.X[:, 1:] < TEXT_BUCKETS)).all()
    picked = np.array([5, 0, 17])
    assert list(data.raw.decode(data.X[picked])) == [TEXTS[i] for i in picked]
    # The duplicate row is the record it copies, for members= by row.
    assert data.raw.source_rows[-1] == 0


def test_a_dataframe_text_column_keeps_its_other_columns_as_given():
    frame = pd.DataFrame({"note": TEXTS, "age": [np.nan, *range(len(TEXTS) - 1)], "y": LABELS})
    data = memory_dataset(frame, "y", text_column="note")
    assert data.kind == "text" and data.notes["text_column"] == "note"
    back = data.raw.decode(data.X[[0, 3]])
    pd.testing.assert_frame_equal(back, frame.drop(columns="y").iloc[[0, 3]].reset_index(drop=True))
    shown = kind_of(data).show(data, np.array([0]))[0]
    assert shown["text"] == TEXTS[0] and np.isnan(shown["values"]["age"])


def test_made_records_get_handles_past_the_data_sets_own():
    data = memory_dataset((TEXTS, LABELS))
    kind = kind_of(data)
    variants = kind.variants(data, data.X[:4], 3)
    assert variants.shape == (2, 4, data.X.shape[1])
    assert (variants[..., 0] >= data.n_records).all()
    made = data.raw.decode(variants[0])
    assert list(made) == [word_variant(t, 1) for t in TEXTS[:4]]
    # Records of the data set still decode to themselves beside the made ones.
    both = np.concatenate([data.X[:2], variants[1, :2]])
    assert list(data.raw.decode(both)) == [*TEXTS[:2], *(word_variant(t, 2) for t in TEXTS[:2])]
    with pytest.raises(DataError, match="not this data set's"):
        data.raw.decode(np.full((1, data.X.shape[1]), 1e6, np.float32))


@given(st.lists(st.sampled_from(["a", "bb", "c", "dd", "e"]), min_size=2, max_size=12),
       st.integers(1, 17))  # fmt: skip
def test_word_variants_drop_or_swap_one_word(words, k):
    text = " ".join(words)
    out = word_variant(text, k).split()
    if k % 2:  # a word dropped
        assert len(out) == len(words) - 1 and not Counter(out) - Counter(words)
    else:  # two neighbours swapped
        assert sorted(out) == sorted(words)
        assert sum(a != b for a, b in zip(out, words, strict=True)) in (0, 2)
    assert word_variant(text, k) == word_variant(text, k)  # fixed: no randomness


def test_dropped_words_keep_at_least_one_word():
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert dropped_words("one two", rng, rate=0.99).split()


@pytest.mark.parametrize(
    "bad, match",
    [
        ([None], "row 0 is missing"),
        ([float("nan")], "row 0 is missing"),
        ([b"bytes"], "row 0 holds bytes"),
        ([12], "row 0 holds a int"),
        ([""], "row 0 is empty"),
        (["   "], "row 0 is empty"),
        (["x" * (MAX_TEXT_CHARS + 1)], "characters"),
    ],
)
def test_bad_texts_are_named_by_row(bad, match):
    texts = [*bad, *TEXTS] if not isinstance(bad[0], str) or not bad[0].strip() else bad + TEXTS
    frame = pd.DataFrame({"t": texts, "y": [*LABELS, "ham"][: len(texts)]})
    with pytest.raises(DataError, match=match):
        memory_dataset(frame, "y", text_column="t")


def test_a_text_column_the_data_does_not_have_is_named():
    frame = pd.DataFrame({"t": TEXTS, "y": LABELS})
    with pytest.raises(DataError, match="no text column 'body'; columns are: t"):
        memory_dataset(frame, "y", text_column="body")
    with pytest.raises(DataError, match="text_column= names a DataFrame column"):
        memory_dataset((np.zeros((20, 2)), np.arange(20) % 2), text_column="t")


def test_opaque_records_are_any_objects_and_equal_ones_are_one_record():
    records = [{"id": i % 20, "tokens": ["a"] * (i % 20)} for i in range(25)]
    labels = [i % 2 for i in range(20)] + [i % 2 for i in range(5)]
    data = memory_dataset((records, labels))
    assert data.kind == "opaque" and data.n_records == 20
    assert data.notes["duplicates_dropped"] == 5
    back = data.raw.decode(data.X[[3, 4]])
    assert back[0] is records[3] and back[1] is records[4]  # the very objects
    assert kind_of(data).show(data, np.array([3]))[0]["object"].startswith("{'id': 3")
    for ask in ("cannot_vary", "cannot_perturb", "cannot_move", "cannot_represent",
                "cannot_synthesise"):  # fmt: skip
        assert "does not look inside opaque records" in getattr(kind_of(data), ask)(data)


def test_objects_that_do_not_pickle_are_never_taken_for_other_data():
    def records():
        return [(lambda i=i: i) for i in range(20)]

    a = memory_dataset((records(), np.arange(20) % 2))
    b = memory_dataset((records(), np.arange(20) % 2))
    assert "duplicates_unchecked" in a.notes and "content_sha256" not in a.notes
    assert a.fingerprint() != b.fingerprint()


def test_the_fingerprint_of_held_records_is_their_content():
    one = memory_dataset((TEXTS, LABELS))
    same = memory_dataset((list(TEXTS), list(LABELS)))
    other = memory_dataset(([t + "!" for t in TEXTS], LABELS))
    assert one.X.shape == other.X.shape and one.fingerprint() == same.fingerprint()
    assert one.fingerprint() != other.fingerprint()
    assert content_digest(np.array(TEXTS, dtype=object)) != content_digest(
        np.array([*TEXTS[1:], TEXTS[0]], dtype=object)
    )


def test_a_table_the_encoder_refuses_is_held_only_for_the_users_model():
    frame = pd.DataFrame(
        {"age": [np.nan, *range(29)], "city": [f"c{i % 4}" for i in range(30)],
         "y": [i % 2 for i in range(30)]}
    )  # fmt: skip
    with pytest.raises(UnencodableError, match="'age' has 1 missing"):
        memory_dataset(frame, "y")
    data = memory_dataset(frame, "y", hold=True)
    assert data.kind == "tabular" and data.raw.held
    assert "'age' has 1 missing" in data.notes["held_because"]
    pd.testing.assert_frame_equal(data.raw.decode(data.X), frame.drop(columns="y"))
    why = KINDS["tabular"].cannot_train(data, "mlp")
    assert "'age' has 1 missing" in why and "your own model" in why
    assert "'age' has 1 missing" in KINDS["tabular"].cannot_vary(data)


@pytest.mark.parametrize(
    "X, kind",
    [
        (["a b", "c"], "text"),
        (np.array(["a b", "c"]), "text"),
        (pd.Series(["a", "b"]), "text"),
        ([{"a": 1}, {"a": 2}], "opaque"),
        ([["a", "b"], ["c"]], "opaque"),
        ([["a", "b"], ["c", "d"]], "opaque"),
        ([[1.0, 2.0], [3.0, 4.0]], "arrays"),
        (np.zeros((3, 2)), "arrays"),
        (np.zeros((3, 8, 8)), "arrays"),
    ],
)
def test_what_a_pair_holds(X, kind):
    assert record_kind_of_pair(X) == kind


def test_dataframes_whose_columns_cannot_name_cells_are_refused():
    with pytest.raises(DataError, match="column 'a' appears 2 times"):
        memory_dataset(pd.DataFrame([[1, 2, 0]], columns=["a", "a", "y"]), "y")
    with pytest.raises(DataError, match="the DataFrame is empty"):
        memory_dataset(pd.DataFrame(), "y")


class _Doc:
    """A record that prints as its id alone, whatever its text."""

    def __init__(self, i, text):
        self.i, self.text = i, text

    def __str__(self):
        return str(self.i)


def test_cache_digests_never_take_two_records_that_print_alike_for_one():
    from miaudit.jobs import records_digest

    def objects(*values):
        out = np.empty(len(values), dtype=object)
        out[:] = list(values)
        return out

    assert records_digest(objects(_Doc(1, "old"))) != records_digest(objects(_Doc(1, "new")))
    assert records_digest(objects(1, "x")) != records_digest(objects("1", "x"))
    assert records_digest(objects(None, "x")) != records_digest(objects("None", "x"))
    with_none = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    assert records_digest(with_none) != records_digest(with_none.fillna("None"))
    assert records_digest(with_none) == records_digest(with_none.copy())
    assert records_digest([_Doc(1, "a"), lambda: 1]) is None  # a lambda does not pickle


def test_cells_that_are_not_one_value_are_never_encoded_as_text():
    import torch

    tensors = [torch.zeros(2000) for _ in range(60)]
    for i, t in enumerate(tensors):
        t[1000] = i  # printed, they all read the same
    frame = pd.DataFrame({"t": tensors, "age": [i % 3 for i in range(60)], "y": np.arange(60) % 2})
    with pytest.raises(UnencodableError, match=r"column 't' holds Tensor objects \(row 0\)"):
        memory_dataset(frame, "y")
    held = memory_dataset(frame, "y", hold=True)
    assert [int(t[1000]) for t in held.raw.decode(held.X[:6])["t"]] == [0, 1, 2, 3, 4, 5]
    dicts = pd.DataFrame({"d": [{"a": i} for i in range(30)], "y": np.arange(30) % 2})
    assert memory_dataset(dicts, "y", hold=True).n_records == 30


def test_missing_texts_are_named_not_taken_for_objects():
    for missing in (None, float("nan"), pd.NA):
        texts = [*TEXTS]
        texts[5] = missing
        with pytest.raises(DataError, match="the text of row 5 is missing"):
            memory_dataset((texts, LABELS))
    with pytest.raises(DataError, match="the text of row 4 is missing"):
        memory_dataset((pd.Series([*TEXTS[:4], pd.NA, *TEXTS[5:]], dtype="string"), LABELS))


def test_a_text_column_that_is_the_label_or_a_pair_with_a_text_column_is_named():
    frame = pd.DataFrame({"t": TEXTS, "y": LABELS})
    with pytest.raises(DataError, match="the text column 'y' is also the label column"):
        memory_dataset(frame, "y", text_column="y")
    with pytest.raises(DataError, match=r"holds the texts themselves: drop text_column="):
        memory_dataset((TEXTS, LABELS), text_column="t")
