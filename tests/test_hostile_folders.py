"""Run folders written as a database would, and outputs that protect the people in them.

- A kill at every step of writing a run folder (each rename, swap, sync, mode change and
  removal) leaves the old complete folder or the new complete one, never a mix; the
  next write cleans up what the killed one left and gives back what it had moved.
- The files of one run carry one run id: report and compare refuse a mix.
- SIGTERM ends an audit as Ctrl-C does: exit status 130, no temporary folder left.
- ``--records none`` leaves no record value, row or id in any file of the run folder.
- Every file miaudit writes is 0600 and every folder 0700, whatever the umask.
- A file another user's mode forbids reads as a refused permission, not as missing.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import miaudit
import miaudit.files as files
from miaudit.cli import main
from miaudit.errors import ConfigError, MiauditError
from miaudit.report.files import write_results
from miaudit.report.run import load_run
from miaudit.serve import PredictionService


def _result(seed: int, n: int = 200, **settings):
    """A small evaluation's result: outputs of a model that leaks a little."""
    rng = np.random.default_rng(seed)
    member = rng.random(n) < 0.5
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), labels] += np.where(member, 2.0, 1.0)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return miaudit.evaluate(
        p, labels, member, seed=seed, bootstrap=50, ids=[f"id-{seed}-{i}" for i in range(n)],
        **settings,
    )  # fmt: skip


#: What a writer may call at each step of putting a folder in place.
STEPS = (
    (os, "rename"), (os, "replace"), (os, "fsync"), (os, "chmod"), (shutil, "rmtree"),
    (files, "_exchange"),
)  # fmt: skip


def _killed_at(step: int, write) -> bool:
    """Run ``write`` in a forked child killed (``os._exit``, no cleanup) at its
    ``step``-th file-system call; whether the kill came before ``write`` ended."""
    pid = os.fork()
    if pid == 0:  # the child: count the calls, die at the chosen one
        calls = [0]

        def counting(module, name):
            real = getattr(module, name)

            def call(*args, **kwargs):
                calls[0] += 1
                if calls[0] == step:
                    os._exit(137)
                return real(*args, **kwargs)

            setattr(module, name, call)

        for module, name in STEPS:
            counting(module, name)
        try:
            write()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 137), f"the writer failed at step {step} (exit status {code})"
    return code == 137


def _seed_of(folder: Path) -> int:
    run = load_run(folder)  # checks that its files are one run's
    config = json.loads((folder / "config.json").read_text())
    assert config["evaluate"]["seed"] == run.results["seed"]
    return run.results["seed"]


def _hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("exchange", [True, False], ids=["swap", "two-renames"])
def test_a_kill_at_every_write_step_leaves_the_old_folder_or_the_new(
    tmp_path, monkeypatch, exchange
):
    if not exchange:  # file systems without renameat2's exchange: the fallback
        monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    old, new = _result(1), _result(2)
    out = tmp_path / "runs" / "run"
    write_results(old, out)
    # What the user or an earlier step put in the folder: never lost.
    (out / "shadow-models").mkdir()
    (out / "shadow-models" / "m0").write_text("model")
    (out / "notes.txt").write_text("mine")
    seen, step = set(), 1
    while _killed_at(step, lambda: write_results(new, out)):
        if out.exists():
            seen.add(_seed_of(out))
        else:  # between the fallback's two renames: the old folder is aside
            assert not exchange
            seen.add("aside")
        # The next writer cleans up after the killed one and gives back what it moved.
        files.clean_stale(out, write_results_owned())
        assert _seed_of(out) in (1, 2)
        assert _hidden(out.parent) == []
        assert (out / "notes.txt").read_text() == "mine"
        assert (out / "shadow-models" / "m0").read_text() == "model"
        if _seed_of(out) == 2:  # put the old run back for the next step
            write_results(old, out)
        step += 1
    assert step > 5  # every step was tried: renames, syncs, modes, the swap, removal
    # Kills fell before the swap (the old run), after it (the new one) and, without the
    # exchange, between the two renames (the old folder aside, put back).
    assert seen == ({1, 2} if exchange else {1, 2, "aside"})
    assert _seed_of(out) == 2 and (out / "notes.txt").is_file()


def write_results_owned() -> tuple[str, ...]:
    from miaudit.report.files import OUTPUTS_FILE, RESULT_FILES

    return (*RESULT_FILES, OUTPUTS_FILE)


