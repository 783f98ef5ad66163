"""report.html, compare.html and the terminal given a run folder someone edited.

results.json is a file anyone can edit, and ``miaudit report`` draws a page from it
that others open. Every string of a real run's results.json is replaced by markup (the
page must show it as text and run nothing), every number by markup (the loader must
refuse it in one line, or the page must run nothing), and the page must forbid
scripts anyway (its Content-Security-Policy) while still showing its figures. A
number of 5,000 digits and lists nested 100,000 deep are one line, not a traceback;
a right-to-left override in a name reverses nothing after it, a 300-character name
does not widen the page, and the terminal prints no control characters.
"""

from __future__ import annotations

import collections
import html
import io
import json
import re
import shutil
from pathlib import Path

import html5lib
import numpy as np
import pandas as pd
import pytest
from report_helpers import unseal
from rich.console import Console

# The headless-Chromium helpers of test_page (same folder, imported as a module).
from test_page import _browser, _parse

from miaudit.claim import claim_section
from miaudit.cli import main
from miaudit.data.kinds.image import png_data_uri
from miaudit.errors import ConfigError
from miaudit.report.html import CSP, render_html
from miaudit.report.run import check_results, load_run
from miaudit.report.summary import print_summary
from miaudit.report.text import UNPRINTABLE

#: Markup that, were it written into the page as it is, would run a script: in text,
#: in an attribute (the quotes), in the title, in a style element, in SVG.
PAYLOAD = (
    "\"'></title></style>]]><script>document.title='pwned'</script>"
    "<img src=x onerror=\"document.title='pwned';"
    "document.documentElement.setAttribute('data-pwned','1')\">"
    "<svg onload=\"document.title='pwned'\"></svg>"
)

#: Strings whose value picks what the page draws: kept, so that the page draws the
#: parts that depend on them (the address of an HTTP target, the recipe game's
#: pool, the one-run bound of the privacy claim).
KEEP = {("target", "source"), ("shadows", "game"), ("privacy_claim", "lower_bound", "method"),
        # Checked at load, never drawn: a run id, a digest and the level of records shown.
        ("run_id",), ("scores_sha256",), ("records_shown",)}  # fmt: skip
#: Tables whose keys are names (of attacks, columns, stages, classes): renamed too.
NAMED_KEYS = {"attacks", "values", "timings_s", "skipped_attacks", "groups"}

needs_chromium = pytest.mark.skipif(
    not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
    reason="no headless Chromium here (Debian: apt-get install chromium)",
)


@pytest.fixture(scope="module")
def real_run(digits_runs) -> Path:
    """The report tests' small over-fitted digits audit (conftest): a leak the page
    draws in full (verdict figures, advice, the class chart)."""
    return digits_runs[0]


#: A DP-SGD plan as results.json holds it (``target.dp``, ``privacy_claim.claimed``).
PLAN = {"epsilon": 8.0, "delta": 1e-5, "noise_multiplier": 0.84, "max_grad_norm": 1.0,
        "sample_rate": 0.5, "steps": 6, "epochs": 3, "accountant": "rdp",
        "epsilon_spent": 7.99}  # fmt: skip


def _complete(run: Path) -> dict:
    """The run's results.json with every field the page draws only in some audits: a
    DP-SGD target and its privacy claim (computed from the run's scores, canary game's
    one-run bound included), an HTTP target, the recipe game's pool, reference-model
    counts, ids, a text and an object record, an image record, coded classes, skipped
    attacks and what weakened the audit."""
    d = json.loads((run / "results.json").read_text())
    loaded = load_run(run)
    scores = {a: loaded.score(a) for a in loaded.attacks}
    d["privacy_claim"] = claim_section(scores, loaded.member, loaded.attacks, [0.01, 0.1],
                                       dict(PLAN), PLAN["delta"], True)  # fmt: skip
    d["target"].update(source="http", url="http://example.test/predict", defense=["top-k:1"],
                       dp=dict(PLAN), queries={"sent": 400, "budget": None})  # fmt: skip
    d["shadows"].update(game="recipe", overlapping_in_sets=True, pool_size=1397)
    exposed = d["most_exposed"]
    exposed["reference_models"] = 4
    for i, r in enumerate(exposed["records"]):
        r.update(in_models=i % 5, id=f"row-{r['record']}")
    exposed["records"][0]["text"] = "a text record"
    exposed["records"][1]["object"] = "an object record"
    exposed["records"][2]["image"] = png_data_uri(np.full((1, 8, 8), 200, dtype=np.uint8))
    names = d["dataset"]["class_names"]
    d["dataset"]["notes"]["class_codes"] = {
        "what": "digit code", "group": "shape", "groups": {n: f"shape {n}" for n in names},
    }  # fmt: skip
    d["skipped_attacks"] = {"lira-online": "reference models trained on each record"}
    d["weakened"] = [{"kind": "test", "sentence": "A test weakened this audit."}]
    d["attacks"]["loss"]["fallback_classes"] = [names[1]]
    return d


