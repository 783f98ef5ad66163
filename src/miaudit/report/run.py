"""A finished run as the report reads it: ``results.json`` and ``scores.csv``.

Position in the pipeline: ``metrics -> report``. :class:`Run` is all a page needs;
an audit in memory becomes one from its dict and ``scores.csv`` frame, and a run folder
with :func:`load_run`, so ``report.html`` written at the end of an audit and the one
``miaudit report`` writes later from the folder are the same bytes.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from miaudit.disclosure import (
    LEVELS,
    check_level,
    level_of,
    redact_results,
    redact_scores,
    shows_more,
)
from miaudit.errors import ConfigError
from miaudit.files import check_readable, file_sha256, os_reason
from miaudit.report.cells import unescape_cells
from miaudit.report.text import UNPRINTABLE

# The results format, the user's label values and a run's two tables are below the
# result that writes them and the report that reads them back (miaudit.results_format);
# named here too, where the report's readers have found them.
from miaudit.results_format import CLASS_INDEX_FORMAT, RESULTS_FORMAT, RunTables, label_values
from miaudit.results_format import results_format as _format

__all__ = [
    "CLASS_INDEX_FORMAT",
    "MAX_DEPTH",
    "RESULTS_FORMAT",
    "Run",
    "check_results",
    "label_values",
    "load_run",
    "read_results",
]

#: What a page cannot be drawn without: ``results.json``'s sections and each attack's.
_NEEDED = ("dataset", "target", "shadows", "attacks", "strongest_attack", "ranking",
           "most_exposed", "seed")  # fmt: skip
_NEEDED_ATTACK = ("auc", "precision", "recall", "advantage", "tpr_at_fpr", "per_class",
                  "n_members", "n_nonmembers")  # fmt: skip


@dataclass(frozen=True)
class Run(RunTables):
    """One run: its ``results.json`` (as a dict), its ``scores.csv`` (as a DataFrame
    with ``record``, optional ``id``, ``label`` (the user's value), ``class_index``,
    ``member`` 0/1, a ``score_<attack>`` column per attack, ``exposure_rank``; a run of
    results format 2 or older has class codes in ``label`` and no ``class_index``), and
    where it lies: :class:`miaudit.results_format.RunTables` (what the verdict reads),
    and what a page at a level of ``--records`` shows of it (:meth:`shown_at`)."""

    def shown_at(self, level: str) -> Run:
        """This run as a page at ``level`` shows it (:mod:`miaudit.report.disclosure`):
        at most what its files hold; asking more is one line."""
        held = level_of(self.results)
        check_level(level)
        if shows_more(level, held):
            raise ConfigError(
                f"--records {level}: this run was written with --records {held}, so its files "
                f"hold no more; pass --records {held} or less, or run the audit again"
            )
        return Run(
            redact_results(self.results, level), redact_scores(self.scores, level), self.path
        )


def load_run(folder: str | Path) -> Run:
    """Read a run folder, checking what the report needs.

    Raises
    ------
    ConfigError
        One line naming the file and the problem: no folder, no ``results.json`` or
        ``scores.csv``, damaged JSON or CSV, a file from another miaudit that lacks a
        field, or scores that disagree with the results.
    """
    folder = Path(folder)
    check_readable(folder, ConfigError)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such run folder (pass the --out folder of an audit)")
    results_path, scores_path = folder / "results.json", folder / "scores.csv"
    for p in (results_path, scores_path):
        if not p.is_file():
            raise ConfigError(
                f"{p}: missing; {folder} is not a complete run folder (an audit writes "
                "results.json and scores.csv together)"
            )
    results = read_results(results_path)
    check_results(results, results_path)
    _check_one_run(folder, results)
    try:
        scores = unescape_cells(pd.read_csv(scores_path))
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"{scores_path}: damaged, not a CSV table ({_reason(exc)})") from None
    _check_scores(scores, results, scores_path)
    return Run(results, scores, folder)


def _check_one_run(folder: Path, results: dict[str, Any]) -> None:
    """That ``scores.csv`` and ``config.json`` belong with ``results.json``: one
    ``run_id`` in both JSON files and ``scores.csv``'s SHA-256 in ``results.json``
    (runs before these fields were written are read without the check)."""
    mixed = "files of two runs are put together (a copy or an edit); run the audit again"
    run_id = results.get("run_id")
    if run_id is None:
        return
    if not isinstance(run_id, str) or not re.fullmatch(r"[0-9a-f]{32}", run_id):
        raise ConfigError(
            f"{folder / 'results.json'}: run_id is {_shown(run_id)}, not one miaudit "
            "writes: the run folder is damaged or was edited"
        )
    config_path = folder / "config.json"
    if config_path.is_file():
        config = read_results(config_path)
        theirs = config.get("run_id") if isinstance(config, dict) else None
        if theirs != run_id:
            raise ConfigError(
                f"{config_path} is of run {_shown(theirs)}, results.json of run {run_id}: {mixed}"
            )
    expected = results.get("scores_sha256")
    if expected is not None:
        scores_path = folder / "scores.csv"
        try:
            actual = file_sha256(scores_path)
        except OSError as exc:
            raise ConfigError(f"{scores_path} cannot be read ({os_reason(exc)})") from None
        if actual != expected:
            raise ConfigError(
                f"{scores_path} is not the scores.csv of run {run_id} beside it "
                f"(its SHA-256 differs from results.json's scores_sha256): {mixed}"
            )


def read_results(path: Path) -> Any:
    """``path``'s JSON, or one line naming the file: not JSON, not UTF-8, a number too
    long to read (Python refuses integers of more than 4,300 digits), or nested too deep
    to parse (the parser recurses)."""
    damaged = "the run folder is damaged or was edited"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: damaged, not JSON ({_reason(exc)})") from None
    except ValueError:  # int("9" * 5000): beyond Python's limit on digits
        raise ConfigError(
            f"{path}: holds a number of more than {sys.get_int_max_str_digits():,} digits, "
            f"not results: {damaged}"
        ) from None
    except RecursionError:
        raise ConfigError(
            f"{path}: lists or tables nested too deeply to read, not results: {damaged}"
        ) from None


#: The deepest nesting of lists and tables a results.json holds is about 7 (a canary
#: game's tries); far beyond it, drawing the page would recurse past Python's limit.
MAX_DEPTH = 64


def check_results(results: Any, where: Path | str = "results.json") -> None:
    """That ``results`` is a ``results.json`` this miaudit can read (one-line errors).

    This is the one place that checks what the page and the terminal read: every
    section, every field read as a number (an ``int`` or a finite ``float``, never a
    bool or text: a number is written into the page as it is), and the nesting.
    Text is escaped where it is written (``report.html``).
    """
    if not isinstance(results, dict):
        raise ConfigError(f"{where}: damaged, holds a {type(results).__name__}, not the results")
    _check_depth(results, where)
    version = results.get("miaudit_version", "an unknown version")
    fmt = _format(results)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise ConfigError(
            f"{where}: results_format is {_shown(fmt)}, not a whole number: the run folder is "
            "damaged or was edited"
        )
    if fmt > RESULTS_FORMAT:
        raise ConfigError(
            f"{where}: written by miaudit {version} in results format {fmt}, newer than this "
            f"miaudit reads ({RESULTS_FORMAT}): upgrade miaudit"
        )
    older = f"(written by miaudit {version}, older than this one: run the audit again)"
    for key in _NEEDED:
        if key not in results:
            raise ConfigError(f"{where}: no {key!r} section {older}")
    attacks = results["attacks"]
    if not isinstance(attacks, dict) or not attacks:
        raise ConfigError(f"{where}: 'attacks' is empty or damaged {older}")
    for name, a in attacks.items():
        if not name or UNPRINTABLE.search(name):
            # miaudit's own names (the registry's); the terminal prints them.
            raise ConfigError(
                f"{where}: attack name {_shown(name)} is not a name: the run folder is "
                "damaged or was edited"
            )
        missing = [k for k in _NEEDED_ATTACK if not isinstance(a, dict) or k not in a]
        if missing:
            raise ConfigError(f"{where}: attack {name!r} has no {missing[0]!r} {older}")
    for path, value, kinds in _typed(results):
        wrong = not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        finite = wrong or not isinstance(value, _NUMBER) or _finite(value)
        if wrong or not finite:
            what = " or ".join(_KIND_NAMES[k] for k in kinds) if finite else "a finite number"
            raise ConfigError(
                f"{where}: {path} is {_shown(value)}, not {what}: the run folder is damaged "
                "or was edited"
            )
    if results.get("records_shown", "values") not in LEVELS:
        raise ConfigError(
            f"{where}: records_shown is {_shown(results['records_shown'])}, not one of "
            f"{', '.join(LEVELS)}: the run folder is damaged or was edited"
        )
    if results["strongest_attack"] not in attacks:
        raise ConfigError(
            f"{where}: damaged: the strongest attack {results['strongest_attack']!r} is not "
            "among its attacks"
        )


_NUMBER = (int, float)
_NULL = type(None)
_KIND_NAMES = {int: "a whole number", float: "a number", str: "text", dict: "a table",
               list: "a list", bool: "true or false", _NULL: "null"}  # fmt: skip


def _typed(d: dict):
    """``(path, value, allowed types)`` of every field the page (``report.html``,
    ``compare.html``) or the terminal reads as a number or needs of one shape.

    A field missing from an older file reads as ``None`` here: those the page can do
    without allow null. Checked in order, so a section is known to be a table before
    its fields are read.
    """
    yield "miaudit_version", d.get("miaudit_version", ""), (str,)
    yield "results_format", _format(d), (int,)
    yield "seed", d["seed"], (int,)
    yield "strongest_attack", d["strongest_attack"], (str,)
    yield "records_shown", d.get("records_shown", "values"), (str,)
    timings = d.get("timings_s", {})
    yield "timings_s", timings, (dict,)
    for k, v in timings.items():
        yield f"timings_s.{_name(k)}", v, _NUMBER
    for section in ("dataset", "target", "shadows", "ranking", "most_exposed"):
        yield section, d[section], (dict,)
    ds, tg, sh, rk, me = (d[k] for k in ("dataset", "target", "shadows", "ranking",
                                         "most_exposed"))  # fmt: skip
    yield "dataset.name", ds.get("name"), (str,)
    yield "dataset.n_records", ds.get("n_records"), (int,)
    yield "dataset.n_features", ds.get("n_features"), (int, _NULL)
    yield "dataset.n_classes", ds.get("n_classes"), (int,)
    yield "dataset.class_names", ds.get("class_names", []), (list,)
    yield "target.n_train", tg.get("n_train"), (int,)
    yield "target.n_test", tg.get("n_test"), (int, _NULL)
    for key in ("train_accuracy", "test_accuracy"):
        yield f"target.{key}", tg.get(key), _NUMBER
    queries = tg.get("queries")
    yield "target.queries", queries, (dict, _NULL)
    if isinstance(queries, dict):
        yield "target.queries.sent", queries.get("sent"), (int, _NULL)
    yield "target.defense", tg.get("defense"), (list, _NULL)
    yield from _dp_plan("target.dp", tg.get("dp"))
    recipe = tg.get("recipe")
    if isinstance(recipe, dict):  # the advice names the next setting from these
        yield "target.recipe.max_depth", recipe.get("max_depth"), (int, _NULL)
        yield "target.recipe.l2", recipe.get("l2"), (*_NUMBER, _NULL)
    yield "shadows.source", sh.get("source"), (str,)
    for key in ("count", "n_in", "n_out", "pool_size"):
        yield f"shadows.{key}", sh.get(key), (int, _NULL)
    yield "ranking.fpr", rk.get("fpr"), (*_NUMBER, _NULL)
    yield "ranking.distinguishable_from_chance", rk.get("distinguishable_from_chance"), (bool,)
    for key in ("above_chance", "above_chance_at_threshold"):
        yield f"ranking.{key}", rk.get(key), (list,)
    yield "ranking.by", rk.get("by"), (str,)
    yield "ranking.verdict", rk.get("verdict"), (str,)
    yield "most_exposed.reference_models", me.get("reference_models"), (int, _NULL)
    yield "most_exposed.records", me.get("records"), (list,)
    for i, r in enumerate(me.get("records") if isinstance(me.get("records"), list) else []):
        at = f"most_exposed.records[{i}]"
        yield at, r, (dict,)
        row = (int,) if level_of(d) != "none" else (_NULL,)  # none: no rows, no ids
        for key, kinds in (("rank", (int,)), ("record", row), ("member", (bool,)),
                           ("score", (*_NUMBER, _NULL)), ("tied", (int, _NULL)),
                           ("in_models", (int, _NULL)), ("values", (dict, _NULL))):  # fmt: skip
            yield f"{at}.{key}", r.get(key), kinds
    for name, a in d["attacks"].items():
        at = f"attacks.{_name(name)}"
        for key in ("auc", "precision", "recall", "advantage"):
            yield f"{at}.{key}", a[key], _NUMBER
        for key in ("n_members", "n_nonmembers"):
            yield f"{at}.{key}", a[key], (int,)
        yield f"{at}.per_class", a["per_class"], (list,)
        for i, pc in enumerate(a["per_class"]):
            yield f"{at}.per_class[{i}]", pc, (dict,)
            yield f"{at}.per_class[{i}].n", pc.get("n"), (int,)
            for key in ("precision", "recall"):
                yield f"{at}.per_class[{i}].{key}", pc.get(key), (*_NUMBER, _NULL)
        yield f"{at}.fallback_classes", a.get("fallback_classes", []), (list,)
        for key, kinds in (("tpr_at_fpr", (*_NUMBER, _NULL)), ("tpr_at_fpr_ci", (list, _NULL)),
                           ("epsilon_lower_bound_cp", (*_NUMBER, _NULL))):  # fmt: skip
            table = a.get(key, {})
            yield f"{at}.{key}", table, (dict,)
            for k, v in table.items():
                yield f"{at}.{key}.{_name(k)}", v, kinds
                for j, end in enumerate(v if isinstance(v, list) else []):
                    yield f"{at}.{key}.{_name(k)}[{j}]", end, _NUMBER
    claim = d.get("privacy_claim")
    yield "privacy_claim", claim, (dict, _NULL)
    if isinstance(claim, dict):
        yield from _claim_fields(claim)


def _claim_fields(claim: dict):
    """``privacy_claim``'s fields (:func:`miaudit.claim.claim_section` writes them)."""
    for key in ("delta", "confidence"):
        yield f"privacy_claim.{key}", claim.get(key), _NUMBER
    low = claim.get("lower_bound")
    yield "privacy_claim.lower_bound", low, (dict,)
    yield "privacy_claim.lower_bound.epsilon", low.get("epsilon"), _NUMBER
    for key in ("attack", "method"):
        yield f"privacy_claim.lower_bound.{key}", low.get(key), (str,)
    attacks = claim.get("attacks")
    yield "privacy_claim.attacks", attacks, (dict,)
    for name, e in attacks.items():
        at = f"privacy_claim.attacks.{_name(name)}"
        yield at, e, (dict,)
        one = e.get("one_run")
        yield f"{at}.one_run", one, (dict, _NULL)
        if isinstance(one, dict):
            yield f"{at}.one_run.epsilon", one.get("epsilon"), (*_NUMBER, _NULL)
            yield f"{at}.one_run.ceiling", one.get("ceiling"), _NUMBER
            for key in ("canaries", "correct", "guesses"):
                yield f"{at}.one_run.{key}", one.get(key), (int,)
        for part, keys in (("clopper_pearson", ("epsilon",)), ("gdp", ("epsilon", "mu"))):
            table = e.get(part)
            yield f"{at}.{part}", table, (dict,)
            for key in keys:
                yield f"{at}.{part}.{key}", table.get(key), (*_NUMBER, _NULL)
    yield from _dp_plan("privacy_claim.claimed", claim.get("claimed"))


def _dp_plan(at: str, plan: Any):
    """A DP-SGD plan (``target.dp``, ``privacy_claim.claimed``): null, or its numbers."""
    yield at, plan, (dict, _NULL)
    if isinstance(plan, dict):
        for key in ("epsilon", "delta", "noise_multiplier", "max_grad_norm"):
            yield f"{at}.{key}", plan.get(key), _NUMBER
        yield f"{at}.accountant", plan.get("accountant"), (str,)


def _finite(value: int | float) -> bool:
    """A number the page can write and compute with: finite, and an integer within
    a float's range (the page divides and formats with them)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _shown(value: Any) -> str:
    """``value`` as a message shows it: JSON (control characters escaped), cut short."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _name(key: Any) -> str:
    """A key in a field's path: as it is when plain, else quoted as JSON."""
    text = str(key)
    return text if re.fullmatch(r"[\w.:-]{1,40}", text, re.ASCII) else _shown(text)


def _check_depth(results: dict, where: Path | str) -> None:
    """No lists or tables nested deeper than :data:`MAX_DEPTH` (walked without
    recursion: the nesting itself is what must not recurse)."""
    stack: list[tuple[Any, int]] = [(results, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"{where}: holds lists or tables nested more than {MAX_DEPTH} deep, not "
                "results: the run folder is damaged or was edited"
            )
        children = value.values() if isinstance(value, dict) else value
        stack.extend((v, depth + 1) for v in children if isinstance(v, dict | list))


def _check_scores(scores: pd.DataFrame, results: dict, where: Path) -> None:
    if scores.empty:
        raise ConfigError(f"{where}: damaged: no records, only a header")
    # The column that holds class codes: class_index, or label in runs of format 2 and
    # before. A newer label is the user's own value (text, say) and is not checked.
    codes = "class_index" if _format(results) >= CLASS_INDEX_FORMAT else "label"
    # A run written with --records none names no record: no row, no id.
    rows = [] if level_of(results) == "none" else ["record"]
    numeric = [*rows, "member", codes, *(f"score_{a}" for a in results["attacks"])]
    needed = [*rows, "label", *dict.fromkeys(numeric[len(rows) :])]  # label once, old runs
    missing = [c for c in needed if c not in scores.columns]
    if missing:
        raise ConfigError(
            f"{where}: no column {missing[0]!r}; it does not belong with results.json beside it"
        )
    for column in numeric:
        if not pd.api.types.is_numeric_dtype(scores[column]):
            raise ConfigError(f"{where}: damaged: column {column!r} holds text, not numbers")
        if scores[column].isna().any():
            raise ConfigError(f"{where}: damaged: column {column!r} has empty cells")
    a = results["attacks"][results["strongest_attack"]]
    n_pos, n_neg = int(scores["member"].sum()), int((scores["member"] == 0).sum())
    if (n_pos, n_neg) != (a["n_members"], a["n_nonmembers"]) or not scores["member"].isin(
        [0, 1]
    ).all():
        raise ConfigError(
            f"{where}: holds {n_pos} members and {n_neg} non-members, but results.json "
            f"evaluated {a['n_members']} and {a['n_nonmembers']}: the files are from "
            "different runs or damaged"
        )
    n_classes = len(results["dataset"].get("class_names") or []) or math.inf
    found = scores[codes]
    if (found < 0).any() or (found >= n_classes).any() or (found % 1 != 0).any():
        what = "class index" if codes == "class_index" else "label"
        raise ConfigError(f"{where}: damaged: a {what} that is not one of the data set's classes")


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
