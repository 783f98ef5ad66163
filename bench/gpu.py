"""Stacked training on a GPU: time per model-epoch, the share of the GPU's own matrix
rate it reaches, and the CPU of the same machine beside it.

Where it sits: the ``target/shadows (training)`` stage. On ``--device cuda`` the
shadow stage (:func:`miaudit.jobs.run_jobs`) trains one stack at a time, sized to
the GPU's memory (:func:`miaudit.jobs.stack_limit`), and the MLP's training step is
recorded once as a CUDA graph and replayed
(:class:`miaudit.models.torch_batched._StepGraph`). This script measures, in one run:

``matmul``
    the GPU's own rate on an 8192 x 8192 float32 product, with TF32 off (plain
    fp32, how miaudit trains) and on, and the CPU's on 2048 x 2048 with one torch
    thread per core: the ceilings the training rates are divided by.
``mlp K``
    K census-occupation MLPs of the default recipe (362 -> 128 -> 46, Adam,
    minibatches of 128) on 10,000 records each, the default audit's shadow size,
    for ``--epochs`` epochs: seconds per model-epoch with graph replay and without
    (``eager``), the FLOP rate against both ceilings
    (:func:`~miaudit.models.torch_batched.training_flops`), and the peak GPU
    memory against :func:`~miaudit.models.torch_batched.training_bytes`' estimate.
``cnn K``
    K Fashion-MNIST CNNs of the default recipe (two 5x5 convolutions of 16
    filters, 128 hidden, minibatches of 64) on 10,000 images each.
``cpu``
    the same MLPs (a stack of 8) and CNNs (a stack of 16, fewer records) on this
    machine's CPU, one torch thread per core.

and checks the numbers: the GPU's MLP probabilities against the CPU's for the same
seeds and records, and graph replay against eager steps on the GPU.

Run: ``python bench/gpu.py [--device cuda] [--epochs 3] [--mlp 8,64,256] [--cnn 16,64]
[--audits | --audits-only census|fashion|lira50k|both]``. ``--audits`` then times the
issue's two goal audits stage by stage (census, 256 shadows, every attack;
Fashion-MNIST, 64 shadows), with no job cache.
Without a GPU it measures the CPU rows alone.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from miaudit.data import load_dataset
from miaudit.models import Recipe, train_models
from miaudit.models.torch_batched import (
    matmul_rate,
    torch_threads,
    train_stack,
    training_bytes,
    training_flops,
)

N_TRAIN = 10_000


def gpu_matmul_rate(device: torch.device, tf32: bool, n: int = 8192, repeats: int = 10) -> float:
    """TFLOP/s of an ``n x n`` float32 product on ``device``, best of ``repeats``."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.mm(a, b)
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3)
        return 2 * n**3 / best / 1e12
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def sets_for(n_records: int, k: int, n_train: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.choice(n_records, n_train, replace=False) for _ in range(k)]