def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    else:
        yield path, node


def _set(d, path, value):
    for p in path[:-1]:
        d = d[p]
    d[path[-1]] = value


def _dotted(path) -> str:
    """A leaf's path as the loader's messages write it: ``a.b[0].c``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _hostile_strings(d: dict) -> tuple[dict, dict[str, str]]:
    """Every string of ``d`` (and every name among its keys) replaced by markup, the
    same string by the same markup (so references between fields hold)."""
    names: dict[str, str] = {}

    def hostile(text: str) -> str:
        return names.setdefault(text, f"u{len(names)}{PAYLOAD}")

    def walk(node, path):
        if isinstance(node, dict):
            rename = bool(path) and path[-1] in NAMED_KEYS
            return {(hostile(k) if rename else k): walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, str) and path not in KEEP:
            return "data:image/png;base64," + PAYLOAD if path[-1] == "image" else hostile(node)
        return node

    return walk(d, ()), names


def _write(src: Path, to: Path, results: dict, renamed: dict[str, str] | None = None) -> Path:
    shutil.copytree(src, to)
    (to / "results.json").write_text(json.dumps(results), encoding="utf-8")
    if renamed:  # the attacks' score columns follow their names
        unseal(to)  # its scores.csv is rewritten
        scores = pd.read_csv(to / "scores.csv")
        scores = scores.rename(columns={f"score_{a}": f"score_{renamed[a]}" for a in renamed})
        scores.to_csv(to / "scores.csv", index=False)
    return to


def _elements(tree):
    for e in tree.iter():
        if isinstance(e.tag, str):
            yield e


def _runs_nothing(page: str) -> collections.Counter:
    """The page parses (strictly) to no script, no event handler and no image but the
    records' data: PNGs; returns its elements, counted by tag."""
    tree = _parse(page)
    tags = collections.Counter()
    for e in _elements(tree):
        tag = e.tag.rsplit("}", 1)[-1]
        tags[tag] += 1
        assert tag not in ("script", "iframe", "object", "embed", "link", "base"), tag
        assert not [a for a in e.attrib if a.lower().startswith("on")], (tag, e.attrib)
        if tag == "img":
            assert e.get("src").startswith("data:image/png;base64,"), e.get("src")[:60]
    return tags


def _title(tree) -> str:
    return "".join(tree.find(".//title").itertext())


def _in_chromium_runs_nothing(page_file: Path, tmp_path: Path) -> None:
    """Chromium opens the page as it is and without its CSP (the escaping alone must
    hold): the title is the page's own, nothing was added, no handler ran."""
    text = page_file.read_text(encoding="utf-8")
    bare = tmp_path / "no-csp.html"
    bare.write_text(text.replace(CSP, ""), encoding="utf-8")
    for page in (page_file, bare):
        static = _parse(page.read_text(encoding="utf-8"))
        expected = collections.Counter(e.tag.rsplit("}", 1)[-1] for e in _elements(static))
        dom = _browser(["--window-size=1100,1400", "--virtual-time-budget=3000", "--dump-dom",
                        page.as_uri()])  # fmt: skip
        assert "<body" in dom.stdout, dom.stderr[-2000:]
        tree = html5lib.parse(dom.stdout, namespaceHTMLElements=False)
        assert not [e.tag for e in _elements(tree) if "data-pwned" in e.attrib]
        assert _title(tree) == _title(static) and _title(tree) != "pwned"
        found = collections.Counter(e.tag.rsplit("}", 1)[-1] for e in _elements(tree))
        assert found == expected, found - expected


# ----------------------------------------------------------------------- (a) strings


