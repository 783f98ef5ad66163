"""config.json names its files by absolute paths: ``--config`` repeats a run from any folder."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from miaudit.cli import main
from miaudit.config import make_config

#: A module name no other test imports: sys.modules must not answer for it.
MODULE = "repeat_from_elsewhere_models"


def test_relative_paths_are_made_absolute_and_names_are_kept(tmp_path, monkeypatch):
    tmp_path = tmp_path.resolve()  # the current folder's name has no links in it
    monkeypatch.chdir(tmp_path)
    (tmp_path / "people.csv").write_text("a,b\n1,2\n")
    config = make_config({
        "dataset": "people.csv", "members": "m.txt", "non_members": "sub/../n.npy",
        "python_path": ".", "target_python": "code/models.py:model",
        "trainer_python": "mymodels:trainer",
    })  # fmt: skip
    assert config.dataset == str(tmp_path / "people.csv")
    assert config.members == str(tmp_path / "m.txt")
    assert config.non_members == str(tmp_path / "n.npy")
    assert config.python_path == [str(tmp_path)]
    assert config.target_python == f"{tmp_path / 'code' / 'models.py'}:model"
    assert config.trainer_python == "mymodels:trainer"  # a module, found on python_path
    saved = make_config({"target_model": "models/adult", "save_target": None})
    assert saved.target_model == str(tmp_path / "models" / "adult")
    remote = {"target_url": "http://127.0.0.1:8000", "membership": "models/adult"}
    assert make_config(remote).membership == str(tmp_path / "models" / "adult")
    # Built-in names stay names; an unknown one keeps its text for the loader's message.
    assert make_config({"dataset": "digits"}).dataset == "digits"
    assert make_config({"dataset": "digitz"}).dataset == "digitz"
    # Read back from config.json elsewhere: the same, absolute paths.
    monkeypatch.chdir(tmp_path.parent)
    assert make_config(config.resolved_dict()).resolved_dict() == config.resolved_dict()


def _write_run_inputs(folder: Path) -> None:
    """A user's table, the fitted model of a module that reads it, and its members."""
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "income": rng.normal(50, 10, n).round(3),
        "city": rng.choice(["north", "south", "east"], n),
        "outcome": rng.choice(["yes", "no", "maybe"], n),
    })  # fmt: skip
    frame.to_csv(folder / "people.csv", index=False)
    members = np.arange(0, n, 5)
    (folder / "members.txt").write_text("".join(f"{i}\n" for i in members))
    (folder / f"{MODULE}.py").write_text(
        textwrap.dedent("""
        from pathlib import Path

        import pandas as pd
        from sklearn.compose import make_column_transformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        here = Path(__file__).parent
        table = pd.read_csv(here / "people.csv")
        members = [int(line) for line in (here / "members.txt").read_text().split()]
        rows = table.iloc[members]
        model = make_pipeline(
            make_column_transformer(
                (StandardScaler(), ["age", "income"]), (OneHotEncoder(), ["city"])
            ),
            LogisticRegression(max_iter=300),
        ).fit(rows.drop(columns="outcome"), rows["outcome"])
    """)
    )


def _audit(args: list[str], capsys) -> None:
    code = main(["audit", *args, "--quiet", "--no-job-cache"])
    assert code == 0, capsys.readouterr().err


def _results(run: Path) -> dict:
    results = json.loads((run / "results.json").read_text())
    results.pop("timings_s"), results.pop("run_id")
    return results


def test_config_json_repeats_a_run_from_another_folder(tmp_path, monkeypatch, capsys):
    work, elsewhere = tmp_path.resolve() / "work", tmp_path.resolve() / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    _write_run_inputs(work)
    # Imports of the first run must not serve the repeat: it finds the module itself.
    monkeypatch.setattr(sys, "path", list(sys.path))
    clean_path = list(sys.path)
    monkeypatch.delitem(sys.modules, MODULE, raising=False)

    monkeypatch.chdir(work)
    # Every path relative to the folder the audit runs in.
    _audit([
        "--dataset", "people.csv", "--label", "outcome", "--target-python", f"{MODULE}:model",
        "--python-path", ".", "--members", "members.txt", "--shadows", "1",
        "--attacks", "loss,shokri", "--bootstrap", "20", "--out", "run",
    ], capsys)  # fmt: skip
    config = json.loads((work / "run" / "config.json").read_text())
    assert config["dataset"] == str(work / "people.csv")
    assert config["members"] == str(work / "members.txt")
    assert config["python_path"] == [str(work)]
    assert config["target_python"] == f"{MODULE}:model"

    sys.path[:] = clean_path
    del sys.modules[MODULE]
    monkeypatch.chdir(elsewhere)
    _audit(["--config", "../work/run/config.json", "--allow-python", "--out", "again"], capsys)
    assert _results(elsewhere / "again") == _results(work / "run")
    again = json.loads((elsewhere / "again" / "config.json").read_text())
    assert again.pop("run_id") != config.pop("run_id")  # the same settings, another run
    assert again == config
