"""Writing an audit's result folder atomically.

``scores.csv`` is safe to open in a spreadsheet: a text cell (an id, a label) that
begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be run as a
formula by Excel, LibreOffice or Google Sheets, so it is written with a single quote
before it (``'=1+2``), as OWASP advises against CSV injection; a spreadsheet shows the
text, without the quote, as text. A text cell that begins with a quote gets one more,
so the escape can be undone exactly. Numbers are never escaped: a negative score or
label in a column of numbers is written ``-3``. Whoever reads ``scores.csv`` back
undoes the escape with :func:`unescape_cells` (miaudit's reader,
:func:`miaudit.report.run.load_run`, which ``miaudit report`` and ``miaudit compare``
read runs with), and so gets the ids and labels of ``results.json``.

This module imports no other part of the report at load time, so the readers of
``scores.csv`` (:mod:`miaudit.report.run`) can import :func:`unescape_cells` from it.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miaudit.errors import ConfigError
from miaudit.files import file_sha256, os_reason, private_dir, write_folder, write_text_atomic

if TYPE_CHECKING:
    import pandas as pd

    from miaudit.report.findings import Levels
    from miaudit.report.run import Run

RESULT_FILES = ("results.json", "scores.csv", "config.json", "report.html")
#: First characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: What :func:`escape_cell` puts before such a cell (and before one that starts with it).
ESCAPE = "'"
#: The model outputs the attacks scored from, for ``miaudit evaluate`` (when asked for).
OUTPUTS_FILE = "outputs.npz"


def default_out_dir(dataset_name: str, now: datetime | None = None) -> Path:
    """``runs/<data set>-<date>-<time>`` under the current directory."""
    now = now or datetime.now()
    return Path("runs") / f"{dataset_name}-{now:%Y%m%d-%H%M%S}"


def prepare_out_dir(out: str | Path, *, overwrite: bool = False) -> Path:
    """Check, before any expensive work, that results can be written to ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file: pass a folder for the results")
    if out.is_dir() and any((out / name).exists() for name in RESULT_FILES) and not overwrite:
        raise ConfigError(
            f"--out {out} already holds results: choose another folder or pass --overwrite"
        )
    parent = out.resolve().parent
    try:
        private_dir(parent)
        # A real file, not os.access: a read-only file system or a full disk shows here,
        # before the audit runs, and root passes os.access on both.
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{out.name}.probe."):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot write into {parent} ({os_reason(exc)}): choose a writable --out"
        ) from None
    return out


def escape_cell(value: Any) -> Any:
    """A text cell as ``scores.csv`` writes it: with :data:`ESCAPE` before it when it
    begins with a formula's character or with the escape itself; anything else (a
    number, a boolean) as it is."""
    if isinstance(value, str) and value.startswith((*FORMULA_STARTS, ESCAPE)):
        return ESCAPE + value
    return value


def unescape_cell(value: Any) -> Any:
    """A cell of ``scores.csv`` as it was before :func:`escape_cell`: text that begins
    with :data:`ESCAPE` loses that one character; anything else is as it is."""
    if isinstance(value, str) and value.startswith(ESCAPE):
        return value[len(ESCAPE) :]
    return value


def _text_columns(frame: pd.DataFrame) -> list[Any]:
    import pandas as pd

    return [
        c
        for c in frame.columns
        if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c].dtype)
    ]


def escape_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with :func:`escape_cell` applied to every cell of its text columns (a
    copy; columns of numbers are left alone)."""
    out = frame.copy()
    for column in _text_columns(frame):
        out[column] = frame[column].map(escape_cell).astype(frame[column].dtype)
    return out


def unescape_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """A ``scores.csv`` read back (``pd.read_csv``) with its text cells as they were
    before :func:`escape_cells`: the one helper every reader of the file calls."""
    out = frame.copy()
    for column in _text_columns(frame):
        out[column] = frame[column].map(unescape_cell).astype(frame[column].dtype)
    return out


def write_results(result, out: str | Path, *, outputs: bool = False) -> Path:
    """Write the four result files into ``out``, created or swapped in as a whole
    (:func:`miaudit.files.write_folder`: a kill at any step leaves the old complete folder
    or the new one); with ``outputs``, ``outputs.npz`` too (:meth:`AuditResult.save_outputs`).

    The files carry one ``run_id``: ``results.json`` and ``config.json`` name it, and
    ``results.json`` holds ``scores.csv``'s SHA-256, so ``miaudit report`` and ``compare``
    refuse files of two runs put together.
    """
    from miaudit.report.html import render_html
    from miaudit.report.run import Run

    out = Path(out)
    if outputs:
        from miaudit.report.disclosure import refuse_outputs_at

        refuse_outputs_at(result.show_records)

    def fill(tmp: Path) -> None:
        results = result.to_dict()
        config = result.config_dict()
        scores = _write_scores(tmp / "scores.csv", result)
        run_id = uuid.uuid4().hex
        results["run_id"] = config["run_id"] = run_id
        results["scores_sha256"] = file_sha256(tmp / "scores.csv")
        _dump_json(tmp / "results.json", results)
        _dump_json(tmp / "config.json", config)
        page = render_html(Run(results, scores, out))
        (tmp / "report.html").write_text(page, encoding="utf-8")
        if outputs:
            result.save_outputs(tmp / OUTPUTS_FILE)

    # outputs.npz is the writer's own only when it writes one: an evaluation's --out may
    # hold the outputs.npz it read, which is then kept.
    return write_folder(
        out,
        fill,
        (*RESULT_FILES, *((OUTPUTS_FILE,) if outputs else ())),
        ConfigError,
        "free space or choose another --out and run again; trained models are in the job "
        "cache, so they are not trained again",
    )


def _dump_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _write_scores(path: Path, result):
    """Write ``scores.csv`` (text cells escaped: :func:`escape_cells`); returns the frame
    as it was before the escape, which the page reads."""
    # The user's label values beside the class codes (class_index), and 0/1 membership:
    # the scores.csv contract; to_frame() is the same table with True/False members.
    frame = result.scores_frame()
    # pandas writes floats with repr(): the shortest text that reads back exactly.
    escape_cells(frame).to_csv(path, index=False, lineterminator="\n")
    return frame


def write_report(run: Run, path: str | Path, levels: Levels | None = None) -> Path:
    """(Re-)write a run's page, atomically: ``miaudit report``."""
    from miaudit.report.html import render_html

    path = Path(path)
    page = render_html(run, levels)
    # A new, randomly named file beside it: nothing planted at a known name is followed.
    return write_text_atomic(path, page, ConfigError, "choose another --out")
