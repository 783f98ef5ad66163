"""The contract of an experiment, and the one runner every experiment goes through.

An experiment is a sweep of audits (its :class:`Point` s), a row of figures from each,
and a sentence on whether the paper's finding holds. :func:`run_experiment` runs the
points through :func:`miaudit.audit` (so through the job cache: a rerun, or a sweep
that overlaps another, trains nothing twice) and writes a folder::

    table.csv, table.json   one row per point
    plot.png, plot.svg      matplotlib; the SVG is also inline in report.html
    summary.md              the table beside the paper's figures, and the finding
    report.html             one self-contained page of all of it
"""

from __future__ import annotations

import csv
import html
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.errors import ConfigError
from miaudit.files import private_dir, write_folder, write_text_atomic
from miaudit.metrics import json_safe
from miaudit.report.plots import to_svg


@dataclass(frozen=True)
class Point:
    """One audit of a sweep: its row's name, its position on the plot's x axis
    (``None``: the rows are categories), and the :func:`miaudit.audit` keyword
    arguments. ``data``, when given, builds the records (a DataFrame) the audit runs
    on; ``attack``: whose figures the row reports."""

    label: str
    x: float | None
    settings: dict[str, Any]
    attack: str = "shokri"
    data: Callable[[], Any] | None = None
    notes: dict[str, Any] = field(default_factory=dict)


class Experiment(ABC):
    """One of the paper's experiments (``miaudit experiment NAME``)."""

    #: The name on the command line.
    name: str
    #: A line for ``--help`` and the index page.
    title: str
    #: Markdown: what the paper found, with its figures.
    paper: str
    #: The x axis of the plot, and whether it is logarithmic.
    x_label: str = ""
    x_log: bool = False
    #: Columns of the summary beyond :data:`SHOWN`: (row key, heading).
    columns: tuple[tuple[str, str], ...] = ()
    #: What the full version took on the 2-core development machine (README, --help).
    full_time: str = "not measured yet"

    @abstractmethod
    def points(self, quick: bool) -> list[Point]:
        """The audits of the sweep; ``quick``: a small version for tests."""

    @abstractmethod
    def finding(self, rows: list[dict[str, Any]]) -> tuple[bool | None, str]:
        """Whether the paper's finding holds on ``rows`` (``None``: cannot tell), and a
        sentence saying so with the numbers."""

    def row(self, point: Point, result: Any) -> dict[str, Any]:
        """The figures of one audit: the target's accuracies and the attack's."""
        a = result.attacks[point.attack]
        ci = (a.tpr_at_fpr_ci or {}).get("0.01")
        best = max(result.attacks, key=lambda n: result.attacks[n].auc)
        tg = result.target
        return {
            "point": point.label,
            **({} if point.x is None else {"x": point.x}),
            "attack": point.attack,
            "train_accuracy": tg.train_accuracy,
            "test_accuracy": tg.test_accuracy,
            "gap": tg.train_accuracy - tg.test_accuracy,
            "precision": a.precision,
            "recall": a.recall,
            "mean_class_precision": a.mean_class_precision,
            "auc": a.auc,
            "tpr_at_1pct_fpr": a.tpr_at_fpr.get("0.01"),
            "tpr_ci_low": None if ci is None else ci[0],
            "tpr_ci_high": None if ci is None else ci[1],
            # The highest AUC of the attacks run, beside the paper's attack's.
            "best_auc_attack": best,
            "best_auc": result.attacks[best].auc,
            **point.notes,
        }

    def plot(self, rows: list[dict[str, Any]]):
        """A matplotlib figure of the rows: AUC, precision and TPR at 1 % FPR (with its
        interval) against the sweep's x (or per row, for categories)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
        numeric = all("x" in r for r in rows)
        xs = np.array([r["x"] for r in rows] if numeric else range(len(rows)), dtype=float)
        for key, label, colour, marker in PLOTTED:
            ys = np.array([np.nan if r.get(key) is None else r[key] for r in rows], float)
            ax.plot(xs, ys, marker=marker, color=colour, label=label)
        low = np.array([np.nan if r.get("tpr_ci_low") is None else r["tpr_ci_low"] for r in rows])
        high = np.array(
            [np.nan if r.get("tpr_ci_high") is None else r["tpr_ci_high"] for r in rows]
        )
        ax.fill_between(xs, low, high, color=PLOTTED[2][2], alpha=0.18, linewidth=0)
        if numeric:
            ax.set_xlabel(self.x_label)
            if self.x_log:
                ax.set_xscale("log")
                ax.set_xticks(xs, [f"{x:g}" for x in xs])
                ax.minorticks_off()
        else:
            ax.set_xticks(xs, [r["point"] for r in rows], rotation=35, ha="right")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title(self.title, fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        return fig


#: The quick versions' common audit, so that their sweeps share models in the job cache.
QUICK: dict[str, Any] = {
    "dataset": "census-occupation",
    "target_size": 300,
    "shadows": 4,
    "target": {"epochs": 15},
}


#: Shokri's attack models in the quick versions (the full ones use the paper's networks).
QUICK_LEARNER = "logreg"


def quick_base(quick: bool, **full: Any) -> dict[str, Any]:
    """The settings every point of a sweep shares: :data:`QUICK`'s in the quick
    version (deep-copied; :func:`run_experiment` adds :data:`QUICK_LEARNER`), else
    ``full``."""
    import copy

    return copy.deepcopy(QUICK) if quick else dict(full)


#: What the plot draws: key, legend, colour (Okabe-Ito, colour-blind safe), marker.
PLOTTED = (
    ("auc", "AUC", "#0072B2", "o"),
    ("precision", "precision", "#E69F00", "s"),
    ("tpr_at_1pct_fpr", "TPR at 1 % FPR (95 % interval)", "#009E73", "^"),
)


def run_experiment(
    experiment: Experiment,
    out: str | Path,
    *,
    quick: bool = False,
    execution: Any = None,
    device: str | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every point of ``experiment`` and write its folder in ``out``; returns what
    ``table.json`` holds."""
    import miaudit

    say = say or (lambda line: None)
    points = experiment.points(quick)
    check_data(points)
    check_sizes(experiment, points)
    out = private_dir(out)  # written whole at the end; a folder that cannot be made fails now
    rows, started = [], time.perf_counter()
    for i, point in enumerate(points, 1):
        t0 = time.perf_counter()
        settings = dict(point.settings)
        if point.data is not None:
            settings["data"] = point.data()
        if device is not None:
            settings["device"] = device
        if quick:  # logistic-regression attack models: a fraction of the networks' time
            attacks = settings.get("attacks", {})
            if "shokri" in attacks.get("run", ["shokri"]):
                settings["attacks"] = {**attacks, "shokri": {"learner": QUICK_LEARNER}}
        result = miaudit.audit(**settings, execution=execution, progress=False)
        row = experiment.row(point, result)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        row["models_trained"] = result.execution["jobs"]["trained"]
        rows.append(row)
        say(
            f"{experiment.name} {i}/{len(points)} ({point.label}): AUC {row['auc']:.3f}, "
            f"precision {row['precision']:.3f}, {row['seconds']:.0f} s"
        )
    holds, sentence = experiment.finding(rows)
    table = {
        "experiment": experiment.name,
        "title": experiment.title,
        "quick": quick,
        "rows": rows,
        "finding": {"holds": holds, "sentence": sentence},
        "seconds": round(time.perf_counter() - started, 1),
    }
    _write(experiment, out, table)
    return table


