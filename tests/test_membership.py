"""Files of members (--members, membership.npz) read by the one membership rule, and the
command line's --members-as."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pytest

import miaudit
from miaudit.data.records import named_rows
from miaudit.errors import ConfigError
from miaudit.handover import read_members
from test_cli import _one_line_error, run_cli

ROWS = [1, 4, 5]
MASK = np.isin(np.arange(8), ROWS)


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("mask.npy", lambda p: np.save(p, MASK)),
        ("ints.npy", lambda p: np.save(p, MASK.astype(np.int64))),
        ("floats.npy", lambda p: np.save(p, MASK.astype(np.float32))),
        ("rows.npy", lambda p: np.save(p, np.array(ROWS))),
        ("savetxt.txt", lambda p: np.savetxt(p, MASK)),  # 0.000000000000000000e+00 lines
        ("ints.txt", lambda p: np.savetxt(p, MASK, fmt="%d")),
        ("words.txt", lambda p: p.write_text("\n".join(map(str, MASK)) + "\n")),
        ("rows.txt", lambda p: p.write_text("1\n4\n\n5\n")),
        ("mask.csv", lambda p: pd.DataFrame({"member": MASK}).to_csv(p, index=False)),
        ("floats.csv", lambda p: pd.DataFrame({"m": MASK.astype(float)}).to_csv(p, index=False)),
        ("rows.csv", lambda p: pd.DataFrame({"row": ROWS}).to_csv(p, index=False)),
    ],
)  # fmt: skip
def test_every_file_of_a_mask_or_rows_names_the_same_rows(tmp_path, name, write):
    path = tmp_path / name
    write(path)
    assert list(named_rows(read_members(path, "members"), "members", 8)) == ROWS


def test_a_file_names_itself_as_the_caller_named_it(tmp_path, capsys):
    (tmp_path / "m.json").write_text("[1]")
    with pytest.raises(ConfigError, match=r"^non_members=.*m.json: use a .npy, .txt"):
        read_members(tmp_path / "m.json", "non_members")
    with pytest.raises(ConfigError, match=r"^members=.*nowhere.txt: no such file"):
        read_members(tmp_path / "nowhere.txt", "members")


def test_a_membership_file_may_hold_a_mask_of_the_records(tmp_path):
    from miaudit.stages.targets import load_membership

    data = miaudit.load_dataset("digits")
    members = np.zeros(data.n_records, bool)
    members[[3, 50, 700]] = True
    others = np.zeros(data.n_records, np.int8)
    others[[4, 51]] = 1
    np.savez(tmp_path / "membership.npz", members=members, non_members=others)
    saved = load_membership(tmp_path / "membership.npz", data)
    assert list(saved.members) == [3, 50, 700] and list(saved.non_members) == [4, 51]
    np.savez(tmp_path / "membership.npz", members=np.array([3, 50, 700]), non_members=others)
    assert list(load_membership(tmp_path / "membership.npz", data).members) == [3, 50, 700]


@pytest.fixture
def own_csv(tmp_path):
    """Digits as a CSV whose id column is a shuffle of the row positions, and a module
    with a model fitted on rows 0 .. 299."""
    data = miaudit.load_dataset("digits")
    table = pd.DataFrame(data.X.reshape(len(data.X), -1), columns=[f"p{i}" for i in range(64)])
    table.insert(0, "pid", np.random.default_rng(0).permutation(len(table)))
    table["digit"] = data.y
    table.to_csv(tmp_path / "digits.csv", index=False)
    (tmp_path / "ownmodel.py").write_text(
        textwrap.dedent(f"""
            import pandas as pd
            from sklearn.linear_model import LogisticRegression

            table = pd.read_csv({str(tmp_path / "digits.csv")!r}).iloc[:300]
            model = LogisticRegression(max_iter=200).fit(
                table.drop(columns=["pid", "digit"]), table["digit"]
            )
        """)
    )
    np.savetxt(tmp_path / "rows.txt", np.arange(300), fmt="%d")
    return tmp_path


def _audit_args(folder, members):
    return [
        "audit", "--dataset", str(folder / "digits.csv"), "--label", "digit", "--id-column",
        "pid", "--target-python", "ownmodel:model", "--python-path", str(folder),
        "--members", str(members), "--shadows", "1", "--attacks", "loss", "--bootstrap", "20",
        "--quiet",
    ]  # fmt: skip


def test_the_command_line_refuses_rows_that_read_as_ids_and_members_as_settles(own_csv, capsys):
    args = _audit_args(own_csv, own_csv / "rows.txt")
    out = own_csv / "out"
    line = _one_line_error(*run_cli([*args, "--out", str(out)], capsys)[::2])
    assert line == (
        "miaudit: error: --members: reads both as row positions and as ids; say which with "
        "--members-as positions or --members-as ids"
    )
    assert not out.exists()
    code, _, err = run_cli([*args, "--members-as", "positions", "--out", str(out)], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["target"]["train_accuracy"] == 1.0  # the very rows it was trained on
    assert json.loads((out / "config.json").read_text())["members_as"] == "positions"


def test_the_command_line_refuses_a_mask_that_is_no_mask_in_one_line(own_csv, capsys):
    np.savetxt(own_csv / "half.txt", np.r_[0.5, np.zeros(1796)])
    args = _audit_args(own_csv, own_csv / "half.txt")
    line = _one_line_error(*run_cli(args, capsys)[::2])
    assert line.startswith(
        "miaudit: error: --members: a float array is a 0/1 mask: entry 0 is 0.5, neither 0 nor 1"
    )
    line = _one_line_error(*run_cli([*args, "--members-as", "rows"], capsys)[::2])
    assert "members_as" in line and "'mask', 'positions' or 'ids'" in line
