"""Stacked PyTorch training: same models as training one by one, and the documented loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from miaudit.errors import ModelError
from miaudit.models import Recipe, torch_batched, train_models
from miaudit.models._seeding import derive_seed
from miaudit.models.torch_batched import _initial_parameters, parameter_shapes

MLP = Recipe(model="mlp", hidden=32, epochs=3, batch_size=32)
CNN = Recipe(model="cnn", filters=4, hidden=16, epochs=2, batch_size=32)


def _reference_net(recipe: Recipe, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """An ordinary torch.nn network of the documented architecture with ``state`` loaded."""
    if recipe.model == "mlp":
        net = torch.nn.Sequential()
        net.add_module("flatten", torch.nn.Flatten())
    else:
        f, c = state["conv1.weight"].shape[:2]
        net = torch.nn.Sequential()
        net.add_module("conv1", torch.nn.Conv2d(c, f, 5, padding=2))
        net.add_module("act1", torch.nn.Tanh())
        net.add_module("pool1", torch.nn.MaxPool2d(2))
        net.add_module("conv2", torch.nn.Conv2d(f, f, 5, padding=2))
        net.add_module("act2", torch.nn.Tanh())
        net.add_module("pool2", torch.nn.MaxPool2d(2))
        net.add_module("flatten", torch.nn.Flatten())
    h, d = state["hidden.weight"].shape
    net.add_module("hidden", torch.nn.Linear(d, h))
    net.add_module("act", torch.nn.Tanh())
    net.add_module("output", torch.nn.Linear(h, state["output.weight"].shape[0]))
    net.load_state_dict(state, strict=False)
    return net


@pytest.mark.parametrize(("recipe", "data"), [(MLP, "digits"), (CNN, "digit_images")])
def test_stacked_models_equal_models_trained_alone(recipe, data, train_sets, request):
    X, y = request.getfixturevalue(data)
    seeds = [11, 12, 13, 14]
    stacked = train_models(recipe, X, y, 10, train_sets, seeds).predict_proba(X)
    for k in (0, 2):
        alone = train_models(recipe, X, y, 10, [train_sets[k]], [seeds[k]]).predict_proba(X)[0]
        np.testing.assert_allclose(stacked[k], alone, atol=1e-5)
    # Neighbours and position in the stack do not matter either.
    other = train_models(recipe, X, y, 10, [train_sets[3], train_sets[2]], [99, 13])
    np.testing.assert_allclose(other.predict_proba(X)[1], stacked[2], atol=1e-5)


@pytest.mark.parametrize(("recipe", "data"), [(MLP, "digits"), (CNN, "digit_images")])
def test_stacked_forward_matches_torch_nn(recipe, data, train_sets, request):
    # The stacked network computes exactly the architecture the recipe documents.
    X, y = request.getfixturevalue(data)
    models = train_models(recipe, X, y, 10, train_sets[:3], [1, 2, 3])
    log_p = models.predict_log_proba(X[:300])
    for k in range(3):
        net = _reference_net(recipe, models.model(k).state_dict())
        with torch.no_grad():
            expected = F.log_softmax(net(torch.from_numpy(X[:300])), dim=-1).numpy()
        np.testing.assert_allclose(log_p[k], expected, atol=1e-5)


def test_different_seeds_give_different_models(digits, train_sets):
    X, y = digits
    p = train_models(MLP, X, y, 10, [train_sets[0]] * 2, [1, 2]).predict_proba(X)
    assert np.abs(p[0] - p[1]).max() > 1e-2


@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_one_full_batch_sgd_step_follows_the_documented_loss(digits, l2):
    # loss = mean cross-entropy + l2 * sum of squared weights (biases excluded).
    X, y = digits
    idx = np.arange(64)
    recipe = Recipe(model="mlp", hidden=8, epochs=1, batch_size=64, lr=0.5, l2=l2,
                    optimizer="sgd", momentum=0.0)  # fmt: skip
    trained = train_models(recipe, X, y, 10, [idx], [7]).model(0).state_dict()

    shapes = parameter_shapes(recipe, (64,), 10)
    start = _initial_parameters(shapes, torch.Generator().manual_seed(derive_seed(7)))
    params = {k: v.clone().requires_grad_() for k, v in start.items()}
    h = torch.tanh(torch.from_numpy(X[idx]) @ params["hidden.weight"].T + params["hidden.bias"])
    logits = h @ params["output.weight"].T + params["output.bias"]
    loss = F.cross_entropy(logits, torch.from_numpy(y[idx]))
    loss = loss + l2 * sum(params[k].square().sum() for k in ("hidden.weight", "output.weight"))
    loss.backward()
    for name, p in params.items():
        expected = (p - 0.5 * p.grad).detach()
        torch.testing.assert_close(trained[name], expected, atol=1e-6, rtol=1e-5)


def test_mlp_overfits_a_tiny_training_set(digits):
    X, y = digits
    idx = np.arange(100)
    recipe = Recipe(model="mlp", hidden=64, epochs=60, lr=1e-2, batch_size=20)
    p = train_models(recipe, X, y, 10, [idx], [0]).predict_proba(X[idx])[0]
    assert (p.argmax(axis=1) == y[idx]).mean() == 1.0


def test_probabilities_are_normalised_and_logs_finite_even_when_saturated(digits, train_sets):
    X, y = digits
    models = train_models(MLP, X, y, 10, train_sets, [0, 1, 2, 3])
    extreme = np.concatenate([X[:50], X[:50] * 1e4, -X[:50] * 1e4])
    p = models.predict_proba(extreme)
    log_p = models.predict_log_proba(extreme)
    assert p.shape == log_p.shape == (4, 150, 10)
    assert p.dtype == log_p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-6)
    assert np.isfinite(log_p).all()
    np.testing.assert_allclose(np.exp(log_p), p, atol=1e-6)


@pytest.mark.parametrize(("recipe", "data"), [(MLP, "digits"), (CNN, "digit_images")])
def test_prediction_in_small_chunks_equals_one_pass(recipe, data, train_sets, request, monkeypatch):
    X, y = request.getfixturevalue(data)
    models = train_models(recipe, X, y, 10, train_sets[:2], [0, 1])
    whole = models.predict_log_proba(X)
    monkeypatch.setattr(torch_batched, "_PREDICT_BUDGET", 20_000)  # tens of records per chunk
    np.testing.assert_allclose(models.predict_log_proba(X), whole, atol=1e-6)


def test_training_sets_of_different_sizes_are_grouped(digits):
    X, y = digits
    rng = np.random.default_rng(1)
    sets = [rng.choice(1797, n, replace=False) for n in (100, 150, 100)]
    together = train_models(MLP, X, y, 10, sets, [5, 6, 7]).predict_proba(X)
    for k in range(3):
        alone = train_models(MLP, X, y, 10, [sets[k]], [5 + k]).predict_proba(X)[0]
        np.testing.assert_allclose(together[k], alone, atol=1e-5)


def test_progress_counts_model_epochs(digits, train_sets):
    X, y = digits
    calls = []
    train_models(
        MLP, X, y, 10, train_sets, [0, 1, 2, 3], progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(4 * e, 4 * MLP.epochs) for e in range(1, MLP.epochs + 1)]


def test_cnn_needs_images(digits, train_sets):
    X, y = digits
    with pytest.raises(ModelError, match=r"cnn recipe needs images .* use model='mlp'"):
        train_models(CNN, X, y, 10, train_sets, [0, 1, 2, 3])


def test_labels_beyond_n_classes_are_refused(digits, train_sets):
    X, y = digits
    with pytest.raises(ModelError, match=r"labels range over 0..9 but n_classes is 5"):
        train_models(MLP, X, y, 5, train_sets, [0, 1, 2, 3])


def test_divergence_is_reported(digits, train_sets):
    X, y = digits
    wild = Recipe(model="mlp", hidden=8, epochs=2, lr=1e38, optimizer="sgd", momentum=0.0)
    with pytest.raises(ModelError, match=r"training diverged .* seeds \[5\]: lower lr"):
        train_models(wild, X, y, 10, train_sets[:1], [5])


def test_non_finite_records_are_refused(digits, train_sets):
    X, y = digits
    X = X.copy()
    X[3, 3] = np.nan
    with pytest.raises(ModelError, match=r"NaN or infinite values: encode or impute"):
        train_models(MLP, X, y, 10, train_sets, [0, 1, 2, 3])


def test_missing_gpu_is_a_model_error(digits, train_sets):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    X, y = digits
    with pytest.raises(ModelError, match=r"no CUDA GPU is available: use 'cpu'"):
        train_models(MLP, X, y, 10, train_sets, [0, 1, 2, 3], device="cuda")


def test_threads_apply_during_training_and_are_restored(digits, train_sets):
    X, y = digits
    before = torch.get_num_threads()
    seen = []
    train_models(
        MLP,
        X,
        y,
        10,
        train_sets[:1],
        [0],
        progress=lambda d, t: seen.append(torch.get_num_threads()),
    )
    assert set(seen) == {1}
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_written_out_mlp_gradients_equal_autograd(digits, l2):
    # Three stacked models on their own minibatches of 37 records (a partial batch).
    from miaudit.models.torch_batched import StackedNet, _stacked_layout, mlp_gradients

    X, y = digits
    recipe = Recipe(model="mlp", hidden=16, l2=l2)
    shapes = parameter_shapes(recipe, (64,), 10)
    inits = [_initial_parameters(shapes, torch.Generator().manual_seed(s)) for s in (1, 2, 3)]
    params = _stacked_layout({n: torch.stack([p[n] for p in inits]) for n in shapes})
    rows = torch.from_numpy(np.random.default_rng(0).choice(len(X), (3, 37), replace=False))
    xb = torch.from_numpy(X)[rows]
    yb = torch.from_numpy(y.astype(np.int64))[rows].reshape(-1)
    written = mlp_gradients(params, xb, yb, l2)

    leaves = {n: t.clone().requires_grad_() for n, t in params.items()}
    logits = StackedNet(recipe, (64,), 10, leaves).forward(xb)
    loss = F.cross_entropy(logits.reshape(-1, 10), yb, reduction="sum") / 37
    loss = loss + l2 * sum(leaves[n].square().sum() for n in ("hidden.weight", "output.weight"))
    loss.backward()
    for name, leaf in leaves.items():
        torch.testing.assert_close(written[name], leaf.grad, atol=1e-6, rtol=1e-5)


def test_mlp_on_images_trains_as_on_their_flattened_pixels(digit_images, train_sets):
    # The MLP flattens images (recipe docs); its written-out gradients see the same.
    X, y = digit_images
    recipe = Recipe(model="mlp", hidden=16, epochs=2, batch_size=50)
    on_images = train_models(recipe, X, y, 10, train_sets[:2], [5, 6]).predict_proba(X)
    flat = X.reshape(len(X), -1)
    on_rows = train_models(recipe, flat, y, 10, train_sets[:2], [5, 6]).predict_proba(flat)
    np.testing.assert_array_equal(on_images, on_rows)


def test_the_workspace_changes_no_bit_of_the_gradients(digits):
    from miaudit.models.torch_batched import MLPWorkspace, _stacked_layout, mlp_gradients

    X, y = digits
    recipe = Recipe(model="mlp", hidden=16, l2=0.01)
    shapes = parameter_shapes(recipe, (64,), 10)
    inits = [_initial_parameters(shapes, torch.Generator().manual_seed(s)) for s in (1, 2)]
    params = _stacked_layout({n: torch.stack([p[n] for p in inits]) for n in shapes})
    rows = torch.from_numpy(np.random.default_rng(1).choice(len(X), (2, 32), replace=False))
    yb = torch.from_numpy(y.astype(np.int64))[rows].reshape(-1)
    plain = mlp_gradients(params, torch.from_numpy(X)[rows], yb, 0.01)
    workspace = MLPWorkspace(params, 32)
    xb = workspace.gather(torch.from_numpy(X), rows.reshape(-1))
    reused = mlp_gradients(params, xb, yb, 0.01, workspace)
    assert all(reused[n] is workspace.grads[n] for n in reused)
    for name in plain:
        assert torch.equal(plain[name], reused[name])


def test_augmented_training_is_reproducible_per_model_and_only_for_images(digit_images, train_sets):
    from miaudit.models.torch_batched import augment_images

    X, y = digit_images
    augmented = Recipe(model="cnn", filters=4, hidden=16, epochs=2, batch_size=32, augment=True)
    seeds = [11, 12, 13]
    stacked = train_models(augmented, X, y, 10, train_sets[:3], seeds).predict_proba(X)
    alone = train_models(augmented, X, y, 10, [train_sets[1]], [12]).predict_proba(X)[0]
    np.testing.assert_allclose(stacked[1], alone, atol=1e-5)
    plain = train_models(CNN, X, y, 10, train_sets[:3], seeds).predict_proba(X)
    assert np.abs(plain - stacked).max() > 1e-3
    # Each image mirrored or not, and moved by at most one pixel: its mass moves, never grows.
    xb = torch.from_numpy(X[:64]).float().view(2, 32, *X.shape[1:])
    out = augment_images(xb, [torch.Generator().manual_seed(k) for k in range(2)])
    assert out.shape == xb.shape and (out.sum(dim=(2, 3, 4)) <= xb.sum(dim=(2, 3, 4)) + 1e-4).all()
    with pytest.raises(ValueError, match="augment=True has no effect on model 'mlp'"):
        Recipe(model="mlp", augment=True)