def check_data(points: list[Point]) -> None:
    """Refuse, before anything trains or loads, a sweep that names a built-in data set
    whose files are not installed here: the loader's one line saying what to install.

    Only the files' presence is checked (no parsing), so ``miaudit experiment all`` can
    tell at its start which experiments this machine cannot run."""
    from miaudit.data.builtin import is_builtin, resolve_builtin

    for point in points:
        name = point.settings.get("dataset")
        if point.data is None and isinstance(name, str) and is_builtin(name):
            resolve_builtin(name, point.settings.get("label")).source_files()


def check_sizes(experiment: Experiment, points: list[Point]) -> None:
    """Refuse, before training anything, a sweep point whose built-in data set cannot
    supply its target's size (members, as many non-members and a pool of twice the
    target for the shadows): one line naming the point and what fits."""
    from miaudit.data import load_dataset
    from miaudit.errors import DataError
    from miaudit.splits import max_target_size

    for point in points:
        size, name = point.settings.get("target_size"), point.settings.get("dataset")
        if size is None or name is None or point.data is not None:
            continue
        n = load_dataset(name).n_records
        if size > max_target_size(n):
            raise DataError(
                f"experiment {experiment.name}, point {point.label!r}: a target of {size:,} "
                f"records needs {4 * size:,} records (members, as many non-members, a shadow "
                f"pool of twice the target), but {name} has {n:,}: at most "
                f"{max_target_size(n):,} fit"
            )


#: The files of an experiment's folder (written together, swapped in whole).
EXPERIMENT_FILES = (
    "table.json", "table.csv", "plot.png", "plot.svg", "summary.md", "report.html"
)  # fmt: skip


