"""``shadows``: attack strength against the number of shadow models (paper §1: a
handful of shadows already give most of the attack's strength)."""

from __future__ import annotations

from typing import Any

from miaudit.experiments.base import Experiment, Point, quick_base


class Shadows(Experiment):
    name = "shadows"
    title = "Shokri's attack against the number of shadow models (census-occupation, MLP)"
    paper = (
        "A handful of shadows already give most of the attack's strength; more help a "
        "little (Shokri et al. 2017, §1 of PAPER.md)."
    )
    full_time = "about 4 min"
    x_label = "shadow models"
    x_log = True

    def points(self, quick: bool) -> list[Point]:
        counts = [1, 4, 16] if quick else [1, 2, 4, 8, 16, 32, 64]
        base = quick_base(quick, dataset="census-occupation")
        base["attacks"] = {"run": ["shokri"]}
        return [Point(f"{k}", k, {**base, "shadows": k}) for k in counts]

    def finding(self, rows: list[dict[str, Any]]) -> tuple[bool | None, str]:
        first, last = rows[0], rows[-1]
        # "A handful": the last point at or below 8 shadows.
        handful = [r for r in rows if r["x"] <= 8][-1]
        low = first["tpr_ci_low"]
        not_worse = low is None or (last["tpr_at_1pct_fpr"] or 0) >= low
        little_more = last["auc"] - handful["auc"] <= 0.02
        return not_worse and little_more, (
            f"AUC {first['auc']:.3f} with {first['point']} shadow, {handful['auc']:.3f} with "
            f"{handful['point']}, {last['auc']:.3f} with {last['point']}; TPR at 1 % FPR "
            f"{_rate(first['tpr_at_1pct_fpr'])} → {_rate(handful['tpr_at_1pct_fpr'])} → "
            f"{_rate(last['tpr_at_1pct_fpr'])}. The most shadows are "
            f"{'not ' if not_worse else ''}worse than one beyond its interval, and add "
            f"{last['auc'] - handful['auc']:+.3f} AUC to {handful['point']}'s."
        )


def _rate(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"