@needs_chromium
def test_markup_in_every_string_is_shown_as_text_and_runs_nothing(real_run, tmp_path):
    d = _complete(real_run)
    # The completed run is a page miaudit draws, with every part the markup goes into.
    plain = _write(real_run, tmp_path / "plain", d)
    assert main(["report", str(plain)]) == 0
    page = (plain / "report.html").read_text()
    for part in ("the service at", "queries sent", "recipe game", "IN for (of 4)",
                 "class=thumb", "<q class=text>", "Attacks not run", "guesses right"):  # fmt: skip
        assert part in page, part

    hostile, names = _hostile_strings(d)
    assert len(names) > 150  # class names, columns, attacks, sentences, …
    folder = _write(real_run, tmp_path / "hostile", hostile,
                    renamed={a: names[a] for a in d["attacks"]})  # fmt: skip
    assert main(["report", str(folder)]) == 0
    page = (folder / "report.html").read_text(encoding="utf-8")
    _runs_nothing(page)
    # Shown as text: the data set's name heads the page, the attack's name its table.
    tree = _parse(page)
    h1 = "".join(tree.find(".//h1").itertext())
    assert h1.endswith(names["digits"]) and "<script>" in h1
    assert page.count(html.escape(names["loss"])) > 5
    _in_chromium_runs_nothing(folder / "report.html", tmp_path)

    out = tmp_path / "compare"
    assert main(["compare", str(folder), str(folder), "--out", str(out), "--bootstrap", "100"]) == 0
    page = (out / "compare.html").read_text(encoding="utf-8")
    _runs_nothing(page)
    _in_chromium_runs_nothing(out / "compare.html", tmp_path)


# ----------------------------------------------------------------------- (a) numbers

#: Number fields the issue names, and others the page writes: each must be refused.
MUST_REFUSE = [
    "seed", "dataset.n_records", "dataset.n_features", "dataset.n_classes",
    "target.n_train", "target.n_test", "target.train_accuracy", "target.queries.sent",
    "target.dp.epsilon", "target.dp.delta", "target.recipe.l2", "shadows.count",
    "shadows.n_in", "shadows.n_out", "shadows.pool_size", "ranking.fpr",
    "most_exposed.reference_models", "most_exposed.records[0].in_models",
    "most_exposed.records[0].rank", "most_exposed.records[0].tied",
    "most_exposed.records[0].record", "most_exposed.records[3].score",
    "attacks.loss.auc", "attacks.loss.per_class[0].n", "attacks.loss.per_class[0].precision",
    "attacks.loss.n_members", "attacks.loss.tpr_at_fpr.0.01",
    "attacks.loss.tpr_at_fpr_ci.0.01[0]", "attacks.loss.epsilon_lower_bound_cp.0.01",
    "timings_s.metrics", "privacy_claim.delta", "privacy_claim.confidence",
    "privacy_claim.lower_bound.epsilon", "privacy_claim.attacks.loss.one_run.epsilon",
    "privacy_claim.attacks.loss.one_run.correct", "privacy_claim.attacks.loss.one_run.guesses",
    "privacy_claim.attacks.loss.one_run.canaries", "privacy_claim.attacks.loss.one_run.ceiling",
    "privacy_claim.attacks.loss.clopper_pearson.epsilon", "privacy_claim.attacks.loss.gdp.mu",
    "privacy_claim.claimed.epsilon", "privacy_claim.claimed.noise_multiplier",
]  # fmt: skip


@needs_chromium
def test_markup_in_a_number_is_refused_in_one_line_or_runs_nothing(real_run, tmp_path):
    d = _complete(real_run)
    numbers = [p for p, v in _leaves(d) if isinstance(v, int | float) and not isinstance(v, bool)]
    refused, drawn = [], []
    for path in numbers:  # one at a time, as the loader sees it
        value = d
        for p in path:
            value = value[p]
        _set(d, path, PAYLOAD)
        try:
            check_results(d)
            drawn.append(path)
        except ConfigError as err:
            message = str(err)
            assert "\n" not in message and _dotted(path) in message, (path, message)
            assert "not a " in message and "damaged or was edited" in message
            refused.append(_dotted(path))
        finally:
            _set(d, path, value)
    assert not set(MUST_REFUSE) - set(refused)
    # What the loader lets through is never written as a number (record values, counts
    # the page does not show): all of it markup at once still runs nothing.
    assert drawn and all(_dotted(p) not in MUST_REFUSE for p in drawn)
    for path in drawn:
        _set(d, path, PAYLOAD)
    folder = _write(real_run, tmp_path / "numbers", d)
    assert main(["report", str(folder)]) == 0
    _runs_nothing((folder / "report.html").read_text(encoding="utf-8"))
    _in_chromium_runs_nothing(folder / "report.html", tmp_path)


