"""Auditing models of text and of records miaudit cannot encode (issue: records of any kind).

The user's code trains and predicts; miaudit never encodes their records: texts,
missing values and objects reach the user's model exactly as given.
"""

from __future__ import annotations

import json
import re
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import mannwhitneyu
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn

import miaudit
from miaudit.errors import ConfigError, DataError, MiauditError, ModelError
from miaudit.jobs import Execution

QUICK = {"bootstrap": 100, "seed": 3, "progress": False}


@pytest.fixture(scope="module")
def sms():
    """1,200 real SMS messages (UCI SMS Spam Collection) and their ham/spam labels."""
    try:
        frame = miaudit.load_frame("sms-spam")
    except DataError as exc:
        pytest.skip(f"the SMS Spam Collection is not installed ({exc})")
    frame = frame.drop_duplicates("text").reset_index(drop=True).iloc[:1200]
    return frame["text"].reset_index(drop=True), frame["label"].reset_index(drop=True)


def _overfitted(texts, labels, rows):
    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(C=1e4, max_iter=3000))
    return pipe.fit(texts[rows], labels[rows])


def _significant(result, name) -> float:
    """The one-sided Mann-Whitney p-value that the attack ranks members above non-members
    (an AUC interval that excludes 0.5 at level p)."""
    scores, member = np.asarray(result.scores[name]), np.asarray(result.member, bool)
    return mannwhitneyu(scores[member], scores[~member], alternative="greater").pvalue


def test_a_text_pipeline_audited_in_memory_sees_the_users_texts(sms):
    texts, labels = sms
    members = np.arange(0, 1200, 4)
    pipe = _overfitted(texts, labels, members)
    result = miaudit.audit(
        target=pipe, data=(texts, labels), members=members, shadows=4,
        attacks=["shokri", "loss", "lira-offline", "rmia-offline"], **QUICK,
    )  # fmt: skip
    assert result.dataset.kind == "text" and result.shadows["model"] == "clone of Pipeline"
    # Bit for bit what the Pipeline answers on the user's own texts.
    own = pipe.predict_proba(texts.iloc[result.record_index].to_numpy())
    np.testing.assert_array_equal(result.outputs()["outputs"], own)
    # An over-fitted TF-IDF model's members are found, beyond chance.
    best = result.strongest
    assert result.attacks[best].auc > 0.6 and _significant(result, best) < 1e-5
    assert result.ranking()["above_chance"]
    # The report shows the most exposed texts, whole in results.json.
    shown = result.most_exposed()["records"][0]
    assert shown["text"] == texts.iloc[shown["record"]]


def test_a_model_trained_on_other_texts_reads_as_chance(sms):
    texts, labels = sms
    outsiders = np.arange(1, 1200, 3)  # never evaluated: neither members nor non-members
    pipe = _overfitted(texts, labels, outsiders)
    result = miaudit.audit(
        target=pipe, data=(texts.drop(outsiders).reset_index(drop=True),
                           labels.drop(outsiders).reset_index(drop=True)),
        members=np.arange(0, 800, 4), shadows=4, attacks=["loss", "lira-offline"], **QUICK,
    )  # fmt: skip
    for name in ("loss", "lira-offline"):
        assert abs(result.attacks[name].auc - 0.5) < 0.06
        assert _significant(result, name) > 0.01


