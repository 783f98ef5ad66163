"""The summary table printed at the end of ``miaudit audit``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from miaudit.claim import claim_sentences
from miaudit.metrics import OPTIMISTIC_THRESHOLD, attack_strength
from miaudit.models.dp import dp_claim
from miaudit.report.disclosure import disclosure_note, level_of
from miaudit.report.findings import recommendations, verdict
from miaudit.report.run import Run
from miaudit.report.text import clean, markup_safe, print_table


def _rate(value: float | None) -> str:
    # None: the evaluation set has too few non-members to resolve that FPR.
    return "–" if value is None else f"{value:.3f}"


def describe_target(tg: dict, user: Callable[[object], str] = str) -> str:
    """``"mlp"``, or ``"the service at URL"``, with its output policy when there is one.

    ``user`` writes each piece of user text (the model, the address, the policies): the
    page passes its escaping (the rest is plain words and numbers), the terminal
    :func:`~miaudit.report.text.clean`.
    """
    if tg.get("source") == "http":
        what = f"the service at {user(tg['url'])}"
    elif tg.get("source") == "outputs" or tg.get("model") is None:
        what = "the model that gave the outputs"
    else:
        what = user(tg["model"])
    if tg.get("dp"):
        what += f" {dp_claim(tg['dp'])}"
    policy = ", ".join(user(p) for p in tg.get("defense") or [])
    return f"{what} (output policy: {policy})" if policy else what


def ranked_attacks(d: dict) -> list[tuple[str, dict]]:
    """``results.json``'s attacks, strongest first (see
    :func:`miaudit.metrics.attack_strength`)."""
    return sorted(d["attacks"].items(), key=lambda kv: attack_strength(kv[1]).key(), reverse=True)


def print_summary(result, out: Path, console: Console | None = None) -> None:
    """Target accuracy, each attack's headline numbers, and where the files are.

    User text (names of the data set, classes, attacks, the target's address, the
    folder) is :func:`~miaudit.report.text.clean` of control characters and bidi
    overrides, and never read as rich markup."""
    console = console or Console()
    if not console.is_terminal:  # a log: whole lines, not an 80-column box
        console.soft_wrap = True
    d = result.to_dict()
    tg = d["target"]
    # The verdict first: the one sentence a reader of the log needs (report.findings).
    run = Run(d, result.to_frame(label_names=False))
    found = verdict(run)
    # User text (class names) inside: printed as is, never read as rich markup.
    console.print(clean(found.sentence), style="bold", markup=False, highlight=False)
    for line in found.weakened:
        console.print(f"Weakened: {clean(line)}", markup=False, highlight=False)
    if tg.get("source") == "outputs":
        count = d["shadows"].get("count")
        what = (
            f"[bold]outputs computed elsewhere[/bold]: {tg['n_train']} members and "
            f"{tg['n_test']} non-members" + (f", {count} reference models" if count else "")
        )
    else:
        what = (
            f"[bold]{markup_safe(d['dataset']['name'])}[/bold]: "
            f"{describe_target(tg, user=markup_safe)} as target, "
            f"{tg['n_train']} training records"
        )
    shadows = "" if tg.get("source") == "outputs" else f"; {d['shadows']['count']} shadows"
    console.print(
        f"{what}, train accuracy {tg['train_accuracy']:.3f}, test accuracy "
        f"{tg['test_accuracy']:.3f}{shadows}",
        highlight=False,
    )
    # A compact box keeps every column readable in an 80-column terminal; a file or a
    # pipe gets plain aligned text, no cell cut (report.text).
    rows = []
    for name, a in ranked_attacks(d):
        t = a["tpr_at_fpr"]
        ci = (a.get("tpr_at_fpr_ci") or {}).get("0.01")
        mark = "*" if a.get("threshold_from") == OPTIMISTIC_THRESHOLD else ""
        rows.append((
            name,
            f"{a['auc']:.3f}",
            f"{a['precision']:.3f}{mark}",
            f"{a['recall']:.3f}{mark}",
            _rate(t["0.001"]),
            _rate(t["0.01"]),
            "–" if ci is None else f"{ci[0]:.3f}–{ci[1]:.3f}",
        ))  # fmt: skip
    headers = ("attack", "AUC", "prec.", "recall", "TPR@0.1%", "TPR@1%", "95% CI")
    print_table(
        console, "Membership inference", headers, rows, right=headers[1:], no_wrap=("attack",)
    )
    if any(v is None for a in d["attacks"].values() for v in a["tpr_at_fpr"].values()):
        console.print("– : too few non-members to resolve that false-positive rate", style="dim")
    if any(a.get("threshold_from") == OPTIMISTIC_THRESHOLD for a in d["attacks"].values()):
        console.print(
            "* no shadows to learn a threshold from: precision and recall at the one that "
            "best separates the evaluated records (optimistic); the rates need no threshold",
            style="dim",
            highlight=False,
        )
    skipped = d.get("skipped_attacks") or {}
    if skipped:
        console.print(
            "Not run, for want of what they need (the leak above is a lower bound): "
            + "; ".join(f"{clean(n)} ({clean(why)})" for n, why in skipped.items()),
            markup=False,
            highlight=False,
        )
    ranking = d["ranking"]
    if found.level == "not detected":
        console.print(clean(ranking["verdict"]), style="bold", markup=False, highlight=False)
    elif ranking["distinguishable_from_chance"]:
        console.print(clean(ranking["verdict"]), style="dim", markup=False, highlight=False)
    else:
        # The verdict's bound found a leak the ranking's one rate does not show: say only
        # how the table is ordered, not that nothing is distinguishable.
        console.print(
            f"Attacks ranked by the {clean(ranking['by'])}.",
            style="dim",
            markup=False,
            highlight=False,
        )
    if d.get("privacy_claim"):
        for line in claim_sentences(d["privacy_claim"]):
            console.print(clean(line), markup=False, highlight=False)
    console.print(
        "95% CI: the bootstrap interval of TPR at 1 % FPR. Lower bounds on ε, precision at "
        "fixed recall and per-class figures are in results.json and report.html.",
        style="dim",
    )
    advice = recommendations(run, found)
    for i, a in enumerate(advice, 1):
        console.print(
            f"What to do ({i}/{len(advice)}): {clean(a.action)}", markup=False, highlight=False
        )
    # "score:<attack>" entries break the attack_score stage down; count stages once.
    total = sum(v for k, v in d["timings_s"].items() if ":" not in k)
    console.print(
        f"{total:.1f} s in all; results in {markup_safe(out)}/ (results.json, report.html)"
    )
    console.print(disclosure_note(level_of(d)), style="dim", markup=False)
