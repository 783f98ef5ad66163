"""Shadow training from 8 to 64 shadows: time per shadow, and the FLOP rate it reaches.

Where it sits: the ``shadows`` stage (:func:`miaudit.jobs.run_jobs`, no cache).
For ``K`` shadows of the default recipe (the paper's MLP, 362 -> 128 -> 46, 50
epochs) on census records, this prints the wall time per shadow — it should stay
flat as ``K`` grows, since shadows train in stacks of 8, one per core at a time — and
the arithmetic rate training achieves, against the rate of a plain large matrix
multiplication measured in the same run with the same thread count, and the
peak memory of a fresh process training the ``K`` shadows, which must not grow
with ``K`` (outputs go to the caller chunk by chunk; models are dropped).

FLOPs are counted by :func:`miaudit.models.torch_batched.training_flops`: per
record and epoch ``4·d·h + 6·h·C`` (the forward product and the weight gradient of
each layer, and the input gradient of the second; the records need none); softmax,
tanh and the optimiser's updates are left out. (Earlier versions of this script
counted ``6·(d·h + h·C)``, an input gradient for the records too, which overstated
the rate by 42 %.) Shadows train on one thread per core (``--workers``, default the
cores), so the rate is compared with the matrix product on as many threads.

Run: ``.venv/bin/python bench/scaling.py [--size 10000] [--ks 8,16,32,64]``.

Measured on the 2-core development VM (two workers, the default)::

    census, MLP 362->128->46, 10000 records per shadow, 50 epochs, 2 workers;
    matmul 2048x2048 on 2 threads: 334.8 GFLOP/s
       K  seconds  s/shadow  GFLOP/s  of matmul  peak RSS
       8     10.3      1.28     86.0        26%   713 MiB
      16     14.4      0.90    122.5        37%   733 MiB
      32     27.8      0.87    126.8        38%   779 MiB
      64     53.5      0.84    132.0        39%   792 MiB

Time per shadow falls, then stays flat: 8 shadows train as two stacks of 4, from
16 on as stacks of 8, two at a time. Peak memory follows the stack size, then
levels off (at 1 epoch, to see it cheaply: 713, 737, 828, 829 and 861 MiB for
8, 16, 32, 64 and 128 shadows; what remains is the job descriptions the caller
holds, 80 kB of indices per shadow, and the allocator's fragmentation). The
previous version (stacks of 16 one after another, unfused Adam) took 2.04-2.29 s
per shadow.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np

from miaudit.data import load_dataset
from miaudit.jobs import Execution, ShadowJob, run_jobs
from miaudit.models import Recipe
from miaudit.models.torch_batched import matmul_rate, training_flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--ks", default="8,16,32,64")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.size, args.epochs, args.workers)
        return

    data = load_dataset("census")
    recipe = Recipe(model="mlp", epochs=args.epochs)
    d, h, C = data.n_features, recipe.hidden, data.n_classes
    flops_per_model = training_flops(recipe, (d,), C) * args.size * args.epochs
    peak = matmul_rate(args.workers)
    print(
        f"census, MLP {d}->{h}->{C}, {args.size} records per shadow, {args.epochs} epochs, "
        f"{args.workers} workers; matmul 2048x2048 on {args.workers} threads: {peak:.1f} GFLOP/s"
    )
    print(
        f"{'K':>4} {'seconds':>8} {'s/shadow':>9} {'GFLOP/s':>8} {'of matmul':>10} {'peak RSS':>9}"
    )
    for k in (int(v) for v in args.ks.split(",")):
        # Each K in a fresh process, so that its peak memory is its own.
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(k), "--size", str(args.size),
             "--epochs", str(args.epochs), "--workers", str(args.workers)],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        seconds, rss = float(out[-2]), float(out[-1])
        rate = flops_per_model * k / seconds / 1e9
        print(
            f"{k:4d} {seconds:8.1f} {seconds / k:9.2f} {rate:8.1f} {rate / peak:10.0%} "
            f"{rss:5.0f} MiB",
            flush=True,
        )


def one(k: int, size: int, epochs: int, workers: int) -> None:
    """Train ``k`` shadows; print the seconds it took and the process's peak RSS in MiB."""
    data = load_dataset("census")
    rng = np.random.default_rng(0)
    jobs = []
    for i in range(k):
        idx = rng.choice(data.n_records, size, replace=False)
        jobs.append(ShadowJob(np.sort(idx), 1000 + i, idx[:100]))
    t0 = time.perf_counter()
    execution = Execution(job_cache=False, workers=workers)
    recipe = Recipe(model="mlp", epochs=epochs)
    run_jobs(recipe, data.X, data.y, data.n_classes, jobs, execution=execution)
    seconds = time.perf_counter() - t0
    print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    main()
