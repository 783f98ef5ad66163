"""A service that never lists the values that name records, refuses categories it
never saw, and an evaluation that refuses names that name two things."""

from __future__ import annotations

import json
import shutil
import warnings

import httpx
import numpy as np
import pandas as pd
import pytest

import miaudit
from miaudit.attacks.label_only import perturb
from miaudit.cli import main
from miaudit.config import make_config
from miaudit.data import load_dataset
from miaudit.data.encode import TabularEncoder
from miaudit.errors import ConfigError, ModelError
from miaudit.jobs import Execution
from miaudit.models import load_model
from miaudit.pipeline import train_target_only
from miaudit.protocol import InputSchema
from miaudit.remote import HttpTarget
from miaudit.serve import PredictionService, ServiceLimits, create_app, serve_in_thread
from miaudit.shadow_data import feature_groups

N = 600
TOKEN = "t0ken"
RECIPE = {"model": "logistic-regression"}


@pytest.fixture(scope="module")
def patients(tmp_path_factory):
    """A table whose ``pid`` names each of its 600 records, with a category of three
    values and one of a single value, and a target trained on it, saved as `miaudit
    train` saves it: ``(csv, folder, data)``."""
    folder = tmp_path_factory.mktemp("patients")
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "pid": [f"P{k:05d}" for k in rng.permutation(N)],
        "age": rng.integers(18, 90, N),
        "colour": rng.choice(["red", "green", "blue"], N),
        "site": ["north"] * N,
        "outcome": rng.choice(["no", "yes"], N),
    })  # fmt: skip
    csv = folder / "patients.csv"
    frame.to_csv(csv, index=False)
    config = make_config(
        {"dataset": str(csv), "label": "outcome", "target_size": 100, "target": RECIPE}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # train warns of the identifier, as it should
        train_target_only(config, folder / "target")
        data = load_dataset(str(csv), label="outcome")
    return csv, folder / "target", data


def _serve(folder):
    service = PredictionService.from_folder(folder, [])
    return serve_in_thread(create_app(service, ServiceLimits(tokens=(TOKEN,))))


def _post(url, records):
    return httpx.post(
        f"{url}/v1/predict", json={"records": records},
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30,
    )  # fmt: skip


def test_info_withholds_the_values_of_a_column_that_names_records(patients, tmp_path):
    csv, folder, data = patients
    ids = json.loads((folder / "dataset.json").read_text())["encoder"]["categorical"]["pid"]
    assert len(ids) == N  # the saved encoder does hold them: the service must not publish them
    with _serve(folder) as url:
        body = httpx.get(f"{url}/v1/info", headers={"Authorization": f"Bearer {TOKEN}"}).text
        assert not any(pid in body for pid in ids)
        columns = {c["name"]: c for c in json.loads(body)["input"]["columns"]}
        assert "categories" not in columns["pid"]
        assert columns["pid"]["type"] == "categorical" and columns["pid"]["n_categories"] == N
        assert "name records" in columns["pid"]["withheld"]
        # A column of a few categories is still listed.
        assert columns["colour"]["categories"] == ["blue", "green", "red"]
        # Records still carry their ids, and an audit over HTTP still runs: the client
        # checks the count of the withheld values, the service every value sent.
        assert _post(url, [{"pid": ids[0], "age": 40, "colour": "red", "site": "north"}]).is_success
        remote = miaudit.audit(
            dataset=str(csv), label="outcome", target_url=url, membership=str(folder),
            token=TOKEN, query_cache=str(tmp_path / "q"), shadows=2, seed=0, target=RECIPE,
            attacks=["loss"], bootstrap=0, execution=Execution(workers=1),
        )  # fmt: skip
    assert remote.target["queries"]["sent"] == 200
    local = miaudit.audit(
        dataset=str(csv), label="outcome", target_model=str(folder), shadows=2, seed=0,
        attacks=["loss"], bootstrap=0, execution=Execution(workers=1),
    )  # fmt: skip
    np.testing.assert_allclose(remote.scores["loss"], local.scores["loss"], rtol=1e-6)
    # Another data set with as many ids is caught by the count it does not share.
    spec = InputSchema.for_dataset(data).to_json()
    spec["columns"][0]["n_categories"] = N - 1
    assert "'pid' differs" in InputSchema.for_dataset(data).differences(spec)
    # A folder that does not say how many records the encoder saw cannot be told apart
    # from one whose identifiers it would list: refused, not served.
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    info = json.loads((old / "dataset.json").read_text())
    del info["n_records"]
    (old / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match=r"n_records.*save it again"):
        PredictionService.from_folder(old, [])


def test_unknown_categories_are_refused_and_null_means_none(patients):
    _, folder, data = patients
    schema = InputSchema.for_dataset(data)
    known = schema.to_records(data.X[:2])
    with _serve(folder) as url:
        r = _post(url, [known[0], {**known[1], "colour": "purple"}])
        assert r.status_code == 422
        error = r.json()["error"]
        assert error.startswith("records[1].colour: 'purple' is none of the column's 3 categ")
        r = _post(url, [{**known[0], "pid": "P99999"}])
        assert r.status_code == 422 and "'P99999'" in r.json()["error"]
        assert "600 categories (withheld" in r.json()["error"]
        assert known[1]["pid"] not in r.json()["error"]
        # null is no category: the all-zero block miaudit's own queries decode to.
        assert _post(url, [{**known[0], "colour": None}]).status_code == 200

        # The robustness attack's copies (a one-value category takes noise like a
        # number) hold blocks with no category: they travel as null and are answered
        # as the local model answers the same records.
        copies = perturb(
            data.X[:60], feature_groups(data), image=False, copies=3, noise=0.6,
            rng=np.random.default_rng(0),
        ).reshape(-1, data.X.shape[1])  # fmt: skip
        assert any(r["site"] is None for r in schema.to_records(copies))
        with HttpTarget(url, schema, data.class_names, token=TOKEN, cache_dir=False) as remote:
            served = remote.predict_proba(copies)
    encoder = TabularEncoder.from_dict(data.encoder)
    sent = encoder.transform(encoder.inverse_transform(copies))
    np.testing.assert_allclose(served, load_model(folder).predict_proba(sent), rtol=1e-6)


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ({"ids": ["a", "b", "a", *(f"r{k}" for k in range(37))]},
         r"ids: ids are not unique: 'a' names rows 0 and 2"),
        ({"ids": [*(f"r{k}" for k in range(39)), None]}, r"ids: the id of row 39 is missing"),
        ({"records": np.r_[np.arange(39), 7]},
         r"records: record 7 is given for rows 7 and 39 of outputs"),
        ({"class_names": ["cat", "dog", "cat"]},
         r"class_names: classes 0 and 2 are both named 'cat': give each column"),
        ({"class_names": [1, "1", "2"]}, r"classes 0 and 1 are both named '1'"),
        ({"class_names": ["dog", "cat", "cat "]}, r"named 'cat' and 'cat ', alike on the page"),
        ({"class_names": ["cat", "", "dog"]}, r"the name of class 1 is '': give every class"),
        ({"class_names": ["cat", None, "dog"]}, r"the name of class 1 is None"),
    ],
)  # fmt: skip
def test_evaluate_refuses_names_that_name_two_things(given, match, tmp_path, capsys):
    rng = np.random.default_rng(3)
    arrays = {
        "outputs": rng.dirichlet(np.ones(3), 40), "labels": rng.integers(0, 3, 40),
        "members": np.r_[np.ones(20, np.int8), np.zeros(20, np.int8)],
    }  # fmt: skip
    with pytest.raises(ConfigError, match=match) as caught:
        miaudit.evaluate(arrays, attacks=["gap"], bootstrap=0, **given)
    assert "\n" not in str(caught.value)
    # The same from the command line: one line, exit status 2, nothing written.
    meta = {k: np.asarray(v, dtype=str if k != "records" else None) for k, v in given.items()}
    if any(v is None for v in given.get("class_names", []) + given.get("ids", [])):
        return  # .npz files hold text, not None: only Python can pass one
    np.savez(tmp_path / "outputs.npz", **arrays, **meta)
    code = main(["evaluate", str(tmp_path / "outputs.npz"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("miaudit: error: "), err
    assert not (tmp_path / "r").exists()


def test_names_with_a_few_repeats_are_withheld_too():
    """Not only a different value in every row: names or e-mail addresses that repeat a
    few times still name records, and are never listed."""
    from miaudit.data.kinds.table import id_like_categories

    names = [f"Person-{k}" for k in range(199)]  # 200 records, one name twice
    colours = ["blue", "green", "red"]
    towns = [f"town-{k}" for k in range(40)]
    found = id_like_categories({"name": names, "colour": colours, "town": towns}, 200)
    assert found == ["name"]