def test_files_of_two_runs_put_together_are_refused(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    write_results(_result(1), a)
    write_results(_result(2), b)
    mixed = tmp_path / "mixed"
    shutil.copytree(a, mixed)
    shutil.copy(b / "config.json", mixed / "config.json")  # seed 2's beside seed 1's
    assert main(["report", str(mixed)]) == 2
    err = capsys.readouterr().err
    assert "config.json is of run" in err and "files of two runs" in err
    shutil.copy(a / "config.json", mixed / "config.json")
    shutil.copy(b / "scores.csv", mixed / "scores.csv")
    assert main(["compare", str(a), str(mixed), "--out", str(tmp_path / "c")]) == 2
    assert "is not the scores.csv of run" in capsys.readouterr().err
    assert main(["report", str(a)]) == 0  # the genuine folder still reads


#: The command line, as the installed ``miaudit`` runs it.
CLI = "import sys; from miaudit.cli import main; sys.exit(main())"


def _audit_command(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-c", CLI, "audit", "--dataset", "digits", "--target-size", "400",
        "--shadows", "40", "--attacks", "shokri", "--out", str(out), *extra,
    ]  # fmt: skip


def test_sigterm_ends_an_audit_as_ctrl_c_does_and_leaves_no_temporary_folder(tmp_path):
    out = tmp_path / "runs" / "run"
    env = {
        **os.environ,
        "MIAUDIT_JOB_CACHE": str(tmp_path / "jobs"),
        "MIAUDIT_DATA_CACHE": str(tmp_path / "data"),
        "MIAUDIT_QUERY_CACHE": str(tmp_path / "queries"),
    }
    proc = subprocess.Popen(
        _audit_command(out, "--workers", "1"), env=env, stderr=subprocess.PIPE, text=True
    )
    lines = []
    deadline = time.monotonic() + 120
    for line in proc.stderr:  # progress lines, one per event, on standard error
        lines.append(line)
        if "shadow" in line.lower() or time.monotonic() > deadline:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, "".join(lines) + rest
    assert "interrupted" in rest.lower()
    left = [
        str(p.relative_to(tmp_path))
        for p in tmp_path.rglob("*")
        if p.name.startswith(".") and p.name != ".miaudit-cache"
    ]
    assert left == [], left
    assert not out.exists()  # nothing half-written


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """A table of people with ids and values no other text holds, and a model that
    memorised some of them."""
    rng = np.random.default_rng(3)
    n = 600
    frame = pd.DataFrame({
        "pid": [f"PID-Q7X{i:04d}" for i in range(n)],
        "age": rng.integers(18, 90, n),
        "town": [f"Zqv{t}ville" for t in rng.integers(0, 12, n)],
        "hours": rng.normal(40, 8, n).round(1),
    })  # fmt: skip
    frame["smoker"] = (frame["age"] + rng.normal(0, 30, n) > 55).map({True: "yes", False: "no"})
    return frame


def _run_folder_text(folder: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in sorted(folder.iterdir()) if p.is_file()
    )


def _audit_people(frame: pd.DataFrame, out: Path, level: str):
    return miaudit.audit(
        data=frame, label="smoker", id_column="pid", target_size=150, shadows=2,
        attacks=["loss", "shokri"], bootstrap=50, seed=0, out=out, show_records=level,
    )  # fmt: skip


def test_records_none_leaves_no_value_row_or_id_in_any_file_of_the_run(people, tmp_path):
    towns = sorted(set(people["town"]))
    values = _audit_people(people, tmp_path / "values", "values")
    shown = _run_folder_text(tmp_path / "values")
    # The test can fail: at values the files hold the records' ids and values.
    assert "PID-Q7X" in shown and any(t in shown for t in towns)
    ids = _audit_people(people, tmp_path / "ids", "ids")
    shown = _run_folder_text(tmp_path / "ids")
    assert "PID-Q7X" in shown and not any(t in shown for t in towns)
    none = _audit_people(people, tmp_path / "none", "none")
    shown = _run_folder_text(tmp_path / "none")
    assert "PID-Q7X" not in shown and not any(t in shown for t in towns)
    scores = pd.read_csv(tmp_path / "none" / "scores.csv")
    assert "record" not in scores.columns and "id" not in scores.columns
    assert scores["exposure_rank"].is_monotonic_increasing  # not in the data's order
    results = json.loads((tmp_path / "none" / "results.json").read_text())
    assert results["records_shown"] == "none"
    for r in results["most_exposed"]["records"]:
        assert not {"record", "id", "values"} & set(r)
    # The same audit all along: only what the files show differs.
    for result in (ids, none):
        assert result.attacks["loss"].auc == values.attacks["loss"].auc
    page = (tmp_path / "none" / "report.html").read_text()
    assert "show no record&#x27;s values, row or id" in page
    assert "personal data" in (tmp_path / "ids" / "report.html").read_text()
    # A run without records still reads, draws and compares (unpaired).
    assert main(["report", str(tmp_path / "none")]) == 0
    assert main(["compare", str(tmp_path / "ids"), str(tmp_path / "none"),
                 "--out", str(tmp_path / "cmp"), "--bootstrap", "100"]) == 0  # fmt: skip


def test_report_records_none_makes_a_page_to_share_and_never_shows_more(people, tmp_path, capsys):
    run = tmp_path / "values"
    _audit_people(people, run, "values")
    shared = tmp_path / "shared.html"
    assert main(["report", str(run), "--records", "none", "--out", str(shared)]) == 0
    page = shared.read_text()
    assert "PID-Q7X" not in page and "Zqv" not in page
    assert "PID-Q7X" in (run / "report.html").read_text()  # the run's own page is as it was
    ids_run = tmp_path / "ids"
    _audit_people(people, ids_run, "ids")
    capsys.readouterr()
    assert main(["report", str(ids_run), "--records", "values"]) == 2
    assert "was written with --records ids" in capsys.readouterr().err
    assert main(["report", str(ids_run), "--records", "everything"]) == 2
    assert "pass one of values, ids, none" in capsys.readouterr().err


def _modes(folder: Path) -> set[tuple[str, str]]:
    found = {("dir", oct(folder.stat().st_mode & 0o777))}
    for p in folder.rglob("*"):
        found.add(("dir" if p.is_dir() else "file", oct(p.stat().st_mode & 0o777)))
    return found


def test_every_file_miaudit_writes_is_the_users_alone_whatever_the_umask(tmp_path):
    before = os.umask(0)  # the most permissive umask: nothing may follow it
    try:
        write_results(_result(1), tmp_path / "run")
        assert main(["train", "--dataset", "digits", "--target-size", "200",
                     "--epochs", "2", "--out", str(tmp_path / "model")]) == 0  # fmt: skip
        assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "page.html")]) == 0
        write_results(_result(2), tmp_path / "other")
        assert main(["compare", str(tmp_path / "run"), str(tmp_path / "other"),
                     "--out", str(tmp_path / "cmp"), "--bootstrap", "100"]) == 0  # fmt: skip
    finally:
        os.umask(before)
    for folder in ("run", "model", "cmp"):
        assert _modes(tmp_path / folder) == {("dir", "0o700"), ("file", "0o600")}, folder
    assert oct((tmp_path / "page.html").stat().st_mode & 0o777) == "0o600"


