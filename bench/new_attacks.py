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
queries), and the target queries it added.

Run: ``.venv/bin/python bench/new_attacks.py [--part default|fashion|label-only|all]``.
"""

from __future__ import annotations

import argparse
import os
import time

from miaudit.config import make_config
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
    result = run_audit(make_config(settings), Reporter())
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
