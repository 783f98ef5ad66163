"""The command line: bad input gets one line and exit status 2, and nothing in --out."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from miaudit.cli import main

FAST = ["--epochs", "30", "--batch-size", "32", "--lr", "0.003"]

PROGRESS = re.compile(r"^\d\d:\d\d:\d\d ")


@pytest.fixture()
def table(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.normal(50, 10, n),
            "city": rng.choice(["north", "south", "east"], n),
            "outcome": rng.choice(["yes", "no", "maybe"], n),
        }
    )
    path = tmp_path / "people.csv"
    df.to_csv(path, index=False)
    return path


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(code, err):
    assert code == 2, err
    # Progress lines (timestamped: stderr is not a terminal here) are not the error.
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not PROGRESS.match(ln)]
    assert len(lines) == 1, err
    assert lines[0].startswith("miaudit: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_user_csv_audit_writes_results(table, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, err = run_cli(
        [
            "audit",
            "--dataset",
            str(table),
            "--label",
            "outcome",
            "--target-size",
            "50",
            "--shadows",
            "2",
            "--out",
            str(out),
            "--quiet",
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    d = json.loads((out / "results.json").read_text())
    assert d["dataset"]["name"] == "people" and d["dataset"]["n_classes"] == 3
    assert "Membership inference" in stdout and "shokri" in stdout
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dataset"] == str(table) and cfg["target"]["epochs"] == 30


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--dataset", "nonsense"], "nonsense"),
        (["--dataset", "{table}", "--label", "missing"], "missing"),
        (["--dataset", "{table}", "--label", "outcome", "--shadows", "0"], "shadows"),
        (["--dataset", "{table}", "--label", "outcome", "--target-size", "5000"], "target-size"),
        (["--dataset", "{bad}", "--label", "y"], "bad.csv"),
        (["--dataset", "{nan}", "--label", "y"], "NaN"),
        (["--dataset", "{single}", "--label", "y"], "class"),
        (["--config", "{missing_cfg}"], "config file"),
        (["--dataset", "digits", "--lr", "-1"], "lr"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(args, expected, table, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b'a,b,y\n1,"2\n\x00\x00,,,,\n')
    nan = tmp_path / "nan.csv"
    pd.DataFrame({"a": [1.0, np.nan] * 50, "y": [0, 1] * 50}).to_csv(nan, index=False)
    single = tmp_path / "single.csv"
    pd.DataFrame({"a": np.arange(100.0), "y": [1] * 100}).to_csv(single, index=False)
    subs = {
        "{table}": str(table),
        "{bad}": str(bad),
        "{nan}": str(nan),
        "{single}": str(single),
        "{missing_cfg}": str(tmp_path / "nope.toml"),
    }
    args = [subs.get(a, a) for a in args]
    out = tmp_path / "out"
    code, _, err = run_cli(["audit", *args, "--out", str(out), "--quiet"], capsys)
    line = _one_line_error(code, err)
    assert expected in line
    assert not out.exists() or not any(out.iterdir())


def test_saved_model_of_other_width_is_refused(tmp_path, capsys):
    model_dir = tmp_path / "m"
    code, _, err = run_cli(
        ["train", "--dataset", "digits", "--target-size", "100", "--out", str(model_dir), *FAST],
        capsys,
    )
    assert code == 0, err
    code, _, err = run_cli(
        [
            "audit",
            "--dataset",
            "mnist",
            "--target-model",
            str(model_dir),
            "--quiet",
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert "64" in _one_line_error(code, err)
    assert not (tmp_path / "o").exists()


def test_existing_results_are_not_overwritten(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "results.json").write_text("{}")
    code, _, err = run_cli(["audit", "--dataset", "digits", "--out", str(out)], capsys)
    assert "--overwrite" in _one_line_error(code, err)
    assert (out / "results.json").read_text() == "{}"


def test_datasets_lists_the_builtin_sets(capsys):
    code, out, _ = run_cli(["datasets"], capsys)
    assert code == 0
    # Not a terminal: plain aligned rows, whatever the width (tests/test_plain_tables.py).
    rows = {line.split()[0]: line for line in out.splitlines()[3:]}
    for name in ("census-occupation", "adult", "fashion-mnist", "mnist", "digits"):
        assert name in rows, out
    assert "1,797" in rows["digits"] and "yes" in rows["digits"]


def test_console_script_exits_2_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "miaudit.cli", "audit", "--dataset", "nonsense", "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("miaudit: error:")
    assert not (tmp_path / "runs").exists()


def test_toml_config_and_flags_override_it(tmp_path, capsys):
    cfg = tmp_path / "audit.toml"
    cfg.write_text(
        'dataset = "digits"\ntarget_size = 100\nshadows = 3\nseed = 4\n'
        '[target]\nepochs = 20\nbatch_size = 32\n[attack]\nlearner = "logreg"\n'
    )
    out = tmp_path / "o"
    code, _, err = run_cli(
        ["audit", "--config", str(cfg), "--shadows", "2", "--out", str(out), "--quiet"], capsys
    )
    assert code == 0, err
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["shadows"] == 2  # the flag wins over the file
    assert resolved["target_size"] == 100 and resolved["seed"] == 4
    assert resolved["target"]["epochs"] == 20 and resolved["target"]["lr"] == 0.01
    assert resolved["attacks"]["shokri"]["learner"] == "logreg"
    results = json.loads((out / "results.json").read_text())
    assert results["shadows"]["count"] == 2 and results["attacks"]["shokri"]["learner"] == "logreg"


def test_unknown_key_in_config_file_is_named(tmp_path, capsys):
    cfg = tmp_path / "audit.toml"
    cfg.write_text('dataset = "digits"\nshadow_count = 3\n')
    code, _, err = run_cli(["audit", "--config", str(cfg), "--quiet"], capsys)
    assert "shadow_count" in _one_line_error(code, err)


HOSTILE_JSON = {
    "invalid": "{not json",
    "list": "[1, 2, 3]",
    "nested": "[" * 100_000 + "]" * 100_000,
    "huge-int": '{"format": ' + "9" * 5000 + "}",
    "binary": "\udcff",
}


@pytest.fixture(scope="module")
def saved_digits(tmp_path_factory):
    from miaudit.config import make_config
    from miaudit.pipeline import train_target_only

    out = tmp_path_factory.mktemp("saved") / "m"
    settings = {"dataset": "digits", "target_size": 100, "target": {"model": "logistic-regression"}}
    train_target_only(make_config(settings), out)
    return out


@pytest.mark.parametrize("content", list(HOSTILE_JSON), ids=list(HOSTILE_JSON))
@pytest.mark.parametrize("name", ["model.json", "dataset.json"])
def test_a_damaged_json_file_in_a_saved_target_is_one_line(
    saved_digits, tmp_path, capsys, name, content
):
    import shutil

    from miaudit.data import load_dataset
    from miaudit.errors import MiauditError
    from miaudit.serve import PredictionService
    from miaudit.stages.targets import load_membership

    folder = tmp_path / "m"
    shutil.copytree(saved_digits, folder)
    (folder / name).write_bytes(HOSTILE_JSON[content].encode("utf-8", "surrogateescape"))
    args = ["audit", "--dataset", "digits", "--target-model", str(folder), "--quiet"]
    code, _, err = run_cli([*args, "--shadows", "2", "--out", str(tmp_path / "o")], capsys)
    assert name in _one_line_error(code, err)
    assert not (tmp_path / "o").exists()
    if name == "dataset.json":  # also read by an audit of a service: --membership FOLDER
        with pytest.raises(MiauditError, match=name):
            load_membership(folder, load_dataset("digits"))
    with pytest.raises(MiauditError, match=name):
        PredictionService.from_folder(folder, [])


@pytest.mark.parametrize("content", list(HOSTILE_JSON), ids=list(HOSTILE_JSON))
def test_a_damaged_json_config_file_is_one_line(tmp_path, capsys, content):
    cfg = tmp_path / "config.json"
    cfg.write_bytes(HOSTILE_JSON[content].encode("utf-8", "surrogateescape"))
    code, _, err = run_cli(["audit", "--config", str(cfg), "--quiet"], capsys)
    assert "config.json" in _one_line_error(code, err)


def test_an_attack_setting_of_5000_digits_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(
        ["audit", "--dataset", "digits", "--attack-setting", "rmia.gamma=" + "9" * 5000],
        capsys,
    )
    assert "gamma" in _one_line_error(code, err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--shadows", "1000000"],
            r"of --shadows 1000000 models .* would take about [\d,.]+ GiB, more than this",
        ),
        (["--game", "recipe", "--shadows", "1000000"], r"--shadows 1000000 models"),
        (["--bootstrap", "1000000000"], r"bootstrap"),
    ],
    ids=["shadows", "recipe-shadows", "bootstrap"],
)
def test_absurd_settings_are_refused_before_any_work(tmp_path, capsys, args, message):
    out = tmp_path / "o"
    code, _, err = run_cli(["audit", "--dataset", "digits", *args, "--out", str(out)], capsys)
    assert re.search(message, _one_line_error(code, err))
    assert not out.exists()