@pytest.mark.parametrize(
    "field",
    ["dataset.n_features", "shadows.n_in", "shadows.n_out", "shadows.count", "shadows.pool_size",
     "most_exposed.records[0].in_models", "attacks.loss.per_class[2].n", "target.queries.sent",
     "privacy_claim.attacks.loss.one_run.correct"],
)  # fmt: skip
def test_the_report_command_refuses_markup_in_a_number(real_run, tmp_path, capsys, field):
    d = _complete(real_run)
    path = next(p for p, _ in _leaves(d) if _dotted(p) == field)
    _set(d, path, "<script>document.title='pwned'</script>")
    folder = _write(real_run, tmp_path / "edited", d)
    for args in (["report", folder], ["compare", real_run, folder, "--out", tmp_path / "c"]):
        code = main([str(a) for a in args])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert f'{folder / "results.json"}: {field} is "<script>' in err
        assert "not a whole number" in err and "damaged or was edited" in err
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------------- (b) the CSP


_HEIGHT = """<script>document.body.setAttribute("data-height",
 document.documentElement.scrollHeight);</script></body>"""


def _height(text: str, tmp_path: Path) -> int:
    """The page's height at 1100 pixels (measured by a script: on a copy without CSP)."""
    probe = tmp_path / "height.html"
    probe.write_text(text.replace(CSP, "").replace("</body>", _HEIGHT), encoding="utf-8")
    dom = _browser(["--window-size=1100,1400", "--virtual-time-budget=3000", "--dump-dom",
                    probe.as_uri()])  # fmt: skip
    found = re.search(r'data-height="(\d+)"', dom.stdout)
    assert found, dom.stderr[-2000:]
    return int(found.group(1))


def _shot(text: str, height: int, tmp_path: Path, name: str) -> np.ndarray:
    from PIL import Image

    page, shot = tmp_path / f"{name}.html", tmp_path / f"{name}.png"
    page.write_text(text, encoding="utf-8")
    _browser([f"--window-size=1100,{height}", f"--screenshot={shot}", page.as_uri()])
    return np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)


@needs_chromium
def test_the_pages_forbid_scripts_and_still_show_their_figures(real_run, tmp_path):
    # A page of image records: thumbnails (data: PNGs) beside the inline SVG figures.
    run = load_run(real_run)
    rng = np.random.default_rng(0)
    records = run.results["most_exposed"]["records"]
    for r in records:
        r.pop("values", None)
        r["image"] = png_data_uri(rng.integers(0, 255, (1, 8, 8), dtype=np.uint8))
    page = render_html(run)
    assert page.count("<img class=thumb") == len(records) > 0
    out = tmp_path / "c"
    assert main(["compare", str(real_run), str(real_run), "--out", str(out),
                 "--bootstrap", "100"]) == 0  # fmt: skip
    pages = {"report": page, "compare": (out / "compare.html").read_text(encoding="utf-8")}
    for name, text in pages.items():
        head = text[: text.index("</head>")]
        # First in the head after the charset, so that it governs all that follows.
        assert head.index(CSP) < head.index("<title>") and text.count(CSP) == 1
        assert "default-src 'none'" in CSP and "script-src" not in CSP
        assert text.count("<svg") >= 2 and "<script" not in text
        height = _height(text, tmp_path)
        shown = _shot(text, height, tmp_path, name)
        # Not blank: text, figures and the verdict's band are drawn.
        assert 0.01 < (shown.mean(axis=2) < 200).mean() < 0.5
        # The policy changes no pixel: every figure and thumbnail it allows is shown.
        bare = _shot(text.replace(CSP, ""), height, tmp_path, f"{name}-bare")
        assert np.array_equal(shown, bare), name
        if name == "report":
            # The screenshots do see the thumbnails: blocking images changes them.
            blocked = text.replace("img-src data:", "img-src 'none'")
            assert not np.array_equal(shown, _shot(blocked, height, tmp_path, "blocked"))


# ----------------------------------------------------------------------- (c) too big


def _huge_number(run: Path) -> None:
    text = (run / "results.json").read_text()
    (run / "results.json").write_text(re.sub(r'"n_features": \d+', '"n_features": ' + "9" * 5000,
                                             text))  # fmt: skip


