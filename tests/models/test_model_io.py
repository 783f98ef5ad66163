"""save_model / load_model: identical predictions back, and one clear error per broken file."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import skops.io
import torch
from safetensors.torch import save_file

from miaudit.errors import ModelError
from miaudit.models import Recipe, load_model, save_model, train_models

RECIPES = {
    "mlp": Recipe(model="mlp", hidden=16, epochs=2),
    "cnn": Recipe(model="cnn", filters=4, hidden=8, epochs=1),
    "logistic-regression": Recipe(model="logistic-regression"),
    "random-forest": Recipe(model="random-forest", n_estimators=5),
    "gradient-boosting": Recipe(model="gradient-boosting", n_estimators=3, max_depth=2),
    "sklearn-mlp": Recipe(model="sklearn-mlp", hidden=8, epochs=2),
}


def _trained(name, digits, digit_images):
    X, y = digit_images if name == "cnn" else digits
    return train_models(RECIPES[name], X, y, 10, [np.arange(300)], [3]).model(0), X


@pytest.fixture()
def saved_mlp(tmp_path, digits):
    clf, _ = _trained("mlp", digits, None)
    return save_model(clf, tmp_path / "mlp")


@pytest.fixture()
def saved_forest(tmp_path, digits):
    clf, _ = _trained("random-forest", digits, None)
    return save_model(clf, tmp_path / "forest")


def _edit_json(path, **changes):
    meta = json.loads((path / "model.json").read_text())
    meta.update(changes)
    (path / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("name", list(RECIPES))
def test_round_trip_gives_identical_predictions(name, tmp_path, digits, digit_images):
    clf, X = _trained(name, digits, digit_images)
    path = save_model(
        clf,
        tmp_path / name,
        class_names=[f"digit {i}" for i in range(10)],
        dataset_fingerprint="ab",
    )
    loaded = load_model(path)
    assert type(loaded) is type(clf)
    assert loaded.recipe == clf.recipe
    assert (loaded.input_shape, loaded.n_classes) == (clf.input_shape, 10)
    assert loaded.class_names[3] == "digit 3" and loaded.dataset_fingerprint == "ab"
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict_log_proba(X), clf.predict_log_proba(X))
    meta = json.loads((path / "model.json").read_text())
    assert meta["format"] == "miaudit-model" and meta["version"] == 1
    assert meta["framework"] == clf.recipe.framework


def test_classifier_save_is_save_model(tmp_path, digits):
    clf, X = _trained("mlp", digits, None)
    np.testing.assert_array_equal(load_model(clf.save(tmp_path / "m")).predict_proba(X),
                                  clf.predict_proba(X))  # fmt: skip


def test_missing_directory(tmp_path):
    with pytest.raises(ModelError, match=r"model directory .*nowhere does not exist"):
        load_model(tmp_path / "nowhere")


def test_file_instead_of_directory(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"model.bin is a file, not a model directory"):
        load_model(tmp_path / "model.bin")


def test_missing_model_json(saved_mlp):
    (saved_mlp / "model.json").unlink()
    with pytest.raises(ModelError, match=r"model.json is missing: is .* a miaudit model\?"):
        load_model(saved_mlp)


def test_model_json_not_json(saved_mlp):
    (saved_mlp / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"model.json is not valid JSON"):
        load_model(saved_mlp)


def test_wrong_format(saved_mlp):
    _edit_json(saved_mlp, format="keras")
    with pytest.raises(ModelError, match=r"has format 'keras', expected 'miaudit-model'"):
        load_model(saved_mlp)


def test_newer_version_asks_for_an_upgrade(saved_mlp):
    _edit_json(saved_mlp, version=2)
    with pytest.raises(
        ModelError, match=r"format version 2; this miaudit reads version 1: upgrade"
    ):
        load_model(saved_mlp)


def test_invalid_recipe(saved_mlp):
    meta = json.loads((saved_mlp / "model.json").read_text())
    _edit_json(saved_mlp, recipe={**meta["recipe"], "epochs": 0})
    with pytest.raises(ModelError, match=r"invalid recipe .*epochs must be at least 1"):
        load_model(saved_mlp)


def test_framework_disagrees_with_recipe(saved_mlp):
    _edit_json(saved_mlp, framework="sklearn")
    with pytest.raises(ModelError, match=r"says framework 'sklearn', but its recipe 'mlp'"):
        load_model(saved_mlp)


def test_missing_weights(saved_mlp):
    (saved_mlp / "weights.safetensors").unlink()
    with pytest.raises(ModelError, match=r"weights.safetensors is missing"):
        load_model(saved_mlp)


def test_corrupt_weights(saved_mlp):
    (saved_mlp / "weights.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(ModelError, match=r"weights.safetensors is not a readable safetensors"):
        load_model(saved_mlp)


def test_truncated_weights(saved_mlp):
    data = (saved_mlp / "weights.safetensors").read_bytes()
    (saved_mlp / "weights.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"not a readable safetensors file"):
        load_model(saved_mlp)


def test_weights_disagree_with_model_json(saved_mlp):
    meta = json.loads((saved_mlp / "model.json").read_text())
    _edit_json(saved_mlp, recipe={**meta["recipe"], "hidden": 32})
    with pytest.raises(
        ModelError,
        match=r"tensor 'hidden.weight' has shape \(16, 64\) but model.json .* needs \(32, 64\)",
    ):
        load_model(saved_mlp)
    _edit_json(saved_mlp, recipe=meta["recipe"], n_classes=12)
    with pytest.raises(
        ModelError, match=r"'output.weight' has shape \(10, 16\) .* needs \(12, 16\)"
    ):
        load_model(saved_mlp)


def test_weights_of_another_architecture(saved_mlp):
    tensors = {"conv1.weight": torch.zeros(4, 1, 5, 5)}
    save_file(tensors, str(saved_mlp / "weights.safetensors"))
    with pytest.raises(ModelError, match=r"does not hold a mlp \(missing \['hidden.bias'"):
        load_model(saved_mlp)


def test_non_finite_weights(saved_mlp):
    clf = load_model(saved_mlp)
    state = clf.state_dict()
    state["output.bias"][0] = float("nan")
    save_file(state, str(saved_mlp / "weights.safetensors"))
    with pytest.raises(ModelError, match=r"tensor 'output.bias' is not finite"):
        load_model(saved_mlp)


def test_missing_skops_file(saved_forest):
    (saved_forest / "model.skops").unlink()
    with pytest.raises(ModelError, match=r"model.skops is missing"):
        load_model(saved_forest)


def test_corrupt_skops_file(saved_forest):
    (saved_forest / "model.skops").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match=r"model.skops is not a readable skops file"):
        load_model(saved_forest)


def test_skops_file_with_an_untrusted_type_is_refused(saved_forest):
    forest = load_model(saved_forest).estimator
    forest.payload = eval  # what a tampered file could smuggle in
    skops.io.dump(forest, saved_forest / "model.skops")
    assert "builtins.eval" in skops.io.get_untrusted_types(file=saved_forest / "model.skops")
    with pytest.raises(
        ModelError, match=r"model.skops contains types miaudit does not trust: builtins.eval"
    ):
        load_model(saved_forest)


def test_skops_file_holding_another_estimator(saved_forest):
    skops.io.dump(load_model(saved_forest).estimator.estimators_[0], saved_forest / "model.skops")
    with pytest.raises(ModelError, match=r"holds a DecisionTreeClassifier, but model.json says"):
        load_model(saved_forest)


def test_skops_estimator_disagrees_with_input_shape(saved_forest):
    _edit_json(saved_forest, input_shape=[65])
    with pytest.raises(ModelError, match=r"takes 64 features but model.json says input_shape"):
        load_model(saved_forest)


def test_skops_file_is_a_zip_not_a_pickle(saved_forest):
    # Guard against a regression to pickle/joblib: skops writes a zip of JSON + arrays.
    with zipfile.ZipFile(saved_forest / "model.skops") as zf:
        assert "schema.json" in zf.namelist()


def test_wrong_number_of_class_names(tmp_path, digits):
    clf, _ = _trained("mlp", digits, None)
    with pytest.raises(ModelError, match=r"3 class names given for a model of 10 classes"):
        save_model(clf, tmp_path / "m", class_names=["a", "b", "c"])


def test_class_names_of_the_wrong_length_in_model_json(saved_mlp):
    _edit_json(saved_mlp, class_names=["a", "b"])
    with pytest.raises(ModelError, match=r"class_names that are not a list of 10 names"):
        load_model(saved_mlp)


@pytest.fixture()
def saved_logistic(tmp_path, digits):
    clf, _ = _trained("logistic-regression", digits, None)
    return save_model(clf, tmp_path / "logistic")


def _refuse_to_expand(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the file was opened for loading")

    monkeypatch.setattr(skops.io, "load", never)
    monkeypatch.setattr(skops.io, "get_untrusted_types", never)


def test_a_skops_zip_bomb_is_refused_before_anything_is_expanded(saved_logistic, monkeypatch):
    # The coef_ member replaced by a deflated (10, 1,000,000) array of zeros: 80 MB
    # declared in a file of well under 1 MB. Before, skops expanded it whole.
    path = saved_logistic / "model.skops"
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    coef = max((n for n in members if n.endswith(".npy")), key=lambda n: len(members[n]))
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in members.items():
            if name != coef:
                zf.writestr(name, blob)
        bomb = zipfile.ZipInfo(coef)
        bomb.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(bomb, "w", force_zip64=True) as out:
            header = {"descr": "<f8", "fortran_order": False, "shape": (10, 1_000_000)}
            np.lib.format.write_array_header_1_0(out, header)
            for _ in range(80):
                out.write(bytes(1_000_000))
    assert path.stat().st_size < 2**20
    _refuse_to_expand(monkeypatch)
    with pytest.raises(ModelError, match=r"declares 76 MiB of arrays in a file of 0\.\d MiB"):
        load_model(saved_logistic)


def test_a_skops_file_larger_than_memory_is_refused_before_loading(saved_logistic, monkeypatch):
    import miaudit.resources

    monkeypatch.setattr(miaudit.resources, "device_memory", lambda device="cpu": 4096)
    _refuse_to_expand(monkeypatch)
    message = r"loading .*model\.skops .* would take about [\d.]+ GiB, more than this.* 0\.0 GiB"
    with pytest.raises(ModelError, match=message):
        load_model(saved_logistic)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda est: setattr(est, "coef_", est.coef_[:, :10]), "does not predict on records of 64"),
        (lambda est: est.coef_.fill(np.nan), "that are not finite"),
    ],
)
def test_skops_arrays_that_disagree_are_one_line_not_a_traceback(saved_logistic, damage, message):
    estimator = load_model(saved_logistic).estimator
    damage(estimator)
    skops.io.dump(estimator, saved_logistic / "model.skops")
    with pytest.raises(ModelError, match=message):
        load_model(saved_logistic)
