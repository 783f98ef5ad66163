"""report.html and compare.html: valid, self-contained, the records as the user knows
them, and drawn in a real browser without text on text."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess

import html5lib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import miaudit
from miaudit.attacks.registry import ATTACKS
from miaudit.cli import main
from miaudit.report import plots
from miaudit.report.html import CSP


def _parse(page: str):
    """html5lib in strict mode: any parse error of the HTML standard raises."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(page)


def _no_external_references(page: str) -> None:
    for attr, value in re.findall(r'\b(src|href|xlink:href)\s*=\s*"([^"]*)"', page):
        assert value.startswith(("#", "data:image/png;base64,")), (attr, value[:80])
    assert "url(http" not in page and "@import" not in page
    assert "<script" not in page and "<link" not in page and "<iframe" not in page


@pytest.fixture(scope="module")
def compared(digits_runs, tmp_path_factory):
    base, label_only = digits_runs
    out = tmp_path_factory.mktemp("compare")
    assert main(["compare", str(base), str(label_only), "--out", str(out)]) == 0
    return out


def test_the_report_is_valid_html_with_no_external_reference(digits_runs, compared):
    for page in (digits_runs[0] / "report.html", compared / "compare.html"):
        text = page.read_text()
        tree = _parse(text)
        assert tree.find(".//body") is not None
        _no_external_references(text)
        # matplotlib's own mathematics (log ticks) is drawn, not shown as source.
        drawn = " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", text))
        assert "mathdefault" not in drawn and "10^{" not in drawn
        # Every figure is matplotlib's SVG, inline, its text kept as text.
        assert text.count("<svg") >= 2 and "<text" in text
        assert len(set(re.findall(r'\bid="([^"]+)"', text))) == len(
            re.findall(r'\bid="([^"]+)"', text)
        ), "an id is used twice"


def test_the_page_opens_with_the_verdict_and_explains_every_term(digits_runs):
    page = (digits_runs[0] / "report.html").read_text()
    body = page[page.index("<body>") :]
    first = re.search(r"<p>([^<]*Leakage: [a-z ]+\.[^<]*)</p>", body)
    assert first and body.index(first.group(0)) < body.index("What was audited")
    for term in ("AUC", "TPR at x % FPR", "95 % interval", "advantage", "ε ≥"):
        assert f"<dt>{term}</dt>" in page
    assert "@media print" in page


class Memoriser(BaseEstimator, ClassifierMixin):
    """A logistic regression that has memorised one record (its ``planted`` age and
    country): it answers that record's label with certainty."""

    def __init__(self, planted=(97.0, "Atlantis")):
        self.planted = planted

    def fit(self, X, y):
        numeric = [c for c in X.columns if X[c].dtype.kind == "f"]
        categorical = [c for c in X.columns if c not in numeric]
        self.pipe_ = make_pipeline(
            ColumnTransformer([("num", StandardScaler(), numeric),
                               ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)]),
            LogisticRegression(max_iter=300),
        ).fit(X, y)  # fmt: skip
        self.classes_ = self.pipe_.classes_
        hit = self._hit(X)
        self.label_ = None if not hit.any() else np.asarray(y)[hit][0]
        return self

    def _hit(self, X):
        age, country = self.planted
        return ((X["age"] == age) & (X["native_country"].astype(str) == country)).to_numpy()

    def predict_proba(self, X):
        p = self.pipe_.predict_proba(X)
        if self.label_ is not None:
            hit = self._hit(X)
            p[hit] = (self.classes_ == self.label_).astype(float)
        return p


