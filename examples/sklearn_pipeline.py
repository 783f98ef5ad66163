"""Audit a scikit-learn Pipeline of your own, fitted on Adult's raw DataFrame.

The Pipeline encodes the raw columns itself (a ColumnTransformer: scaled numbers,
one-hot categories) and fits a random forest. miaudit hands it the rows of your
DataFrame, never its own encoding; its shadow models are clones of your Pipeline
(``sklearn.base.clone``), each fitted on other rows of the same table.

Run it (about half a minute on two cores)::

    python examples/sklearn_pipeline.py
    python examples/sklearn_pipeline.py --members 1000 --shadows 2
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import miaudit


def make_pipeline_for(frame):
    features = frame.drop(columns="income")
    numeric = [c for c in features.columns if features[c].dtype.kind == "f"]
    categorical = [c for c in features.columns if c not in numeric]
    return make_pipeline(
        ColumnTransformer(
            [
                ("numbers", StandardScaler(), numeric),
                ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        ),
        RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1),
    )


def main(members: int = 5000, shadows: int = 8, seed: int = 0, out: str | None = None):
    frame = miaudit.load_frame("adult")  # 48,842 rows: 13 features and the income label
    rng = np.random.default_rng(seed)
    train_rows = rng.choice(len(frame), members, replace=False)

    pipeline = make_pipeline_for(frame)
    train = frame.iloc[train_rows]
    pipeline.fit(train.drop(columns="income"), train["income"])

    result = miaudit.audit(
        target=pipeline,
        data=frame,
        label="income",
        members=train_rows,  # row positions in `frame` (a boolean mask or ids work too)
        shadows=shadows,
        attacks=["shokri", "lira-offline", "rmia-offline", "loss", "gap"],
        seed=seed,
        out=out,
        overwrite=True,
    )
    print(result.summary())
    print(result.to_frame().sort_values("exposure_rank").head())
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--shadows", type=int, default=8)
    parser.add_argument("--out")
    args = parser.parse_args()
    main(args.members, args.shadows, out=args.out)
