"""Train K PyTorch networks of one recipe at once, as one network with stacked weights.

Position in the pipeline: ``splits -> target/shadows (training) -> signals``. The
shadow stage trains many small networks that differ only in their training
records and seed; on a CPU, one at a time, most of the time goes to per-step
overhead and small matrix products. Here every parameter carries a leading model
axis ``K`` and one step updates all K models:

- dense layers are batched matrix products (``torch.baddbmm``) with weights
  ``(K, out, in)``;
- convolutions are grouped convolutions with ``groups=K`` on inputs laid out as
  ``(B, K·c, h, w)`` in channels-last memory. Measured on 2 CPU cores (K = 4,
  32 filters, 28×28 images, seconds per model-epoch of 10,000 images): grouped
  channels-last 3.6, grouped NCHW 4.9, a Python loop of K convolutions 5.5;
  ``torch.func.vmap(functional_call)`` lowers to the grouped NCHW convolution
  and timed the same as it.
- the bag of embeddings (``boe``) reads its K tables ``(K, V, h)`` as one table of
  ``K·V`` rows, model k's token ids shifted by ``k·V``, with one
  ``embedding_bag``; its gradients are written out (:func:`bag_gradients`). Every
  step's cost is dominated by Adam's pass over the whole tables (coupled L2 and
  Adam's moments make the update dense, as ``torch.nn.Embedding`` with Adam is), so
  stacking saves little time per model here: it keeps the one code path.

Why the K models stay independent: the loss is the sum over models of each
model's own mean minibatch loss, so the gradient of model k's weights is exactly
the gradient of model k's loss; Adam and SGD act elementwise, so one optimiser
over stacked tensors performs K separate optimisations. Each model draws its
initial weights and its minibatch order from a ``torch.Generator`` seeded only by
its own integer seed, so model k gives the same predictions (up to float
rounding) whether it is trained alone or beside any other models.

Layout: convolution kernels are stacked in ``torch.nn.Conv2d``'s layout,
``(K, out, in, kh, kw)``. Dense weights are stacked *transposed*, ``(K, in, out)``:
the forward product is then ``x @ W`` and autograd's gradient ``xᵀ @ g`` comes out
in the parameter's own layout. Stacked as ``(K, out, in)`` the gradient arrives
transposed and every step paid a copy of it (measured: 19 % of an MLP step at
K = 16). :meth:`StackedNet.state_dict` and :meth:`StackedNet.from_state_dicts`
convert to and from the per-model layout of ``torch.nn.Linear`` (``(out, in)``),
so one model's tensors load into an equivalent ``torch.nn.Sequential``;
:data:`PARAMETER_NAMES` lists them.

Optimisers are PyTorch's fused CPU/GPU kernels (``fused=True``): one pass over
all stacked parameters per step instead of a dozen elementwise passes (measured:
Adam took 45 % of an MLP step at K = 16 unfused, 8 % fused).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from miaudit.data.kinds.text import TEXT_BUCKETS
from miaudit.errors import ModelError
from miaudit.models import dp
from miaudit.models._seeding import derive_seed
from miaudit.models.recipe import Recipe
from miaudit.resources import resolve_device as resolve_device  # models name it here

KERNEL = 5
"""Side of the square convolution kernels; padding ``KERNEL // 2`` keeps the size."""

MAX_STACK = 16
"""Most models :func:`~miaudit.models.train_models` trains in one stack on a CPU. On
a CPU thread the time per model is nearly flat from K = 4 (``bench/batched_training.py``:
0.034 s per census MLP-epoch at K = 4, 0.028 at K = 16) while activation memory
grows with K; the shadow stage (:mod:`miaudit.jobs`) stacks at most 8, one stack
per core. A GPU takes stacks sized to its memory (:func:`stack_size`)."""

GPU_MEMORY_SHARE = 0.5
"""Share of a GPU's memory one stack may take (:data:`GPU_OVERHEAD` times
:func:`training_bytes` per model). One stack trains at a time on a GPU, so it may
take most of it; the other half is room for the records, the predictions, the
libraries' workspaces and the allocator's slack."""

GPU_OVERHEAD = 2.0
"""What a model of a stack takes on a GPU, in units of :func:`training_bytes`.
Measured on an H200 (``bench/gpu.py``: peak allocated memory between stacks of two
sizes, per model): 2.9 MiB per census MLP against an estimate of 1.4 (the replayed
step keeps its own copies of the step's temporaries), 25 MiB per Fashion-MNIST CNN
against 13.6 (cuDNN's and autograd's intermediates)."""

GPU_MAX_STACK = 256
"""Most models in one stack on a GPU, however much memory it has: a stack is also
the unit of caching and resuming, so an interrupted run loses at most one."""


