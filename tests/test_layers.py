"""The lower layers look only down: a test that reads the package's imports (at module
level and inside functions alike) and names any import that reaches up.

Layers, from the bottom: errors, files, resources and the cache key; then data and
records; then models. (The layers above them, and the import cycles among them, are
issue 29's remaining work; :data:`KNOWN_UPWARD` lists the upward imports of the lower
layers still to remove, so that none is added.)
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "miaudit"

#: Each lower layer and what it may import of miaudit.
BOTTOM = ("miaudit.errors", "miaudit.files", "miaudit.resources", "miaudit.cache_key")
ALLOWED = {
    "bottom": BOTTOM,
    "miaudit.data": (*BOTTOM, "miaudit.data"),
    "miaudit.models": (*BOTTOM, "miaudit.data", "miaudit.models"),
}
#: Upward imports still there (the user's torch code reads the config's recipe and the
#: target's protocol); to be moved down, never added to.
KNOWN_UPWARD = {
    ("miaudit.models.user", "miaudit.config"),
    ("miaudit.models.user", "miaudit.target"),
}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every miaudit module ``path`` imports, wherever in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("miaudit")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "miaudit":
                found |= {f"miaudit.{a.name}" for a in node.names}
            elif node.module.startswith("miaudit."):
                found.add(node.module)
    return found


def _layer(module: str) -> str | None:
    if module in BOTTOM:
        return "bottom"
    for layer in ("miaudit.data", "miaudit.models"):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _within(target: str, allowed: tuple[str, ...]) -> bool:
    return any(target == a or target.startswith(a + ".") for a in allowed)


def test_the_lower_layers_import_only_below_them():
    upward = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module(path)
        layer = _layer(module)
        if layer is None:
            continue
        for target in _imports(path):
            if target != "miaudit" and not _within(target, ALLOWED[layer]):
                upward.add((module, target))
    new = sorted(upward - KNOWN_UPWARD)
    assert new == [], "imports that reach up a layer: " + ", ".join(f"{a} -> {b}" for a, b in new)
    gone = sorted(KNOWN_UPWARD - upward)
    assert gone == [], f"no longer imported, remove from KNOWN_UPWARD: {gone}"


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    """What the layering test reads: an import in a function body counts."""
    source = tmp_path / "m.py"
    source.write_text(
        "def f():\n    from miaudit.jobs import run_jobs\n    import miaudit.pipeline\n"
    )
    assert _imports(source) == {"miaudit.jobs", "miaudit.pipeline"}


def test_every_module_is_on_the_map():
    """ARCHITECTURE.md names every module and package of miaudit, so a newcomer finds
    each from the map."""
    text = (PACKAGE.parents[1] / "ARCHITECTURE.md").read_text(encoding="utf-8")
    modules = [f"`{p.stem}`" for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    packages = [f"`{p.parent.name}/`" for p in PACKAGE.glob("*/__init__.py")]
    missing = [name for name in sorted(modules + packages) if name not in text]
    assert missing == [], f"not on ARCHITECTURE.md's map: {', '.join(missing)}"
