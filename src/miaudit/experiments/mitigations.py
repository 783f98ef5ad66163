"""``mitigations``: the paper's Table 3 layout. Each mitigation against Shokri's attack,
re-trained against it (the shadows answer through the same policy, or train with the
same recipe), with the target's test accuracy; DP-SGD rows besides the paper's."""

from __future__ import annotations

from typing import Any

from miaudit.experiments.base import Experiment, Point, quick_base

#: (row, audit settings beyond the base, attack) in the paper's order, then DP-SGD.
ROWS: list[tuple[str, dict[str, Any], str]] = [
    ("none", {}, "shokri"),
    ("top-3", {"defense": ["top-k=3"]}, "shokri"),
    ("top-1", {"defense": ["top-k=1"]}, "shokri"),
    ("round 3 decimals", {"defense": ["round=3"]}, "shokri"),
    ("round 1 decimal", {"defense": ["round=1"]}, "shokri"),
    ("temperature 5", {"defense": ["temperature=5"]}, "shokri"),
    ("temperature 20", {"defense": ["temperature=20"]}, "shokri"),
    ("L2 1e-4", {"target": {"l2": 1e-4}}, "shokri"),
    ("L2 1e-3", {"target": {"l2": 1e-3}}, "shokri"),
    ("L2 1e-2", {"target": {"l2": 1e-2}}, "shokri"),
    ("DP-SGD ε=8", {"target": {"dp_epsilon": 8.0}}, "shokri"),
    ("DP-SGD ε=4", {"target": {"dp_epsilon": 4.0}}, "shokri"),
    ("DP-SGD ε=1", {"target": {"dp_epsilon": 1.0}}, "shokri"),
    # Labels only: no probabilities to attack; the gap attack (member if classified
    # right) is what remains.
    ("label-only", {"defense": ["label-only"]}, "gap"),
]
QUICK = ("none", "top-1", "L2 1e-2", "DP-SGD ε=1", "label-only")


class Mitigations(Experiment):
    name = "mitigations"
    title = "Mitigations against Shokri's attack (census-occupation, MLP; the paper's Table 3)"
    full_time = "about 8 min"
    columns = (("claimed_epsilon", "claimed ε"), ("epsilon_lower_bound", "ε ≥ (95 %)"))
    paper = (
        "Restricting the output to the top-k classes (k = 3, 1), rounding (3 and 1 "
        "decimals) and a higher softmax temperature (5, 20) help little; label-only "
        "outputs and strong L2 regularisation (1e-2) help most, and regularisation can "
        "even improve test accuracy (Shokri et al. 2017, §1 of PAPER.md)."
    )

    def points(self, quick: bool) -> list[Point]:
        base = quick_base(quick, dataset="census-occupation", shadows=10)
        epochs = base.pop("target", {})
        points = []
        for label, extra, attack in ROWS:
            if quick and label not in QUICK:
                continue
            # Shokri's attack, the paper's; beside it the gap attack (member if classified
            # right), which needs labels only: the leakage left after any output policy.
            run = [attack] if attack == "gap" else [attack, "gap"]
            settings = {**base, **extra, "attacks": {"run": run}}
            settings["target"] = {**epochs, **extra.get("target", {})}
            points.append(Point(label, None, settings, attack=attack))
        return points

    def row(self, point: Point, result: Any) -> dict[str, Any]:
        row = super().row(point, result)
        claim = result.privacy_claim
        if claim is not None:
            row["claimed_epsilon"] = claim["claimed"]["epsilon"]
            row["epsilon_lower_bound"] = claim["lower_bound"]["epsilon"]
        return row

    def finding(self, rows: list[dict[str, Any]]) -> tuple[bool | None, str]:
        by = {r["point"]: r for r in rows}
        none = by["none"]
        output = [r for r in rows if r["point"].startswith(("top", "round", "temperature"))]
        training = [r for r in rows if r["point"].startswith(("L2", "DP"))]
        drop_out = max((none["auc"] - r["auc"] for r in output), default=0.0)
        drop_train = max((none["auc"] - r["auc"] for r in training), default=0.0)
        label = by.get("label-only")
        # Labels only leave the gap attack, which a full output allows too: compare the
        # strongest attacks of both rows.
        label_helps = label is None or label["best_auc"] <= none["best_auc"]
        holds = drop_train > drop_out and label_helps
        best = min(training, key=lambda r: r["auc"], default=none)
        labels = (
            ""
            if label is None
            else f" With labels only the best attack's AUC is {label['best_auc']:.3f}, against "
            f"{none['best_auc']:.3f} ({none['best_auc_attack']}) with the full output."
        )
        return holds, (
            f"Without a mitigation Shokri's attack has AUC {none['auc']:.3f}. Output "
            f"restriction lowers it by at most {drop_out:.3f}; the training-time defences by up "
            f"to {drop_train:.3f} ({best['point']}: AUC {best['auc']:.3f}, test accuracy "
            f"{best['test_accuracy']:.3f} against {none['test_accuracy']:.3f}).{labels}"
        )