def stack_size(per_model: int, memory: int, share: float, cap: int) -> int:
    """Most models needing ``per_model`` bytes each that fit in ``share`` of ``memory``
    bytes, at most ``cap``; 0 when not even one fits."""
    return max(0, min(int(cap), int(share * memory) // max(int(per_model), 1)))


PARAMETER_NAMES: dict[str, tuple[str, ...]] = {
    "mlp": ("hidden.weight", "hidden.bias", "output.weight", "output.bias"),
    "cnn": (
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "hidden.weight",
        "hidden.bias",
        "output.weight",
        "output.bias",
    ),
    "boe": ("embedding.weight", "output.weight", "output.bias"),
}

DENSE = ("hidden.weight", "output.weight")
"""Dense weights, stacked as ``(K, in, out)`` (see the module docstring)."""

ARITHMETIC = 3
"""Revision of the training arithmetic: bump it when a change alters trained
numbers, so that cached jobs (:mod:`miaudit.jobs`) keyed on it are trained again.
2: fused optimisers; 3: the MLP's gradients written out (:func:`mlp_gradients`)."""

# Floats one intermediate tensor of the prediction pass may hold (64 MiB).
_PREDICT_BUDGET = 1 << 24


def parameter_shapes(
    recipe: Recipe, input_shape: tuple[int, ...], n_classes: int
) -> dict[str, tuple[int, ...]]:
    """Shape of each parameter of ONE model of ``recipe`` (no model axis).

    Parameters
    ----------
    recipe:
        An ``mlp``, ``cnn`` or ``boe`` recipe.
    input_shape:
        Shape of one record: ``(d,)`` or ``(c, h, w)``; the MLP flattens images. For
        ``boe``, ``(1 + L,)``: a handle, then ``L`` token ids.
    n_classes:
        Width of the softmax.

    Raises
    ------
    ModelError
        If the CNN is given records that are not images of at least 4×4 pixels, or
        the bag of embeddings records that are not rows of token ids.
    """
    h, k = recipe.hidden, KERNEL
    if recipe.model == "boe":
        if len(input_shape) != 1 or input_shape[0] < 2:
            raise ModelError(
                f"the boe recipe reads text records (a handle, then token ids), but records "
                f"have shape {tuple(input_shape)}: use model='mlp' or 'cnn' for tables or images"
            )
        return {
            "embedding.weight": (TEXT_BUCKETS, h),
            "output.weight": (n_classes, h),
            "output.bias": (n_classes,),
        }
    if recipe.model == "mlp":
        d = math.prod(input_shape)
        return {
            "hidden.weight": (h, d),
            "hidden.bias": (h,),
            "output.weight": (n_classes, h),
            "output.bias": (n_classes,),
        }
    if recipe.model != "cnn":
        raise ValueError(f"{recipe.model!r} is not a PyTorch model")
    if len(input_shape) != 3 or min(input_shape[1:]) < 4:
        raise ModelError(
            f"the cnn recipe needs images of shape (channels, height, width) of at least "
            f"4x4 pixels, but records have shape {tuple(input_shape)}: use model='mlp' "
            f"for tabular data"
        )
    c, height, width = input_shape
    f = recipe.filters
    flat = f * (height // 4) * (width // 4)  # two 2×2 pools, sizes kept by the padding
    return {
        "conv1.weight": (f, c, k, k),
        "conv1.bias": (f,),
        "conv2.weight": (f, f, k, k),
        "conv2.bias": (f,),
        "hidden.weight": (h, flat),
        "hidden.bias": (h,),
        "output.weight": (n_classes, h),
        "output.bias": (n_classes,),
    }


def training_flops(recipe: Recipe, input_shape: tuple[int, ...], n_classes: int) -> int:
    """Floating-point operations of one training step on ONE record, for one model.

    Counts the multiply-adds (two FLOPs each) of the dense layers and
    convolutions: the forward product, the weight gradient, and the input
    gradient of every layer but the first (the records need none). Elementwise
    work (tanh, softmax, the optimiser) is left out, as FLOP counts usually do,
    so the rate ``flops / seconds`` measures how close training comes to the
    machine's matrix-multiplication limit. The number of models and epochs
    multiply it: ``training_flops(...) * n_models * epochs * n_train``.
    """
    shapes = parameter_shapes(recipe, input_shape, n_classes)
    if recipe.model == "boe":
        # The bag: a multiply-add per token slot (padding counted, an upper bound) and
        # dimension, forward and again for the embedding rows' gradient; then the output
        # layer's three products. The table's dense L2 and optimiser update are
        # elementwise and left out, as for the other models.
        tokens, h = input_shape[0] - 1, recipe.hidden
        return 2 * tokens * h * 2 + 2 * n_classes * h * 3
    total = 0
    first = True
    for name, shape in shapes.items():
        if not name.endswith(".weight"):
            continue
        if len(shape) == 2:  # dense (out, in): one product per record
            macs = shape[0] * shape[1]
        else:  # convolution (out, in, k, k) over the layer's output pixels
            _, height, width = input_shape
            scale = 1 if name == "conv1.weight" else 2  # conv2 runs after one 2×2 pool
            macs = math.prod(shape) * (height // scale) * (width // scale)
        total += 2 * macs * (2 if first else 3)
        first = False
    return total


def training_bytes(
    recipe: Recipe, input_shape: tuple[int, ...], n_classes: int, n_train: int | None = None
) -> int:
    """Memory one model of a stack holds while it trains, in bytes (an estimate).

    The parameters four times over (weights, gradients, and Adam's two moments, or
    SGD's momentum and room to spare), plus one minibatch's gathered records and
    activations three times over (the forward value, the value autograd saves, and
    its gradient). Used to size stacks to the memory a machine has.
    """
    shapes = parameter_shapes(recipe, input_shape, n_classes)
    params = sum(math.prod(s) for s in shapes.values())
    gathered = 0
    if recipe.model == "mlp":
        widths = [recipe.hidden, n_classes]
    elif recipe.model == "boe":
        widths = [recipe.hidden, n_classes]
        # Each token's embedding row, gathered for the mean and scattered back as a gradient.
        gathered = (input_shape[0] - 1) * recipe.hidden
    else:
        _, height, width = input_shape
        f = recipe.filters
        widths = [f * height * width, f * height * width // 4, recipe.hidden, n_classes]
    # A minibatch is never larger than the training set (see train_stack).
    batch = recipe.batch_size if n_train is None else min(recipe.batch_size, max(n_train, 1))
    activations = batch * (math.prod(input_shape) + 3 * sum(widths) + gathered)
    if recipe.dp_epsilon is not None and recipe.model == "cnn":
        # DP-SGD's per-record gradients (a model copy per record), for a Poisson minibatch that
        # can run past its expected size.
        activations += 2 * batch * params
    # An epoch's minibatch order, twice (drawn, then laid out by step), in int64.
    order = 0 if n_train is None else 2 * n_train * 2
    return 4 * (4 * params + activations + order)


def matmul_rate(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the fastest of ``repeats`` ``n x n`` float32 matrix products on
    ``threads`` threads: the machine's limit that :func:`training_flops` rates are
    compared with (``bench/batched_training.py``, ``bench/scaling.py``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    with torch_threads(threads):
        torch.mm(a, b)
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _initial_parameters(
    shapes: dict[str, tuple[int, ...]], generator: torch.Generator
) -> dict[str, torch.Tensor]:
    # PyTorch's own default for Linear and Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    # for weights and biases alike, fan_in taken from the layer's weight.
    # The embedding table: torch.nn.Embedding's default N(0, 1), with the padding row 0
    # zero (padding_idx=0).
    params = {}
    for name, shape in shapes.items():
        if name == "embedding.weight":
            params[name] = torch.randn(shape, generator=generator)
            params[name][0] = 0.0
            continue
        weight_shape = shapes[name.rsplit(".", 1)[0] + ".weight"]
        bound = 1.0 / math.sqrt(math.prod(weight_shape[1:]))
        params[name] = (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound
    return params


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch's intra-op pool with ``n`` threads, restoring the previous count after.

    The default is 1 on purpose. Measured on a 2-core VM (11 stacked MLPs, 10,000
    Census records each, 50 epochs): 2 threads took 27 s when the machine was
    quiet but 467 s while another process was busy, because every small parallel
    op waits at a barrier for a descheduled thread; 1 thread took 37 s both
    times. Parallelism belongs to worker processes (the shadow stage), each with
    one thread; a caller that owns the machine may pass more.
    """
    n = max(1, min(int(n), len(os.sched_getaffinity(0))))
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class StackedNet:
    """K networks of one ``mlp``/``cnn``/``boe`` recipe with their weights stacked.

    Parameters
    ----------
    recipe:
        The recipe all K models share.
    input_shape:
        Shape of one record.
    n_classes:
        Number of classes.
    params:
        Name -> tensor of shape ``(K, *parameter_shapes(...)[name])``, all on one device.
    threads:
        Intra-op threads for predictions on the CPU (see :func:`torch_threads`).
    """

    def __init__(
        self,
        recipe: Recipe,
        input_shape: tuple[int, ...],
        n_classes: int,
        params: dict[str, torch.Tensor],
        *,
        threads: int = 1,
    ) -> None:
        self.recipe = recipe
        self.threads = threads
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_classes = int(n_classes)
        self.params = params

    @property
    def n_models(self) -> int:
        return int(self.params["output.bias"].shape[0])

    @property
    def device(self) -> torch.device:
        return self.params["output.bias"].device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(K, B, C)`` for per-model inputs ``x`` of shape ``(K, B, *input_shape)``."""
        p, n_models, batch = self.params, x.shape[0], x.shape[1]
        if self.recipe.model == "boe":
            return self._bag_logits(token_ids(x))
        if self.recipe.model == "mlp":
            x = x.reshape(n_models, batch, -1)
            h = torch.baddbmm(p["hidden.bias"].unsqueeze(1), x, p["hidden.weight"]).tanh()
            return torch.baddbmm(p["output.bias"].unsqueeze(1), h, p["output.weight"])
        c, height, width = self.input_shape
        x = x.transpose(0, 1).reshape(batch, n_models * c, height, width)
        x = x.contiguous(memory_format=torch.channels_last)
        w1 = p["conv1.weight"].flatten(0, 1)
        a = F.conv2d(x, w1, p["conv1.bias"].flatten(), padding=KERNEL // 2, groups=n_models)
        return self._after_conv1(a)

    def forward_shared(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(K, B, C)`` of all K models on the same inputs ``x`` ``(B, *input_shape)``."""
        p, batch = self.params, x.shape[0]
        if self.recipe.model == "boe":
            ids = token_ids(x).unsqueeze(0).expand(self.n_models, -1, -1)
            return self._bag_logits(ids)
        if self.recipe.model == "mlp":
            # One (B, d) x (d, K*h) product instead of K products with copies of x.
            w1 = p["hidden.weight"].transpose(0, 1).flatten(1)
            h = torch.addmm(p["hidden.bias"].flatten(), x.reshape(batch, -1), w1)
            h = h.view(batch, self.n_models, -1).transpose(0, 1).tanh()
            return torch.baddbmm(p["output.bias"].unsqueeze(1), h, p["output.weight"])
        # Every model reads the same image, so the first convolution needs no groups.
        x = x.contiguous(memory_format=torch.channels_last)
        w1 = p["conv1.weight"].flatten(0, 1)
        a = F.conv2d(x, w1, p["conv1.bias"].flatten(), padding=KERNEL // 2)
        return self._after_conv1(a)

    def _bag_logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``(K, B, C)`` of the bag of embeddings on token ids ``(K, B, L)`` (0 pads).

        The K tables ``(K, V, h)`` are read as one table of ``K·V`` rows, model k's ids
        shifted by ``k·V``, and :func:`torch.nn.functional.embedding_bag` averages each
        record's rows over its real tokens only (a record without tokens averages to
        zeros), as ``torch.nn.EmbeddingBag(mode="mean", padding_idx=0)`` does.
        """
        p = self.params
        table = p["embedding.weight"]
        n_models, batch, _ = ids.shape
        dim = table.shape[2]
        flat, offsets, _ = bag_inputs(ids, table.shape[1])
        z = F.embedding_bag(flat, table.reshape(-1, dim), offsets, mode="mean")
        z = z.view(n_models, batch, dim)
        return torch.baddbmm(p["output.bias"].unsqueeze(1), z, p["output.weight"])

    def _after_conv1(self, a: torch.Tensor) -> torch.Tensor:
        p, n_models, batch = self.params, self.n_models, a.shape[0]
        # tanh is increasing, so pooling first gives the same values at a quarter of the cost.
        a = F.max_pool2d(a, 2).tanh()
        w2 = p["conv2.weight"].flatten(0, 1)
        a = F.conv2d(a, w2, p["conv2.bias"].flatten(), padding=KERNEL // 2, groups=n_models)
        a = F.max_pool2d(a, 2).tanh()
        # (B, K*f, h, w) -> (K, B, f*h*w): per model the flattening order of nn.Flatten.
        a = a.reshape(batch, n_models, -1).transpose(0, 1)
        h = torch.baddbmm(p["hidden.bias"].unsqueeze(1), a, p["hidden.weight"]).tanh()
        return torch.baddbmm(p["output.bias"].unsqueeze(1), h, p["output.weight"])

    def _chunk_rows(self) -> int:
        if self.recipe.model == "mlp":
            widest = max(self.recipe.hidden, self.n_classes)
        elif self.recipe.model == "boe":
            widest = max(self.recipe.hidden, self.n_classes, self.input_shape[0])
        else:
            widest = self.recipe.filters * self.input_shape[1] * self.input_shape[2]
        return max(1, _PREDICT_BUDGET // (self.n_models * widest))

    def predict_log_proba(self, X: np.ndarray) -> np.ndarray:
        """Log class probabilities of every model, ``(K, n, C)`` ``float32``.

        Computed with ``log_softmax`` (stable: no ``log(0)``), in chunks of records
        sized so no intermediate tensor exceeds 64 MiB.
        """
        n = X.shape[0]
        if self.recipe.model == "boe":
            check_token_ids(X)
        out = np.empty((self.n_models, n, self.n_classes), dtype=np.float32)
        step = self._chunk_rows()
        with torch_threads(self.threads), torch.inference_mode():
            for start in range(0, n, step):
                xb = torch.from_numpy(np.ascontiguousarray(X[start : start + step]))
                logits = self.forward_shared(xb.to(self.device, torch.float32))
                out[:, start : start + step] = F.log_softmax(logits, dim=-1).cpu().numpy()
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(K, n, C)`` ``float32``; rows sum to 1.

        Very small probabilities underflow to 0 in ``float32``; use
        :meth:`predict_log_proba` for log-scale signals.
        """
        log_p = self.predict_log_proba(X)
        p = np.exp(log_p)
        # exp of a log_softmax sums to 1 only up to rounding; renormalise in float64.
        return (p / p.sum(axis=-1, keepdims=True, dtype=np.float64)).astype(np.float32)

    def select(self, models: Sequence[int]) -> StackedNet:
        """The stack of the listed models (copies of their weights)."""
        idx = torch.as_tensor(list(models), dtype=torch.long, device=self.device)
        params = {name: t.detach().index_select(0, idx).clone() for name, t in self.params.items()}
        return StackedNet(
            self.recipe, self.input_shape, self.n_classes, params, threads=self.threads
        )

    def state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Model ``k``'s tensors on the CPU, contiguous, in ``torch.nn`` layout."""
        return {
            name: (t[k].mT if name in DENSE else t[k]).detach().cpu().contiguous()
            for name, t in self.params.items()
        }

    @classmethod
    def from_state_dicts(
        cls,
        recipe: Recipe,
        input_shape: tuple[int, ...],
        n_classes: int,
        states: Sequence[dict[str, torch.Tensor]],
        device: str | torch.device = "cpu",
    ) -> StackedNet:
        """Stack per-model tensors (as :meth:`state_dict` returns them)."""
        params = {
            name: torch.stack([s[name] for s in states]).to(device, torch.float32)
            for name in PARAMETER_NAMES[recipe.model]
        }
        return cls(recipe, input_shape, n_classes, _stacked_layout(params))


def token_ids(x: torch.Tensor) -> torch.Tensor:
    """The token ids ``(..., L)`` ``int64`` of text records ``(..., 1 + L)``: column 0,
    the record's handle, is dropped."""
    return x[..., 1:].long()


def check_token_ids(X: np.ndarray | torch.Tensor) -> None:
    """Refuse records whose columns ``1..L`` are not token ids (integers in
    ``[0, TEXT_BUCKETS)``): an id past the table would read another model's rows."""
    ids = X[:, 1:]
    if isinstance(ids, np.ndarray):
        ok = ids.size == 0 or bool(
            np.all(ids >= 0) and np.all(ids < TEXT_BUCKETS) and np.all(ids == np.floor(ids))
        )
    else:
        ok = ids.numel() == 0 or bool(
            ((ids >= 0) & (ids < TEXT_BUCKETS) & (ids == ids.floor())).all()
        )
    if not ok:
        raise ModelError(
            f"the boe recipe reads hashed token ids, integers in [0, {TEXT_BUCKETS}), after "
            "each record's handle; these records hold other values: are they a text data set's?"
        )


def bag_inputs(ids: torch.Tensor, vocab: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What :func:`torch.nn.functional.embedding_bag` reads for token ids ``(K, B, L)``
    (0 pads) and K tables of ``vocab`` rows stacked into one: each real token's row in
    the stacked table (model k's ids shifted by ``k·vocab``), in record order; where
    each of the ``K·B`` records' tokens start; and how many each has."""
    n_models = ids.shape[0]
    used = ids > 0
    counts = used.sum(-1).flatten()
    shift = torch.arange(n_models, device=ids.device).mul_(vocab).view(-1, 1, 1)
    flat = (ids + shift)[used]
    offsets = torch.zeros_like(counts)
    offsets[1:] = counts[:-1].cumsum(0)
    return flat, offsets, counts


class BagWorkspace:
    """The gradient buffers one stacked ``boe`` step reuses. The embedding table's
    gradient is ``(K, V, h)`` but a minibatch touches a few hundred of its rows:
    without ``l2`` only the rows the last step wrote are zeroed again, instead of the
    whole table. (Autograd's gradient of ``embedding_bag``, a fresh zero-filled table
    every step, took over half of a step: measured at K = 8, h = 32, 25 ms a step with
    it, 14 ms written out into these buffers, Adam's pass over the tables being the rest.)"""

    def __init__(self, params: dict[str, torch.Tensor]) -> None:
        self.grads = {name: torch.zeros_like(t) for name, t in params.items()}
        self.touched: torch.Tensor | None = None


def bag_gradients(
    params: dict[str, torch.Tensor],
    ids: torch.Tensor,
    yb: torch.Tensor,
    l2: float,
    *,
    clip: float | None = None,
    weight: torch.Tensor | None = None,
    workspace: BagWorkspace | None = None,
) -> dict[str, torch.Tensor]:
    """Gradients of the stacked bag of embeddings' loss on one minibatch, without autograd.

    ``ids`` is ``(K, B, L)`` (0 pads), ``yb`` the ``K·B`` labels model-major. For a
    record with ``n`` real tokens, mean embedding ``z``, ``p`` its softmax outputs and
    ``W`` the output weights (stacked ``(K, h, C)``)::

        g = p − onehot(y)       dW = z gᵀ       db = g       dz = W g
        dE[i] = (count of id i / n) · dz       for each id i of the record

    Without ``clip`` (ordinary training) each record's gradient is divided by ``B`` and
    summed: the gradient of each model's mean cross-entropy, plus ``2·l2·W`` on both
    weights (the table and the output layer). With ``clip`` (DP-SGD,
    :mod:`miaudit.models.dp`), each record's gradient is scaled by
    ``min(1, clip / (‖its gradient‖ + 1e-6)) · weight`` (``weight`` ``(K, B)``, 0 for
    padding) before the sum, its squared norm being
    ``‖dz‖²·Σ_i (count of i / n)² + ‖g‖²(‖z‖² + 1)``: no per-record gradient is formed.
    ``l2`` should then be 0 (DP-SGD adds it after the noise).

    With a ``workspace`` the gradients are written into its buffers and returned, to
    be overwritten by the next call.
    """
    table, w_out = params["embedding.weight"], params["output.weight"]
    n_models, batch = ids.shape[0], ids.shape[1]
    vocab, dim = table.shape[1], table.shape[2]
    with torch.no_grad():
        flat, offsets, counts = bag_inputs(ids, vocab)
        z = F.embedding_bag(flat, table.reshape(-1, dim), offsets, mode="mean")
        z = z.view(n_models, batch, dim)
        g = torch.softmax(torch.baddbmm(params["output.bias"].unsqueeze(1), z, w_out), dim=-1)
        g.view(-1, g.shape[-1])[torch.arange(n_models * batch, device=g.device), yb] -= 1.0
        dz = torch.bmm(g, w_out.mT)
        n_tokens = counts.clamp(min=1).to(g.dtype)
        if clip is None:
            factor = torch.full((n_models * batch,), 1.0 / batch, device=g.device)
        else:
            # Σ_i count_i² = Σ over real tokens of their id's count (ids sorted per record).
            ordered = ids.flatten(0, 1).sort(-1).values
            same = torch.searchsorted(ordered, ordered, right=True)
            same -= torch.searchsorted(ordered, ordered)
            shares = (same * (ordered > 0)).sum(-1).to(g.dtype) / n_tokens.square()
            sq = dz.square().sum(-1).flatten() * shares
            sq += g.square().sum(-1).flatten() * (z.square().sum(-1).flatten() + 1.0)
            factor = (clip / (sq.sqrt() + dp._EPS)).clamp_(max=1.0)
            factor.mul_(weight.to(g.device).flatten())
        g.mul_(factor.view(n_models, batch, 1))
        dz.mul_((factor / n_tokens).view(n_models, batch, 1))
        # Each real token's row gets its record's dz / n.
        per_token = dz.view(-1, dim).repeat_interleave(counts, dim=0, output_size=flat.numel())
        if workspace is None:
            grads = {
                "embedding.weight": torch.zeros_like(table),
                "output.weight": torch.bmm(z.mT, g),
                "output.bias": g.sum(1),
            }
            if l2 > 0:
                grads["embedding.weight"].add_(table, alpha=2.0 * l2)
        else:
            grads = workspace.grads
            torch.bmm(z.mT, g, out=grads["output.weight"])
            torch.sum(g, 1, out=grads["output.bias"])
            if l2 > 0:
                torch.mul(table, 2.0 * l2, out=grads["embedding.weight"])
            elif workspace.touched is not None:
                grads["embedding.weight"].view(-1, dim).index_fill_(0, workspace.touched, 0.0)
            workspace.touched = flat
        grads["embedding.weight"].view(-1, dim).index_add_(0, flat, per_token)
        if l2 > 0:
            grads["output.weight"].add_(w_out, alpha=2.0 * l2)
    return grads


def mlp_gradients(
    params: dict[str, torch.Tensor],
    xb: torch.Tensor,
    yb: torch.Tensor,
    l2: float,
    workspace: MLPWorkspace | None = None,
) -> dict[str, torch.Tensor]:
    """Gradients of the stacked MLP's loss on one minibatch, without autograd.

    The loss is the sum over the K models of each model's mean cross-entropy plus
    ``l2 · Σ‖W‖²`` (:mod:`miaudit.models.recipe`), so for model k, with ``p`` its
    softmax outputs and ``B`` the minibatch size::

        g = (p − onehot(y)) / B          dW₂ = hᵀ g        db₂ = Σ_b g
        d = (g W₂ᵀ) ⊙ (1 − h²)          dW₁ = xᵀ d        db₁ = Σ_b d

    plus ``2·l2·W`` on each weight. Written out, a step needs no autograd graph and
    no separate log-softmax backward (measured: 6-15 % less time per MLP step at
    K = 8 on one thread). ``xb`` is ``(K, B, d)``, ``yb`` the ``K·B`` labels in the
    same order; dense weights are in the stacked layout ``(K, in, out)``.

    With a ``workspace`` made for minibatches of ``B`` records, the activations and
    gradients are written into its buffers (the same arithmetic, the same bits)
    and the gradients returned are those buffers, overwritten by the next call.
    """
    n_models, batch = xb.shape[0], xb.shape[1]
    w1, w2 = params["hidden.weight"], params["output.weight"]
    ws = workspace if workspace is not None and workspace.batch == batch else None
    with torch.no_grad():
        h = torch.baddbmm(
            params["hidden.bias"].unsqueeze(1), xb, w1, out=None if ws is None else ws.h
        ).tanh_()
        g = torch.softmax(torch.baddbmm(params["output.bias"].unsqueeze(1), h, w2), dim=-1)
        rows = torch.arange(n_models * batch, device=g.device)
        g.view(-1, g.shape[-1])[rows, yb] -= 1.0
        g.mul_(1.0 / batch)
        if ws is None:
            grads = {"output.weight": torch.bmm(h.mT, g), "output.bias": g.sum(1)}
            d = torch.bmm(g, w2.mT).mul_(h.square().neg_().add_(1.0))
            grads["hidden.weight"] = torch.bmm(xb.mT, d)
            grads["hidden.bias"] = d.sum(1)
        else:
            grads = ws.grads
            torch.bmm(h.mT, g, out=grads["output.weight"])
            torch.sum(g, 1, out=grads["output.bias"])
            d = torch.bmm(g, w2.mT, out=ws.d).mul_(h.square_().neg_().add_(1.0))
            torch.bmm(xb.mT, d, out=grads["hidden.weight"])
            torch.sum(d, 1, out=grads["hidden.bias"])
        if l2 > 0:
            for name in DENSE:
                grads[name].add_(params[name], alpha=2.0 * l2)
    return grads


class MLPWorkspace:
    """The buffers one stacked MLP step reuses: the gathered minibatch, the hidden
    activations, their gradient, and the parameters' gradients.

    Allocating them afresh every step cost 10-13 % of a step (measured, K = 8, one
    thread: 0.0310 s per model-epoch against 0.0276 with the buffers): buffers of
    megabytes are mapped and faulted in anew each time.
    """

    def __init__(self, params: dict[str, torch.Tensor], batch: int) -> None:
        n_models, d, h = params["hidden.weight"].shape
        device = params["hidden.weight"].device
        self.batch = int(batch)
        self.x = torch.empty(n_models * self.batch, d, device=device)
        self.h = torch.empty(n_models, self.batch, h, device=device)
        self.d = torch.empty(n_models, self.batch, h, device=device)
        self.grads = {name: torch.empty_like(t) for name, t in params.items()}

    def gather(self, X: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        """``X[flat]`` as ``(K, B, d)``, written into the minibatch buffer when it fits."""
        n_models = self.h.shape[0]
        if flat.numel() != n_models * self.batch or X.dim() != 2:
            return X.index_select(0, flat).view(n_models, -1, *X.shape[1:])
        torch.index_select(X, 0, flat, out=self.x)
        return self.x.view(n_models, self.batch, -1)


def _stacked_layout(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-model ``torch.nn`` layout, stacked, -> the layout :class:`StackedNet` computes in."""
    return {
        name: t.mT.contiguous() if name in DENSE else t.contiguous() for name, t in params.items()
    }


def train_stack(
    recipe: Recipe,
    X: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    train_sets: Sequence[np.ndarray],
    seeds: Sequence[int],
    *,
    progress: Callable[[int], None] | None = None,
    threads: int = 1,
    graphs: bool | None = None,
) -> StackedNet:
    """Train ``len(train_sets)`` models of ``recipe`` together.

    Parameters
    ----------
    recipe:
        An ``mlp``, ``cnn`` or ``boe`` recipe.
    X, y:
        All records ``(n, *input_shape)`` float32 and labels ``(n,)`` int64, on the
        device to train on. Training sets index into them.
    n_classes:
        Number of classes (the softmax width; a training set may lack some).
    train_sets:
        One index array per model, all of the same length.
    seeds:
        One integer seed per model: its initial weights and minibatch order.
    progress:
        Called with the number of models after each epoch (work done since the last call).
    threads:
        Intra-op threads on the CPU (see :func:`torch_threads`).
    graphs:
        Replay each full-minibatch step as a CUDA graph (:class:`_StepGraph`);
        ``None`` decides by :func:`use_graph`. The same arithmetic as without, up to
        the optimiser's bias correction computed on the GPU in float32.

    Returns
    -------
    StackedNet
        The trained models, in the order of ``train_sets``.

    Raises
    ------
    ModelError
        If training diverged (non-finite weights): lower ``lr``.
    """
    sizes = {len(t) for t in train_sets}
    if len(sizes) != 1 or len(seeds) != len(train_sets):
        raise ValueError("a stack needs training sets of one size and one seed per set")
    n_models, n_train = len(train_sets), sizes.pop()
    input_shape = tuple(int(s) for s in X.shape[1:])
    shapes = parameter_shapes(recipe, input_shape, n_classes)
    if recipe.model == "boe":
        check_token_ids(X)
    generators = [torch.Generator().manual_seed(derive_seed(int(s))) for s in seeds]

    # Drawn on the CPU in a fixed order so the device does not change the result.
    inits = [_initial_parameters(shapes, g) for g in generators]
    stacked = {name: torch.stack([p[name] for p in inits]) for name in shapes}
    params = {name: t.to(X.device).requires_grad_() for name, t in _stacked_layout(stacked).items()}
    net = StackedNet(recipe, input_shape, n_classes, params, threads=threads)
    weights = [t for name, t in params.items() if name.endswith(".weight")]
    # A step recorded as a CUDA graph replays its kernels with no Python or launch
    # overhead in between: the MLP's step is a few small kernels, so launches bound it.
    graph = use_graph(recipe, X.device, n_models) if graphs is None else bool(graphs)
    if graph and (
        X.device.type != "cuda"
        or recipe.optimizer != "adam"
        or recipe.augment
        or recipe.dp_epsilon is not None
        or recipe.model == "boe"  # its minibatches' token counts vary: not capturable
    ):
        raise ValueError(
            "graphs=True needs records on a GPU, adam, no augmentation, no DP-SGD, no boe"
        )
    if recipe.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(
            params.values(), lr=recipe.lr, fused=True, capturable=graph
        )
    else:
        optimizer = torch.optim.SGD(
            params.values(), lr=recipe.lr, momentum=recipe.momentum, fused=True
        )

    index_sets = torch.as_tensor(np.stack([np.asarray(t, dtype=np.int64) for t in train_sets]))
    batch_size = min(recipe.batch_size, n_train)
    # Buffers for a minibatch no larger than the training set (batch_size may exceed it).
    workspace = MLPWorkspace(params, batch_size) if recipe.model == "mlp" else None
    bags = BagWorkspace(params) if recipe.model == "boe" else None
    # The bag of embeddings reads token ids only: cast once, not every step.
    token_rows = token_ids(X) if recipe.model == "boe" else None

    def step(flat: torch.Tensor) -> None:
        """One optimisation step of every model on the minibatch ``flat`` (model-major)."""
        yb = y.index_select(0, flat)
        if recipe.model == "mlp":
            xb = workspace.gather(X.view(X.shape[0], -1), flat)
            for name, grad in mlp_gradients(params, xb, yb, recipe.l2, workspace).items():
                params[name].grad = grad
        elif recipe.model == "boe":
            ids = token_rows.index_select(0, flat).view(n_models, -1, token_rows.shape[1])
            for name, grad in bag_gradients(params, ids, yb, recipe.l2, workspace=bags).items():
                params[name].grad = grad
        else:
            xb = X.index_select(0, flat).view(n_models, -1, *input_shape)
            if recipe.augment:
                xb = augment_images(xb, generators)
            logits = net.forward(xb)
            # Sum over models of each model's mean loss: gradients stay per model.
            loss = F.cross_entropy(logits.reshape(-1, n_classes), yb, reduction="sum") / xb.shape[1]
            if recipe.l2 > 0:
                loss = loss + recipe.l2 * sum(w.square().sum() for w in weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        optimizer.step()

    private = dp.plan(recipe, n_train)

    def private_step() -> None:
        """One DP-SGD step of every model (:mod:`miaudit.models.dp`)."""
        rows, weight = dp.poisson_batches(index_sets, private.sample_rate, generators)
        flat = rows.to(X.device).reshape(-1)
        yb = y.index_select(0, flat).view(n_models, -1)
        clip = private.max_grad_norm
        if recipe.model == "mlp":
            xb = X.view(X.shape[0], -1).index_select(0, flat).view(n_models, yb.shape[1], -1)
            grads = dp.clipped_mlp_gradients(params, xb, yb, weight, clip)
        else:
            xb = X.index_select(0, flat).view(n_models, -1, *input_shape)
            if recipe.augment:
                xb = augment_images(xb, generators, weight.sum(1).long().tolist())
            if recipe.model == "boe":
                ids = token_ids(xb)
                grads = bag_gradients(params, ids, yb.reshape(-1), 0.0, clip=clip, weight=weight)
            else:
                grads = dp.clipped_gradients(net, xb, yb, weight, clip)
        noise = dp.noise(params, private.noise_multiplier * clip, generators)
        scale = 1.0 / dp.expected_batch(private, n_train)  # as Opacus divides
        for name, g in grads.items():
            g.add_(noise[name]).mul_(scale)
            if recipe.l2 > 0 and name.endswith(".weight"):
                g.add_(params[name].detach(), alpha=2.0 * recipe.l2)
            params[name].grad = g
        optimizer.step()

    replay = _StepGraph(step, n_models * batch_size, X.device) if graph else None
    with torch_threads(threads):
        for _ in range(recipe.epochs):
            if private is not None:
                for _ in range(dp.steps_per_epoch(recipe, n_train)):
                    private_step()
                if progress is not None:
                    progress(n_models)
                continue
            order = torch.stack(
                [
                    index_sets[k, torch.randperm(n_train, generator=generators[k])]
                    for k in range(n_models)
                ]
            ).to(X.device)
            full = n_train // batch_size
            # Full minibatches laid out one row per step, each row model-major.
            rows = order[:, : full * batch_size].view(n_models, full, batch_size)
            rows = rows.transpose(0, 1).reshape(full, n_models * batch_size)
            for s in range(full):
                if replay is not None:
                    replay(rows[s])
                else:
                    step(rows[s])
            if full * batch_size < n_train:  # the last, smaller minibatch
                step(order[:, full * batch_size :].reshape(-1))
            if progress is not None:
                progress(n_models)

    for t in params.values():
        t.requires_grad_(False)
    # Weights can stay finite while the logits overflow, so check outputs as well.
    with torch.inference_mode():
        probe = index_sets[:, :256].to(X.device)
        xb = X.index_select(0, probe.reshape(-1)).view(n_models, probe.shape[1], *input_shape)
        finite = F.log_softmax(net.forward(xb), dim=-1).isfinite().flatten(1).all(dim=1)
        for t in params.values():
            finite &= t.isfinite().flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = [int(seeds[k]) for k in torch.nonzero(~finite).flatten().tolist()]
        raise ModelError(
            f"training diverged (non-finite weights or outputs) for the models with seeds "
            f"{bad}: lower lr (now {recipe.lr}) or add l2"
        )
    return net


#: Most minibatch rows (models x records) of a step replayed as a CUDA graph. Measured
#: on an H200 (``bench/gpu.py``, census MLPs, minibatches of 128), seconds per
#: model-epoch replayed / eager: 2.2 / 5.8 ms at 8 models, 0.87 / 2.1 at 64, but
#: 0.84 / 0.55 at 256, where a step is long enough that launches no longer bound it
#: and the recorded matrix products ran slower than eager ones.
GRAPH_ROWS = 64 * 128


def use_graph(recipe: Recipe, device: torch.device, n_models: int = 1) -> bool:
    """Whether :func:`train_stack` replays its steps as a CUDA graph by default: for
    the MLP on a GPU, in stacks whose step is short enough to be bound by launches
    (:data:`GRAPH_ROWS`). The CNN's steps are long enough that launches do not bound
    them (and its augmentation draws on the CPU)."""
    return (
        device.type == "cuda"
        and recipe.model == "mlp"
        and recipe.optimizer == "adam"
        and recipe.dp_epsilon is None  # DP-SGD's minibatches vary in size
        and n_models * recipe.batch_size <= GRAPH_ROWS
    )


class _StepGraph:
    """A training step of fixed-size minibatches, recorded once as a CUDA graph and
    replayed for every later minibatch.

    The first :data:`WARMUP` calls run the step eagerly on a side stream (they
    create the optimiser's state and the libraries' workspaces, which a recording
    cannot); the next call records it, reading its minibatch from a fixed buffer,
    and replays it. Every call is one real step, in order, so the training is the
    eager one's.
    """

    WARMUP = 3

    def __init__(self, step: Callable[[torch.Tensor], None], rows: int, device) -> None:
        self.step = step
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.flat = torch.empty(rows, dtype=torch.long, device=device)

    def __call__(self, flat: torch.Tensor) -> None:
        if self.graph is None and self.calls < self.WARMUP:
            side = torch.cuda.Stream(device=flat.device)
            side.wait_stream(torch.cuda.current_stream(flat.device))
            with torch.cuda.stream(side):
                self.step(flat)
            torch.cuda.current_stream(flat.device).wait_stream(side)
            self.calls += 1
            return
        self.flat.copy_(flat)
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.step(self.flat)
        self.graph.replay()
        self.calls += 1


def augment_images(
    xb: torch.Tensor, generators: list[torch.Generator], counts: Sequence[int] | None = None
) -> torch.Tensor:
    """A minibatch of images ``(models, batch, C, H, W)``, each mirrored with probability
    1/2 and shifted by -1, 0 or 1 pixel each way (zeros fill the edge); model ``k``'s
    draws come from ``generators[k]``, so its training stays reproducible. With
    ``counts``, model ``k`` draws for its first ``counts[k]`` images only and leaves
    the rest (padding) as they are, so its draws do not depend on the others'."""
    n_models, batch, _, height, width = xb.shape
    counts = [batch] * n_models if counts is None else counts
    flip = torch.zeros(n_models, batch, dtype=torch.bool)
    shift = torch.zeros(n_models, batch, 2, dtype=torch.int64)
    for k, (g, n) in enumerate(zip(generators, counts, strict=True)):
        flip[k, :n] = torch.rand(n, generator=g) < 0.5
        shift[k, :n] = torch.randint(-1, 2, (n, 2), generator=g)
    flip, shift = flip.to(xb.device), shift.to(xb.device)
    xb = torch.where(flip[..., None, None, None], xb.flip(-1), xb)
    padded = F.pad(xb, (1, 1, 1, 1))
    rows = torch.arange(height, device=xb.device) + 1 + shift[..., 0, None]
    cols = torch.arange(width, device=xb.device) + 1 + shift[..., 1, None]
    channels = xb.shape[2]
    take_rows = rows[:, :, None, :, None].expand(n_models, batch, channels, height, width + 2)
    picked = padded.gather(3, take_rows)
    take_cols = cols[:, :, None, None, :].expand(n_models, batch, channels, height, width)
    return picked.gather(4, take_cols)