def test_a_planted_record_is_shown_with_its_own_values(tmp_path):
    frame = miaudit.load_frame("adult").iloc[:3000].reset_index(drop=True)
    frame["native_country"] = frame["native_country"].astype(str)
    row = 321
    frame.loc[row, ["age", "native_country", "hours_per_week"]] = [97.0, "Atlantis", 61.5]
    members = np.arange(700)
    model = Memoriser().fit(frame.drop(columns="income").iloc[members],
                            frame["income"].iloc[members])  # fmt: skip
    miaudit.audit(
        target=model, data=frame, label="income", members=members, shadows=2,
        attacks=["loss", "gap"], bootstrap=100, seed=1, out=tmp_path / "r",
        show_records="values",
    )  # fmt: skip
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    top = results["most_exposed"]["records"][0]
    assert top["record"] == row and top["rank"] == 1 and top["tied"] == 1
    assert top["values"]["age"] == 97 and top["values"]["native_country"] == "Atlantis"
    assert top["values"]["hours_per_week"] == 61.5
    assert top["label"] == frame.loc[row, "income"]
    # On the page: the first row of the exposed table is that record, with its values.
    tree = _parse((tmp_path / "r" / "report.html").read_text())
    tables = tree.findall(".//table")
    exposed = next(t for t in tables if "the record" in "".join(t.find(".//tr").itertext()))
    first = exposed.findall(".//tr")[1]
    cells = ["".join(td.itertext()).strip() for td in first.findall("td")]
    assert cells[1] == str(row) and cells[2] == frame.loc[row, "income"]
    record = cells[-1]
    expected = {"age": "97", "native_country": "Atlantis", "hours_per_week": "61.5",
                "workclass": frame.loc[row, "workclass"]}  # fmt: skip
    for column, value in expected.items():
        assert f"{column} {value}" in record, (column, record)
    # The other top records are decoded to the user's own values too.
    for r in results["most_exposed"]["records"][1:5]:
        original = frame.drop(columns="income").iloc[r["record"]]
        for column in ("education", "sex", "capital_gain"):
            v = original[column]
            assert r["values"][column] == (int(v) if isinstance(v, float) and v.is_integer()
                                           else str(v))  # fmt: skip


def test_ties_at_the_top_are_shown_as_ties(digits_runs):
    # The label-only target's scores take few values: the top ones are tied.
    results = json.loads((digits_runs[1] / "results.json").read_text())
    records = results["most_exposed"]["records"]
    scores = pd.read_csv(digits_runs[1] / "scores.csv")[f"score_{results['strongest_attack']}"]
    top = scores.max()
    assert records[0]["tied"] == int((scores == top).sum()) > 1
    assert all(r["rank"] == 1 for r in records if r["score"] == top)
    page = (digits_runs[1] / "report.html").read_text()
    assert f"1= <small>(tie of {records[0]['tied']:,})</small>" in page


def test_the_report_command_renders_the_same_page_from_the_files(digits_runs, tmp_path):
    base = digits_runs[0]
    assert main(["report", str(base), "--out", str(tmp_path / "again.html")]) == 0
    assert (tmp_path / "again.html").read_bytes() == (base / "report.html").read_bytes()
    # Other thresholds: other words for the same numbers.
    assert main(["report", str(base), "--out", str(tmp_path / "strict.html"),
                 "--levels", "1.01,1.02,1.03"]) == 0  # fmt: skip
    assert "Leakage: severe" in (tmp_path / "strict.html").read_text()


def test_legends_are_outside_the_plots_and_their_texts_never_overlap():
    curves = {f"{name} (AUC 0.{i:03d})": (np.array([0, 0.01 * (i + 1), 1.0]),
                                          np.array([0, 0.5, 1.0]))
              for i, name in enumerate(ATTACKS)}  # fmt: skip
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with plots._rc():
        fig = plots.roc_figure(curves, 1000)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        legend = fig.legends[0]
        boxes = [t.get_window_extent(renderer) for t in legend.get_texts()]
        assert [t.get_text() for t in legend.get_texts()] == list(curves)
        others = [ax.xaxis.label.get_window_extent(renderer) for ax in fig.axes]
        others += [ax.yaxis.label.get_window_extent(renderer) for ax in fig.axes]
        for ax in fig.axes:  # the tick labels drawn: those of ticks within the axes' range
            for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
                for loc, label in zip(axis.get_ticklocs(), axis.get_ticklabels(), strict=True):
                    if lo <= loc <= hi and label.get_text():
                        others.append(label.get_window_extent(renderer))
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b)
        for box in boxes:
            assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)
            assert not any(box.overlaps(o) for o in others)
        # Every attack of --attacks all keeps a line style of its own.
        styles = {(ln.get_color(), ln.get_linestyle()) for ln in fig.axes[0].get_lines()[:-1]}
        assert len(styles) == len(ATTACKS)


