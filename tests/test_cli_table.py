"""The command line generated from one table (issue 29): the options each command
shows, in the order ``--help`` shows them, and nothing heavy imported to show them.

``tests/test_options.py`` checks the table against the configuration; this file pins
what a user sees of it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer

from miaudit.cli import app

#: Modules ``--help`` and ``version`` must not import: the heavy layers, and what
#: pulls them in. They are imported once a command runs.
HEAVY = ("torch", "sklearn", "pandas", "miaudit.pipeline", "miaudit.models")

PROBE = """
import json, sys
from miaudit.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "heavy": [m for m in %r if m in sys.modules]}))
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["version"], ["audit", "--help"], ["train", "--help"], ["serve", "--help"]],
    ids=" ".join,
)
def test_help_and_version_import_nothing_heavy(argv):
    # A fresh interpreter: this one has imported everything already.
    done = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"code": 0, "heavy": []}, f"miaudit {' '.join(argv)} imported {answer}"


def _flags(command: str) -> list[str]:
    params = typer.main.get_command(app).commands[command].params
    return [
        "/".join(p.opts + p.secondary_opts) if p.param_type_name == "option" else p.name.upper()
        for p in params
    ]


#: Every option of each generated command, in its order (``--help`` groups them by
#: panel, in this order within each).
PINNED = {
    "audit": (
        "--config --dataset --label --categorical --id-column --text-column --pixel-scale "
        "--target-size --shadows --shadow-size --target-python --trainer-python "
        "--python-path --members --non-members --members-as --model --epochs --lr "
        "--batch-size --l2 --hidden --augment/--no-augment --dp-epsilon --dp-delta "
        "--max-grad-norm --dp-accountant --shadow-model --target-model --save-target "
        "--target-url --protocol --membership --token --query-cache "
        "--no-query-cache/--no-no-query-cache --http-timeout --http-retries --shadow-data "
        "--noise --shadow-labels --query-budget --defense --attack-learner "
        "--class-agnostic/--per-class --attacks --attack-setting --lira-variance "
        "--lira-queries --queries --game --canaries --canary-kind --bootstrap --fpr "
        "--workers --max-stack --executor --scheduler --job-cache "
        "--no-job-cache/--no-no-job-cache --keep-models/--no-keep-models --seed --device "
        "--out --overwrite/--no-overwrite --records --save-outputs/--no-save-outputs "
        "--mlflow/--no-mlflow --fail-on --quiet/--no-quiet --allow-python/--no-allow-python"
    ),
    "train": (
        "--out --config --dataset --label --target-size --model --epochs --lr --batch-size "
        "--l2 --hidden --augment/--no-augment --dp-epsilon --dp-delta --max-grad-norm "
        "--dp-accountant --seed --device --overwrite/--no-overwrite"
    ),
    "evaluate": (
        "OUTPUTS --attacks --logits/--no-logits --seed --bootstrap --fpr --attack-setting "
        "--queries --out --overwrite/--no-overwrite --records --fail-on"
    ),
    "serve": (
        "MODEL_DIR --host --port --token --no-auth/--no-no-auth --top-k --round "
        "--temperature --label-only/--no-label-only --max-batch --max-body "
        "--max-connections --header-timeout --body-timeout --workers"
    ),
}


@pytest.mark.parametrize("command", sorted(PINNED))
def test_each_command_keeps_its_options_and_their_order(command):
    assert _flags(command) == PINNED[command].split()


def test_the_panels_of_audit_are_the_table_s():
    params = typer.main.get_command(app).commands["audit"].params
    panels = {p.name: p.rich_help_panel for p in params}
    assert panels["token"] == panels["target_url"] == "Remote target"
    assert panels["dp_epsilon"] == "DP-SGD (mlp, cnn; target and shadows)"
    assert panels["workers"] == "Execution (never changes a result)"
    assert panels["seed"] is None and panels["out"] is None
    token = next(p for p in params if p.name == "token")
    assert token.envvar == "MIAUDIT_TOKEN"
