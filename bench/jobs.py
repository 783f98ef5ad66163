"""Shadow training as jobs: what the job cache saves and what Dask costs, in one run.

Where it sits: the ``shadows`` stage (:mod:`miaudit.jobs`). Three measurements on
the default data set (census-income occupation, the paper's MLP):

1. **Cache.** The default audit twice with one job cache: the second run trains
   nothing (target, shadows and Shokri's attack scores come from the cache).
   Printed: the training stages (target + shadows) of the second run as a
   fraction of the first, and the whole audit's.
2. **Dask.** ``K`` shadows (default 16: two chunks of 8; 32: four) through
   a two-worker ``LocalCluster`` against the in-process path, no cache: the
   overhead of scattering the data, starting workers and shipping outputs back.
3. **Memory.** Peak resident memory of ``K = 8`` against ``K = 32`` shadows' job
   runs, each in a fresh process (models are dropped chunk by chunk).

Run: ``.venv/bin/python bench/jobs.py [--target-size 10000]`` (about five minutes).

Measured on the 2-core development VM::

    cache: the default audit (census, target 10000 records, 10 shadows)
      first run     39.16 s (training  15.51 s)
      second run     1.64 s (training   0.60 s): training 3.8% of the first, whole audit 4.2%
    dask: 16 shadows of 10000 records: in-process  13.69 s, 2-worker LocalCluster  22.35 s
      (1.63x); identical outputs: True
    dask: 32 shadows of 10000 records: in-process  27.30 s, 2-worker LocalCluster  36.83 s
      (1.35x); identical outputs: True
    memory: peak RSS of the job run, 8 shadows 1527 MiB, 32 shadows 1527 MiB (1.00x)

The second run trains nothing and fits no attack model: the target, the shadows'
outputs and Shokri's attack scores all come from the job cache. Dask costs a
cluster start (about 3 s), scattering the data set to each worker (about 2 s),
and on two cores its event loops, heartbeats and nannies share the two cores with
the two training processes (measured earlier, before training reused its
buffers: each chunk trained 15-30 % slower in a worker than in-process); it pays
where the workers are other machines.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

import miaudit
from miaudit.data import load_dataset
from miaudit.jobs import Execution, ShadowJob, run_jobs
from miaudit.models import Recipe


def _jobs(n_records: int, size: int, k: int, seed: int = 0) -> list[ShadowJob]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(k):
        idx = rng.choice(n_records, 2 * size, replace=False)
        out.append(ShadowJob(np.sort(idx[:size]), 1000 + i, idx))
    return out


def _peak_rss(k: int, size: int) -> float:
    code = textwrap.dedent(
        f"""
        import resource
        import numpy as np
        from miaudit.data import load_dataset
        from miaudit.jobs import Execution, ShadowJob, run_jobs
        from miaudit.models import Recipe
        data = load_dataset("census")
        rng = np.random.default_rng(0)
        jobs = []
        for i in range({k}):
            idx = rng.choice(data.n_records, {2 * size}, replace=False)
            jobs.append(ShadowJob(np.sort(idx[:{size}]), 1000 + i, idx))
        run_jobs(Recipe(model="mlp", epochs=5), data.X, data.y, data.n_classes, jobs,
                 execution=Execution(job_cache=False))
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target-size", type=int, default=10_000, help="the default audit's")
    parser.add_argument("--shadows", default="16,32")
    args = parser.parse_args()
    size = args.target_size

    # 1. Cache.
    with tempfile.TemporaryDirectory() as cache:
        runs = []
        for _ in range(2):
            t0 = time.perf_counter()
            result = miaudit.audit(target_size=size, execution=Execution(job_cache=cache))
            t = result.timings_s
            runs.append((time.perf_counter() - t0, t["train_target"] + t["train_shadows"], result))
    (total1, train1, _), (total2, train2, r2) = runs
    assert r2.execution["jobs"]["trained"] == 0
    print(f"cache: the default audit (census, target {size} records, 10 shadows)")
    print(f"  first run   {total1:7.2f} s (training {train1:6.2f} s)")
    print(
        f"  second run  {total2:7.2f} s (training {train2:6.2f} s): training "
        f"{train2 / train1:.1%} of the first, whole audit {total2 / total1:.1%}"
    )

    # 2. Dask against in-process.
    data = load_dataset("census")
    recipe = Recipe(model="mlp")
    for k in (int(s) for s in args.shadows.split(",")):
        jobs = _jobs(data.n_records, size, k)
        t0 = time.perf_counter()
        local, _ = run_jobs(
            recipe, data.X, data.y, data.n_classes, jobs, execution=Execution(job_cache=False)
        )
        t_local = time.perf_counter() - t0
        t0 = time.perf_counter()
        remote, _ = run_jobs(
            recipe,
            data.X,
            data.y,
            data.n_classes,
            jobs,
            execution=Execution(job_cache=False, executor="dask", workers=2),
        )
        t_dask = time.perf_counter() - t0
        same = all(np.array_equal(a, b) for a, b in zip(local, remote, strict=True))
        print(
            f"dask: {k} shadows of {size} records: in-process {t_local:6.2f} s, 2-worker "
            f"LocalCluster {t_dask:6.2f} s ({t_dask / t_local:.2f}x); identical outputs: {same}"
        )

    # 3. Memory.
    small, large = _peak_rss(8, size), _peak_rss(32, size)
    print(
        f"memory: peak RSS of the job run, 8 shadows {small:.0f} MiB, 32 shadows {large:.0f} "
        f"MiB ({large / small:.2f}x for 4x the shadows)"
    )


if __name__ == "__main__":
    main()
