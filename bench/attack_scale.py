"""Shokri's attack models against the number of shadows: fit time and strength per bound.

Where it sits: the ``attack`` stage. Shokri's attack fits one model per class on
every shadow's outputs on its own in/out records, so its training set grows with
the shadows: at 64 census shadows it is 1.28 million records. ``shokri.max_records``
bounds the records each attack model trains on (balanced members/non-members).
This script fits the attack on the shadow outputs an audit saved
(``miaudit audit --save-outputs``) with each bound, side by side in one process
(each bound ``--repeats`` times, alternating; the fastest fit is kept), and scores
the target's outputs: AUC, TPR at 1 % FPR and its bootstrap interval.

Run: ``.venv/bin/miaudit audit --shadows 64 --save-outputs --out runs/s64`` once,
then ``.venv/bin/python bench/attack_scale.py runs/s64/outputs.npz
[--bounds 0,20000,50000] [--repeats 1]``.

Measured on the 2-core development VM, census-occupation, the default audit's
recipe (target of 10,000 records), from the outputs of `audit --shadows 64` and of
the default `audit` (10 shadows)::

    shadows  bound    fit s   vs all   AUC     TPR@1%   95% interval
    64       all      108.9    1.00    0.8967  0.2667   0.2378-0.2913
    64       50,000    69.2    0.64    0.8963  0.2640   0.2394-0.2882
    64       20,000    58.4    0.54    0.8942  0.2638   0.2406-0.2896
    10       all       36.2    1.00    0.8850  0.1870   0.1579-0.2161
    10       50,000    35.0    0.97    0.8850  0.1870   0.1579-0.2161
    10       20,000    33.2    0.92    0.8850  0.1870   0.1579-0.2161

At 10 shadows no class has 20,000 records (identical scores); the fit's cost there
is the 47 boosted models' fixed cost, not their records. The table is gradient
boosting's (``--learners gbdt``), the default before the stacked networks; the
default now (``nn``, logit inputs, 50,000), side by side with it in one run
(``--bounds 50000``): at 10 shadows 13.1 s against 35.4 (AUC 0.8869, TPR@1% 0.2111),
at 64 shadows 33.4 s against 55.3 (0.8960, 0.2437): both inside gradient
boosting's intervals. ``--learners`` picks the learners to compare (default
``nn,gbdt``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from miaudit.attacks import ShokriAttack
from miaudit.metrics import auc, bootstrap_tpr_at_fpr, tpr_at_fpr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("outputs", help="An outputs.npz written by `audit --save-outputs`.")
    parser.add_argument("--bounds", default="0,20000,50000", help="max_records values (0: all).")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--learners", default="nn,gbdt", help="Attack learners (nn with logit inputs, the default)."
    )
    args = parser.parse_args()
    bounds = [int(b) for b in args.bounds.split(",")]
    learners = args.learners.split(",")
    with np.load(args.outputs) as f:
        shadow = (f["shadow_outputs"], f["shadow_labels"], f["shadow_members"].astype(bool))
        target, labels, member = f["outputs"], f["labels"], f["members"].astype(bool)
    runs = [(learner, bound) for learner in learners for bound in bounds]
    best = dict.fromkeys(runs, float("inf"))
    scores = {}
    for _ in range(args.repeats):
        for learner, bound in runs:
            transform = "logit" if learner == "nn" else "none"  # trees ignore it
            t0 = time.perf_counter()
            attack = ShokriAttack(
                learner=learner, transform=transform, seed=0, max_records=bound
            ).fit(*shadow)
            best[learner, bound] = min(best[learner, bound], time.perf_counter() - t0)
            scores[learner, bound] = attack.score(target, labels)
    base = best[runs[0]]
    print(f"{len(shadow[0]):,} attack records, {shadow[0].shape[1]} classes")
    print(
        f"{'learner':>7}  {'bound':>8}  {'fit s':>7}  {'ratio':>6}  {'AUC':>7}  {'TPR@1%':>7}"
        "  95% interval"
    )
    for learner, bound in runs:
        s = scores[learner, bound]
        (ci,) = bootstrap_tpr_at_fpr(s, member, [0.01], n_boot=1000, rng=0)
        t = best[learner, bound]
        print(
            f"{learner:>7}  {bound or 'all':>8}  {t:>7.1f}  {t / base:>6.2f}  "
            f"{auc(s, member):>7.4f}  {tpr_at_fpr(s, member, 0.01):>7.4f}  "
            f"{ci.low:.4f}-{ci.high:.4f}"
        )


if __name__ == "__main__":
    main()
