"""DP-SGD on the default census MLP against the canary game: test accuracy, the one-run
lower bound on epsilon and Clopper-Pearson's, at each claimed epsilon and without DP-SGD.

    python bench/dp_claim.py [--epsilons 1,4,8] [--canaries 1000] [--kind population]

Each row is one audit of the default recipe (census-occupation, 10,000 training records,
50 epochs, 10 shadows, every default attack) in the canary game; the bounds are the
largest over the attacks, at the claim's delta (1e-5 without DP-SGD).
"""

from __future__ import annotations

import argparse
import time

import miaudit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", default="1,4,8")
    parser.add_argument("--canaries", type=int, default=1000)
    parser.add_argument("--kind", default="population", choices=["population", "mislabelled"])
    args = parser.parse_args()
    claims = [None, *(float(e) for e in args.epsilons.split(","))]
    print("| claimed ε | test accuracy | one-run ε ≥ (attack) | Clopper–Pearson ε ≥ | seconds |")
    print("|---|---|---|---|---|")
    for eps in claims:
        started = time.perf_counter()
        target = {} if eps is None else {"dp_epsilon": eps}
        result = miaudit.audit(
            game="canaries", canaries=args.canaries, canary_kind=args.kind, target=target
        )
        claim = result.privacy_claim
        attacks = claim["attacks"]
        one = max(attacks, key=lambda n: attacks[n]["one_run"]["epsilon"])
        cp = max(a["clopper_pearson"]["epsilon"] for a in attacks.values())
        print(
            f"| {'none' if eps is None else f'{eps:g}'} | {result.target.test_accuracy:.3f} | "
            f"{attacks[one]['one_run']['epsilon']:.2f} ({one}) | {cp:.2f} | "
            f"{time.perf_counter() - started:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
