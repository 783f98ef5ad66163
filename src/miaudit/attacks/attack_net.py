"""Shokri's attack models, the paper's small networks, trained all together as one stack.

Position in the pipeline: ``signals -> attack (fit) -> scores``. Shokri's attack
fits one membership classifier per class plus a class-agnostic one: 47 models on
the census audit, each on up to ``max_records`` shadow records. Fitted one after
another (gradient boosting, scikit-learn's network) their fixed cost alone took
longer than training 10 shadows. Here every model is a network of one tanh layer
of :data:`HIDDEN` units and a two-way softmax, as in the paper, and all of them
train at once as one stacked network (:func:`miaudit.models.torch_batched.mlp_gradients`
computes every model's gradients in one batched pass), on the device the audit
trains on.

Why each model's result is its own (the same up to float rounding whether it is
trained with the others or alone):

* its inputs are standardised with its own records' mean and spread, and padded
  with zero columns to the widest model's width (a zero input changes neither the
  outputs nor the other weights' gradients; the padding is the same alone or not:
  :func:`fit_attack_nets` pads to ``width``, which the caller fixes);
* its minibatches are drawn from its own generator, seeded by its own seed: a
  stream of permutations of its own records cut into minibatches of
  :data:`BATCH`;
* it takes its own number of Adam steps, from its own record count
  (:func:`steps_for`): models are sorted by that number, so at every step the
  models still training are a prefix of the stack, and the step (gradients and
  Adam) runs on that prefix alone; a finished model is never touched again;
* Adam acts elementwise, and every model in the prefix is at the same step count,
  so its bias correction is one number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from miaudit.errors import ModelError
from miaudit.models.torch_batched import (
    _initial_parameters,
    _stacked_layout,
    mlp_gradients,
    resolve_device,
    torch_threads,
)

#: Hidden tanh units of each attack model (the paper's attack models are small
#: fully-connected networks; 64 as the scikit-learn ``nn`` learner here).
HIDDEN = 64
#: Records per minibatch of each model.
BATCH = 256
#: Passes over its records each model makes, within :data:`MIN_STEPS` and
#: :data:`MAX_STEPS` Adam steps (see :func:`steps_for`).
EPOCHS = 20
MIN_STEPS = 500
MAX_STEPS = 4_000
LR = 1e-3
#: L2 penalty on the weights (``l2 · Σ‖W‖²``, as :class:`~miaudit.models.Recipe`'s).
L2 = 1e-5
_BETAS = (0.9, 0.999)
_EPS = 1e-8
#: Steps whose minibatch indices are drawn and sent to the device at once.
_BLOCK = 32


def steps_for(n_records: int) -> int:
    """Adam steps a model of ``n_records`` records takes: :data:`EPOCHS` passes in
    minibatches of :data:`BATCH`, but at least :data:`MIN_STEPS` (a small class still
    converges) and at most :data:`MAX_STEPS` (a large one costs a bounded time)."""
    return int(min(MAX_STEPS, max(MIN_STEPS, math.ceil(EPOCHS * n_records / BATCH))))


@dataclass
class AttackNets:
    """Fitted attack networks: model ``k`` standardises with ``mean[k]``, ``scale[k]``,
    pads to ``width`` and applies its slice of ``params`` (stacked layout, on the CPU)."""

    params: dict[str, torch.Tensor]
    mean: list[np.ndarray]
    scale: list[np.ndarray]
    width: int

    def p_member(self, k: int, X: np.ndarray) -> np.ndarray:
        """Model ``k``'s P(member) for the rows of ``X`` (its own unpadded features)."""
        x = torch.from_numpy(_prepare(X, self.mean[k], self.scale[k], self.width))
        p = self.params
        with torch.inference_mode():
            h = torch.addmm(p["hidden.bias"][k], x, p["hidden.weight"][k]).tanh()
            logits = torch.addmm(p["output.bias"][k], h, p["output.weight"][k])
            return torch.softmax(logits.double(), dim=1)[:, 1].numpy()


