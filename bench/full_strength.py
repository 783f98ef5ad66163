"""Every attack at full strength, before and after: the figures of the head-to-head issue.

Where it sits: the whole pipeline, ``data -> splits -> shadows -> signals -> attacks ->
metrics``. Two audits, each with ``--attacks all`` (so the online attacks, RMIA's
population and the offline attacks share one run):

* ``census``: the default audit (census, an MLP target, 10,000 members, 10 shadows);
* ``fashion``: Fashion-MNIST with the built-in CNN, ``--fashion-size`` members.

Printed per attack: AUC, TPR at 0.1 % and at 1 % FPR, each with its stratified
bootstrap 95 % interval; then the shadows' training-set sizes next to the target's
(``shadows.n_in`` in ``results.json``), the attack the audit calls strongest, and what
LiRA and RMIA chose for themselves (``attack_notes``). The job cache is off: every model
is trained and every attack fitted in the run. ``--queries N`` asks every attack that
scores a signal per record for ``N`` queries per record; ``--attacks`` runs fewer attacks;
``--augment`` trains the Fashion-MNIST CNN (target and shadows) on mirrored, shifted images.

Run: ``.venv/bin/python bench/full_strength.py [--part census|fashion|all] [--queries N]
[--attacks a,b,...]``.
The figures it printed before and after the changes are in the closing note of the issue
that added it, with the machine they came from.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from miaudit.config import make_config
from miaudit.jobs import Execution
from miaudit.pipeline import run_audit
from miaudit.progress import Reporter


def _rate(value, ci) -> str:
    if value is None:
        return f"{'–':>24}"
    low, high = ci if ci else (float("nan"), float("nan"))
    return f"{value:>7.4f} [{low:.4f}–{high:.4f}]"


def table(title: str, result, seconds: float) -> None:
    t = result.target
    print(f"\n{title} ({seconds:.0f} s in all; target train/test accuracy "
          f"{t['train_accuracy']:.3f}/{t['test_accuracy']:.3f}, "
          f"{len(result.member):,} records evaluated)")  # fmt: skip
    print(f"  {'attack':<16} {'AUC':>6} {'TPR@0.1% [95% CI]':>24} {'TPR@1% [95% CI]':>24}")
    for name in result.ranked():
        m = result.attacks[name]
        print(
            f"  {name:<16} {m.auc:>6.3f} "
            f"{_rate(m.tpr_at_fpr.get('0.001'), (m.tpr_at_fpr_ci or {}).get('0.001'))} "
            f"{_rate(m.tpr_at_fpr.get('0.01'), (m.tpr_at_fpr_ci or {}).get('0.01'))}"
        )
    s = result.shadows
    print(f"  target trains on {t['n_train']:,} records; shadows on n_in={s['n_in']:,} "
          f"(draw: {s.get('draw')})")  # fmt: skip
    P, y = result.inputs.target_probs, result.labels
    ones = int((P[np.arange(len(y)), y] == 1.0).sum())
    print(f"  target outputs ({P.dtype}): {ones:,} records' true-class probability is exactly 1.0")
    ranking = getattr(result, "ranking", None)  # absent before the honest ranking
    print(f"  strongest: {result.strongest}" + (f"; {ranking()['verdict']}" if ranking else ""))
    notes = result.attack_notes
    for name in ("lira", "lira-offline", "rmia", "rmia-offline", "loss"):
        if name in notes:
            print(f"  {name} notes: {json.dumps(notes[name], default=str)[:400]}")


def run(title: str, settings: dict) -> None:
    start = time.perf_counter()
    result = run_audit(make_config(settings), Reporter(), execution=Execution(job_cache=False))
    table(title, result, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="all", choices=["census", "fashion", "all"])
    parser.add_argument("--fashion-size", type=int, default=2500)
    parser.add_argument("--queries", type=int, default=1)
    parser.add_argument("--attacks", default="all", help="comma-separated (default: all)")
    parser.add_argument("--shadows", type=int, default=10)
    parser.add_argument(
        "--augment", action="store_true", help="train the CNN on mirrored, shifted images"
    )
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores")
    names = args.attacks.split(",")
    base: dict = {"attacks": {"run": names}, "shadows": args.shadows}
    if args.augment:
        base["target"] = {"augment": True}
    if args.queries > 1:
        base["attacks"]["queries"] = args.queries
    what = f"--attacks {args.attacks}, --queries {args.queries}, {args.shadows} shadows"
    what += ", augmented training" if args.augment else ""
    if args.part in ("census", "all"):
        run(f"census, default audit, {what}", base)
    if args.part in ("fashion", "all"):
        run(
            f"Fashion-MNIST, cnn, {args.fashion_size:,} members, {what}",
            {**base, "dataset": "fashion-mnist", "target_size": args.fashion_size},
        )


if __name__ == "__main__":
    main()