def _said(call):
    """``call`` as a command would end: its one-line error on standard error, status 2."""

    def run() -> int:
        try:
            call()
        except MiauditError as err:
            print(f"miaudit: error: {err}", file=sys.stderr)
            return 2
        return 0

    return run


@pytest.fixture
def shared_tmp():
    """A folder any user may enter (pytest's own are root's alone)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="miaudit-shared-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _as_another_user(call) -> tuple[int, str]:
    """``call()`` in a child running as ``nobody``: its exit status and standard error."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.dup2(write, 2)
        sys.stderr = os.fdopen(2, "w", buffering=1)  # not pytest's capture
        # What the commands import late, imported while the installed files can be read
        # (a checkout in a folder of root's alone cannot be read by the second user).
        for name in PRELOADED:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            code = call()
        except ImportError:
            code = UNREADABLE_CHECKOUT
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 99
        os._exit(code if isinstance(code, int) else 98)
    os.close(write)
    with os.fdopen(read) as err:
        text = err.read()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == UNREADABLE_CHECKOUT or "ImportError" in text:
        pytest.skip("the installed packages cannot be read by a second user in this checkout")
    return code, text


#: Modules the commands import as they run, loaded before the child drops to ``nobody``.
PRELOADED = ("miaudit.report.run", "miaudit.report.html", "miaudit.report.files",
             "miaudit.serve", "miaudit.pipeline", "miaudit.api", "miaudit.models.io",
             "miaudit.data", "miaudit.data.files", "miaudit.progress")  # fmt: skip
UNREADABLE_CHECKOUT = 77


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a second user (CI runs as root)")
def test_a_folder_of_another_user_reads_as_a_refused_permission(shared_tmp):
    tmp_path = shared_tmp
    run = tmp_path / "run"
    write_results(_result(1), run)  # 0700: root's alone
    assert main(["train", "--dataset", "digits", "--target-size", "200",
                 "--epochs", "2", "--out", str(tmp_path / "model")]) == 0  # fmt: skip
    code, err = _as_another_user(_said(lambda: load_run(run)))
    assert code == 2 and "permission denied" in err and "No such" not in err, err
    model = tmp_path / "model"
    code, err = _as_another_user(_said(lambda: PredictionService.from_folder(model, [])))
    assert code == 2 and "permission denied" in err and "damaged" not in err, err
    # A file of root's, read by a command whose own checks do not look first.
    table = tmp_path / "people.csv"
    table.write_text("age,smoker\n" + "".join(f"{20 + i % 50},{i % 2}\n" for i in range(300)))
    table.chmod(0o600)
    open_to_all = tmp_path / "open"
    open_to_all.mkdir(mode=0o777)
    open_to_all.chmod(0o777)
    argv = ["audit", "--dataset", str(table), "--label", "smoker", "--no-job-cache", "--quiet",
            "--out", str(open_to_all / "run")]  # fmt: skip
    code, err = _as_another_user(lambda: main(argv))
    assert code == 2 and "permission denied" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    # A file inside a folder the user may enter, but not read: the file is named.
    run.chmod(0o755)
    code, err = _as_another_user(_said(lambda: load_run(run)))
    assert code == 2 and "permission denied" in err, err
    assert any(
        f"{name}: permission denied" in err
        for name in ("results.json", "config.json", "scores.csv", "report.html")
    ), err


