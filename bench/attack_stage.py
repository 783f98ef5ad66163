"""The attack stage at many shadows: each attack's seconds and peak memory, this
checkout beside another commit, in one run.

Where it sits: ``signals -> attack -> scores``. Shokri's attack and the threshold
attacks learn from every shadow's outputs on its own in/out records, ``2 n`` rows of
``C`` float32 probabilities per shadow (at 256 census shadows, 5 million rows of 46
classes, 0.9 GB). What they do per row, and how often, sets the attack stage's time
once the shadows train fast (on a GPU). This script builds those outputs for
``--shadows`` models (float32 softmax vectors, members more confident than
non-members, the target's likewise) or reads them from an ``outputs.npz``
(``miaudit audit --save-outputs``), then fits and scores the attacks in order on one
:class:`~miaudit.attacks.base.AttackInputs`, as an audit does, each through
:func:`~miaudit.attacks.suite.run_attack`. Printed per attack: seconds, the peak
memory NumPy and torch allocate beyond the inputs (``tracemalloc``), and a digest of
the scores.

With ``--before REV`` the same measurement runs on commit ``REV`` too (a temporary
``git worktree``, its ``src`` first on ``PYTHONPATH``), each side in its own process,
alternating ``--repeats`` times; the table then gives both sides, the ratio of their
best times, and whether their scores are identical.

``--parts N`` instead times, side by side on N rows, the building blocks the attack
stage's speed rests on, each old way beside the new one: the best threshold found by
ordering the records (a stable ``argsort``) against sorting values (:func:`best_threshold`),
a stable sort of int64 labels against the same sort as uint16 (a radix sort:
:func:`~miaudit.attacks.base.rows_by_class`), and hashing the shadows' outputs through
``tobytes()`` against hashing their buffer (:func:`~miaudit.jobs.array_digest`).

Run: ``python bench/attack_stage.py [--shadows 64] [--records 10000] [--classes 46]
[--attacks loss,loss-class,...] [--outputs FILE] [--before REV] [--repeats 2]``, or
``python bench/attack_stage.py --parts 5120000``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
import tracemalloc
from pathlib import Path

import numpy as np

THRESHOLDS = "loss,loss-class,confidence,confidence-class,entropy,entropy-class,mentr,mentr-class"
ROOT = Path(__file__).resolve().parents[1]


def softmax_outputs(rng: np.random.Generator, labels: np.ndarray, member: np.ndarray, c: int):
    """float32 softmax vectors whose true class stands out more for members."""
    logits = rng.normal(size=(len(labels), c))
    logits[np.arange(len(labels)), labels] += 2.0 + 2.5 * member + rng.normal(0, 1.5, len(labels))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def world(k: int, n: int, c: int, seed: int = 0) -> dict[str, np.ndarray]:
    """K shadows' outputs on their own n members and n non-members, and a target's on
    n of each: the arrays an ``outputs.npz`` holds, by its names."""
    rng = np.random.default_rng(seed)
    rows = 2 * n
    own = np.empty((k * rows, c), dtype=np.float32)
    own_labels = rng.integers(0, c, k * rows)
    own_member = np.tile(np.r_[np.ones(n, bool), np.zeros(n, bool)], k)
    for j in range(k):  # one shadow at a time: the float64 draw stays small
        part = slice(j * rows, (j + 1) * rows)
        own[part] = softmax_outputs(rng, own_labels[part], own_member[part], c)
    labels = rng.integers(0, c, rows)
    members = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    return {
        "shadow_outputs": own,
        "shadow_labels": own_labels,
        "shadow_members": own_member,
        "outputs": softmax_outputs(rng, labels, members, c),
        "labels": labels,
        "members": members,
    }


def measure(args: argparse.Namespace) -> list[dict]:
    """Each attack's seconds, peak traced memory and score digest, in this process."""
    from miaudit.attacks.base import AttackInputs
    from miaudit.attacks.registry import get_attack
    from miaudit.attacks.suite import run_attack
    from miaudit.jobs import Execution

    if args.outputs:
        with np.load(args.outputs) as f:
            arrays = {
                name: f[name]
                for name in (
                    "shadow_outputs",
                    "shadow_labels",
                    "shadow_members",
                    "outputs",
                    "labels",
                )
            }
    else:
        arrays = world(args.shadows, args.records, args.classes, args.seed)
    c = arrays["outputs"].shape[1]
    inputs = AttackInputs(
        own_probs=arrays["shadow_outputs"],
        own_labels=arrays["shadow_labels"],
        own_member=arrays["shadow_members"].astype(bool),
        target_probs=arrays["outputs"],
        labels=arrays["labels"],
        n_eval=len(arrays["labels"]),
        class_names=[str(i) for i in range(c)],
        seed=args.seed,
    )
    rows = []
    tracemalloc.start()
    for name in args.attacks.split(","):
        attack = get_attack(name)()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        outcome = run_attack(attack, inputs, Execution(job_cache=False))
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - base
        digest = hashlib.sha256(np.ascontiguousarray(outcome.scores).tobytes()).hexdigest()[:12]
        rows.append({"attack": name, "seconds": seconds, "peak": peak, "digest": digest})
        del outcome
    return rows