_CHECK = """<script>
const out = {height: document.documentElement.scrollHeight, svgs: 0, legends: 0, overlaps: []};
function box(e) { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }
function hit(a, b) {
  return a[0] < b[2] - 1 && b[0] < a[2] - 1 && a[1] < b[3] - 1 && b[1] < a[3] - 1;
}
for (const svg of document.querySelectorAll("svg")) {
  out.svgs++;
  const texts = [...svg.querySelectorAll("text")];
  for (const legend of svg.querySelectorAll('g[id$="legend_1"]')) {
    out.legends++;
    const own = [...legend.querySelectorAll("text")];
    const axes = [...svg.querySelectorAll('g[id*="axes_"] > g[id*="patch_"]:first-child')];
    for (const t of own) {
      for (const u of texts) if (u !== t && hit(box(t), box(u)))
        out.overlaps.push(t.textContent + " / " + u.textContent);
      for (const a of axes) if (hit(box(t), box(a))) out.overlaps.push(t.textContent + " / axes");
    }
  }
}
document.body.setAttribute("data-check", JSON.stringify(out));
</script></body>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no headless Chromium here (Debian: apt-get install chromium)")


def _browser(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        # As root in a container: no sandbox, and /tmp instead of a small /dev/shm.
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--hide-scrollbars", "--mute-audio", "--no-first-run", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


# Skipped before the shared runs are built, where nothing could draw them.
@pytest.mark.skipif(
    not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
    reason="no headless Chromium here (Debian: apt-get install chromium)",
)
@pytest.mark.parametrize("page", ["report", "compare"])
def test_a_real_browser_renders_the_page_without_text_on_text(page, digits_runs, compared,
                                                              tmp_path):  # fmt: skip
    from PIL import Image

    source = digits_runs[0] / "report.html" if page == "report" else compared / "compare.html"
    text = source.read_text()
    checked = tmp_path / "checked.html"
    # The page's CSP forbids scripts, the check's too: it runs on a copy without it.
    assert CSP in text
    checked.write_text(text.replace(CSP, "").replace("</body>", _CHECK))
    dom = _browser(["--window-size=1100,1400", "--virtual-time-budget=3000", "--dump-dom",
                    checked.as_uri()])  # fmt: skip
    found = re.search(r'data-check="([^"]+)"', dom.stdout)
    assert found, dom.stderr[-2000:]
    check = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert check["svgs"] >= 2 and check["legends"] >= 1
    assert check["overlaps"] == []
    low, high = (3000, 30000) if page == "report" else (1200, 8000)
    assert low <= check["height"] <= high
    shot = tmp_path / "shot.png"
    _browser([f"--window-size=1100,{check['height']}", f"--screenshot={shot}",
              source.as_uri()])  # fmt: skip
    image = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert image.shape == (check["height"], 1100)
    inked = (image < 200).mean()  # text, lines, the verdict's band: drawn, not blank
    assert 0.01 < inked < 0.5 and image.std() > 20


def test_the_recipe_game_says_how_many_reference_models_trained_on_each_record(tmp_path):
    result = miaudit.audit(
        dataset="digits", target_size=200, shadows=4, seed=2, game="recipe", bootstrap=50,
        target={"model": "logistic-regression"}, attacks=["loss", "lira"], out=tmp_path / "r",
    )  # fmt: skip
    exposed = json.loads((tmp_path / "r" / "results.json").read_text())["most_exposed"]
    assert exposed["reference_models"] == 4
    counts = result.inputs.reference.member[:, : len(result.member)].sum(axis=0)
    for r, at in zip(exposed["records"], result.exposed_positions(), strict=True):
        assert r["in_models"] == counts[at]
    page = (tmp_path / "r" / "report.html").read_text()
    assert "<th>IN for (of 4)</th>" in page
