"""Attack a served model over HTTP: each output policy, then each shadow-data source.

Where it sits: the whole pipeline with a remote ``target``. One target (the
paper's MLP on census-income occupation, 46 classes) is trained and saved once,
then served by the real ``miaudit serve`` application on 127.0.0.1, without and
with each of the paper's mitigations at the API boundary. Each row is a full
audit over HTTP (``--target-url``) with the same seed, so rows differ only in
what the service answers (first table) or where the shadows' data comes from
(second table). The attacker knows the deployed policy (``/v1/info`` reports
it) and passes its shadows' outputs through the same policy.

Run: ``.venv/bin/python bench/served_audit.py [--target-size 2000] [--shadows 4]``
(about two minutes on two cores).

Measured on the 2-core development VM::

    census: mlp target on 2000 records, train/test accuracy 0.929/0.121; 4 shadows;
    all queries over HTTP

    served output policy (real shadow data)
                        AUC precision  recall  TPR@1%   queries   q/record   secs
    none              0.959     0.900   0.959   0.342     3,991                 8
    top-k=3           0.945     0.892   0.914   0.305     3,991                 6
    top-k=1           0.929     0.909   0.934   0.204     3,991                 5
    round=1           0.950     0.895   0.928   0.257     3,991                 6
    temperature=20    0.935     0.844   0.936   0.265     3,991                 8
    label-only        0.929     0.909   0.934   0.204     3,991                 5

    shadow-data source (no output policy)
                        AUC precision  recall  TPR@1%   queries   q/record   secs
    real              0.959     0.900   0.959   0.342     3,991                 8
    noisy             0.956     0.919   0.919   0.285     3,991                10
    marginal          0.903     0.963   0.687   0.415     3,991                10
    synthetic         0.604     0.680   0.091   0.104   175,029       43.8     28
                     classes hill climbing did not reach: ['46']

Rows of one table share the target, the seed and the evaluation records, so they
differ only by what the table varies. Top-k=1 and label-only tie: with one label
left, a renormalised top-1 vector is the one-hot label.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import miaudit
from miaudit.config import make_config
from miaudit.pipeline import train_target_only
from miaudit.policies import parse_policy
from miaudit.serve import PredictionService, ServiceLimits, create_app, serve_in_thread

TOKEN = "bench-token"
POLICIES = [[], ["top-k=3"], ["top-k=1"], ["round=1"], ["temperature=20"], ["label-only"]]
SOURCES = ["real", "noisy", "marginal", "synthetic"]


def row(name: str, result, seconds: float) -> str:
    a = result.attacks["shokri"]
    tpr = a.tpr_at_fpr.get("0.01")
    synthesis = result.shadows.get("synthesis") or {}
    per_record = synthesis.get("queries_per_record")
    return (
        f"{name:<16} {a.auc:6.3f} {a.mean_class_precision:9.3f} {a.mean_class_recall:7.3f} "
        f"{'n/a' if tpr is None else f'{tpr:.3f}':>7} {result.target['queries']['sent']:>9,} "
        f"{'' if per_record is None else f'{per_record:.1f}':>10} {seconds:6.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="census")
    parser.add_argument("--target-size", type=int, default=2000)
    parser.add_argument("--shadows", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="miaudit-served-"))
    config = make_config(
        {"dataset": args.dataset, "target_size": args.target_size, "seed": args.seed}
    )
    info = train_target_only(config, work / "target")
    print(
        f"{args.dataset}: {info['model']} target on {info['n_train']} records, train/test "
        f"accuracy {info['train_accuracy']:.3f}/{info['test_accuracy']:.3f}; "
        f"{args.shadows} shadows; all queries over HTTP"
    )
    header = (
        f"{'':<16} {'AUC':>6} {'precision':>9} {'recall':>7} {'TPR@1%':>7} {'queries':>9} "
        f"{'q/record':>10} {'secs':>6}"
    )

    def audit(specs, source):
        service = PredictionService.from_folder(work / "target", [parse_policy(s) for s in specs])
        with serve_in_thread(create_app(service, ServiceLimits(tokens=(TOKEN,)))) as url:
            t0 = time.perf_counter()
            result = miaudit.audit(
                dataset=args.dataset,
                target_url=url,
                membership=str(work / "target"),
                token=TOKEN,
                query_cache=False,
                shadows=args.shadows,
                shadow_data=source,
                # Shokri's attack: the paper's, and one that runs against every policy
                # (label-only answers rule out the probability attacks).
                attacks=["shokri"],
                seed=args.seed,
            )
            return result, time.perf_counter() - t0

    print("\nserved output policy (real shadow data)")
    print(header)
    for specs in POLICIES:
        result, seconds = audit(specs, "real")
        print(row(",".join(specs) or "none", result, seconds), flush=True)
    print("\nshadow-data source (no output policy)")
    print(header)
    for source in SOURCES:
        result, seconds = audit([], source)
        print(row(source, result, seconds), flush=True)
        if source == "synthetic":
            unreached = result.shadows["synthesis"]["unreached_classes"]
            print(f"{'':<16} classes hill climbing did not reach: {unreached or 'none'}")


if __name__ == "__main__":
    main()
