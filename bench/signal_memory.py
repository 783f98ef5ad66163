"""Peak memory of the signal stage against the number of reference models.

Where it sits: ``signals -> attack``. Online LiRA reads K reference models' outputs
on every evaluated record, a ``(K, n, C)`` float32 array, and turns each into one
logit-scaled confidence (:func:`miaudit.signals.logit_confidence`). The signals
work through the array :data:`~miaudit.signals.BLOCK_ROWS` rows at a time, so
beyond the array itself the stage holds ``(K, n)`` numbers, never a float64 copy of
``(K, n, C)``. This script builds the outputs of K reference models (random
softmax vectors, half of the models trained on each record), scores online LiRA
under ``tracemalloc`` (NumPy reports its arrays to it) and prints the peak memory
beyond the input, per model and per model-record.

Run: ``python bench/signal_memory.py [--ks 16,64,256] [--records 50000] [--classes 46]``.
``tests/test_signal_memory.py`` checks the same measurement on small sizes.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np


def reference_world(k: int, n: int, c: int, seed: int = 0):
    """K reference models' float32 outputs ``(K, n, C)``, their membership ``(K, n)``,
    the labels, and a target's outputs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    # Each record in the training sets of half the reference models, as the audit
    # splits them; the target (row 0) any way.
    member = np.concatenate([rng.random((1, n)) < 0.5, rng.random((k, n)).argsort(axis=0) < k // 2])
    probs = np.empty((k + 1, n, c), dtype=np.float32)
    for j in range(k + 1):  # one model at a time: the float64 draw stays small
        logits = rng.normal(size=(n, c))
        logits[np.arange(n), labels] += 2.0 + 1.5 * member[j]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs[j] = e / e.sum(axis=1, keepdims=True)
    return probs[1:], member[1:], labels, probs[0]


def lira_peak(k: int, n: int, c: int) -> tuple[int, float, int]:
    """Peak bytes beyond the input while online LiRA scores, the seconds, the input bytes."""
    from miaudit.attacks.base import AttackInputs
    from miaudit.attacks.lira import LiRAOnline
    from miaudit.signals import ReferenceSignals

    probs, member, labels, target = reference_world(k, n, c)
    inputs = AttackInputs(
        own_probs=np.zeros((0, c)), own_labels=np.zeros(0, int), own_member=np.zeros(0),
        target_probs=target, labels=labels, n_eval=n,
        reference=ReferenceSignals(probs, member, labels),
    )  # fmt: skip
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    start = time.perf_counter()
    LiRAOnline(variance="per-record").score(inputs)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - base, seconds, probs.nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="16,64,256")
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=46)
    args = parser.parse_args()
    n, c = args.records, args.classes
    print(f"online LiRA, {n:,} records, {c} classes; peak beyond the (K, n, C) float32 input")
    print(f"{'K':>5} {'input MiB':>10} {'peak MiB':>9} {'per model MiB':>14}", end="")
    print(f" {'B/model-record':>15} {'s':>6}")
    for k in [int(x) for x in args.ks.split(",")]:
        peak, seconds, size = lira_peak(k, n, c)
        print(
            f"{k:5d} {size / 2**20:10.0f} {peak / 2**20:9.0f} {peak / k / 2**20:14.2f} "
            f"{peak / (k * n):15.1f} {seconds:6.1f}"
        )


if __name__ == "__main__":
    main()
