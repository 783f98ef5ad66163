"""In a notebook: a notebook executed end to end by a real Jupyter kernel (nbclient)
shows an audit's result as HTML (the verdict box, the attacks' table and the ROC
figure, self-contained) and its progress without error."""

from __future__ import annotations

import re

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs nbformat (pip install -e .[dev])")
nbclient = pytest.importorskip("nbclient", reason="needs nbclient (pip install -e .[dev])")
pytest.importorskip("ipykernel", reason="needs ipykernel (pip install -e .[dev])")

CELLS = [
    "import miaudit\nfrom miaudit.jobs import Execution",
    (
        'result = miaudit.audit(dataset="digits", target_size=150, shadows=2, seed=0,\n'
        '                       target={"model": "logistic-regression"}, progress=True,\n'
        "                       execution=Execution(job_cache=False))"
    ),
    "result",
    "result.level",
]


def _html(outputs) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in outputs)


def test_an_executed_notebook_renders_the_result(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    errors = [o for c in notebook.cells for o in c.outputs if o.output_type == "error"]
    assert errors == []
    # Progress: a bar per stage, updated in place, each left with its time.
    progress = _html(notebook.cells[1].outputs)
    assert "training 2 shadows" in progress and "done in" in progress
    shown = _html(notebook.cells[2].outputs)
    level = notebook.cells[3].outputs[0]["data"]["text/plain"].strip("'")
    assert 'class="miaudit-result"' in shown
    assert f"Leakage: {level}" in shown or f"Leakage: at least {level}" in shown
    assert "<table>" in shown and "<svg" in shown and "ROC curves" in shown
    # Self-contained and quiet: no script, no outside reference, styles scoped to it.
    assert "<script" not in shown and "http://" not in shown.replace("http://www.w3.org", "")
    styles = re.search(r"<style>(.*?)</style>", shown, re.S).group(1)
    rules = [r.split("{")[0].strip() for r in styles.split("}") if "{" in r]
    assert all(sel.strip().startswith(".miaudit-result") for r in rules for sel in r.split(","))


def test_two_results_in_one_notebook_keep_their_own_figure_ids():
    import miaudit
    from miaudit.jobs import Execution

    result = miaudit.audit(dataset="digits", target_size=150, shadows=2, seed=0,
                           target={"model": "logistic-regression"},
                           execution=Execution(job_cache=False))  # fmt: skip
    first, second = result._repr_html_(), result._repr_html_()
    ids = [set(re.findall(r'id="([^"]+)"', block)) for block in (first, second)]
    assert ids[0] and not ids[0] & ids[1]
