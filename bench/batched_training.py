"""Time training K networks as one stacked model against training them one by one.

Where it sits: the ``shadows`` stage (``splits -> target/shadows (training) ->
signals``) trains many networks of one recipe; :mod:`miaudit.models.torch_batched`
stacks them. This script measures, in one run and on synthetic arrays of the
real shapes (no data set needed), what stacking buys:

- MLP 500 -> 128 -> 46 (the paper's Purchase/Texas model), 10,000 records per
  model, K = 4 and 16;
- CNN on 1x28x28 images, 10 classes (Fashion-MNIST's shape), K = 4.

Each configuration is timed ``--repeats`` times, alternating the two ways, and
the fastest run of each is kept (other processes on a shared machine only ever
add time). The last column checks that stacking did not change the models.

Run: ``.venv/bin/python bench/batched_training.py [--epochs 3] [--repeats 3] [--threads 1]``.

Measured on the 2-core development VM (torch 2.13 CPU, a quiet moment)::

    1 thread   mlp K=4   one-by-one 1.49 s  stacked 0.88 s  1.69x  0.073 s/model-epoch
               mlp K=16  one-by-one 5.67 s  stacked 3.43 s  1.65x  0.072 s/model-epoch
               cnn K=4   one-by-one 3.43 s  stacked 2.27 s  1.51x  0.568 s/model-epoch
    2 threads  mlp K=4   one-by-one 1.49 s  stacked 0.68 s  2.18x  0.057 s/model-epoch
               mlp K=16  one-by-one 5.46 s  stacked 2.22 s  2.46x  0.046 s/model-epoch
               cnn K=4   one-by-one 2.31 s  stacked 1.65 s  1.41x  0.412 s/model-epoch

Two threads win only on an idle machine; see ``torch_threads`` for why one is the default.

A later run with one repeat (1 thread), K = 4, 16, 64: speed-ups 3.38x, 1.52x,
1.41x, 0.058-0.064 s per model-epoch stacked. Single repeats on this shared machine
vary by tens of percent; take the fastest of several.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from miaudit.models import Recipe, train_models


def _timed(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def compare(
    label: str,
    recipe: Recipe,
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    n_models: int,
    n_train: int,
    repeats: int,
    threads: int,
) -> None:
    """Print one row: sequential time, stacked time, their ratio, prediction difference."""
    rng = np.random.default_rng(n_models)
    sets = [rng.choice(len(X), n_train, replace=False) for _ in range(n_models)]
    seeds = list(range(n_models))
    probe = X[:500]

    def stacked() -> np.ndarray:
        models = train_models(recipe, X, y, n_classes, sets, seeds, threads=threads)
        return models.predict_proba(probe)

    def one_by_one() -> np.ndarray:
        return np.concatenate(
            [
                train_models(recipe, X, y, n_classes, [s], [seed], threads=threads).predict_proba(
                    probe
                )
                for s, seed in zip(sets, seeds, strict=True)
            ]
        )

    t_seq, t_stack = [], []
    for _ in range(repeats):
        dt, p_seq = _timed(one_by_one)
        t_seq.append(dt)
        dt, p_stack = _timed(stacked)
        t_stack.append(dt)
    seq, stack = min(t_seq), min(t_stack)
    per_epoch = recipe.epochs * n_models
    print(
        f"{label:<34} K={n_models:<3} one-by-one {seq:7.2f} s   stacked {stack:7.2f} s   "
        f"speed-up {seq / stack:4.2f}x   stacked s/model-epoch {stack / per_epoch:6.3f}   "
        f"max |dp| {np.abs(p_seq - p_stack).max():.1e}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per model (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per row (default 3)")
    parser.add_argument("--cnn-records", type=int, default=2500, help="records per CNN")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--ks", default="4,16,64", help="MLP stack sizes (default 4,16,64)")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {args.threads} thread(s); fastest of {args.repeats} runs")
    rng = np.random.default_rng(0)
    # Purchase-like: sparse binary features, 46 classes.
    X = (rng.random((40_000, 500)) < 0.1).astype(np.float32)
    y = rng.integers(0, 46, len(X))
    mlp = Recipe(model="mlp", epochs=args.epochs)
    for k in (int(v) for v in args.ks.split(",")):
        compare(
            "mlp 500-128-46, 10,000 records", mlp, X, y, 46, k, 10_000, args.repeats, args.threads
        )

    images = rng.random((10_000, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, len(images))
    cnn = Recipe(model="cnn", epochs=1)
    label = f"cnn 28x28 f={cnn.filters}, {args.cnn_records:,} records"
    compare(label, cnn, images, labels, 10, 4, args.cnn_records, args.repeats, args.threads)


if __name__ == "__main__":
    main()