class Bag(nn.Module):
    """The user's own text network: a mean bag of embeddings over their token ids."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.EmbeddingBag(4096, 24, mode="mean", padding_idx=0)
        self.out = nn.Linear(24, 2)

    def forward(self, x):
        return self.out(self.emb(x))


def tokenize(records):
    """The user's tokenizer: a deterministic hash of each lower-cased word, padded."""
    # miaudit hands a list of texts, as tokenizers take them (never a NumPy object array).
    assert not isinstance(records, np.ndarray), type(records)
    rows = [[1 + zlib.crc32(w.encode()) % 4095 for w in str(t).lower().split()][:48]
            for t in records]  # fmt: skip
    out = torch.zeros(len(rows), max(1, max(map(len, rows))), dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def test_a_torch_text_module_with_the_users_tokenizer_runs_every_applicable_attack(sms):
    texts, labels = sms
    codes = (labels == "spam").to_numpy().astype(np.int64)
    members = np.arange(0, 1200, 4)
    torch.manual_seed(0)
    module = Bag()
    opt = torch.optim.Adam(module.parameters(), 1e-2)
    X, y = tokenize(texts.iloc[members]), torch.from_numpy(codes[members])
    for _ in range(25):
        for s in range(0, len(X), 64):
            loss = nn.functional.cross_entropy(module(X[s : s + 64]), y[s : s + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    target = miaudit.TorchModel(module, collate=tokenize)
    trainer = miaudit.TorchTrainer(Bag, epochs=25, lr=1e-2, collate=tokenize)
    with pytest.warns(UserWarning, match="boundary left out: .*continuous space"):
        result = miaudit.audit(
            target=target, trainer=trainer, data=(texts, labels), members=members, shadows=4,
            attacks=["all"], **QUICK,
        )  # fmt: skip
    # The boundary search is the one attack text cannot have; it is named, not run.
    assert set(result.skipped) == {"boundary"}
    assert "towards the boundary" in result.skipped["boundary"]
    assert {"shokri", "loss", "lira", "lira-offline", "rmia", "rmia-offline", "qmia",
            "robustness", "gap"} <= set(result.attacks)  # fmt: skip
    assert json.loads(json.dumps(result.to_dict()))["skipped_attacks"] == result.skipped
    module.eval()
    with torch.no_grad():
        own = torch.softmax(module(tokenize(texts.iloc[result.record_index])), 1).numpy()
    np.testing.assert_allclose(result.outputs()["outputs"], own, rtol=1e-5, atol=1e-7)
    with pytest.raises(ConfigError, match="boundary cannot run on these records"):
        miaudit.audit(
            target=target, trainer=trainer, data=(texts, labels), members=members,
            shadows=4, attacks=["boundary"], **QUICK,
        )  # fmt: skip


def test_a_tokenizer_that_raises_or_returns_the_wrong_shape_is_named():
    texts = [f"message {i}" for i in range(40)]
    labels = np.arange(40) % 2

    def fussy(records):
        for r in records:
            if r == "message 8":
                raise ValueError("no digits after a one")
        return tokenize(records)

    trainer = miaudit.TorchTrainer(Bag, epochs=1, collate=tokenize)
    settings = dict(
        trainer=trainer, data=(texts, labels), members=np.arange(0, 40, 4), shadows=1,
        attacks=["loss"], **QUICK,
    )  # fmt: skip
    fails = r"record \d+ of the batch \('message 8'\).*no digits after a one"
    with pytest.raises(ModelError, match=fails):
        miaudit.audit(target=miaudit.TorchModel(Bag(), collate=fussy), **settings)

    def short(records):
        return torch.zeros(1, 3, dtype=torch.long)

    with pytest.raises(ModelError, match=r"returned shape \(1, 3\) for \d+ records"):
        miaudit.audit(target=miaudit.TorchModel(Bag(), collate=short), **settings)
    with pytest.raises(ConfigError, match="pass the function that turns a batch"):
        miaudit.audit(target=Bag(), **settings)


def test_opaque_records_are_audited_with_the_users_callable_and_trainer():
    rng = np.random.default_rng(0)
    n = 400
    visits, codes = rng.integers(0, 50, n), rng.integers(0, 5, n)
    records = [{"visits": int(v), "codes": ["a"] * int(k)} for v, k in np.c_[visits, codes]]
    labels = np.array([int(r["visits"] > 25) ^ int(rng.random() < 0.2) for r in records])

    def matrix(rs):
        return np.array([[r["visits"], len(r["codes"])] for r in rs], dtype=float)

    members = np.arange(0, n, 4)
    forest = RandomForestClassifier(random_state=0).fit(matrix([records[i] for i in members]),
                                                        labels[members])  # fmt: skip
    seen = []

    def target(rs):
        seen.append(rs)
        return forest.predict_proba(matrix(rs))

    def trainer(rs, ys, seed):
        model = RandomForestClassifier(random_state=seed).fit(matrix(rs), ys)
        return lambda more: model.predict_proba(matrix(more))

    with pytest.warns(UserWarning, match="(robustness|boundary|qmia) left out: .*opaque records"):
        result = miaudit.audit(
            target=target, trainer=trainer, data=(records, labels), members=members,
            shadows=4, attacks=["all"], **QUICK,
        )  # fmt: skip
    assert result.dataset.kind == "opaque"
    assert all(isinstance(r, dict) for batch in seen for r in batch)
    assert {"robustness", "boundary", "qmia"} <= set(result.skipped)
    assert "does not look inside opaque records" in result.skipped["qmia"]
    assert result.attacks["loss"].auc > 0.55  # the forest memorised its members
    shown = result.most_exposed()["records"][0]
    assert shown["object"].startswith("{'visits':")
    with pytest.raises(ConfigError, match="none of its models trains on them"):
        miaudit.audit(target=target, data=(records, labels), members=members, **QUICK)
    with pytest.raises(ConfigError, match=r"lira cannot run on these records.*queries to 1"):
        miaudit.audit(
            target=target, trainer=trainer, data=(records, labels), members=members,
            shadows=4, attacks={"run": ["lira"], "lira": {"queries": 2}}, **QUICK,
        )  # fmt: skip


def test_missing_values_and_mixed_columns_reach_an_imputing_pipeline_unchanged():
    frame = miaudit.load_frame("adult").iloc[:3000].reset_index(drop=True)
    frame.loc[[3, 40, 41], "age"] = np.nan
    frame["notes"] = [None if i % 7 == 0 else f"free text {i}" for i in range(len(frame))]
    features = frame.drop(columns="income")
    numeric = [c for c in features.columns if features[c].dtype.kind == "f"]
    categorical = [c for c in features.columns if c not in numeric and c != "notes"]
    pipe = make_pipeline(
        ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]),
        LogisticRegression(max_iter=2000),
    )  # fmt: skip
    members = np.arange(0, 3000, 4)
    pipe.fit(features.iloc[members], frame["income"].iloc[members])
    seen = []

    class Spy:
        def __call__(self, records):
            seen.append(records)
            return pipe.predict_proba(records)

    result = miaudit.audit(
        target=Spy(), trainer=pipe, data=frame, label="income", members=members, shadows=2,
        attacks=["loss", "shokri"], **QUICK,
    )  # fmt: skip
    assert "numeric column 'age' has 3 missing" in result.dataset.notes["held_because"]
    rows = result.record_index
    pd.testing.assert_frame_equal(seen[0], features.iloc[rows].reset_index(drop=True))
    np.testing.assert_array_equal(
        result.outputs()["outputs"], pipe.predict_proba(features.iloc[rows])
    )
    # miaudit's own models would have to encode the table: refused, saying why.
    with pytest.raises(DataError, match="numeric column 'age' has 3 missing"):
        miaudit.audit(data=frame, label="income", **QUICK)
    noisy = r"shadow_data=noisy: .*'age' has 3 missing.*use shadow_data=real"
    with pytest.raises(ConfigError, match=noisy):
        miaudit.audit(
            target=Spy(), trainer=pipe, data=frame, label="income", members=members,
            shadows=2, shadow_data="noisy", attacks=["loss"], **QUICK,
        )  # fmt: skip


def test_records_held_as_given_are_refused_where_miaudit_must_encode(sms):
    texts, labels = sms
    with pytest.raises(MiauditError, match=r"'model': 'mlp'.*text trains the text recipe"):
        miaudit.audit(data=(texts, labels), target={"model": "mlp"}, **QUICK)


def _sms_csv(path, sms, n=900):
    texts, labels = sms
    frame = pd.DataFrame({"rid": np.arange(n) + 1000, "message": texts[:n], "kind": labels[:n]})
    frame.to_csv(path, index=False)
    return frame


def test_the_text_recipe_from_a_csv_on_the_command_line(sms, tmp_path, capsys):
    from miaudit.cli import main

    _sms_csv(tmp_path / "sms.csv", sms)
    out = tmp_path / "run"
    code = main([
        "audit", "--dataset", str(tmp_path / "sms.csv"), "--label", "kind",
        "--text-column", "message", "--id-column", "rid", "--target-size", "200",
        "--shadows", "2", "--attacks", "loss,lira-offline", "--out", str(out), "--quiet",
        "--no-job-cache", "--records", "values",
    ])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["kind"] == "text" and results["target"]["model"] == "tfidf-lr"
    record = results["most_exposed"]["records"][0]
    assert record["id"] >= 1000 and record["text"] == sms[0].iloc[record["id"] - 1000]
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["id"]) <= set(range(1000, 1900))


