"""Every layer looks only down, and no imports go round in a circle: a test that reads
the package's imports (at module level, inside functions and under ``if TYPE_CHECKING:``
alike, read by ``bench/layout.py``, whose report counts the same edges) and names any
import that reaches up a layer, any import cycle, and any module that is on no layer.

What counts as an import of what: ``import miaudit.x.y`` names ``miaudit.x.y`` (else the
nearest module holding it);
``from miaudit.x import y`` names ``miaudit.x.y`` where that is a module, else
``miaudit.x``; ``from miaudit import y`` names the module ``miaudit.y``, else the
package ``miaudit`` itself (its ``__init__``); relative imports resolve the same way.
Importing ``miaudit.x`` also runs ``miaudit/__init__``, but that is Python's doing, not
an edge (:func:`test_import_miaudit_stays_light` keeps that ``__init__`` light).
Imports by a name in a string (``importlib.import_module``: the package's lazy names,
the games' registry, the user's own modules) are not read.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "miaudit"
LAYOUT_SCRIPT = PACKAGE.parents[1] / "bench" / "layout.py"

#: The layers, from the bottom. A name is a module, or a package with everything in it;
#: the package ``miaudit`` itself (its ``__init__``) is only that module. A layer imports
#: from its own layer and those below it, never from one above.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundations", ("miaudit.errors", "miaudit.files", "miaudit.resources",
                     "miaudit.cache_key", "miaudit.progress", "miaudit.seeds",
                     "miaudit.version", "miaudit.results_format", "miaudit.disclosure")),
    ("data", ("miaudit.data",)),
    ("models", ("miaudit.models",)),
    ("jobs", ("miaudit.jobs", "miaudit.splits", "miaudit.shadow_data", "miaudit.synthesis",
              "miaudit.target", "miaudit.policies", "miaudit.protocol", "miaudit.remote",
              "miaudit.openinference")),
    ("attacks and metrics", ("miaudit.signals", "miaudit.attacks", "miaudit.metrics",
                             "miaudit.claim", "miaudit.verdict")),
    ("games and the pipeline", ("miaudit.config", "miaudit.handover", "miaudit.evaluation",
                                "miaudit.result", "miaudit.stages", "miaudit.games",
                                "miaudit.pipeline")),
    ("the edges", ("miaudit.api", "miaudit.cli", "miaudit.serve", "miaudit.mlflow",
                   "miaudit.report", "miaudit.experiments", "miaudit")),
)  # fmt: skip
#: The package itself: on the map as one module, not as the prefix of every module.
ROOT = "miaudit"


# --------------------------------------------------------------------------- the reading


def _load_layout():
    """``bench/layout.py``, which reads a tree's imports for its report: the one reading
    of what imports what, for the report and for this test alike."""
    spec = importlib.util.spec_from_file_location("miaudit_bench_layout", LAYOUT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


layout = _load_layout()


def _modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package under ``root``, by name."""
    return {layout.module_name(root, p): p for p in sorted(root.rglob("*.py"))}


def _graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module and the package's modules it imports (itself left out)."""
    side = layout.read_side(root.name, root)
    graph: dict[str, set[str]] = {m: set() for m in side.modules}
    for importer, imported in side.edges:
        graph[importer].add(imported)
    return graph


def _layers_of(module: str) -> list[int]:
    """The positions in :data:`LAYERS` of every layer that names ``module``."""
    out = []
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            if module == name or (name != ROOT and module.startswith(name + ".")):
                out.append(i)
                break
    return out


def _layer(module: str) -> int | None:
    found = _layers_of(module)
    return found[0] if len(found) == 1 else None


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """``(importer, imported)`` for every import of a higher layer's module (or of a
    module on no layer)."""
    out = []
    for module, targets in graph.items():
        here = _layer(module)
        if here is None:
            continue  # on no layer: test_every_module_is_on_exactly_one_layer names it
        for target in targets:
            there = _layer(target)
            if there is None or there > here:
                out.append((module, target))
    return sorted(out)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import graph's cycles: each strongly connected component of more than one
    module, as one cycle through it (its first module, the shortest way round) followed
    by the component's other modules."""
    edges = {(a, b) for a, targets in graph.items() for b in targets if b in graph}
    components = layout.cycles(sorted(graph), edges)
    return [_shortest_cycle(graph, c) for c in sorted(components)]


