"""Hostile round three (issue 28): outputs that cannot be turned against their reader, and
audits that do not stay silent about a target that learned nothing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import miaudit
from miaudit.cli import main


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    miaudit.audit(
        dataset="digits", target_size=200, shadows=1, attacks=["loss"], bootstrap=100,
        out=str(out), progress=False,
    )  # fmt: skip
    return out


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_report_never_replaces_the_runs_inputs_or_another_file_unasked(run_folder, capsys):
    before = {n: (run_folder / n).read_bytes() for n in ("results.json", "scores.csv")}
    for name in ("results.json", "scores.csv", "config.json"):
        code = main(["report", str(run_folder), "--out", str(run_folder / name), "--overwrite"])
        assert code == 2 and f"the run's own {name}" in _one_line(capsys)
    other = run_folder.parent / "notes.txt"
    other.write_text("mine")
    assert main(["report", str(run_folder), "--out", str(other)]) == 2
    assert "exists: pass --overwrite" in _one_line(capsys) and other.read_text() == "mine"
    assert main(["report", str(run_folder), "--out", str(other), "--overwrite"]) == 0
    assert other.read_text().startswith("<!doctype html>")
    # The run's own page is what `report` rewrites: no flag needed.
    assert main(["report", str(run_folder)]) == 0
    assert before == {n: (run_folder / n).read_bytes() for n in before}


def test_report_follows_no_file_planted_at_a_temporary_name(run_folder, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for planted in (".report.html.tmp", ".report.html.tmp.npz"):
        link = run_folder / planted
        link.unlink(missing_ok=True)
        link.symlink_to(victim)
    assert main(["report", str(run_folder)]) == 0
    assert victim.read_text() == "precious"
    assert (run_folder / "report.html").read_text().startswith("<!doctype html>")


def test_a_dp_target_that_learned_nothing_says_so_beside_its_epsilon():
    result = miaudit.audit(
        dataset="digits", target={"model": "mlp", "dp_epsilon": 4, "max_grad_norm": 1e30},
        target_size=300, shadows=2, attacks=["loss"], bootstrap=100, progress=False,
    )  # fmt: skip
    sentence = result.verdict().sentence
    assert result.target["test_accuracy"] < 0.2
    assert "trained with DP-SGD at ε = 4, is no more accurate than always answering" in sentence
    useful = miaudit.audit(
        dataset="digits", target={"model": "mlp", "dp_epsilon": 4}, target_size=300,
        shadows=2, attacks=["loss"], bootstrap=100, progress=False,
    )  # fmt: skip
    assert useful.target["test_accuracy"] > 0.5
    assert "learned nothing" not in useful.verdict().sentence


def test_train_warns_of_an_identifier_column_as_audit_does(tmp_path, capsys):
    frame = pd.DataFrame(
        {"pid": [f"p{i}" for i in range(600)], "age": np.arange(600) % 70, "y": np.arange(600) % 2}
    )
    frame.to_csv(tmp_path / "ids.csv", index=False)
    args = ["--dataset", str(tmp_path / "ids.csv"), "--label", "y", "--target-size", "100"]
    assert main(["train", *args, "--out", str(tmp_path / "m")]) == 0
    assert "pid hold a different value in every row" in capsys.readouterr().err


def test_cache_clear_empties_only_a_folder_miaudit_created(tmp_path, monkeypatch, capsys):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("\\section{Introduction}")
    monkeypatch.setenv("MIAUDIT_JOB_CACHE", str(thesis))
    assert main(["cache", "clear", "jobs"]) == 2
    assert "not a cache miaudit created" in _one_line(capsys)
    assert (thesis / "chapter1.tex").read_text() == "\\section{Introduction}"
    link = tmp_path / "link"
    link.symlink_to(thesis)
    monkeypatch.setenv("MIAUDIT_JOB_CACHE", str(link))
    assert main(["cache", "clear", "jobs"]) == 2
    assert "is a symbolic link" in _one_line(capsys)
    assert (thesis / "chapter1.tex").exists()
    # A folder miaudit filled itself is emptied, and stays its own.
    ours = tmp_path / "ours"
    monkeypatch.setenv("MIAUDIT_JOB_CACHE", str(ours))
    from miaudit.jobs import Execution

    miaudit.audit(dataset="digits", target_size=200, shadows=1, attacks=["loss"],
                  bootstrap=100, progress=False, execution=Execution(job_cache=ours))  # fmt: skip
    assert any(p.suffix == ".npz" for p in ours.rglob("*"))
    assert main(["cache", "clear", "jobs"]) == 0
    assert [p.name for p in ours.iterdir()] == [".miaudit-cache"]


def test_an_edit_that_keeps_size_and_modification_time_is_seen(tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("MIAUDIT_DATA_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "t.csv"
    rows = [f"{i},{i % 3},{i % 2}" for i in range(40)]
    path.write_text("a,b,y\n" + "\n".join(rows) + "\n")
    first = miaudit.load_dataset(str(path), label="y")
    stat = path.stat()
    # Same size, same modification time, other values.
    path.write_text("a,b,y\n" + "\n".join(r.replace(",0,", ",2,") for r in rows) + "\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    again = miaudit.load_dataset(str(path), label="y")
    assert again.fingerprint() != first.fingerprint()


def _bomb(path, gib: float) -> None:
    """An .npz whose one array is ``gib`` GiB of zeros, deflated to a few MB, written in
    chunks (nothing that large is ever in memory here)."""
    import zipfile

    n = int(gib * 2**30) // 8
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
    header["shape"] = (n,)
    chunk = bytes(16 * 2**20)
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("outputs.npy", "w", force_zip64=True) as fp,
    ):
        np.lib.format.write_array_header_1_0(fp, header)
        left = n * 8
        while left:
            fp.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))


def test_a_decompression_bomb_is_refused_before_anything_is_expanded(tmp_path, monkeypatch, capsys):
    import resource

    import miaudit.files

    path = tmp_path / "outputs.npz"
    _bomb(path, 1.0)
    assert path.stat().st_size < 8 * 2**20
    # This machine's memory, as far as the check knows, is 512 MiB: half may be read.
    monkeypatch.setattr(miaudit.files, "_memory_limit", lambda: 2**28)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert main(["evaluate", str(path)]) == 2
    err = _one_line(capsys)
    assert "would take 1.0 GiB once expanded" in err and "outputs.npz" in err
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200, grown_mib
    # An archive that lies about its sizes is refused as well.
    with pytest.raises(miaudit.MiauditError, match=r"lying.npz: cannot read it as NumPy"):
        from miaudit.evaluation import read_outputs

        lying = tmp_path / "lying.npz"
        np.savez(lying, outputs=np.zeros(10))
        blob = bytearray(lying.read_bytes())
        at = blob.find(b"(10,)")
        blob[at : at + 5] = b"(99,)"
        lying.write_bytes(bytes(blob))
        read_outputs(lying)


def test_a_received_config_that_names_python_code_needs_an_allowance(tmp_path, capsys):
    module = tmp_path / "payload.py"
    module.write_text(
        "import pathlib\npathlib.Path(__file__).with_name('ran').write_text('x')\nmodel = None\n"
    )
    config = tmp_path / "config.json"
    settings = {
        "dataset": "digits",
        "target_python": "payload.py:model",
        "python_path": [str(tmp_path)],
    }
    config.write_text(json.dumps(settings))
    assert main(["audit", "--config", str(config), "--quiet"]) == 2
    err = _one_line(capsys)
    assert "would import and run 'payload.py'" in err and "--allow-python" in err
    assert not (tmp_path / "ran").exists()
    with pytest.raises(miaudit.MiauditError, match=r"allow_python=True"):
        miaudit.audit(str(config))
    assert not (tmp_path / "ran").exists()
