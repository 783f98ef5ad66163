"""Auditing the user's own model: their estimator or network, their training code, their data."""

from __future__ import annotations

import json
import os
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn

import miaudit
from miaudit.cli import main
from miaudit.errors import ConfigError, DataError, MiauditError, ModelError
from miaudit.jobs import Execution

QUICK = {"bootstrap": 100, "seed": 1}


@pytest.fixture(scope="module")
def adult():
    """Adult's raw table (strings, categories, numbers) and a Pipeline fitted on 800 rows."""
    frame = miaudit.load_frame("adult").iloc[:6000].reset_index(drop=True)
    features = frame.drop(columns="income")
    numeric = [c for c in features.columns if features[c].dtype.kind == "f"]
    categorical = [c for c in features.columns if c not in numeric]
    pipe = make_pipeline(
        ColumnTransformer(
            [
                ("num", StandardScaler(), numeric),
                ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        ),
        LogisticRegression(max_iter=300),
    )
    members = np.random.default_rng(0).choice(len(frame), 800, replace=False)
    pipe.fit(features.iloc[members], frame["income"].iloc[members])
    return frame, pipe, members


def test_pipeline_in_memory_gives_what_its_own_predictions_give(adult):
    frame, pipe, members = adult
    result = miaudit.audit(
        target=pipe, data=frame, label="income", members=members, shadows=2,
        attacks=["shokri", "loss", "lira-offline", "gap"], **QUICK,
    )  # fmt: skip
    assert result.target["source"] == "python" and result.target["model"] == "Pipeline"
    assert result.shadows["model"] == "clone of Pipeline"
    # The records are rows of the user's frame; the Pipeline saw those very rows.
    rows = result.record_index
    own = pipe.predict_proba(frame.drop(columns="income").iloc[rows])
    arrays = result.outputs()
    np.testing.assert_array_equal(own, arrays["outputs"])
    # A member's record is a row the Pipeline trained on, or an earlier copy of one.
    values = frame.astype(str).agg("|".join, axis=1)
    assert set(values.iloc[rows[result.member == 1]]) <= set(values.iloc[members])
    assert not set(values.iloc[rows[result.member == 0]]) & set(values.iloc[members])
    # Predictions computed by the user, handed to evaluate: the same attack results.
    again = miaudit.evaluate({**arrays, "outputs": own}, **result.evaluate_settings())
    assert again.to_dict()["attacks"] == result.to_dict()["attacks"]


def test_a_pipeline_on_text_labels_is_answered_from_the_job_cache(adult, tmp_path):
    frame, pipe, members = adult
    settings = dict(
        target=pipe, data=frame, label="income", members=members, shadows=2,
        attacks=["loss"], execution=Execution(job_cache=tmp_path / "cache"), **QUICK,
    )  # fmt: skip
    first = miaudit.audit(**settings)
    again = miaudit.audit(**settings)
    assert first.execution["jobs"]["trained"] == 2
    assert again.execution["jobs"] == {"trained": 0, "from_cache": 2, "corrupt": 0}


def test_user_pipeline_never_sees_the_encoding_even_for_made_records(adult):
    frame, pipe, members = adult
    seen = []

    class Spy:
        """A callable target: records -> probabilities, recording what it was given."""

        def __call__(self, records):
            seen.append(records)
            return pipe.predict_proba(records)

    result = miaudit.audit(
        target=Spy(), data=frame, label="income", members=members, shadows=2,
        attacks={"run": ["loss", "robustness"], "robustness": {"copies": 2}}, **QUICK,
    )  # fmt: skip
    assert result.shadows["model"] == "mlp"  # no trainer: the built-in recipe guesses
    assert all(isinstance(s, pd.DataFrame) for s in seen)
    assert all(list(s.columns) == list(frame.columns.drop("income")) for s in seen)
    made = pd.concat(seen[1:])  # perturbed copies, decoded into the user's own columns
    assert set(made["sex"].dropna()) <= {"Male", "Female"}
    assert made["age"].dtype == frame["age"].dtype


def _digits_arrays():
    data = miaudit.load_dataset("digits")
    return data.X.astype(np.float64), data.y


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.out = nn.Linear(32, 10)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


def tiny_net() -> nn.Module:
    return TinyNet()


def tiny_loop(model, X, y, generator):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        for batch in torch.randperm(len(X), generator=generator).split(32):
            loss = nn.functional.cross_entropy(model(X[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()


def test_every_attack_runs_on_a_torch_module_and_its_trainer():
    X, y = _digits_arrays()
    members = np.arange(300)
    torch.manual_seed(0)
    target = tiny_net()
    tiny_loop(target, torch.from_numpy(X[members]).float(), torch.from_numpy(y[members]),
              torch.Generator().manual_seed(0))  # fmt: skip
    result = miaudit.audit(
        target=target, data=(X, y), members=members, non_members=np.arange(300, 600),
        trainer=miaudit.TorchTrainer(tiny_net, tiny_loop), shadows=4,
        attacks={"run": ["all"], "lira": {"queries": 2}, "robustness": {"copies": 2},
                 "rmia": {"population": 200}},
        execution=Execution(job_cache=False), **QUICK,
    )  # fmt: skip
    assert set(result.attacks) == set(miaudit.attacks.suite.ALL_ATTACKS)
    assert result.shadows["model"] == "TorchTrainer(tiny_net)"
    assert result.shadows["trainer"]["train_fn"]["qualname"] == "tiny_loop"
    # The target trained 15 epochs on its 300 records: the online attacks see it.
    assert result.target["train_accuracy"] > result.target["test_accuracy"]
    assert result.attacks["lira"].auc > 0.55 and result.attacks["loss"].auc > 0.55


LOOP_SETTINGS = {"epochs", "lr", "batch_size", "optimizer", "weight_decay", "momentum"}


def test_results_record_the_users_training_code_not_unused_defaults(tmp_path):
    from miaudit.models.identity import code_digest

    X, y = _digits_arrays()
    settings = dict(data=(X, y), target_size=100, shadows=1, attacks=["loss"],
                    execution=Execution(job_cache=False), **QUICK)  # fmt: skip
    miaudit.audit(trainer=miaudit.TorchTrainer(tiny_net, tiny_loop), out=tmp_path / "own",
                  **settings)  # fmt: skip
    results = json.loads((tmp_path / "own" / "results.json").read_text())
    # The trainer trained the target and the shadow: both say so, and only so.
    for section in ("target", "shadows"):
        trainer = results[section]["trainer"]
        assert trainer["train_fn"] == {
            "module": tiny_loop.__module__, "qualname": "tiny_loop",
            "code": code_digest(tiny_loop),
        }  # fmt: skip
        assert trainer["model_fn"]["qualname"] == "tiny_net"
        assert len(trainer["model_fn"]["code"]) == 64
        assert not LOOP_SETTINGS & set(trainer), trainer  # 15 epochs ran, in tiny_loop
        assert trainer["device"] == "cpu" and trainer["outputs"] == "logits"
        assert results[section]["recipe"] is None
    config = json.loads((tmp_path / "own" / "config.json").read_text())
    assert not any(config["target"].values()) and config["shadow"] is None

    # The default loop uses its settings: they are recorded.
    plain = miaudit.TorchTrainer(tiny_net, epochs=3, lr=1e-2, batch_size=32)
    miaudit.audit(trainer=plain, out=tmp_path / "plain", **settings)
    results = json.loads((tmp_path / "plain" / "results.json").read_text())
    trainer = results["shadows"]["trainer"]
    assert trainer["train_fn"] == "the default loop"
    assert {k: trainer[k] for k in ("epochs", "lr", "batch_size", "optimizer")} == {
        "epochs": 3, "lr": 0.01, "batch_size": 32, "optimizer": "adam",
    }  # fmt: skip
    assert "momentum" not in trainer  # SGD's only
    assert results["target"]["trainer"] == trainer


def test_an_estimator_trainer_records_every_parameter_and_its_seeding():
    from sklearn.ensemble import RandomForestClassifier

    from miaudit.models.user import ClassMap, make_family

    classes = ClassMap(np.arange(10), [str(c) for c in range(10)])
    forest = RandomForestClassifier(n_estimators=7, max_depth=4, random_state=0)
    pipe = make_pipeline(StandardScaler(with_mean=False), forest)
    record = make_family(pipe, classes).describe()["trainer"]
    assert record["class"] == "sklearn.pipeline.Pipeline"
    (_, scaler), (_, trees) = record["params"]["steps"]
    assert scaler["params"]["with_mean"] is False
    assert trees["class"].endswith("RandomForestClassifier")
    assert trees["params"]["n_estimators"] == 7 and trees["params"]["max_depth"] == 4
    # Each clone's random_state comes from its model's seed, never the user's 0.
    assert trees["params"]["random_state"] == "seeded per model"
    assert pipe.get_params()["randomforestclassifier__random_state"] == 0  # left as it was
    json.dumps(record, allow_nan=False)

    def fit(X, y, seed):
        return LogisticRegression().fit(X, y)

    record = make_family(fit, classes).describe()["trainer"]
    assert record["fit"]["qualname"].endswith("fit") and len(record["fit"]["code"]) == 64


def test_a_models_columns_are_matched_to_the_datas_classes():
    from miaudit.models.user import ClassMap, EstimatorModel

    classes = ClassMap(np.array([3, 7, 9]), ["3", "7", "9"])

    class Fitted:
        """An estimator that saw classes 9.0 and 3 only, in that order."""

        classes_ = np.array([9.0, 3.0])

        def predict_proba(self, X):
            return np.tile([0.8, 0.2], (len(X), 1))

    P = EstimatorModel(Fitted(), classes).predict_proba(np.zeros((2, 4)))
    np.testing.assert_array_equal(P, [[0.2, 0.0, 0.8], [0.2, 0.0, 0.8]])  # codes of 3, 7, 9
    assert list(ClassMap(np.array(["a", "b"]), ["a", "b"]).codes_of(["b", "a"], "m")) == [1, 0]
    with pytest.raises(ModelError, match="predicts class 'c', which is not a label of the data"):
        ClassMap(np.array(["a", "b"]), ["a", "b"]).codes_of(["a", "c"], "the target")


def test_module_in_train_mode_is_evaluated_in_eval_mode_and_left_as_it_was():
    X, _ = _digits_arrays()
    net = nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.Dropout(0.5), nn.Linear(16, 10))
    net.train()
    predictor = miaudit.models.user.as_predictor(
        net, miaudit.models.user.ClassMap(np.arange(10), [str(i) for i in range(10)])
    )
    first = predictor.predict_proba(X[:50])
    assert np.array_equal(first, predictor.predict_proba(X[:50]))  # no dropout: eval mode
    assert net.training  # the user's module is left in the mode it was in
    np.testing.assert_allclose(first.sum(axis=1), 1.0)


def test_recipe_game_audits_the_users_training_code(adult):
    frame, pipe, _ = adult
    from sklearn.base import clone

    result = miaudit.audit(
        data=frame.iloc[:2000], label="income", trainer=clone(pipe), game="recipe",
        target_size=300, shadows=4, **QUICK,
        attacks={"run": ["lira", "rmia", "lira-offline", "loss"], "rmia": {"population": 100}},
    )  # fmt: skip
    assert result.target["model"] == "clone of Pipeline" and result.shadows["game"] == "recipe"
    assert len(result.member) == 600 and result.to_frame()["record"].max() < 2000


def _write(path, text):
    path.write_text(textwrap.dedent(text))


TRAINER_MODULE = """
    import torch
    from torch import nn

    import miaudit

    LR = {lr}


    def make():
        return nn.Sequential(nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10))


    def step_size():
        return LR


    def loop(model, X, y, generator):
        opt = torch.optim.SGD(model.parameters(), lr=step_size())
        for _ in range(3):
            for batch in torch.randperm(len(X), generator=generator).split(64):
                loss = nn.functional.cross_entropy(model(X[batch]), y[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()  # {comment}


    trainer = miaudit.TorchTrainer(make, loop)
"""


def _audit_with(tmp_path, name, **fmt):
    from miaudit.handover import load_object

    file = tmp_path / f"{name}.py"
    _write(file, TRAINER_MODULE.format(**{"lr": 0.1, "comment": "", **fmt}))
    trainer = load_object(f"{file}:trainer", None, "trainer")
    X, y = _digits_arrays()
    return miaudit.audit(
        data=(X, y), trainer=trainer, target_size=100, shadows=3, attacks=["loss"],
        execution=Execution(job_cache=tmp_path / "cache", workers=1), **QUICK,
    )  # fmt: skip


def test_changing_the_users_training_code_retrains_and_nothing_else_does(tmp_path):
    first = _audit_with(tmp_path, "code_a")
    assert first.execution["jobs"] == {"trained": 3, "from_cache": 0, "corrupt": 0}
    same = _audit_with(tmp_path, "code_a")
    assert same.execution["jobs"]["trained"] == 0
    np.testing.assert_array_equal(same.scores["loss"], first.scores["loss"])
    # One line of the loop changed (a comment counts: the source is what is hashed).
    edited = _audit_with(tmp_path, "code_a", comment="edited")
    assert edited.execution["jobs"]["trained"] == 3
    # A global the loop reads through a helper changed: retrained too.
    faster = _audit_with(tmp_path, "code_a", lr=0.2)
    assert faster.execution["jobs"]["trained"] == 3
    assert not np.array_equal(faster.scores["loss"], first.scores["loss"])


def test_a_trainer_without_source_is_not_cached_unless_named(tmp_path, recwarn):
    scope: dict = {}
    exec("def fit(X, y, seed):\n    return __import__('sklearn.linear_model').linear_model"
         ".LogisticRegression(max_iter=200).fit(X, y)\n", scope)  # fmt: skip
    notes = []
    from miaudit.data import load_dataset
    from miaudit.handover import class_map
    from miaudit.models.user import make_family
    from miaudit.splits import make_splits
    from miaudit.stages.models import shadow_signals

    data = load_dataset("digits")
    family = make_family(scope["fit"], class_map(data))
    assert family.identity() is None and "not in a file" in family.uncached_reason()
    splits = make_splits(data.n_records, 100, 2, np.random.default_rng(0))
    cache = Execution(job_cache=tmp_path / "cache", workers=1)
    for _ in range(2):
        *_, facts = shadow_signals(family, data, splits, [1, 2], execution=cache,
                                   notify=notes.append)  # fmt: skip
        assert facts["trained"] == 2
    assert any("no honest cache key" in n and "cache_key=" in n for n in notes)
    named = make_family(scope["fit"], class_map(data), cache_key="logreg-v1")
    shadow_signals(named, data, splits, [1, 2], execution=cache)
    *_, facts = shadow_signals(named, data, splits, [1, 2], execution=cache)
    assert facts == {"trained": 0, "from_cache": 2, "corrupt": 0}


def test_duplicates_and_ids_join_back_to_the_users_rows(adult, tmp_path):
    frame, pipe, _ = adult
    base = frame.iloc[:1500].reset_index(drop=True)
    # Rows 1500.. repeat rows 0..199: duplicates of records, with ids of their own.
    table = pd.concat([base, base.iloc[:200]], ignore_index=True)
    table.insert(0, "person", [f"p{i:05d}" for i in range(len(table))])
    member_rows = np.r_[np.arange(100), np.arange(1600, 1700)]  # 1600.. repeat 100..199
    pipe = make_pipeline(*[s for _, s in pipe.steps])
    pipe.fit(table.drop(columns=["income", "person"]).iloc[member_rows],
             table["income"].iloc[member_rows])  # fmt: skip
    result = miaudit.audit(
        target=pipe, data=table, label="income", id_column="person",
        members=table["person"].iloc[member_rows], shadows=2, attacks=["loss", "gap"],
        out=tmp_path / "r", **QUICK,
    )  # fmt: skip
    scores = pd.read_csv(tmp_path / "r" / "scores.csv")
    assert list(scores.columns[:3]) == ["record", "id", "label"]
    # Every row names the user's row: its id and label are that row's.
    joined = table.iloc[scores["record"]]
    assert list(joined["person"]) == list(scores["id"])
    names = result.dataset["class_names"]
    assert list(joined["income"]) == list(scores["label"])
    assert list(joined["income"]) == [names[c] for c in scores["class_index"]]
    # A record is a member when any copy of it was trained on (rows 100..199 were, as 1600..).
    member_values = {tuple(r) for r in table.drop(columns="person").iloc[member_rows].to_numpy()}
    truth = [tuple(r) in member_values for r in joined.drop(columns="person").to_numpy()]
    assert list(scores["member"]) == [int(t) for t in truth]
    assert scores["record"].max() < 1500  # duplicates keep their first row
    exposed = json.loads((tmp_path / "r" / "results.json").read_text())["most_exposed"]
    top = exposed["records"][0]
    assert table["person"].iloc[top["record"]] == top["id"]
    assert "person" not in result.dataset["notes"].get("id_like_columns", [])


def test_an_identifier_column_is_named_not_silently_encoded(adult):
    frame, pipe, members = adult
    table = frame.assign(ticket=[f"t{i}" for i in range(len(frame))])
    # Too many to one-hot: miaudit's own models would have to encode it, and refuse.
    with pytest.raises(DataError, match=r"'ticket' has 6,000 distinct values.*id_column"):
        miaudit.audit(data=table, label="income", **QUICK)
    # The user's model reads the rows as given; the audit names the column and the fix.
    with pytest.warns(UserWarning, match=r"ticket hold.* every row.*id_column"):
        held = miaudit.audit(target=pipe, data=table, label="income", members=members,
                             shadows=1, attacks=["loss"], **QUICK)  # fmt: skip
    assert "'ticket' has 6,000 distinct values" in held.dataset["notes"]["held_because"]
    # Below the one-hot limit it would be encoded: the audit says so and names the fix.
    small = table.iloc[:400]
    fitted = make_pipeline(*[s for _, s in pipe.steps]).fit(
        small.drop(columns=["income", "ticket"]).iloc[:100], small["income"].iloc[:100]
    )
    with pytest.warns(UserWarning, match=r"ticket hold.* every row.*id_column"):
        miaudit.audit(target=fitted, data=small, label="income", members=np.arange(100),
                      shadows=1, attacks=["loss"], **QUICK)  # fmt: skip
    result = miaudit.audit(
        target=fitted, data=small, label="income", id_column="ticket", members=np.arange(100),
        shadows=1, attacks=["loss"], **QUICK,
    )  # fmt: skip
    assert "id_like_columns" not in result.dataset["notes"] and result.ids[0].startswith("t")


@pytest.mark.slow
def test_torch_trainer_on_dask_gives_the_in_process_result():
    X, y = _digits_arrays()
    kwargs = dict(
        data=(X, y), trainer=miaudit.TorchTrainer(tiny_net, tiny_loop), target_size=100,
        shadows=2, attacks=["loss", "lira-offline"], **QUICK,
    )  # fmt: skip
    local = miaudit.audit(**kwargs, execution=Execution(job_cache=False, workers=1))
    dask = miaudit.audit(**kwargs, execution=Execution(job_cache=False, executor="dask", workers=2))
    for name in local.scores:
        np.testing.assert_array_equal(local.scores[name], dask.scores[name])


def test_a_failing_training_function_names_the_shadow_and_keeps_the_finished(tmp_path):
    from miaudit.seeds import int_seeds, seeds_for

    file = tmp_path / "flaky.py"
    _write(file, """
        import os
        from sklearn.linear_model import LogisticRegression

        def fit(X, y, seed):
            if os.environ.get("MIAUDIT_TEST_FAIL") == str(seed):
                raise RuntimeError("out of memory")
            return LogisticRegression(max_iter=200).fit(X, y)
    """)  # fmt: skip
    from miaudit.handover import load_object

    fit = load_object(f"{file}:fit", None, "trainer")
    bad = int_seeds(seeds_for(1)["shadows"], 4)[2]
    X, y = _digits_arrays()
    kwargs = dict(
        data=(X, y), trainer=fit, target_size=100, shadows=4, attacks=["loss"],
        execution=Execution(job_cache=tmp_path / "cache", workers=1), **QUICK,
    )  # fmt: skip
    os.environ["MIAUDIT_TEST_FAIL"] = str(bad)
    try:
        with pytest.raises(ModelError, match=r"shadow 2: .*fit.* raised RuntimeError: out of me"):
            miaudit.audit(**kwargs)
    finally:
        del os.environ["MIAUDIT_TEST_FAIL"]
    resumed = miaudit.audit(**kwargs)
    assert resumed.execution["jobs"]["from_cache"] == 2  # shadows 0 and 1 were kept


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target": object()}, ConfigError, "object is not a model miaudit can query"),
        ({"target": LogisticRegression()}, ConfigError, "not fitted; fit it first"),
        ({"trainer": lambda X, y: None}, ConfigError, r"cannot be called as fit\(X, y, seed\)"),
        ({"members": [3, 3]}, DataError, "row 3 is named twice"),
        ({"members": [0, 5000]}, DataError, "row 5000 is not a row of data"),
        ({"members": np.ones(4, bool)}, DataError, "a mask of 4 entries for 1797 rows"),
        ({"members": np.ones(4)}, DataError, "a float array is a 0/1 mask: 4 entries for 1797"),
        ({"members": np.r_[0.5, np.zeros(1796)]}, DataError, "entry 0 is 0.5, neither 0 nor 1"),
        ({"members": np.r_[np.nan, np.zeros(1796)]}, DataError, "members: entry 0 is NaN"),
        ({"members": np.array([1, "a"], dtype=object)}, DataError, "mixes int and str values"),
        ({"non_members": np.ones(5, bool)}, DataError, "non_members: a mask of 5 entries for"),
        ({"ids": np.zeros(1797)}, DataError, "ids are not unique"),
        ({"target": lambda r: np.full((len(r), 9), 1 / 9)}, ModelError, "9 columns but the"),
        ({"target": lambda r: np.ones((len(r), 10))}, ModelError, "not probability vectors"),
    ],
)
def test_bad_input_is_one_line_naming_it(kwargs, error, match):
    X, y = _digits_arrays()
    fitted = LogisticRegression(max_iter=50).fit(X[:200], y[:200])
    settings = {"target": fitted, "data": (X, y), "members": np.arange(200), **kwargs}
    with pytest.raises(error, match=match) as caught:
        miaudit.audit(**settings, shadows=1, attacks=["loss"], **QUICK)
    assert "\n" not in str(caught.value)


def _results_without_timings(folder) -> dict:
    results = json.loads((folder / "results.json").read_text())
    results.pop("timings_s"), results.pop("run_id")
    return results


def test_boolean_integer_and_float_masks_give_the_same_audit(tmp_path):
    X, y = _digits_arrays()
    fitted = LogisticRegression(max_iter=200).fit(X[:300], y[:300])
    mask = np.zeros(len(X), bool)
    mask[:300] = True
    settings = dict(target=fitted, data=(X, y), shadows=1, attacks=["loss"], **QUICK)
    found = []
    for kind in (bool, int, float):
        miaudit.audit(members=mask.astype(kind), out=tmp_path / kind.__name__, **settings)
        found.append(_results_without_timings(tmp_path / kind.__name__))
    assert found[0]["target"]["train_accuracy"] == 1.0  # the rows it was trained on
    assert found[1] == found[0] and found[2] == found[0]


def test_integer_ids_that_are_also_row_positions_need_members_as():
    # The ids are a shuffle of the row positions: [0 .. 299] names other rows as ids.
    X, y = _digits_arrays()
    fitted = LogisticRegression(max_iter=200).fit(X[:300], y[:300])
    ids = np.random.default_rng(0).permutation(len(X))
    settings = dict(target=fitted, data=(X, y), ids=ids, shadows=1, attacks=["loss"], **QUICK)
    with pytest.raises(DataError) as caught:
        miaudit.audit(members=np.arange(300), **settings)
    assert str(caught.value) == (
        "members: reads both as row positions and as ids; say which with "
        "members_as=positions or members_as=ids"
    )
    by_position = miaudit.audit(members=np.arange(300), members_as="positions", **settings)
    assert by_position.target["train_accuracy"] == 1.0
    assert set(by_position.record_index[by_position.member == 1]) == set(range(300))
    by_id = miaudit.audit(members=np.arange(300), members_as="ids", **settings)
    assert set(by_id.record_index[by_id.member == 1]) == set(np.flatnonzero(ids < 300))
    assert by_id.target["train_accuracy"] < 1.0  # the wrong rows, as the user asked
    with pytest.raises(ConfigError, match="members_as"):
        miaudit.audit(members=np.arange(300), members_as="rows", **settings)


def test_torch_trainer_checks_its_functions():
    with pytest.raises(ConfigError, match=r"train_fn\(model, X, y, generator\)"):
        miaudit.TorchTrainer(tiny_net, lambda model, X: None)
    with pytest.raises(ConfigError, match=r"model_fn\(\) -> nn.Module"):
        miaudit.TorchTrainer(lambda size: None)
    with pytest.raises(ConfigError, match="epochs=0"):
        miaudit.TorchTrainer(tiny_net, epochs=0)
    # The default loop's settings never reach a train_fn of the user's: not silently dropped.
    with pytest.raises(ConfigError, match="epochs=60 sets the default loop, which your train_fn"):
        miaudit.TorchTrainer(tiny_net, tiny_loop, epochs=60)
    with pytest.raises(ConfigError, match="optimizer='sgd' sets the default loop"):
        miaudit.TorchTrainer(tiny_net, tiny_loop, optimizer="sgd")
    X, y = _digits_arrays()
    with pytest.raises(ModelError, match=r"the target: training with _refusing_loop: .*raised V"):
        miaudit.audit(
            data=(X, y), trainer=miaudit.TorchTrainer(tiny_net, _refusing_loop),
            target_size=100, shadows=1, attacks=["loss"], execution=Execution(job_cache=False),
        )  # fmt: skip


def test_a_trainer_that_cannot_travel_to_workers_is_refused_naming_it():
    import threading

    lock = threading.Lock()

    def fit(X, y, seed):  # holds a lock: no other process can receive it
        with lock:
            return LogisticRegression(max_iter=100).fit(X, y)

    X, y = _digits_arrays()
    with pytest.raises(ConfigError, match=r"fit\(X, y, seed\) cannot be sent to other processes"):
        miaudit.audit(
            data=(X, y), trainer=fit, target_size=100, shadows=2, attacks=["loss"],
            execution=Execution(job_cache=False, executor="dask", workers=2),
        )  # fmt: skip


def _refusing_loop(model, X, y, generator):
    raise ValueError("no")


def test_a_module_that_returns_probabilities_is_refused_with_the_fix():
    X, y = _digits_arrays()
    net = nn.Sequential(nn.Linear(64, 10), nn.Softmax(dim=1))
    with pytest.raises(ModelError, match=r"returns probabilities.*TorchModel\(module, outputs="):
        miaudit.audit(target=net, data=(X, y), members=np.arange(100), shadows=1,
                      attacks=["loss"], **QUICK)  # fmt: skip
    wrapped = miaudit.TorchModel(net, outputs="probabilities")
    result = miaudit.audit(target=wrapped, data=(X, y), members=np.arange(100), shadows=1,
                           attacks=["loss"], **QUICK)  # fmt: skip
    assert result.target["model"] == "Sequential"


def test_a_small_pool_trains_overlapping_shadows_of_the_targets_size(adult):
    frame, pipe, _ = adult
    table = frame.iloc[:1000]
    members = np.arange(280)  # others 720: 280 evaluated, a pool of 440 < 2 x 280
    fitted = make_pipeline(*[s for _, s in pipe.steps]).fit(
        table.drop(columns="income").iloc[members], table["income"].iloc[members]
    )
    result = miaudit.audit(target=fitted, data=table, label="income", members=members,
                           shadows=2, attacks=["shokri", "loss"], **QUICK)  # fmt: skip
    sh = result.shadows
    n = result.target["n_train"]
    assert sh["overlapping_in_sets"] and sh["n_in"] == n
    assert sh["n_out"] == sh["pool_size"] - n
    # The attack learned from balanced records: as many in as out, per shadow.
    arrays = result.outputs()
    assert arrays["shadow_members"].sum() == 2 * sh["n_out"] == len(arrays["shadow_members"]) // 2
    with pytest.raises(DataError, match=r"shadow_size=\d+, leave more"):
        miaudit.audit(target=fitted, data=table.iloc[:700], label="income", members=members,
                      shadows=1, attacks=["loss"], **QUICK)  # fmt: skip


def test_synthetic_shadow_data_needs_no_pool():
    # 600 members and 600 non-members leave 597 of digits' 1,797 records: no pool of 1,200.
    result = miaudit.audit(
        dataset="digits", target_size=600, shadows=1, shadow_data="synthetic",
        target={"epochs": 5}, attacks=["shokri", "loss"], query_budget=40_000,
        synthesis={"iter_max": 60}, **QUICK,
    )  # fmt: skip
    assert result.shadows["source"] == "synthetic" and result.target["n_train"] == 600


def test_result_summary_frame_and_roc(adult, tmp_path):
    frame, pipe, members = adult
    result = miaudit.audit(target=pipe, data=frame, label="income", members=members,
                           shadows=1, attacks=["loss", "gap"], **QUICK)  # fmt: skip
    # 800 rows trained on, two pairs of them duplicates: 798 records.
    assert repr(result).startswith("<AuditResult dataframe: 1,596 records evaluated (798 membe")
    lines = result.summary().splitlines()
    assert lines[0] == result.verdict().sentence  # the verdict first
    assert f"Leakage: {result.verdict().label}." in lines[0]
    assert lines[1].startswith("dataframe: Pipeline as target, 798 training records")
    assert {lines[3].split()[0], lines[4].split()[0]} == {"loss", "gap"}
    table = result.to_frame()
    assert list(table.columns) == ["record", "label", "class_index", "member", "score_loss",
                                   "score_gap", "exposure_rank"]  # fmt: skip
    assert set(table["label"]) <= {"<=50K", ">50K"} and table["member"].dtype == bool
    strongest = table[f"score_{result.strongest}"]
    # Rank 1: the records with the top score (several when they tie, as memorised ones do).
    assert (strongest[table["exposure_rank"] == 1] == strongest.max()).all()
    assert (table["exposure_rank"] == 1).sum() == (strongest == strongest.max()).sum()
    # Ranks are shared by ties: 1 + how many records score strictly higher.
    higher = (strongest.to_numpy()[None, :] > strongest.to_numpy()[:, None]).sum(axis=1)
    assert list(table["exposure_rank"]) == list(1 + higher)
    ax = result.plot_roc()
    assert len(ax.get_lines()) == 3 and ax.get_xscale() == "log"
    with pytest.raises(ConfigError, match="no attack 'lira'"):
        result.plot_roc(attacks=["lira"])
    # overwrite= as on the command line
    miaudit.audit(target=pipe, data=frame, label="income", members=members, shadows=1,
                  attacks=["loss"], out=tmp_path / "r", **QUICK)  # fmt: skip
    with pytest.raises(ConfigError, match="already holds results"):
        miaudit.audit(target=pipe, data=frame, label="income", members=members, shadows=1,
                      attacks=["loss"], out=tmp_path / "r", **QUICK)  # fmt: skip
    miaudit.audit(target=pipe, data=frame, label="income", members=members, shadows=1,
                  attacks=["loss"], out=tmp_path / "r", overwrite=True, **QUICK)  # fmt: skip


def test_own_model_from_the_command_line(tmp_path, capsys):
    module = tmp_path / "mymodels.py"
    _write(module, """
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        import miaudit

        table = miaudit.load_frame("digits")  # the rows `--dataset digits` stands for
        members = np.arange(200)
        rows = table.iloc[members]
        model = LogisticRegression(max_iter=500).fit(rows.drop(columns="digit"), rows["digit"])
    """)  # fmt: skip
    np.save(tmp_path / "members.npy", np.arange(200))
    out = tmp_path / "r"
    code = main([
        "audit", "--dataset", "digits", "--target-python", "mymodels:model",
        "--python-path", str(tmp_path), "--members", str(tmp_path / "members.npy"),
        "--shadows", "1", "--attacks", "loss,shokri", "--bootstrap", "50", "--quiet",
        "--save-outputs", "--out", str(out),
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["target"]["source"] == "python"
    assert results["shadows"]["model"] == "clone of LogisticRegression"
    config = json.loads((out / "config.json").read_text())
    assert config["target_python"] == "mymodels:model"
    # miaudit evaluate on the saved outputs: the same metrics.
    assert main(["evaluate", str(out / "outputs.npz"), "--out", str(tmp_path / "e")]) == 0
    again = json.loads((tmp_path / "e" / "results.json").read_text())
    assert again["attacks"] == results["attacks"]
    capsys.readouterr()
    # Bad input: one line, exit status 2.
    assert main(["audit", "--dataset", "digits", "--target-python", "mymodels:nothing",
                 "--python-path", str(tmp_path), "--members", str(tmp_path / "members.npy"),
                 "--quiet"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "mymodels has no 'nothing'" in err and err.count("\n") == 1
    assert main(["audit", "--dataset", "digits", "--target-python", "mymodels:model",
                 "--python-path", str(tmp_path), "--quiet"]) == 2  # fmt: skip
    assert "members: name the records" in capsys.readouterr().err


def test_miaudit_error_is_what_everything_raises():
    for error in (ConfigError, DataError, ModelError):
        assert issubclass(error, MiauditError)


def test_own_model_from_a_toml_config_and_pixel_scale_flag(tmp_path, capsys):
    module = tmp_path / "tomlmodels.py"
    _write(module, """
        from sklearn.linear_model import LogisticRegression

        import miaudit

        table = miaudit.load_frame("digits")
        model = LogisticRegression(max_iter=500).fit(
            table.drop(columns="digit").iloc[:150], table["digit"].iloc[:150]
        )
    """)  # fmt: skip
    (tmp_path / "members.txt").write_text("\n".join(str(i) for i in range(150)) + "\n")
    (tmp_path / "audit.toml").write_text(textwrap.dedent(f"""
        dataset = "digits"
        target_python = "tomlmodels:model"
        python_path = "{tmp_path}"
        members = "{tmp_path / "members.txt"}"
        shadows = 1
        attacks = ["loss"]
        bootstrap = 50
    """))  # fmt: skip
    out = tmp_path / "r"
    # The user's own settings file names their code: they allow it.
    assert main(["audit", "--config", str(tmp_path / "audit.toml"), "--allow-python", "--quiet",
                 "--out", str(out)]) == 0, capsys.readouterr().err  # fmt: skip
    assert json.loads((out / "results.json").read_text())["target"]["n_train"] == 150
    # Images that are not uint8, with values above 1: refused unless white is named.
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "scans.npz", X=rng.integers(0, 4096, (200, 8, 8)).astype(np.uint16),
             y=np.arange(200) % 2)  # fmt: skip
    args = ["audit", "--dataset", str(tmp_path / "scans.npz"), "--model", "mlp", "--epochs", "2",
            "--target-size", "40", "--shadows", "1", "--attacks", "loss", "--quiet",
            "--no-job-cache"]  # fmt: skip
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "no")]) == 2
    assert "uint16 images with values up to" in capsys.readouterr().err
    assert main([*args, "--pixel-scale", "4095", "--out", str(tmp_path / "yes")]) == 0
    notes = json.loads((tmp_path / "yes" / "results.json").read_text())["dataset"]["notes"]
    assert notes["pixel_scale"] == 4095.0
