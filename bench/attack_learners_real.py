"""Compare the Shokri attack's learners on a real audit (default: the default audit).

Run: .venv/bin/python bench/attack_learners_real.py [--dataset census] [--target-size N]
     [--shadows K]

Trains the target and the shadows once, then fits every attack learner, per class
and class-agnostic, on the same shadow outputs and scores the same target records,
so the rows differ only in the learner. Prints AUC, TPR at 1 % FPR, mean per-class
precision and recall, and fit/score seconds side by side.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from miaudit.attacks.shokri import LEARNERS, ShokriAttack
from miaudit.config import make_config
from miaudit.data import load_dataset
from miaudit.metrics import evaluate_attack
from miaudit.progress import Reporter
from miaudit.seeds import seeds_for
from miaudit.splits import make_splits, resolve_target_size
from miaudit.stages.models import resolve_recipe, shadow_signals, train_target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="census")
    parser.add_argument("--target-size", type=int, default=None)
    parser.add_argument("--shadows", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--learners", default=",".join(LEARNERS), help="comma-separated subset of learners"
    )
    parser.add_argument(
        "--modes", default="per-class,agnostic", help="per-class, agnostic, or both"
    )
    args = parser.parse_args()

    cfg = make_config({"dataset": args.dataset, "shadows": args.shadows, "seed": args.seed})
    seeds = seeds_for(cfg.seed)
    data = load_dataset(cfg.dataset)
    recipe = resolve_recipe(cfg.target, data)
    size = resolve_target_size(data.n_records, args.target_size)
    splits = make_splits(data.n_records, size, cfg.shadows, np.random.default_rng(seeds["splits"]))
    t0 = time.perf_counter()
    model = train_target(recipe, data, splits, seeds["target"], cfg, Reporter())
    probs, labels, member, _, _ = shadow_signals(
        recipe, data, splits, [int(s) for s in seeds["shadows"].generate_state(cfg.shadows)]
    )
    index, eval_member = splits.evaluation()
    target_probs = model.predict_proba(data.X[index])
    print(
        f"{data.name}: target {size} records, {cfg.shadows} shadows "
        f"({len(member)} attack records), training took {time.perf_counter() - t0:.1f} s"
    )
    print(
        f"{'learner':<8} {'per class':<10} {'AUC':>6} {'TPR@1%':>7} {'prec':>6} {'rec':>6} "
        f"{'fit s':>7} {'score s':>7}"
    )
    modes = [m.strip() == "per-class" for m in args.modes.split(",")]
    for per_class in modes:
        for learner in args.learners.split(","):
            attack = ShokriAttack(learner=learner, per_class=per_class, seed=1)
            t = time.perf_counter()
            attack.fit(probs, labels, member)
            fit_s = time.perf_counter() - t
            t = time.perf_counter()
            scores = attack.score(target_probs, data.y[index])
            score_s = time.perf_counter() - t
            m = evaluate_attack(scores, eval_member, data.y[index], data.class_names, 0.5)
            print(
                f"{learner:<8} {per_class!s:<10} {m.auc:6.3f} {m.tpr_at_fpr['0.01'] or 0:7.4f} "
                f"{m.mean_class_precision or 0:6.3f} {m.mean_class_recall or 0:6.3f} "
                f"{fit_s:7.1f} {score_s:7.2f}"
            )


if __name__ == "__main__":
    main()