def timed_stack(recipe, X, y, n_classes, sets, device, graphs=None, threads=1):
    """Seconds to train ``len(sets)`` models as one stack, and the stack."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    with torch_threads(threads):
        net = train_stack(
            recipe, X, y, n_classes, sets, list(range(len(sets))), graphs=graphs, threads=threads
        )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, net


def cpu_stage(recipe: Recipe, data, n_train: int, cores: int) -> tuple[float, int]:
    """Seconds for the CPU shadow stage (:func:`~miaudit.jobs.run_jobs`: stacks of 8,
    one per core) to train 8 models per core, after a small warm-up; and the count."""
    from miaudit.jobs import Execution, ShadowJob, run_jobs

    def run(k: int, size: int) -> float:
        query = np.arange(10)
        jobs = [ShadowJob(s, i, query) for i, s in enumerate(sets_for(len(data.y), k, size))]
        start = time.perf_counter()
        run_jobs(
            recipe, data.X, data.y, data.n_classes, jobs,
            execution=Execution(job_cache=False, workers=cores),
        )  # fmt: skip
        return time.perf_counter() - start

    run(2 * cores, 200)
    return run(8 * cores, n_train), 8 * cores


def on(device, data):
    X = torch.from_numpy(np.ascontiguousarray(data.X, dtype=np.float32)).to(device)
    y = torch.from_numpy(data.y.astype(np.int64)).to(device)
    return X, y


def rates(flops: float, seconds: float, ceilings: dict[str, float]) -> str:
    achieved = flops / seconds / 1e12
    shares = "  ".join(f"{achieved / c:6.1%} of {name}" for name, c in ceilings.items())
    return f"{achieved:7.2f} TFLOP/s  {shares}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--mlp", default="8,64,128,256")
    parser.add_argument("--cnn", default="16,64")
    parser.add_argument("--cnn-epochs", type=int, default=1)
    parser.add_argument("--audits", action="store_true")
    parser.add_argument("--audits-only", choices=[*AUDITS, "both"])
    args = parser.parse_args()
    if args.audits_only:
        audits(args.device, args.audits_only)
        return
    device = torch.device(args.device)
    cores = len(os.sched_getaffinity(0))
    gpu = device.type == "cuda"
    print(f"torch {torch.__version__}, {cores} CPU cores", end="")
    if gpu:
        props = torch.cuda.get_device_properties(device)
        print(f", {props.name} ({props.total_memory / 2**30:.0f} GiB)")
    else:
        print(", no GPU: the CPU rows only")

    ceilings: dict[str, float] = {}
    if gpu:
        ceilings = {
            "fp32": gpu_matmul_rate(device, tf32=False),
            "tf32": gpu_matmul_rate(device, tf32=True),
        }
        print(
            f"GPU matmul 8192^2: fp32 {ceilings['fp32']:.1f} TFLOP/s, tf32 {ceilings['tf32']:.1f}"
        )
    cpu_rate = matmul_rate(cores) / 1e3
    print(f"CPU matmul 2048^2 on {cores} threads: {cpu_rate:.2f} TFLOP/s")

    census = load_dataset("census")
    mlp = Recipe(model="mlp", epochs=args.epochs)
    mlp_flops = training_flops(mlp, (census.X.shape[1],), census.n_classes) * N_TRAIN
    print(f"\ncensus MLP, {N_TRAIN:,} records each, {args.epochs} epochs")
    print(f"{'':10} {'s/model-epoch':>14} {'eager':>9} {'speed-up':>9}  rate (graph)")
    if gpu:
        Xg, yg = on(device, census)
        # The first stack pays cuBLAS's and the allocator's start-up: not counted.
        timed_stack(mlp, Xg, yg, census.n_classes, sets_for(len(census.y), 2, N_TRAIN), device)
        for k in [int(s) for s in args.mlp.split(",")]:
            sets = sets_for(len(census.y), k, N_TRAIN)
            t_graph, net = timed_stack(mlp, Xg, yg, census.n_classes, sets, device, graphs=True)
            peak = torch.cuda.max_memory_allocated(device) - Xg.nbytes - yg.nbytes
            t_eager, eager = timed_stack(mlp, Xg, yg, census.n_classes, sets, device, graphs=False)
            per = k * args.epochs
            estimate = training_bytes(mlp, (census.X.shape[1],), census.n_classes, N_TRAIN) * k
            probe = census.X[:2000]
            dp = np.abs(net.predict_proba(probe) - eager.predict_proba(probe)).max()
            print(
                f"mlp {k:<6} {t_graph / per * 1e3:11.2f} ms {t_eager / per * 1e3:6.2f} ms "
                f"{t_eager / t_graph:8.2f}x  {rates(mlp_flops * per, t_graph, ceilings)}"
                f"  | peak {peak / 2**20:,.0f} MiB (estimate {estimate / 2**20:,.0f}), "
                f"graph-eager max|dp| {dp:.1e}"
            )
    # The CPU of the same machine, as an audit uses it: stacks of 8 on every core.
    cpu_mlp = Recipe(model="mlp", epochs=1)
    t_cpu, n_cpu = cpu_stage(cpu_mlp, census, N_TRAIN, cores)
    print(
        f"cpu mlp    {t_cpu / n_cpu * 1e3:11.2f} ms ({n_cpu} models, 1 epoch, {cores} cores)  "
        f"{rates(mlp_flops * n_cpu, t_cpu, {'cpu': cpu_rate})}"
    )
    if gpu:
        sets = sets_for(len(census.y), 8, N_TRAIN)
        args_ = (cpu_mlp, census.X, census.y, census.n_classes, sets, list(range(8)))
        gpu_net = train_models(*args_, device="cuda")
        cpu_net = train_models(*args_)
        probe = census.X[:2000]
        dp = np.abs(gpu_net.predict_proba(probe) - cpu_net.predict_proba(probe)).max()
        print(f"GPU (graph) against CPU, same seeds and minibatches: max|dp| {dp:.1e}")

    try:
        fashion = load_dataset("fashion-mnist")
    except Exception as exc:  # the Debian package is optional
        print(f"\nFashion-MNIST not found ({exc}); CNN rows skipped")
        fashion = None
    if fashion is not None:
        cnn = Recipe(model="cnn", epochs=args.cnn_epochs)
        shape = tuple(fashion.X.shape[1:])
        cnn_flops = training_flops(cnn, shape, fashion.n_classes) * N_TRAIN
        print(f"\nFashion-MNIST CNN, {N_TRAIN:,} images each, {args.cnn_epochs} epochs")
        if gpu:
            Xg, yg = on(device, fashion)
            timed_stack(cnn, Xg, yg, fashion.n_classes, sets_for(len(fashion.y), 2, 512), device)
            for k in [int(s) for s in args.cnn.split(",")]:
                sets = sets_for(len(fashion.y), k, N_TRAIN)
                t, _ = timed_stack(cnn, Xg, yg, fashion.n_classes, sets, device)
                peak = torch.cuda.max_memory_allocated(device) - Xg.nbytes - yg.nbytes
                estimate = training_bytes(cnn, shape, fashion.n_classes, N_TRAIN) * k
                per = k * args.cnn_epochs
                print(
                    f"cnn {k:<6} {t / per * 1e3:11.2f} ms  {rates(cnn_flops * per, t, ceilings)}"
                    f"  | peak {peak / 2**20:,.0f} MiB (estimate {estimate / 2**20:,.0f})"
                )
        small = 500
        t_cpu, n_cpu = cpu_stage(Recipe(model="cnn", epochs=1), fashion, small, cores)
        per = n_cpu * small / N_TRAIN  # in model-epochs of N_TRAIN images
        print(
            f"cpu cnn    {t_cpu / per * 1e3:11.2f} ms ({n_cpu} models, {small:,} images, "
            f"{cores} cores)  {rates(cnn_flops * per, t_cpu, {'cpu': cpu_rate})}"
        )

    if args.audits:
        audits(args.device)


AUDITS = {
    "census": (
        "census, 256 shadows, every attack",
        {"shadows": 256, "attacks": {"run": ["all"]}},
        60,
    ),
    "fashion": ("fashion-mnist CNN, 64 shadows", {"dataset": "fashion-mnist", "shadows": 64}, 120),
    # The memory case: online LiRA on 50,000 evaluated records.
    "lira50k": (
        "census, 256 shadows, online LiRA, 50,000 evaluated records",
        {"shadows": 256, "target_size": 25_000, "attacks": {"run": ["lira"]}},
        None,
    ),
}


def audits(device: str, which: str = "both") -> None:
    """The issue's goal audits, stage by stage, no job cache; peak memory after each
    (run one per process: the peak RSS is the process's)."""
    import resource

    from miaudit.config import make_config
    from miaudit.jobs import Execution
    from miaudit.pipeline import run_audit
    from miaudit.progress import LogReporter

    names = ["census", "fashion"] if which == "both" else [which]
    for name in names:
        title, settings, goal = AUDITS[name]
        print(f"\naudit: {title} on {device}" + (f" (goal {goal} s)" if goal else ""), flush=True)
        start = time.perf_counter()
        result = run_audit(
            make_config({**settings, "device": device}),
            LogReporter(),
            # No job cache, unless MIAUDIT_JOB_CACHE names one (to time the attacks again).
            execution=Execution(job_cache=None if os.environ.get("MIAUDIT_JOB_CACHE") else False),
        )
        total = time.perf_counter() - start
        for stage, seconds in result.timings_s.items():
            print(f"  {stage:<14} {seconds:8.2f} s")
        print(
            f"  {'total':<14} {total:8.2f} s"
            + (f" ({total / goal:.0%} of the goal)" if goal else "")
        )
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
        gpu = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0
        print(f"  peak memory: {rss:.1f} GiB resident, {gpu:.1f} GiB allocated on the GPU")
        for attack, a in result.attacks.items():
            print(f"  {attack:<16} AUC {a.auc:.3f}  TPR@1%FPR {a.tpr_at_fpr['0.01']:.4f}")


if __name__ == "__main__":
    main()
