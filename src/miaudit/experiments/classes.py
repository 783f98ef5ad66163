"""``classes``: leakage against the number of classes (paper §1: Purchase-2 …
Purchase-100, precision ≈ 0.50 → 0.935 against Google-trained models).

Two series: census with its labels of 2, 14, 46 and 51 classes; and a Purchase-style
construction as the paper built Purchase: census records' binary (one-hot) features
clustered by k-means into k classes, the cluster being the label."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from miaudit.experiments.base import Experiment, Point, quick_base

CENSUS = [
    ("census-income", 2),
    ("census-major-occupation", 14),
    ("census-occupation", 46),
    ("census-industry", 51),
]
CLUSTERS = [2, 10, 20, 50, 100]
#: The paper's precision on Purchase-k against Google's models (recalled, ≈).
PAPER = {2: 0.50, 100: 0.935}


@functools.lru_cache(maxsize=2)
def _binary_features(limit: int | None) -> np.ndarray:
    """Census records' one-hot columns (the encoded features that are all 0 or 1)."""
    from miaudit.data import load_dataset

    X = load_dataset("census-occupation").X
    binary = np.all((X == 0) | (X == 1), axis=0)
    X = X[:, binary].astype(np.int8)
    return X if limit is None else X[:limit]


def purchase_like(k: int, limit: int | None = None):
    """A DataFrame of census's binary features labelled by their k-means cluster
    (``cluster``), as the paper built Purchase-k (k-means, one start, seed 0)."""
    import pandas as pd
    from sklearn.cluster import KMeans

    X = _binary_features(limit)
    labels = KMeans(n_clusters=k, n_init=1, random_state=0).fit_predict(X.astype(np.float32))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["cluster"] = [f"c{c:03d}" for c in labels]
    return frame


class Classes(Experiment):
    name = "classes"
    title = "Leakage against the number of classes (census labels; Purchase-style clusters)"
    full_time = "about 5 min"
    columns = (("series", "series"),)
    paper = (
        "Leakage grows with the number of classes: against Google-trained models of "
        "Purchase-2 … Purchase-100 the attack's precision rises from ≈ 0.50 to 0.935 "
        "(Shokri et al. 2017, §1 of PAPER.md)."
    )
    x_label = "classes"
    x_log = True

    def points(self, quick: bool) -> list[Point]:
        base = quick_base(quick, shadows=10)
        base.pop("dataset", None)
        base["attacks"] = {"run": ["shokri"]}
        points = [
            Point(f"{name} ({c})", c, {**base, "dataset": name}, notes={"series": "census"})
            for name, c in CENSUS
            if not quick or c in (2, 46)
        ]
        limit = 4000 if quick else None
        for k in [2, 20] if quick else CLUSTERS:
            point = Point(
                f"purchase-style k={k}",
                k,
                {**base, "label": "cluster"},
                data=functools.partial(purchase_like, k, limit),
                notes={"series": "purchase-style", "paper_precision": PAPER.get(k)},
            )
            points.append(point)
        return points

    def plot(self, rows: list[dict[str, Any]]):
        fig = super().plot([r for r in rows if r["series"] == "census"])
        ax = fig.axes[0]
        purchase = [r for r in rows if r["series"] == "purchase-style"]
        ax.plot([r["x"] for r in purchase], [r["precision"] for r in purchase], "s--",
                color="#D55E00", label="precision, Purchase-style")  # fmt: skip
        ax.plot([r["x"] for r in purchase], [r["auc"] for r in purchase], "o--",
                color="#56B4E9", label="AUC, Purchase-style")  # fmt: skip
        ticks = sorted({r["x"] for r in rows})
        ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        return fig

    def finding(self, rows: list[dict[str, Any]]) -> tuple[bool | None, str]:
        out, holds = [], True
        for series in ("census", "purchase-style"):
            part = sorted((r for r in rows if r["series"] == series), key=lambda r: r["x"])
            if len(part) < 2:
                continue
            lo, hi = part[0], part[-1]
            holds &= hi["auc"] > lo["auc"]
            out.append(
                f"{series}: {lo['x']:g} classes precision {lo['precision']:.3f} (AUC "
                f"{lo['auc']:.3f}) → {hi['x']:g} classes {hi['precision']:.3f} "
                f"(AUC {hi['auc']:.3f})"
            )
        return holds, "; ".join(out) + "."