def threshold_by_order(signal: np.ndarray, member: np.ndarray) -> float:
    """``best_threshold`` as it was until 41be8d5: the records ordered by the signal."""
    n_in, n_out = int(member.sum()), int((~member).sum())
    order = np.argsort(-signal, kind="stable")
    s, m = signal[order], member[order]
    tp, fp = np.r_[0, np.cumsum(m)], np.r_[0, np.cumsum(~m)]
    distinct = np.r_[True, s[1:] != s[:-1], True]
    k = int(np.argmax(np.where(distinct, tp / n_in - fp / n_out, -np.inf)))
    if k == 0:
        return float(s[0]) + 1.0
    return float(s[-1]) if k == len(s) else float((s[k - 1] + s[k]) / 2)


def parts(n: int, c: int, repeats: int) -> None:
    """The building blocks, old and new side by side, best of ``repeats``."""
    import hashlib

    from miaudit.attacks.threshold import best_threshold

    rng = np.random.default_rng(0)
    signal, member = rng.normal(size=n), rng.random(n) < 0.5
    labels = rng.integers(0, c, n)
    outputs = rng.random((n, c), dtype=np.float32)

    def best(fn) -> float:
        return min(timeit.repeat(fn, number=1, repeat=repeats))

    def digest(by_copy: bool) -> str:
        h = hashlib.sha256()
        h.update(outputs.tobytes() if by_copy else outputs)
        return h.hexdigest()

    rows = [
        ("best threshold, records ordered", lambda: threshold_by_order(signal, member),
         "values sorted (best_threshold)", lambda: best_threshold(signal, member)),
        ("group by class: stable sort of int64", lambda: np.argsort(labels, kind="stable"),
         "the same sort as uint16 (radix)",
         lambda: np.argsort(labels.astype(np.uint16), kind="stable")),
        (f"hash ({n:,} x {c}) float32 via tobytes()", lambda: digest(True),
         "hash its buffer", lambda: digest(False)),
    ]  # fmt: skip
    assert digest(True) == digest(False)
    assert threshold_by_order(signal, member) == best_threshold(signal, member)
    print(f"building blocks on {n:,} rows; best of {repeats}, {len(os.sched_getaffinity(0))} cores")
    for old_name, old, new_name, new in rows:
        t_old, t_new = best(old), best(new)
        print(
            f"{old_name:44s} {t_old:7.3f} s | {new_name:34s} {t_new:7.3f} s  {t_new / t_old:5.2f}x"
        )


def run_side(src: Path, argv: list[str]) -> list[dict]:
    """:func:`measure` in a fresh process importing miaudit from ``src``."""
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run(
        [sys.executable, __file__, "--measure", *argv],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    if not Path(answer["source"]).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"measured {answer['source']}, not the code in {src}")
    return answer["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shadows", type=int, default=64)
    parser.add_argument("--records", type=int, default=10_000, help="members per shadow")
    parser.add_argument("--classes", type=int, default=46)
    parser.add_argument("--attacks", default=f"{THRESHOLDS},shokri")
    parser.add_argument("--outputs", default=None, help="an outputs.npz instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--before", default=None, help="a commit to measure beside")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parts", type=int, default=None, help="rows: time building blocks")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.parts:
        parts(args.parts, args.classes, args.repeats)
        return
    if args.measure:
        import miaudit

        print(json.dumps({"source": miaudit.__file__, "rows": measure(args)}))
        return
    argv = sys.argv[1:]
    sides = {"now": ROOT / "src"}
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            tree = Path(tmp) / "before"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.before],
                check=True, capture_output=True,
            )  # fmt: skip
            sides = {"before": tree / "src", **sides}
        try:
            runs: dict[str, list[list[dict]]] = {side: [] for side in sides}
            for _ in range(args.repeats):
                for side, src in sides.items():
                    runs[side].append(run_side(src, argv))
        finally:
            if args.before:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    check=False, capture_output=True,
                )  # fmt: skip
    where = args.outputs or (
        f"{args.shadows} shadows x {2 * args.records:,} rows x {args.classes} classes (synthetic)"
    )
    print(f"attack stage on {where}; best of {args.repeats}, {len(os.sched_getaffinity(0))} cores")
    head = "".join(f" {side + ' s':>9s} {side + ' peak':>12s}" for side in sides)
    head = f"{'attack':18s}{head}"
    print(head + ("   ratio  scores" if args.before else ""))
    totals = dict.fromkeys(sides, 0.0)
    for i, name in enumerate(args.attacks.split(",")):
        line = f"{name:18s}"
        best = {}
        for side in sides:
            best[side] = min(run[i]["seconds"] for run in runs[side])
            totals[side] += best[side]
            peak = max(run[i]["peak"] for run in runs[side])
            line += f" {best[side]:9.2f} {peak / 2**20:8,.0f} MiB"
        if args.before:
            same = {run[i]["digest"] for side in sides for run in runs[side]}
            ratio = best["now"] / best["before"]
            line += f" {ratio:6.2f}x  {'same' if len(same) == 1 else 'DIFFER'}"
        print(line)
    line = f"{'all':18s}" + "".join(f" {totals[side]:9.2f} {'':12s}" for side in sides)
    if args.before:
        line += f" {totals['now'] / totals['before']:6.2f}x"
    print(line)


if __name__ == "__main__":
    main()