def _deep(run: Path, depth: int) -> None:
    text = (run / "results.json").read_text().rstrip()
    nested = "[" * depth + "]" * depth
    (run / "results.json").write_text(text[:-1] + f', "extra": {nested}}}')


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_huge_number, r"results.json: holds a number of more than 4,300 digits, not results"),
        (lambda r: _deep(r, 100_000),
         r"results.json: lists or tables nested too deeply to read, not results"),
        (lambda r: _deep(r, 200), r"results.json: holds lists or tables nested more than 64 deep"),
    ],
)  # fmt: skip
def test_a_huge_number_or_deep_nesting_is_one_line(real_run, tmp_path, capsys, edit, message):
    run = tmp_path / "edited"
    shutil.copytree(real_run, run)
    edit(run)
    for args in (("report", run), ("compare", real_run, run, "--out", tmp_path / "c")):
        code = main([str(a) for a in args])
        err = capsys.readouterr().err
        assert code == 2, err[-2000:]
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert re.search(message, err) and str(run / "results.json") in err
        assert "damaged or was edited" in err


# ----------------------------------------------------------------------- (d) layout

RLO = "\u202e"
LONG = "x" * 300


def _bidi_run(real_run: Path, tmp_path: Path) -> Path:
    d = json.loads((real_run / "results.json").read_text())
    names = d["dataset"]["class_names"]
    flipped = {n: f"{RLO}cls{n}" for n in names}
    flipped[names[4]] = LONG  # a 300-character label
    d["dataset"]["class_names"] = [flipped[n] for n in names]
    d["dataset"]["name"] = f"{RLO}data {LONG}"
    d["dataset"]["notes"]["class_codes"] = {
        "what": "code", "group": "shape", "groups": {v: f"{RLO}grp" for v in flipped.values()},
    }  # fmt: skip
    for a in d["attacks"].values():
        for pc in a["per_class"]:
            pc["class"] = flipped[pc["class"]]
    for r in d["most_exposed"]["records"]:
        r["label"] = flipped[r["label"]]
        values = list(r["values"].items())
        # A 300-character column name, and one with the override in it.
        r["values"] = {LONG: values[0][1], f"{RLO}col": values[1][1], **dict(values[2:])}
    return _write(real_run, tmp_path / "bidi", d)


def _outside_bdi(tree, char: str) -> list[str]:
    """Text holding ``char`` that no ``<bdi>`` encloses."""
    found = []

    def walk(e, inside):
        inside = inside or e.tag == "bdi"
        for text in (e.text, *(c.tail for c in e)):
            if text and char in text and not inside:
                found.append(text)
        for c in e:
            if isinstance(c.tag, str):
                walk(c, inside)

    walk(tree.find(".//body"), False)
    return found


_WIDTH = """<script>document.body.setAttribute("data-width", JSON.stringify(
 {scroll: document.documentElement.scrollWidth, inner: window.innerWidth}));</script></body>"""


@needs_chromium
def test_an_override_is_isolated_and_a_long_name_wraps(real_run, tmp_path):
    folder = _bidi_run(real_run, tmp_path)
    assert main(["report", str(folder)]) == 0
    page = (folder / "report.html").read_text(encoding="utf-8")
    tree = _parse(page)
    # Every override on the page is inside a <bdi>: in sentences that embed a name
    # (the advice, the captions) it is dropped, so none reverses what follows it.
    assert RLO in page and _outside_bdi(tree, RLO) == []
    # In a cell, the label is isolated from what follows it in the same cell.
    cells = [td for td in tree.iter("td") if len(td) > 1 and td[0].tag == "bdi"
             and td[0].text == f"{RLO}cls3" and td[1].tag == "small"]  # fmt: skip
    assert cells
    for cell in cells:  # the class, then its group: each in its own <bdi>
        assert cell[0].tail == " " and "".join(cell[1].itertext()) == f"({RLO}grp)"
        assert cell[1][0].tag == "bdi"
    span = next(s for s in tree.iter("span") if f"{RLO}col" in "".join(s.itertext()))
    assert [c.tag for c in span] == ["b", "bdi"] and span[0][0].tag == "bdi"
    assert f"<b><bdi>{RLO}col</bdi></b> <bdi>" in page
    # No wider than the window with 300-character names; in a narrow window no wider
    # than the same run's page without them (its table of attacks needs about 730 px).
    assert f"<bdi>{LONG}</bdi>" in page and "overflow-wrap:anywhere" in page
    plain = (real_run / "report.html").read_text(encoding="utf-8")
    assert _page_width(page, 1100, tmp_path) <= 1100
    assert _page_width(page, 700, tmp_path) <= max(700, _page_width(plain, 700, tmp_path))


