"""Shokri's attack learners side by side: nn, gbdt and auto on the same shadows and target.

Where it sits: the ``attack`` stage. For each audit below (and each seed) the target
and the shadows are trained once (the first learner's run; the others find them in a
fresh job cache), then Shokri's attack runs with each learner on the same shadow
outputs and scores the same target records, so the rows of one audit differ only in
the learner. Printed per row: AUC, TPR at 1 % FPR with its bootstrap 95 % interval,
the attack's seconds (``score:shokri``: fit and score) beside the shadows' training
seconds (``train_shadows``, the first run's), and for ``auto`` the learner it chose
what decided (``tpr``, ``auc`` or a ``tie``), both candidates' TPR (at the rate it ranked
them at) and AUC on the held-out shadow, and the 95 % intervals of their difference.

Audits (``--audits``, comma-separated):

* ``census``: the default audit (census-occupation, the MLP recipe, 10 shadows);
* ``forest``: the same with a random-forest target and shadows (``--model random-forest``);
* ``adult``: Adult with the default (MLP) recipe;
* ``adult-forest``: Adult with a random-forest target and shadows;
* ``digits``: digits, a small MLP (200 members, 6 shadows), a quick check.

``--target-size N`` shrinks every audit's target (and so its shadows); ``--shadows K``
sets the shadows; ``--learners`` the learners (``auto:N``: auto judging ``N`` classes,
``shokri.choice_classes=N``; ``auto:0`` every class).

Run: ``.venv/bin/python bench/shokri_learner.py [--audits census,forest,adult,adult-forest]
[--seeds 0,1] [--learners nn,gbdt,auto] [--target-size N] [--shadows K]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from miaudit.config import make_config
from miaudit.jobs import Execution
from miaudit.pipeline import run_audit
from miaudit.progress import Reporter

AUDITS: dict[str, dict] = {
    "census": {},
    "forest": {"target": {"model": "random-forest"}},
    "adult": {"dataset": "adult"},
    "adult-forest": {"dataset": "adult", "target": {"model": "random-forest"}},
    "digits": {
        "dataset": "digits", "target_size": 200, "shadows": 6,
        "target": {"model": "mlp", "epochs": 30, "batch_size": 32, "lr": 0.003},
    },
}  # fmt: skip


def _settings(learner: str) -> dict:
    if learner.startswith("auto:"):
        return {"learner": "auto", "choice_classes": int(learner.split(":")[1])}
    return {"learner": learner}


def _choice(notes: dict) -> str:
    choice = notes.get("learner_choice")
    if not choice:
        return ""
    if "why" in choice:
        return f"fallback: {choice['why']}"
    parts = [
        f"{name} {c['tpr'] if c['tpr'] is None else round(c['tpr'], 4)}/{c['auc']:.4f}"
        for name, c in choice["candidates"].items()
    ]
    diff = choice["difference"]
    return (
        f"-> {notes['learner']} (by {choice['decided_by']}); {choice['records']:,} held-out "
        f"records of {choice['classes']} classes, TPR@{choice['fpr']}/AUC "
        + ", ".join(parts)
        + f"; {diff['of']}: TPR {diff['tpr'][0]:+.3f}..{diff['tpr'][1]:+.3f}, "
        f"AUC {diff['auc'][0]:+.4f}..{diff['auc'][1]:+.4f}"
    )


def run(name: str, seed: int, learners: list[str], extra: dict) -> None:
    base = {**AUDITS[name], **extra, "seed": seed}
    with tempfile.TemporaryDirectory(prefix="miaudit-bench-jobs-") as cache:
        execution = Execution(job_cache=cache)
        shadows_s = None
        for learner in learners:
            settings = {**base, "attacks": {"run": ["shokri"], "shokri": _settings(learner)}}
            start = time.perf_counter()
            result = run_audit(make_config(settings), Reporter(), execution=execution)
            total = time.perf_counter() - start
            if shadows_s is None:
                shadows_s = result.timings_s["train_shadows"]
                t = result.target
                print(
                    f"\n{name}, seed {seed}: {result.shadows['count']} shadows trained in "
                    f"{shadows_s:.1f} s; target train/test accuracy "
                    f"{t['train_accuracy']:.3f}/{t['test_accuracy']:.3f}, "
                    f"{len(result.member):,} records evaluated"
                )
                print(
                    f"  {'learner':<8} {'AUC':>6} {'TPR@1%':>7} {'95% CI':>13} "
                    f"{'attack s':>8} {'/shadows':>8}  choice"
                )
            m = result.attacks["shokri"]
            low, high = (m.tpr_at_fpr_ci or {}).get("0.01", (float("nan"),) * 2)
            attack_s = result.timings_s["score:shokri"]
            print(
                f"  {learner:<8} {m.auc:>6.4f} {m.tpr_at_fpr['0.01']:>7.4f} "
                f"{low:>6.4f}-{high:.4f} {attack_s:>8.1f} {attack_s / shadows_s:>8.2f}  "
                f"{_choice(result.attack_notes['shokri'])}  ({total:.0f} s in all)",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--audits", default="census,forest,adult,adult-forest")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--learners", default="nn,gbdt,auto")
    parser.add_argument("--target-size", type=int, default=None)
    parser.add_argument("--shadows", type=int, default=None)
    args = parser.parse_args()
    extra: dict = {}
    if args.target_size:
        extra["target_size"] = args.target_size
    if args.shadows:
        extra["shadows"] = args.shadows
    print(f"{len(os.sched_getaffinity(0))} cores; learners {args.learners}")
    for name in args.audits.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            run(name, seed, args.learners.split(","), extra)


if __name__ == "__main__":
    main()
