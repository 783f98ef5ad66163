"""``size``: leakage against the target's training-set size, Fashion-MNIST CNNs (the
stand-in for the paper's CIFAR-10; paper §1: leakage shrinks as the training set grows)."""

from __future__ import annotations

from typing import Any

from miaudit.experiments.base import Experiment, Point

SIZES = [2500, 5000, 10000, 15000]


class Size(Experiment):
    name = "size"
    title = "Leakage against the training-set size (Fashion-MNIST, CNN)"
    full_time = "about 11 min"
    columns = (("mean_class_precision", "mean precision per class"),)
    paper = (
        "CIFAR-10 at 2,500, 5,000, 10,000 and 15,000 training records: the attack's "
        "precision per class falls as the training set grows; its mean is 0.74 at 15,000 "
        "(Shokri et al. 2017, §1 of PAPER.md)."
    )
    x_label = "training records"
    x_log = True

    def points(self, quick: bool) -> list[Point]:
        base: dict[str, Any] = {
            "dataset": "fashion-mnist",
            "attacks": {"run": ["shokri"]},
            "shadows": 2 if quick else 10,
        }
        if quick:
            base["target"] = {"epochs": 3}
        sizes = [250, 1000] if quick else SIZES
        return [
            Point(f"{n:,}", n, {**base, "target_size": n},
                  notes={"paper_mean_class_precision": 0.74 if n == 15000 else None})
            for n in sizes
        ]  # fmt: skip

    def finding(self, rows: list[dict[str, Any]]) -> tuple[bool | None, str]:
        first, last = rows[0], rows[-1]
        a, b = first["mean_class_precision"], last["mean_class_precision"]
        if a is None or b is None:
            return None, "too few records per class to measure the mean precision per class."
        holds = b <= a
        return holds, (
            f"Mean precision per class {a:.3f} at {first['point']} training records, {b:.3f} "
            f"at {last['point']} (AUC {first['auc']:.3f} → {last['auc']:.3f}; train–test gap "
            f"{first['gap']:.3f} → {last['gap']:.3f})."
        )