def _page_width(text: str, width: int, tmp_path: Path) -> int:
    """The page's scrollWidth in a window ``width`` pixels wide (measured by a script:
    on a copy without the CSP)."""
    checked = tmp_path / "width.html"
    checked.write_text(text.replace(CSP, "").replace("</body>", _WIDTH), encoding="utf-8")
    dom = _browser([f"--window-size={width},1400", "--virtual-time-budget=3000",
                    "--dump-dom", checked.as_uri()])  # fmt: skip
    found = re.search(r'data-width="([^"]+)"', dom.stdout)
    assert found, dom.stderr[-2000:]
    size = json.loads(found.group(1).replace("&quot;", '"'))
    assert size["inner"] == width
    return size["scroll"]


def test_every_user_string_on_the_page_is_in_a_bdi(real_run, tmp_path):
    # Without a browser: the names of columns, classes, the data set and attacks.
    folder = _bidi_run(real_run, tmp_path)
    page = render_html(load_run(folder))
    for text in (f"{RLO}cls3", f"{RLO}col", f"{RLO}grp", LONG, "loss"):
        assert f"<bdi>{text}</bdi>" in page, text
    assert f"<h1>Membership inference audit: <bdi>{RLO}data {LONG}</bdi></h1>" in page
    # The title cannot hold a <bdi>: the override is dropped there.
    assert f"<title>miaudit report: data {LONG}</title>" in page
    assert _outside_bdi(_parse(page), RLO) == []


# ----------------------------------------------------------------------- (e) terminal

#: Control characters a name might carry into a terminal: an escape sequence that
#: clears the screen, a carriage return that overwrites the line, a bell, a C1 control,
#: and the bidi overrides and isolates.
CONTROLS = "\x1b[2J\r\x07\x9b\u202e\u2066\u202d"


class _Edited:
    """An audit result as print_summary reads it, from an edited results.json."""

    def __init__(self, results: dict, scores: pd.DataFrame):
        self.results, self.scores = results, scores

    def to_dict(self):
        return self.results

    def to_frame(self, label_names=True):
        return self.scores


def test_the_terminal_summary_prints_no_control_characters(real_run):
    d = json.loads((real_run / "results.json").read_text())
    scores = pd.read_csv(real_run / "scores.csv")
    d["dataset"]["name"] = f"digits{CONTROLS}[bold]x[/bold]"
    d["target"].update(source="http", url=f"http://x.test/{CONTROLS}", defense=[f"p{CONTROLS}"])
    d["dataset"]["class_names"] = [f"c{CONTROLS}{n}" for n in d["dataset"]["class_names"]]
    d["skipped_attacks"] = {f"lira{CONTROLS}": f"reference models{CONTROLS}"}
    d["weakened"] = [{"sentence": f"weakened{CONTROLS}"}]
    d["ranking"]["verdict"] = f"verdict{CONTROLS}"
    d["ranking"]["by"] = f"by{CONTROLS}"
    for terminal in (True, False):
        out = io.StringIO()
        console = Console(file=out, force_terminal=terminal, color_system=None, width=120)
        print_summary(_Edited(d, scores), Path(f"runs/out{CONTROLS}"), console)
        text = out.getvalue()
        assert UNPRINTABLE.findall(text) == [], (terminal, text)
        # The names are printed, only without their controls (and markup as text).
        assert "digits[2J[bold]x[/bold]" in text and "http://x.test/[2J" in text
        assert "lira[2J (reference models[2J)" in text and "runs/out[2J/" in text


def test_compare_prints_no_control_characters_from_folder_names(real_run, tmp_path, capsys):
    other = unseal(shutil.copytree(real_run, tmp_path / f"run{CONTROLS}"))
    scores = pd.read_csv(other / "scores.csv")
    scores["record"] += 100_000  # other records: a note that names the folder
    scores.to_csv(other / "scores.csv", index=False)
    assert main(["compare", str(real_run), str(other), "--out", str(tmp_path / "c"),
                 "--bootstrap", "100"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "run[2J" in out and "compared unpaired" in out
    assert UNPRINTABLE.findall(out) == []


def test_an_attack_name_with_control_characters_is_refused(real_run, tmp_path, capsys):
    d = json.loads((real_run / "results.json").read_text())
    d["attacks"][f"gap{RLO}"] = d["attacks"].pop("gap")
    folder = _write(real_run, tmp_path / "edited", d, renamed={"gap": f"gap{RLO}"})
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and RLO not in err
    assert 'attack name "gap\\u202e" is not a name' in err
