"""The verdict's level before and after issue 26, side by side on the same outputs.

Where it sits: ``metrics -> report``. Two scikit-learn Pipelines of the user's own (a
random forest and gradient boosting) are trained on one 75/25 split of a real data set
with fewer than 1,000 non-members; their outputs go to :func:`miaudit.evaluate`. Printed
for each model: train/test accuracy, the strongest attack's AUC and TPR at 1 % FPR, the
level the old rule gives on the same attacks (the ranking's strongest attack at the
ranking rate: the larger of the lower end of its TPR interval over that rate and
e^ε of its Clopper–Pearson bound, levels 2/10/50), the old ``evaluate`` default (the gap
attack alone), and the new verdict (level, ratio, ε, and the non-members that would
decide the next level).

    python bench/verdict_levels.py [--dataset census-major-occupation] [--records 3000]

About 20 s on the 2-core development VM.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import miaudit


def old_rule(results: dict) -> tuple[str, float]:
    """The level before issue 26, from a results.json dictionary."""
    f = results["ranking"]["fpr"]
    a = results["attacks"][results["strongest_attack"]]
    key = f"{f:g}"
    ci, eps = a["tpr_at_fpr_ci"].get(key), a["epsilon_lower_bound_cp"].get(key)
    ratio = max(0.0 if ci is None else ci[0] / f, 0.0 if eps is None else math.exp(eps))
    if not results["ranking"]["distinguishable_from_chance"]:
        return "not detected", ratio
    level = (
        "severe" if ratio >= 50 else "high" if ratio >= 10 else "moderate" if ratio >= 2 else "low"
    )
    return level, ratio


def two_models(
    dataset: str = "census-major-occupation",
    records: int = 3000,
    seed: int = 0,
    *,
    trees: int = 100,
    boosting_rounds: int = 100,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Labels, the training mask (75 % of ``records``) and each Pipeline's probabilities
    on all the records: a random forest and gradient boosting, each behind a one-hot
    encoder of the categorical columns, fitted on the same members. The test of the
    verdict's monotonicity on real data uses it too."""
    frame = miaudit.load_frame(dataset)
    label = frame.columns[-1]
    rng = np.random.default_rng(seed)
    df = frame.iloc[rng.choice(len(frame), records, replace=False)].reset_index(drop=True)
    classes = sorted(df[label].astype(str).unique())
    y = df[label].astype(str).map(classes.index).to_numpy()
    X = df.drop(columns=label)
    categorical = list(X.select_dtypes(exclude="number").columns)
    train = np.zeros(len(df), bool)
    train[rng.choice(len(df), int(0.75 * len(df)), replace=False)] = True
    models = {
        "random forest": RandomForestClassifier(n_estimators=trees, random_state=seed),
        "gradient boosting": HistGradientBoostingClassifier(
            max_iter=boosting_rounds, random_state=seed
        ),
    }
    outputs = {}
    for name, model in models.items():
        encode = ColumnTransformer(
            [("c", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
            remainder="passthrough",
        )
        pipe = make_pipeline(encode, model).fit(X[train], y[train])
        P = np.zeros((len(df), len(classes)))
        P[:, pipe.classes_] = pipe.predict_proba(X)
        outputs[name] = P
    return y, train, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="census-major-occupation")
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    y, train, outputs = two_models(args.dataset, args.records, args.seed)
    print(f"{args.dataset}: {train.sum():,} members, {(~train).sum():,} non-members")
    for name, P in outputs.items():
        result = miaudit.evaluate(P, y, train, bootstrap=1000)
        d = result.to_dict()
        gap_only = miaudit.evaluate(P, y, train, bootstrap=1000, attacks=["gap"]).to_dict()
        found = result.verdict()
        best = d["attacks"][d["strongest_attack"]]
        correct = P.argmax(axis=1) == y
        old, old_ratio = old_rule(d)
        gap_level, gap_ratio = old_rule(gap_only)
        print(
            f"{name}: train/test accuracy {correct[train].mean():.3f}/"
            f"{correct[~train].mean():.3f}; "
            f"strongest {d['strongest_attack']} AUC {best['auc']:.3f}, TPR at 1 % FPR "
            f"{best['tpr_at_fpr']['0.01']:.3f}\n"
            f"  old rule, same attacks: {old} ({old_ratio:.1f}); old evaluate default (gap "
            f"alone): {gap_level} ({gap_ratio:.1f})\n"
            f"  new: {found.label}, ratio {found.ratio:.2f}, ε ≥ {found.epsilon:.2f} "
            f"({found.attack}); next level decided by {found.nonmembers_needed} non-members"
        )


if __name__ == "__main__":
    main()
