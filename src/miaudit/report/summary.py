"""The summary table printed at the end of ``miaudit audit``."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def print_summary(result, out: Path, console: Console | None = None) -> None:
    """Target accuracy, each attack's headline numbers, and where the files are."""
    console = console or Console()
    d = result.to_dict()
    tg = d["target"]
    console.print(
        f"[bold]{d['dataset']['name']}[/bold]: {tg['model']} target on {tg['n_train']} records, "
        f"train accuracy {tg['train_accuracy']:.3f}, test accuracy {tg['test_accuracy']:.3f}; "
        f"{d['shadows']['count']} shadows",
        highlight=False,
    )
    table = Table(title="Membership inference", title_justify="left")
    for col in (
        "attack",
        "AUC",
        "precision",
        "recall",
        "advantage",
        "TPR@0.1%",
        "TPR@1%",
        "TPR@10%",
    ):
        table.add_column(col, justify="left" if col == "attack" else "right")
    ranked = sorted(d["attacks"].items(), key=lambda kv: -kv[1]["tpr_at_fpr"]["0.01"])
    for name, a in ranked:
        t = a["tpr_at_fpr"]
        table.add_row(
            name,
            f"{a['auc']:.3f}",
            f"{a['precision']:.3f}",
            f"{a['recall']:.3f}",
            f"{a['advantage']:.3f}",
            f"{t['0.001']:.4f}",
            f"{t['0.01']:.4f}",
            f"{t['0.1']:.4f}",
        )
    console.print(table)
    total = sum(d["timings_s"].values())
    console.print(f"{total:.1f} s in all; results in {out}/ (results.json, report.html)")
