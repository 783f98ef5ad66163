"""``overfitting``: leakage against the train–test gap, swept by training epochs (paper
§1: leakage grows with overfitting, but is not only overfitting)."""

from __future__ import annotations

from typing import Any

import numpy as np

from miaudit.experiments.base import Experiment, Point, quick_base


class Overfitting(Experiment):
    name = "overfitting"
    title = "Leakage against the train–test gap, by training epochs (census-occupation, MLP)"
    full_time = "about 2 min"
    columns = (("gap", "train–test gap"),)
    paper = (
        "Leakage grows with the train/test accuracy gap (overfitting) but is not only "
        "overfitting: well-generalising models with many classes still leak (Shokri et al. "
        "2017, §1 of PAPER.md)."
    )
    x_label = "training epochs"
    x_log = True

    def points(self, quick: bool) -> list[Point]:
        epochs = [1, 5, 15] if quick else [2, 5, 10, 25, 50, 100]
        base = quick_base(quick, dataset="census-occupation", shadows=10)
        base["attacks"] = {"run": ["shokri"]}
        return [
            Point(f"{e} epoch{'s' * (e != 1)}", e, {**base, "target": {"epochs": e}})
            for e in epochs
        ]

    def finding(self, rows: list[dict[str, Any]]) -> tuple[bool | None, str]:
        gap = np.array([r["gap"] for r in rows])
        auc = np.array([r["auc"] for r in rows])
        rho = _spearman(gap, auc)
        small = min(rows, key=lambda r: r["gap"])
        holds = bool(rho > 0.5)
        return holds, (
            f"Spearman correlation of the gap and the attack's AUC: {rho:.2f} (gap "
            f"{gap.min():.3f} → {gap.max():.3f}, AUC {auc.min():.3f} → {auc.max():.3f}). At "
            f"the smallest gap ({small['gap']:.3f}, {small['point']}) the AUC is still "
            f"{small['auc']:.3f}: with 46 classes a model that barely overfits leaks."
        )


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)