def _prepare(X: np.ndarray, mean: np.ndarray, scale: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((X.shape[0], width), dtype=np.float32)
    out[:, : X.shape[1]] = (X - mean) / scale
    return out


class _Stream:
    """A model's minibatch indices: successive permutations of its records, from its
    own generator, cut into minibatches of :data:`BATCH`."""

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.buffer = np.zeros(0, dtype=np.int64)

    def take(self, count: int) -> np.ndarray:
        while self.buffer.size < count:
            self.buffer = np.concatenate([self.buffer, self.rng.permutation(self.n)])
        out, self.buffer = self.buffer[:count], self.buffer[count:]
        return out


def fit_attack_nets(
    tasks: Sequence[tuple[np.ndarray, np.ndarray]],
    seeds: Sequence[int],
    width: int,
    *,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> AttackNets:
    """Fit one attack network per ``(features, member)`` task, all as one stack.

    Parameters
    ----------
    tasks:
        Per model, ``(X, member)``: ``(n_k, d_k)`` features with ``d_k <= width``
        and ``(n_k,)`` booleans (both values present).
    seeds:
        One seed per model: its initial weights and minibatch order.
    width:
        Input width every model is padded to (the widest task's, fixed by the caller
        so that a model's result does not depend on the others).
    device:
        ``"cpu"`` or ``"cuda"``.
    progress:
        Called as ``progress(done, total)`` after every block of steps, in model-steps
        (the steps every model has taken so far, of all the steps they take).
    """
    dev = resolve_device(device)
    K = len(tasks)
    steps = np.array([steps_for(len(m)) for _, m in tasks])
    order = np.argsort(-steps, kind="stable")  # most steps first: the active models a prefix
    means, scales, blocks, targets = [], [], [], []
    for X, member in tasks:
        X = np.asarray(X, dtype=np.float64)
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale < 1e-12] = 1.0
        means.append(mean)
        scales.append(scale)
        blocks.append(_prepare(X, mean, scale, width))
        targets.append(np.asarray(member, dtype=np.int64))
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blocks])])
    X_all = torch.from_numpy(np.concatenate([blocks[k] for k in range(K)])).to(dev)
    y_all = torch.from_numpy(np.concatenate([targets[k] for k in range(K)])).to(dev)

    shapes = {
        "hidden.weight": (HIDDEN, width),
        "hidden.bias": (HIDDEN,),
        "output.weight": (2, HIDDEN),
        "output.bias": (2,),
    }
    inits = [
        _initial_parameters(shapes, torch.Generator().manual_seed(int(seeds[k]) % 2**63))
        for k in order
    ]
    params = {
        name: t.to(dev)
        for name, t in _stacked_layout(
            {name: torch.stack([p[name] for p in inits]) for name in shapes}
        ).items()
    }
    moments = {name: (torch.zeros_like(t), torch.zeros_like(t)) for name, t in params.items()}
    streams = [_Stream(len(targets[k]), int(seeds[k])) for k in order]
    sorted_steps = steps[order]
    base = torch.from_numpy(offsets[order]).to(dev)
    total = int(sorted_steps[0]) if K else 0
    work = int(sorted_steps.sum())
    with torch_threads(1):
        for start in range(0, total, _BLOCK):
            span = min(_BLOCK, total - start)
            active = int((sorted_steps > start).sum())
            # (span, active, BATCH) indices into X_all; rows past a model's last step unused.
            idx = np.stack([s.take(span * BATCH).reshape(span, BATCH) for s in streams[:active]])
            idx = torch.from_numpy(idx).to(dev).transpose(0, 1) + base[:active, None]
            for t in range(span):
                step = start + t
                a = int((sorted_steps > step).sum())
                flat = idx[t, :a].reshape(-1)
                xb = X_all.index_select(0, flat).view(a, BATCH, width)
                yb = y_all.index_select(0, flat)
                prefix = {name: p[:a] for name, p in params.items()}
                grads = mlp_gradients(prefix, xb, yb, L2)
                _adam(prefix, grads, moments, a, step + 1)
            if progress is not None:
                progress(int(np.minimum(sorted_steps, start + span).sum()), work)
    inverse = np.argsort(order)
    cpu = {name: t[torch.from_numpy(inverse).to(dev)].cpu() for name, t in params.items()}
    if not all(bool(t.isfinite().all()) for t in cpu.values()):
        raise ModelError("an attack network diverged (non-finite weights): report this")
    return AttackNets(cpu, means, scales, width)


def _adam(
    params: dict[str, torch.Tensor],
    grads: dict[str, torch.Tensor],
    moments: dict[str, tuple[torch.Tensor, torch.Tensor]],
    active: int,
    t: int,
) -> None:
    """One Adam step (PyTorch's formula) on the first ``active`` models, all at step ``t``."""
    b1, b2 = _BETAS
    c1, c2 = 1 - b1**t, 1 - b2**t
    with torch.no_grad():
        for name, p in params.items():
            m, v = (x[:active] for x in moments[name])
            g = grads[name]
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / c2).sqrt_().add_(_EPS)
            p.addcdiv_(m, denom, value=-LR / c1)