def test_a_link_is_written_through_and_a_file_in_place_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    write_results(_result(1), tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and _seed_of(tmp_path / "link") == 1
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        write_results(_result(1), tmp_path / "file")
    assert (tmp_path / "file").read_text() == "mine"


def test_the_current_folder_is_written_in_place_and_nothing_of_it_is_lost(tmp_path, monkeypatch):
    """``--out .`` (or a folder above the current one, or a mount point) cannot be
    swapped: its files are replaced one by one, each atomically, the rest untouched."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("code")
    before = project.stat().st_ino
    monkeypatch.chdir(project)
    write_results(_result(1), Path("."))
    write_results(_result(2), Path("."))
    assert project.stat().st_ino == before and Path.cwd() == project
    assert (project / "train.py").read_text() == "code" and _seed_of(project) == 2
    assert _hidden(project) == []


def test_an_evaluation_written_beside_its_outputs_keeps_them(tmp_path):
    folder = tmp_path / "handed"
    write_results(_result(1), folder, outputs=True)
    outputs = folder / "outputs.npz"
    assert outputs.is_file()
    result = miaudit.evaluate(str(outputs), bootstrap=50)
    write_results(result, folder)  # `miaudit evaluate handed/outputs.npz --out handed`
    assert outputs.is_file() and _seed_of(folder) == 1


def test_a_stale_folder_gives_back_what_it_moved_even_when_the_folder_is_gone(tmp_path):
    out = tmp_path / "run"
    write_results(_result(1), out)
    (out / "shadow-models").mkdir()
    (out / "shadow-models" / "m0").write_text("model")
    # Killed at the swap: the new folder, holding the moved entries, left beside.
    assert _killed_at_exchange(lambda: write_results(_result(2), out))
    shutil.rmtree(out)  # and the user removed the run meanwhile
    files.clean_stale(out, write_results_owned())
    assert (out / "shadow-models" / "m0").read_text() == "model"
    assert _hidden(tmp_path) == []


def _killed_at_exchange(write) -> bool:
    pid = os.fork()
    if pid == 0:
        files._exchange = lambda a, b: os._exit(137)
        try:
            write()
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 137


def test_a_failure_while_filling_a_folder_leaves_the_old_one_whole(tmp_path):
    """An experiment's or a comparison's folder (:func:`miaudit.files.write_folder`): an
    error (a plot that fails, a full disk) while its files are written touches nothing."""
    out = tmp_path / "experiment"

    def good(tmp: Path) -> None:
        (tmp / "table.json").write_text("old")
        (tmp / "table.csv").write_text("old")

    def failing(tmp: Path) -> None:
        (tmp / "table.json").write_text("new")
        (tmp / "table.csv").write_text("")
        raise OSError(28, "No space left on device")

    files.write_folder(out, good, ("table.json", "table.csv"), ConfigError, "free space")
    with pytest.raises(ConfigError, match=r"No space left on device.*free space"):
        files.write_folder(out, failing, ("table.json", "table.csv"), ConfigError, "free space")
    assert (out / "table.json").read_text() == "old" and (out / "table.csv").read_text() == "old"
    assert _hidden(tmp_path) == []


def test_outputs_are_not_saved_where_no_record_may_be_named(tmp_path, capsys):
    """outputs.npz keeps the records' outputs in the data's order: refused with
    ``--records none``, before the audit runs (no folder is made) and from Python."""
    out = tmp_path / "run"
    argv = ["audit", "--dataset", "digits", "--records", "none", "--save-outputs",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    assert "--save-outputs with --records none" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ConfigError, match="--save-outputs with --records none"):
        write_results(_result(1, show_records="none"), out, outputs=True)
    assert not out.exists()
    write_results(_result(1, show_records="none"), out)  # without outputs: written
    assert not (out / "outputs.npz").exists() and _seed_of(out) == 1
