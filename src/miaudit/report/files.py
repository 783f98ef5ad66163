"""Writing an audit's result folder atomically.

``scores.csv`` is safe to open in a spreadsheet: its text cells are escaped against
formulas (:mod:`miaudit.report.cells`, whose :func:`escape_cells` and
:func:`unescape_cells` are named here too; whoever reads ``scores.csv`` back undoes the
escape with :func:`unescape_cells`, as :func:`miaudit.report.run.load_run` does).
"""

from __future__ import annotations

import json
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from miaudit.errors import ConfigError
from miaudit.files import file_sha256, os_reason, private_dir, write_folder, write_text_atomic
from miaudit.report.cells import (
    ESCAPE,
    FORMULA_STARTS,
    escape_cell,
    escape_cells,
    unescape_cell,
    unescape_cells,
)

if TYPE_CHECKING:
    from miaudit.report.run import Run
    from miaudit.verdict import Levels

__all__ = [
    "ESCAPE",
    "FORMULA_STARTS",
    "OUTPUTS_FILE",
    "RESULT_FILES",
    "default_out_dir",
    "escape_cell",
    "escape_cells",
    "prepare_out_dir",
    "unescape_cell",
    "unescape_cells",
    "write_report",
    "write_results",
]

RESULT_FILES = ("results.json", "scores.csv", "config.json", "report.html")
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
