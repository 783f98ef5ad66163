"""The team's own training script: fit the model that ships, and keep what an audit
needs beside it (the table it was trained from and which rows it was trained on).

In your repository this is your training code; here it fits a scikit-learn Pipeline (a
random forest on Adult's raw columns) on 1,000 rows of the table miaudit ships, so that
the workflow in ``.github/workflows/privacy-audit.yml`` runs as written in a minute.

    python train.py            # writes build/model.joblib, build/data.csv, build/train_rows.npy
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from miaudit.data import load_frame

BUILD = Path(__file__).parent / "build"
ROWS = 6_000  # the rows this project works with
TRAIN = 1_000  # of them, the rows the model is trained on


def main() -> None:
    frame = load_frame("adult").sample(ROWS, random_state=0).reset_index(drop=True)
    train_rows = np.random.default_rng(0).permutation(ROWS)[:TRAIN]
    features = frame.drop(columns="income")
    numeric = [c for c in features.columns if features[c].dtype.kind == "f"]
    categorical = [c for c in features.columns if c not in numeric]
    model = make_pipeline(
        ColumnTransformer([
            ("numbers", StandardScaler(), numeric),
            ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]),
        RandomForestClassifier(n_estimators=50, random_state=0, n_jobs=1),
    )  # fmt: skip
    model.fit(features.iloc[train_rows], frame["income"].iloc[train_rows])
    BUILD.mkdir(exist_ok=True)
    joblib.dump(model, BUILD / "model.joblib")
    frame.to_csv(BUILD / "data.csv", index=False)
    np.save(BUILD / "train_rows.npy", train_rows)
    print(f"trained on {len(train_rows):,} rows; wrote {BUILD}")


if __name__ == "__main__":
    main()
