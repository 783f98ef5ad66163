"""QMIA and the boundary attack next to the attacks miaudit had, on the same audits.

Where it sits: ``signals -> attack -> scores -> metrics``, the whole pipeline. Three
parts, each one audit whose attacks share one target and one set of shadows:

* ``default``: the default audit (``miaudit audit``: census, an MLP target, 10 offline
  shadows) with ``qmia`` and ``boundary`` added to the default attacks;
* ``fashion``: Fashion-MNIST with the built-in CNN (``--fashion-size`` members), the
  same attacks;
* ``label-only``: the default audit's target answering labels only: ``gap``,
  ``robustness``, ``boundary`` (and Shokri's attack, which learns from one-hot answers).

Printed per attack: AUC, TPR at 0.1 % and 1 % FPR (with the bootstrap 95 % interval at
1 %), the seconds it took (fitting and scoring, and for ``boundary`` its own target
queries), and the target queries it added. The job cache is off: every model is trained
and every attack fitted in the run.

Run: ``.venv/bin/python bench/new_attacks.py [--part default|fashion|label-only|all]``.

Measured (2-core VM, torch 2.13 CPU, seed 0; 95 % bootstrap intervals; seconds are the
attack's own fitting and scoring, with ``boundary``'s target queries):

* default audit (census, 10,000 members, 10 shadows; 97 s in all):

  =============  =====  ========  ======================  =======  =============
  attack         AUC    TPR@0.1%  TPR@1 %                 seconds  target queries
  =============  =====  ========  ======================  =======  =============
  rmia-offline   0.886  0.0749    0.2504 [0.2011–0.2748]  0.14     2,000
  lira-offline   0.851  0.0743    0.2059 [0.1822–0.2292]  0.12
  qmia           0.873  0.0146    0.1882 [0.1625–0.2050]  5.74     5,000
  shokri         0.885  0.0360    0.1870 [0.1560–0.2136]  45.16
  boundary       0.769  0.0059    0.0488 [0.0385–0.0646]  9.87     537,028
  =============  =====  ========  ======================  =======  =============

* Fashion-MNIST, CNN, 2,500 members, 10 shadows (191 s in all): rmia-offline 0.602 AUC,
  TPR@1 % 0.040; lira-offline 0.584, 0.029; qmia 0.529, 0.008 (10.6 s); boundary 0.535,
  0.010 (86.8 s, 359,174 queries); gap 0.541.
* The default audit's target answering labels only: boundary 0.769 AUC, TPR@0.1 % 0.0059,
  TPR@1 % 0.049 [0.039–0.065]; robustness 0.764, 0, 0.027 [0.024–0.030]; gap 0.768, 0, 0.
"""

from __future__ import annotations

import argparse
import os
import time

from miaudit.config import make_config
from miaudit.jobs import Execution
from miaudit.pipeline import run_audit
from miaudit.progress import Reporter


def table(title: str, result, seconds: float) -> None:
    print(f"\n{title} ({seconds:.0f} s in all; target train/test accuracy "
          f"{result.target['train_accuracy']:.3f}/{result.target['test_accuracy']:.3f}, "
          f"{len(result.member):,} records evaluated)")  # fmt: skip
    print(f"  {'attack':<14} {'AUC':>6} {'TPR@0.1%':>9} {'TPR@1% [95% CI]':>24} {'seconds':>8}"
          f" {'queries added':>14}")  # fmt: skip
    notes = result.attack_notes
    n = len(result.member)
    for name in result.attacks:
        m = result.attacks[name]
        low, high = m.tpr_at_fpr_ci.get("0.01") or (float("nan"), float("nan"))
        at1 = m.tpr_at_fpr.get("0.01")
        queries = {
            "qmia": notes.get("qmia", {}).get("public_records"),
            "boundary": notes.get("boundary", {}).get("queries"),
            "robustness": notes.get("robustness", {}).get("copies", 0) * n,
            "rmia-offline": notes.get("rmia-offline", {}).get("population"),
        }.get(name)
        print(
            f"  {name:<14} {m.auc:>6.3f} {m.tpr_at_fpr.get('0.001') or 0:>9.4f} "
            f"{at1:>8.4f} [{low:.4f}–{high:.4f}] {result.timings_s.get(f'score:{name}', 0):>8.2f}"
            f" {'' if queries is None else f'{queries:,}':>14}"
        )


def run(title: str, settings: dict) -> None:
    start = time.perf_counter()
    # No job cache: every model is trained and every attack fitted in this run.
    result = run_audit(make_config(settings), Reporter(), execution=Execution(job_cache=False))
    table(title, result, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--part", default="all", choices=["default", "fashion", "label-only", "all"]
    )
    parser.add_argument("--fashion-size", type=int, default=2500)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores")
    new = ["default", "qmia", "boundary"]
    if args.part in ("default", "all"):
        run("default audit + qmia, boundary", {"attacks": new})
    if args.part in ("fashion", "all"):
        run(
            f"Fashion-MNIST, cnn, {args.fashion_size:,} members + qmia, boundary",
            {"dataset": "fashion-mnist", "target_size": args.fashion_size, "attacks": new},
        )
    if args.part in ("label-only", "all"):
        run(
            "default audit, label-only target",
            {"defense": ["label-only"], "attacks": ["shokri", "gap", "robustness", "boundary"]},
        )


if __name__ == "__main__":
    main()