@pytest.mark.parametrize(
    "change, args, match",
    [
        (lambda f: f.assign(message=f["message"].where(f.index != 7)), [],
         "text of row 7 is missing"),
        (lambda f: f.assign(message=np.arange(len(f))), [], "row 0 holds a int"),
        (lambda f: f.assign(message=f["message"].where(f.index != 3, "   ")), [],
         "text of row 3 is empty"),
        (lambda f: f, ["--text-column", "body"], "no column 'body'"),
        (lambda f: f, ["--text-column", "kind"], "is also the label"),
    ],
)  # fmt: skip
def test_bad_text_on_the_command_line_is_one_line(sms, tmp_path, capsys, change, args, match):
    from miaudit.cli import main

    path = tmp_path / "sms.csv"
    change(_sms_csv(path, sms, n=100)).to_csv(path, index=False)
    base = ["audit", "--dataset", str(path), "--label", "kind", "--quiet", "--no-job-cache"]
    code = main([*base, *(args or ["--text-column", "message"])])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert re.search(match, err), err


def test_a_csv_that_is_not_utf8_is_named(tmp_path, capsys):
    from miaudit.cli import main

    path = tmp_path / "latin.csv"
    rows = "".join(f"caf\xe9 {i},{i % 2}\n" for i in range(30))
    path.write_bytes(b"t,y\n" + rows.encode("latin-1"))
    code = main(["audit", "--dataset", str(path), "--label", "y", "--text-column", "t",
                 "--quiet"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "latin.csv" in err and "UTF-8" in err and len(err.splitlines()) == 1


def test_the_text_recipe_is_answered_from_the_job_cache(sms, tmp_path):
    texts, labels = sms
    settings = dict(
        data=(texts, labels), target={"model": "tfidf-lr"}, target_size=200, shadows=2,
        attacks=["loss", "lira-offline"], execution=Execution(job_cache=tmp_path), **QUICK,
    )  # fmt: skip
    first = miaudit.audit(**settings)
    again = miaudit.audit(**settings)
    assert first.execution["jobs"]["trained"] == 2
    assert again.execution["jobs"] == {"trained": 0, "from_cache": 2, "corrupt": 0}
    np.testing.assert_array_equal(first.scores["loss"], again.scores["loss"])
    # Other texts with the same labels and shapes are other records: nothing is reused.
    other = miaudit.audit(**{**settings, "data": (texts + " !", labels)})
    assert other.execution["jobs"]["trained"] == 2


@pytest.mark.slow
def test_a_text_pipeline_on_dask_gives_the_in_process_result(sms):
    texts, labels = sms
    members = np.arange(0, 1200, 4)
    pipe = _overfitted(texts, labels, members)
    kwargs = dict(
        target=pipe, data=(texts, labels), members=members, shadows=2,
        attacks=["loss", "lira-offline"], **QUICK,
    )  # fmt: skip
    local = miaudit.audit(**kwargs, execution=Execution(job_cache=False, workers=1))
    dask = miaudit.audit(**kwargs, execution=Execution(job_cache=False, executor="dask", workers=2))
    for name in local.scores:
        np.testing.assert_array_equal(local.scores[name], dask.scores[name])


def test_a_column_transformer_reads_the_text_column_beside_the_others(sms):
    texts, labels = sms
    frame = pd.DataFrame({"text": texts, "length": texts.str.len(), "label": labels})
    members = np.arange(0, 1200, 4)
    columns = ColumnTransformer(
        [("words", TfidfVectorizer(), "text"), ("n", StandardScaler(), ["length"])]
    )
    pipe = make_pipeline(columns, LogisticRegression(C=100, max_iter=3000))
    pipe.fit(frame.drop(columns="label").iloc[members], labels.iloc[members])
    result = miaudit.audit(
        target=pipe, data=frame, label="label", text_column="text", members=members,
        shadows=2, attacks=["loss", "lira-offline"], **QUICK,
    )  # fmt: skip
    rows = frame.drop(columns="label").iloc[result.record_index]
    np.testing.assert_array_equal(result.outputs()["outputs"], pipe.predict_proba(rows))
    shown = result.most_exposed()["records"][0]
    assert shown["text"] == texts.iloc[shown["record"]]
    assert shown["values"] == {"length": len(shown["text"])}


def test_free_text_is_never_one_hot_encoded(sms, tmp_path):
    texts, labels = sms
    frame = pd.DataFrame({"review": texts[:900], "label": labels[:900]})
    # miaudit's own models would make every review a category of its own: refused.
    with pytest.raises(DataError, match=r"'review' holds free text .*text_column"):
        miaudit.audit(data=frame, label="label", **QUICK)
    # A Pipeline fitted on the column (a Series) is told how to hand it the texts, before
    # any shadow trains.
    members = np.arange(0, 900, 4)
    pipe = _overfitted(frame["review"], frame["label"], members)
    with pytest.raises(ModelError, match=r"pass data=\(frame\['review'\], frame\[label\]\)"):
        miaudit.audit(target=pipe, data=frame, label="label", members=members, **QUICK)


@pytest.mark.parametrize("how", ["recipe", "pipeline"])
def test_every_applicable_attack_runs_on_text_and_the_refused_one_is_named(sms, how):
    """The built-in recipe and the user's Pipeline (the torch module: above) on the same
    texts: every attack runs but the boundary search, which text cannot have."""
    texts, labels = sms
    members = np.arange(0, 1200, 4)
    target = (
        {"target": {"model": "tfidf-lr"}, "target_size": 300}
        if how == "recipe"
        else {"target": _overfitted(texts, labels, members), "members": members}
    )
    with pytest.warns(UserWarning, match="boundary left out"):
        result = miaudit.audit(data=(texts, labels), shadows=4, attacks=["all"], **target, **QUICK)
    assert result.skipped == {"boundary": result.skipped["boundary"]}
    assert set(result.attacks) == set(miaudit.attacks.ATTACKS) - {"boundary"}
    assert results_agree(result)


def results_agree(result) -> bool:
    """``results.json`` names the attack left out, and every attack's metrics are there."""
    d = json.loads(json.dumps(result.to_dict()))
    return set(d["skipped_attacks"]) == {"boundary"} and set(d["attacks"]) == set(result.attacks)


def test_a_torch_module_without_collate_never_reads_handles_of_a_text_file(sms, tmp_path):
    path = tmp_path / "sms.csv"
    _sms_csv(path, sms, n=300)
    with pytest.raises(ConfigError, match=r"the records are held as given.*collate="):
        miaudit.audit(
            dataset=str(path), label="kind", text_column="message",
            trainer=miaudit.TorchTrainer(Bag, epochs=1), game="recipe", target_size=50,
            shadows=1, attacks=["loss"], **QUICK,
        )  # fmt: skip
