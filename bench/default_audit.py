"""Time the default audit (`miaudit audit` with no arguments), stage by stage.

Run: .venv/bin/python bench/default_audit.py [--repeat N]

Prints each stage's wall time and the total against the 3-minute goal on a 2-core
machine. The data set's parse is cached on disk: the first run on a machine also
pays for it (shown as load_data), later runs do not.
"""

from __future__ import annotations

import argparse
import os
import time

import miaudit
from miaudit.config import make_config
from miaudit.pipeline import run_audit
from miaudit.progress import Reporter

GOAL_S = 180.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    import torch

    print(
        f"miaudit {miaudit.__version__}, {os.cpu_count()} cores, "
        f"torch threads {torch.get_num_threads()}"
    )
    for r in range(args.repeat):
        reporter = Reporter()
        start = time.perf_counter()
        result = run_audit(make_config({}), reporter)
        total = time.perf_counter() - start
        print(f"\nrun {r + 1}:")
        for stage, seconds in result.timings_s.items():
            print(f"  {stage:<14} {seconds:8.2f} s")
        a = result.attacks["shokri"]
        print(f"  {'total':<14} {total:8.2f} s  ({total / GOAL_S:.0%} of the {GOAL_S:.0f} s goal)")
        print(
            f"  target train/test accuracy {result.target['train_accuracy']:.3f}/"
            f"{result.target['test_accuracy']:.3f}; attack AUC {a.auc:.3f}, "
            f"precision {a.precision:.3f}, recall {a.recall:.3f}, "
            f"TPR@1%FPR {a.tpr_at_fpr['0.01']:.4f}"
        )


if __name__ == "__main__":
    main()
