"""The README's CI recipe runs as written: ``examples/ci`` is a repository laid out as an
ML team's (its training script, the module that loads the model it ships, and
``.github/workflows/privacy-audit.yml``), and its workflow's steps, run in order as the
runner runs them, train, audit, write the report to keep, and end with the gate's
documented exit status."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from miaudit.report.run import load_run
from miaudit.verdict import gate

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples" / "ci"
WORKFLOW = RECIPE / ".github" / "workflows" / "privacy-audit.yml"


def _steps() -> list[dict]:
    (job,) = yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
    return job["steps"]


def test_the_readme_shows_the_workflow_that_is_run():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    assert WORKFLOW.read_text() in blocks


def test_the_workflow_trains_audits_keeps_the_report_and_gates_on_high(tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(RECIPE, repo, ignore=shutil.ignore_patterns("build", "__pycache__"))
    # The runner's Python is this one, with miaudit installed: the install step's work.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    status, kept, failed = {}, [], False
    for step in _steps():
        if failed and "always()" not in str(step.get("if", "")):
            continue  # the job stops at a failing step; steps marked always() still run
        if "uses" in step:
            if step["uses"].startswith("actions/upload-artifact"):
                kept.append(repo / step["with"]["path"])
            continue
        if step["run"].startswith("pip install"):
            continue
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=repo, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        status[step["name"]] = (done.returncode, done.stderr)
        failed = failed or done.returncode != 0
    audit = next(name for name in status if name.startswith("Audit"))
    assert status["Train"][0] == 0, status["Train"][1][-2000:]
    code, err = status[audit]
    run = load_run(repo / "build" / "privacy-audit")
    expected = gate(run, "high")
    assert code == expected.status, err[-2000:]
    if code:
        assert f"gate {expected.outcome.upper()}" in err
    assert kept and all(path.is_file() for path in kept)
    # The recipe shares the page: it shows no record's values, row or id.
    page = kept[0].read_text(encoding="utf-8")
    assert run.results["records_shown"] == "none" and expected.verdict.level in page