def _shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """The shortest way from the component's first module back to it, then the rest."""
    inside, start = set(component), component[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier and start not in came_from:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & inside):
                if w not in came_from:
                    came_from[w] = v
                    nxt.append(w)
        frontier = nxt
    path = [start]
    while came_from[path[-1]] != start:
        path.append(came_from[path[-1]])
    way = [start, *reversed(path[1:]), start]
    return way + sorted(inside - set(way))


def _said(cycle: list[str]) -> str:
    way = cycle[: cycle.index(cycle[0], 1) + 1]
    rest = cycle[len(way) :]
    return " -> ".join(way) + (f" (with {', '.join(rest)})" if rest else "")


def off_the_map(modules) -> list[str]:
    """Modules on no layer, or on more than one (each named with its count)."""
    out = []
    for m in sorted(modules):
        n = len(_layers_of(m))
        if n != 1:
            out.append(m if n == 0 else f"{m} (on {n} layers)")
    return out


# --------------------------------------------------------------------------- the package


def test_no_import_reaches_up_a_layer():
    upward = upward_imports(_graph())
    assert upward == [], "imports that reach up a layer: " + ", ".join(
        f"{a} -> {b}" for a, b in upward
    )


def test_the_imports_form_no_cycle():
    cycles = import_cycles(_graph())
    assert cycles == [], "import cycles: " + "; ".join(_said(c) for c in cycles)


def test_every_module_is_on_exactly_one_layer():
    """A new module is placed on the map (:data:`LAYERS`) when it is added."""
    missing = off_the_map(_modules())
    assert missing == [], f"modules on no layer (add them to LAYERS): {', '.join(missing)}"


def test_the_map_places_modules_by_name():
    """Modules named before they exist (the seeds, the stages, the games) land on their
    layers, and a name is not taken for a longer one's prefix."""
    names = [layer for layer, _ in LAYERS]
    placed = {m: names[_layer(m)] for m in (
        "miaudit.seeds", "miaudit.version", "miaudit.stages", "miaudit.stages.targets",
        "miaudit.games", "miaudit.games.shokri", "miaudit", "miaudit.report.cells",
        "miaudit.data.kinds.text", "miaudit.attacks.lira",
    )}  # fmt: skip
    assert placed == {
        "miaudit.seeds": "foundations",
        "miaudit.version": "foundations",
        "miaudit.stages": "games and the pipeline",
        "miaudit.stages.targets": "games and the pipeline",
        "miaudit.games": "games and the pipeline",
        "miaudit.games.shokri": "games and the pipeline",
        "miaudit": "the edges",
        "miaudit.report.cells": "the edges",
        "miaudit.data.kinds.text": "data",
        "miaudit.attacks.lira": "attacks and metrics",
    }
    assert _layer("miaudit.errors_more") is None and _layer("miaudit.newthing") is None


# --------------------------------------------------------------------------- the checker


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    """What the layering test reads: an import in a function body counts."""
    root = _package(tmp_path, {
        "__init__.py": "", "jobs.py": "", "pipeline.py": "",
        "m.py": "def f():\n    from miaudit.jobs import run_jobs\n    import miaudit.pipeline\n",
    })  # fmt: skip
    assert _graph(root)["miaudit.m"] == {"miaudit.jobs", "miaudit.pipeline"}


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "miaudit"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_the_check_finds_a_planted_upward_import_and_a_planted_cycle(tmp_path):
    """The checks run on a small package written for the purpose, so that they cannot
    pass by reading nothing."""
    root = _package(tmp_path, {
        "__init__.py": "from miaudit.version import __version__\n",
        "version.py": "__version__ = '0'\n",
        # Up from the bottom, inside a function.
        "errors.py": "def f():\n    from miaudit.pipeline import run_audit\n",
        "pipeline.py": "from miaudit import version\nfrom miaudit.data import a\n",
        # A cycle inside one layer: a -> b at module level, b -> c -> a in functions.
        "data/__init__.py": "",
        "data/a.py": "from miaudit.data import b\n",
        "data/b.py": "def g():\n    from . import c\n",
        "data/c.py": "def h():\n    import miaudit.data.a\n",
        # Up under TYPE_CHECKING: counted as well.
        "models/__init__.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import miaudit.result\n"
        ),
        "result.py": "from miaudit import __version__\n",
        # On no layer.
        "newthing.py": "",
    })  # fmt: skip
    graph = _graph(root)
    assert graph["miaudit.pipeline"] == {"miaudit.version", "miaudit.data.a"}
    assert graph["miaudit.data.b"] == {"miaudit.data.c"}
    assert graph["miaudit.result"] == {"miaudit"}
    assert upward_imports(graph) == [
        ("miaudit.errors", "miaudit.pipeline"),
        ("miaudit.models", "miaudit.result"),
        ("miaudit.result", "miaudit"),
    ]
    cycles = import_cycles(graph)
    assert cycles == [["miaudit.data.a", "miaudit.data.b", "miaudit.data.c", "miaudit.data.a"]]
    assert _said(cycles[0]) == " -> ".join(cycles[0])
    assert off_the_map(_modules(root)) == ["miaudit.newthing"]


