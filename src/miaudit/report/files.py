"""Writing an audit's result folder atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from miaudit.errors import ConfigError
from miaudit.report.findings import Levels
from miaudit.report.html import render_html
from miaudit.report.run import Run

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
        parent.mkdir(parents=True, exist_ok=True)
        # A real file, not os.access: a read-only file system or a full disk shows here,
        # before the audit runs, and root passes os.access on both.
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{out.name}.probe."):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot write into {parent} ({exc.strerror or exc}): choose a writable --out"
        ) from None
    return out


def write_results(result, out: str | Path, *, outputs: bool = False) -> Path:
    """Write the four result files into ``out`` (created or replaced as a whole); with
    ``outputs``, ``outputs.npz`` too (:meth:`AuditResult.save_outputs`)."""
    out = Path(out)
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        results = result.to_dict()
        _dump_json(tmp / "results.json", results)
        _dump_json(tmp / "config.json", result.config_dict())
        scores = _write_scores(tmp / "scores.csv", result)
        page = render_html(Run(results, scores, out))
        (tmp / "report.html").write_text(page, encoding="utf-8")
        names = list(RESULT_FILES)
        if outputs:
            result.save_outputs(tmp / OUTPUTS_FILE)
            names.append(OUTPUTS_FILE)
        if out.exists():
            for name in names:
                os.replace(tmp / name, out / name)
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConfigError(
            f"cannot write the results into {out} ({exc.strerror or exc}): free space or choose "
            "another --out and run again; trained models are in the job cache, so they are "
            "not trained again"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _dump_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _write_scores(path: Path, result):
    """Write ``scores.csv``; returns the frame written."""
    # The user's label values beside the class codes (class_index), and 0/1 membership:
    # the scores.csv contract; to_frame() is the same table with True/False members.
    frame = result.to_frame(label_names=False)
    # pandas writes floats with repr(): the shortest text that reads back exactly.
    frame.to_csv(path, index=False, lineterminator="\n")
    return frame


def write_report(run: Run, path: str | Path, levels: Levels | None = None) -> Path:
    """(Re-)write a run's page, atomically: ``miaudit report``."""
    path = Path(path)
    page = render_html(run, levels)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(
            f"cannot write {path} ({exc.strerror or exc}): choose another --out"
        ) from None
    return path
