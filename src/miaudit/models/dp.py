"""DP-SGD for the stacked networks: each record's gradient clipped, Gaussian noise
added to the sum, minibatches drawn by Poisson sampling, and Opacus's accountant
turning a claimed ε into the noise (Abadi et al., CCS 2016; ``PAPER.md`` §2).

A recipe with ``dp_epsilon`` trains every model of it, target and shadows alike,
this way (the attacker's shadows copy the defence, as the paper's do for every
mitigation). One step of one model, with ``q = 1 / ceil(n / batch_size)`` its
sampling rate (about ``batch_size / n``, as Opacus's ``make_private`` samples),
``C`` the clipping norm and ``σ`` the noise multiplier::

    B  = every training record, each kept with probability q     (Poisson sampling)
    gᵢ = ∇ loss(record i)  ·  min(1, C / (‖∇ loss(record i)‖ + 1e-6))
    g  = (Σ_{i∈B} gᵢ  +  N(0, σ²C² I)) / ⌊q n⌋   (+ 2·l2·W, data-independent)

then the recipe's optimiser (Adam or SGD) steps on ``g``: the same clipping,
normalisation by the expected batch size and noise as Opacus's ``DPOptimizer``
(``tests/models/test_dp.py`` checks a step against it). An epoch is
``ceil(n / batch_size)`` steps; ``σ`` is the smallest that Opacus's accountant
(RDP or PRV) finds to keep ``epochs`` epochs within (ε, δ), δ defaulting to
``1 / (2 n)``.

Each model draws its sampling masks and noise from its own generator, so a model
trained in a stack equals the same model trained alone (up to float rounding).
The MLP's per-record gradient norms are written out (a dense layer's per-record
gradient is an outer product, so its norm is the product of two vector norms:
no per-record gradient is ever formed); the CNN's come from autograd on a stack
with one copy of each model per record (:func:`clipped_gradients`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from miaudit.errors import ConfigError
from miaudit.models.recipe import Recipe

#: Added to a norm before dividing by it, as Opacus does.
_EPS = 1e-6


@dataclass(frozen=True)
class DPPlan:
    """The DP-SGD settings of one training run: the claim and how it is kept.

    ``epsilon`` and ``delta`` are the claim; ``epsilon_spent`` is what the
    accountant gives for the noise chosen (at most ``epsilon``, by a hair less).
    """

    epsilon: float
    delta: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    epochs: int
    accountant: str
    epsilon_spent: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dp_claim(plan: dict[str, Any]) -> str:
    """``"(DP-SGD, ε = 4, δ = 1.1e-03)"``: the privacy a target's plan (as
    ``results.json`` holds it) claims."""
    return f"(DP-SGD, ε = {plan['epsilon']:g}, δ = {plan['delta']:.1e})"


def steps_per_epoch(recipe: Recipe, n_train: int) -> int:
    """Steps of one epoch: ``ceil(n / batch_size)``, the minibatches of an ordinary
    epoch (Opacus's ``make_private`` counts the same)."""
    return max(1, math.ceil(n_train / recipe.batch_size))


def sample_rate(recipe: Recipe, n_train: int) -> float:
    """The probability each record enters a step's minibatch: one over the steps of an
    epoch, about ``batch_size / n`` (Opacus's ``make_private`` samples at the same)."""
    return 1.0 / steps_per_epoch(recipe, n_train)


def expected_batch(plan: DPPlan, n_train: int) -> int:
    """The minibatch size the summed gradient is divided by: ``int(q n)``, as Opacus's
    ``make_private`` divides."""
    return max(1, int(n_train * plan.sample_rate))


def plan(recipe: Recipe, n_train: int) -> DPPlan | None:
    """The DP-SGD plan of ``recipe`` trained on ``n_train`` records; ``None`` without
    ``dp_epsilon``. A claim no noise can keep is one line (a :class:`ConfigError`)."""
    if recipe.dp_epsilon is None:
        return None
    delta = recipe.dp_delta if recipe.dp_delta is not None else 1.0 / (2 * n_train)
    q = sample_rate(recipe, n_train)
    steps = recipe.epochs * steps_per_epoch(recipe, n_train)
    sigma, spent = _noise(recipe.dp_epsilon, delta, q, steps, recipe.dp_accountant)
    return DPPlan(
        epsilon=recipe.dp_epsilon,
        delta=delta,
        noise_multiplier=sigma,
        max_grad_norm=recipe.max_grad_norm,
        sample_rate=q,
        steps=steps,
        epochs=recipe.epochs,
        accountant=recipe.dp_accountant,
        epsilon_spent=spent,
    )


@functools.lru_cache(maxsize=64)
def _noise(
    epsilon: float, delta: float, q: float, steps: int, accountant: str
) -> tuple[float, float]:
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with quiet():
            sigma = get_noise_multiplier(
                target_epsilon=epsilon,
                target_delta=delta,
                sample_rate=q,
                steps=steps,
                accountant=accountant,
                epsilon_tolerance=0.005,
            )
    except ValueError as exc:  # Opacus: "The privacy budget is too low."
        raise ConfigError(
            f"--dp-epsilon {epsilon}: no noise keeps {steps} steps at sampling rate {q:.4g} "
            f"within epsilon {epsilon} at delta {delta:.3g} ({exc}); raise --dp-epsilon, or "
            "lower --epochs or --batch-size"
        ) from None
    return float(sigma), epsilon_of(sigma, q, steps, delta, accountant)


def epsilon_of(sigma: float, q: float, steps: int, delta: float, accountant: str = "rdp") -> float:
    """The ε Opacus's ``accountant`` gives for ``steps`` steps of noise ``sigma`` at
    sampling rate ``q``, at ``delta``."""
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    acc.history = [(sigma, q, steps)]
    with quiet():
        return float(acc.get_epsilon(delta=delta))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Opacus's RDP accountant warns when its best order is its largest: the ε it
    gives is still a valid bound, only perhaps not the tightest, so it is not the
    user's concern on every run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def poisson_batches(
    index_sets: torch.Tensor, q: float, generators: list[torch.Generator]
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's minibatches: for model ``k`` each of its records kept with probability
    ``q``, drawn from its own generator. Returns ``(K, B)`` record indices, padded
    to the largest minibatch with the model's first record, and ``(K, B)`` weights,
    1 for a drawn record and 0 for padding (``B`` at least 1)."""
    n_models, n_train = index_sets.shape
    drawn = [torch.rand(n_train, generator=g) < q for g in generators]
    width = max(1, max(int(d.sum()) for d in drawn))
    rows = index_sets[:, :1].repeat(1, width)
    weight = torch.zeros(n_models, width)
    for k, d in enumerate(drawn):
        picked = index_sets[k, d]
        rows[k, : len(picked)] = picked
        weight[k, : len(picked)] = 1.0
    return rows, weight


def noise(
    params: dict[str, torch.Tensor], std: float, generators: list[torch.Generator]
) -> dict[str, torch.Tensor]:
    """Gaussian noise of standard deviation ``std`` for every stacked parameter, model
    ``k``'s drawn on the CPU from its own generator in a fixed order (so the device
    and the stack do not change it)."""
    out = {}
    for name, t in params.items():
        shape = t.shape[1:]
        draws = [torch.randn(shape, generator=g) for g in generators]
        out[name] = torch.stack(draws).mul_(std).to(t.device)
    return out


def clipped_mlp_gradients(
    params: dict[str, torch.Tensor],
    xb: torch.Tensor,
    yb: torch.Tensor,
    weight: torch.Tensor,
    clip: float,
) -> dict[str, torch.Tensor]:
    """Σ over each model's minibatch of its records' cross-entropy gradients, each
    clipped to norm ``clip`` and multiplied by ``weight`` (``(K, B)``; 0 drops a
    padding row). ``xb`` is ``(K, B, d)``, ``yb`` ``(K, B)``; stacked layout as in
    :func:`~miaudit.models.torch_batched.mlp_gradients`.

    For record b with ``g`` the loss's gradient at the logits and ``d`` at the
    hidden layer's inputs, its gradient is ``(x dᵀ, d, h gᵀ, g)``, of squared norm
    ``‖x‖²‖d‖² + ‖d‖² + ‖h‖²‖g‖² + ‖g‖²``.
    """
    w1, w2 = params["hidden.weight"], params["output.weight"]
    with torch.no_grad():
        h = torch.baddbmm(params["hidden.bias"].unsqueeze(1), xb, w1).tanh_()
        g = torch.softmax(torch.baddbmm(params["output.bias"].unsqueeze(1), h, w2), dim=-1)
        g.scatter_add_(-1, yb.unsqueeze(-1), torch.full_like(g[..., :1], -1.0))
        d = torch.bmm(g, w2.mT).mul_(h.square().neg_().add_(1.0))
        sq = g.square().sum(-1) * (h.square().sum(-1) + 1.0)
        sq += d.square().sum(-1) * (xb.square().sum(-1) + 1.0)
        factor = (clip / (sq.sqrt() + _EPS)).clamp_(max=1.0).mul_(weight.to(g.device))
        g.mul_(factor.unsqueeze(-1))
        d.mul_(factor.unsqueeze(-1))
        return {
            "hidden.weight": torch.bmm(xb.mT, d),
            "hidden.bias": d.sum(1),
            "output.weight": torch.bmm(h.mT, g),
            "output.bias": g.sum(1),
        }


def clipped_gradients(
    net: Any, xb: torch.Tensor, yb: torch.Tensor, weight: torch.Tensor, clip: float
) -> dict[str, torch.Tensor]:
    """What :func:`clipped_mlp_gradients` computes, for any stacked network ``net``
    (a :class:`~miaudit.models.torch_batched.StackedNet`), from per-record gradients:
    the ``K`` models' parameters are repeated once per minibatch record, so that a
    stack of ``K·B`` networks sees one record each and autograd's gradient of it is
    each record's own. Memory grows with the minibatch (``training_bytes`` counts it).
    """
    n_models, batch = xb.shape[0], xb.shape[1]
    repeated = {
        n: t.detach().repeat_interleave(batch, 0).requires_grad_() for n, t in net.params.items()
    }
    one_each = type(net)(net.recipe, net.input_shape, net.n_classes, repeated)
    logits = one_each.forward(xb.reshape(n_models * batch, 1, *xb.shape[2:]))
    loss = F.cross_entropy(logits.reshape(n_models * batch, -1), yb.reshape(-1), reduction="sum")
    names = list(repeated)
    per = dict(zip(names, torch.autograd.grad(loss, [repeated[n] for n in names]), strict=True))
    with torch.no_grad():
        sq = sum(per[n].flatten(1).square().sum(1) for n in names).view(n_models, batch)
        factor = (clip / (sq.sqrt() + _EPS)).clamp_(max=1.0).mul_(weight.to(sq.device))
        return {
            n: torch.einsum("kb,kb...->k...", factor, g.view(n_models, batch, *g.shape[1:]))
            for n, g in per.items()
        }
