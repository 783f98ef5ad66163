"""Every attack on one shared set of shadows: leakage at low FPR and the time each adds.

Where it sits: ``signals -> attack -> scores -> metrics``. One audit trains the
target and the shadows once; every attack then scores the same evaluated records
from the same signals (``--attacks all``: the shadows train on balanced halves of
the evaluated records, so the online LiRA and RMIA have IN and OUT models for
every record, and the other attacks share those shadows). Printed per attack:
AUC, TPR at 0.1 % and 1 % FPR with their bootstrap 95 % intervals, and the
seconds the attack adds on top of shadow training (for Shokri's attack, fitting
its per-class models; for the others, scoring; the extra target queries of RMIA's
population and robustness's copies are in the query stage, printed once).

Run: ``.venv/bin/python bench/attacks.py [--dataset census] [--shadows 16]
[--target-size N]`` — the default data set at its default size takes about ten
minutes on two cores; Fashion-MNIST (``--dataset fashion-mnist``) about as long.
"""

from __future__ import annotations

import argparse
import time

import miaudit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="census")
    parser.add_argument("--shadows", type=int, default=16)
    parser.add_argument("--target-size", type=int, default=None)
    parser.add_argument("--attacks", default="all")
    parser.add_argument("--game", default="shokri")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    result = miaudit.audit(
        dataset=args.dataset,
        shadows=args.shadows,
        target_size=args.target_size,
        attacks=args.attacks.split(","),
        game=args.game,
        seed=args.seed,
    )
    total = time.perf_counter() - started
    t, tg = result.timings_s, result.target
    print(
        f"{args.dataset}: {tg['model']} target on {tg['n_train']} records (train/test accuracy "
        f"{tg['train_accuracy']:.3f}/{tg['test_accuracy']:.3f}); {args.shadows} shadows "
        f"({result.shadows['draw']} draw, game {args.game}); evaluated "
        f"{len(result.member)} records"
    )
    print(
        f"stages (s): target {t.get('train_target', 0):.1f}, shadows "
        f"{t['train_shadows']:.1f}, target queries {t['query_target']:.1f} "
        f"({tg['queries']['sent']:,} queries), metrics with bootstrap {t['metrics']:.1f}; "
        f"{total:.0f} s in all"
    )

    def rate(a, key):
        v, ci = a.tpr_at_fpr[key], a.tpr_at_fpr_ci[key]
        if v is None:
            return f"{'n/a':>21}"
        return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"

    print(
        f"{'attack':<17} {'AUC':>6} {'TPR@0.1% [95% CI]':>21} {'TPR@1% [95% CI]':>21} {'adds s':>7}"
    )
    ranked = sorted(result.attacks.items(), key=lambda kv: -(kv[1].tpr_at_fpr["0.01"] or 0))
    for name, a in ranked:
        adds = t[f"score:{name}"]
        if name == "shokri":
            adds += t.get("attack_fit", 0.0)
        print(f"{name:<17} {a.auc:6.3f} {rate(a, '0.001')} {rate(a, '0.01')} {adds:7.2f}")


if __name__ == "__main__":
    main()