def _write(experiment: Experiment, out: Path, table: dict[str, Any]) -> None:
    """The experiment's folder, written whole (:func:`miaudit.files.write_folder`): a
    kill at any step leaves the old complete folder or the new one."""

    def fill(tmp: Path) -> None:
        rows = table["rows"]
        (tmp / "table.json").write_text(json.dumps(json_safe(table), indent=2) + "\n")
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with open(tmp / "table.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
        fig = experiment.plot(rows)
        fig.savefig(tmp / "plot.png", dpi=120, metadata={"Software": None})
        # The report's SVG writer: no date, fixed ids, text as text; same rows, same file.
        svg = to_svg(fig)
        (tmp / "plot.svg").write_text(svg + "\n")
        import matplotlib.pyplot as plt

        plt.close(fig)
        (tmp / "summary.md").write_text(summary_markdown(experiment, table))
        (tmp / "report.html").write_text(_page(experiment, table, svg))

    write_folder(out, fill, EXPERIMENT_FILES, ConfigError, "free space or choose another --out")


#: The columns the summary and the page show, with their headings.
SHOWN = (
    ("point", "point"),
    ("attack", "attack"),
    ("train_accuracy", "train acc."),
    ("test_accuracy", "test acc."),
    ("precision", "precision"),
    ("recall", "recall"),
    ("auc", "AUC"),
    ("tpr_at_1pct_fpr", "TPR@1% FPR"),
    ("best_auc", "best AUC (any attack run)"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _shown(experiment: Experiment, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    keys = dict.fromkeys(k for r in rows for k in r if k.startswith("paper"))
    paper = [(k, k.replace("_", " ")) for k in keys]
    return [*SHOWN, *experiment.columns, *paper]


def summary_markdown(experiment: Experiment, table: dict[str, Any]) -> str:
    rows = table["rows"]
    shown = _shown(experiment, rows)
    lines = [
        f"# {experiment.title}",
        "",
        f"`miaudit experiment {experiment.name}{' --quick' if table['quick'] else ''}`: "
        f"{len(rows)} audits in {table['seconds']:.0f} s.",
        "",
        "| " + " | ".join(h for _, h in shown) + " |",
        "|" + "---|" * len(shown),
    ]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(k)) for k, _ in shown) + " |")
    holds = table["finding"]["holds"]
    verdict = {True: "Holds", False: "Does not hold", None: "Cannot tell"}[holds]
    lines += [
        "",
        f"**{verdict}.** {table['finding']['sentence']}",
        "",
        "## The paper",
        "",
        experiment.paper,
        "",
        "![plot](plot.png)",
        "",
    ]
    return "\n".join(lines)


def _page(experiment: Experiment, table: dict[str, Any], svg: str) -> str:
    rows = table["rows"]
    shown = _shown(experiment, rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in shown)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(k)))}</td>" for k, _ in shown) + "</tr>"
        for r in rows
    )
    holds = {True: "Holds", False: "Does not hold", None: "Cannot tell"}[table["finding"]["holds"]]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(experiment.title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:right}}
td:first-child,th:first-child{{text-align:left}} svg{{max-width:100%;height:auto}}</style>
</head><body><h1>{html.escape(experiment.title)}</h1>
<p><b>{holds}.</b> {html.escape(table["finding"]["sentence"])}</p>
<table><tr>{head}</tr>{body}</table>
{svg}
<h2>The paper</h2><p>{html.escape(experiment.paper)}</p>
</body></html>
"""


def write_index(
    out: Path,
    done: list[tuple[Experiment, dict[str, Any]]],
    *,
    quick: bool = False,
    not_run: Sequence[tuple[Experiment, str]] = (),
) -> Path:
    """``index.html`` of ``miaudit experiment all``: which command wrote it (the quick
    versions are not the paper's sizes), each experiment's finding and its page, and the
    experiments that could not run here, each with why."""
    items = []
    for exp, table in done:
        holds = {True: "holds", False: "does not hold", None: "cannot tell"}[
            table["finding"]["holds"]
        ]
        items.append(
            f"<li><a href='{exp.name}/report.html'>{html.escape(exp.title)}</a>: the "
            f"paper's finding <b>{holds}</b>. {html.escape(table['finding']['sentence'])} "
            f"<small>({table['seconds']:.0f} s)</small></li>"
        )
    command = "miaudit experiment all" + (" --quick" if quick else "")
    size = (
        "the small versions of the sweeps (seconds each), not the paper's sizes, so a "
        "finding may differ from the full version's"
        if quick
        else "the full versions of the sweeps"
    )
    ran = f"{len(done)} of {len(done) + len(not_run)} experiments ran"
    missing = ""
    if not_run:
        rows = "".join(
            f"<li><b>{html.escape(exp.name)}</b> ({html.escape(exp.title)}): "
            f"{html.escape(reason)}</li>"
            for exp, reason in not_run
        )
        missing = f"<h2>Not run here</h2><ul class=notrun>{rows}</ul>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>miaudit: the paper's experiments</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em}}
li{{margin:.6em 0}}</style></head><body>
<h1>Shokri et al. 2017: the experiments, reproduced</h1>
<p><code>{html.escape(command)}</code>: {size}; {ran}.</p>
<ul>{"".join(items)}</ul>
{missing}
</body></html>
"""
    # Nothing may have run (every experiment's data missing): the folder is still the
    # place the user was told to look.
    path = private_dir(out)
    return write_text_atomic(path / "index.html", page, ConfigError, "choose another --out")


def get_experiment(name: str, registry: dict[str, Experiment]) -> Experiment:
    """The experiment called ``name``; one line naming the nearest when there is none."""
    import difflib

    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(name, [*registry, "all"], n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"no experiment {name!r}: {hint}choose from {', '.join(registry)} or all")


def sweep_values(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    """``key`` of every row, ``nan`` where missing."""
    return [float("nan") if r.get(key) is None else float(r[key]) for r in rows]