def test_a_cycle_is_named_with_the_rest_of_its_component(tmp_path):
    """Two cycles through one module are one component: the shortest is said, with the
    component's other modules."""
    root = _package(tmp_path, {
        "__init__.py": "",
        "jobs.py": "import miaudit.target\nimport miaudit.splits\n",
        "target.py": "import miaudit.jobs\n",
        "splits.py": "import miaudit.remote\n",
        "remote.py": "import miaudit.jobs\n",
    })  # fmt: skip
    cycles = import_cycles(_graph(root))
    assert cycles == [["miaudit.jobs", "miaudit.target", "miaudit.jobs",
                       "miaudit.remote", "miaudit.splits"]]  # fmt: skip
    assert _said(cycles[0]) == (
        "miaudit.jobs -> miaudit.target -> miaudit.jobs (with miaudit.remote, miaudit.splits)"
    )


# --------------------------------------------------------------------------- the package's own


def test_import_miaudit_stays_light():
    """``import miaudit`` (which every ``import miaudit.x`` runs first) brings neither
    PyTorch, scikit-learn nor pandas, nor the pipeline: a fresh interpreter's modules."""
    heavy = ("torch", "sklearn", "pandas", "miaudit.pipeline")
    code = (
        f"import json, sys, miaudit\nprint(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_every_module_is_on_the_map():
    """ARCHITECTURE.md names every module and package of miaudit, so a newcomer finds
    each from the map."""
    text = (PACKAGE.parents[1] / "ARCHITECTURE.md").read_text(encoding="utf-8")
    modules = [f"`{p.stem}`" for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    packages = [f"`{p.parent.name}/`" for p in PACKAGE.glob("*/__init__.py")]
    missing = [name for name in sorted(modules + packages) if name not in text]
    assert missing == [], f"not on ARCHITECTURE.md's map: {', '.join(missing)}"


def _map_rows(text: str) -> dict[str, set[str]]:
    """ARCHITECTURE.md's table of layers: each layer's top-level modules and packages as
    ``LAYERS`` names them (``data/`` is ``miaudit.data``, ``__init__`` is ``miaudit``);
    the submodules listed in brackets are a reader's guide, not part of the layer's name."""
    rows, inside = {}, False
    for line in text.splitlines():
        if line.startswith("| layer | modules |"):
            inside = True
            continue
        if inside and not line.startswith("|"):
            break
        if inside and not line.startswith("|---"):
            layer, modules = (cell.strip() for cell in line.strip("|").split("|")[:2])
            top = re.sub(r"\([^)]*\)", "", modules)
            names = re.findall(r"`([^`]+)`", top)
            rows[layer] = {ROOT if n == "__init__" else f"{ROOT}.{n.rstrip('/')}" for n in names}
    return rows


def test_the_map_in_architecture_md_is_the_map_this_test_enforces():
    """The table of layers a newcomer reads is ``LAYERS``, layer by layer and in order."""
    rows = _map_rows((PACKAGE.parents[1] / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    assert list(rows) == [name for name, _ in LAYERS]
    for name, modules in LAYERS:
        assert rows[name] == set(modules), f"{name}: map {sorted(rows[name])}, test {modules}"
