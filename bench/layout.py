"""The package's layout, two trees side by side: modules, lines, the largest files, the
longest functions, and the import graph's cycles.

Where it sits: the whole package (``src/miaudit``), read as text, nothing imported.
Issue 29 asks the refactor of :mod:`miaudit.pipeline` to show the layout before and
after, with no import cycle after. For each side (a git revision of this checkout,
extracted with ``git archive`` into a temporary folder, or ``WORKTREE``: the working
tree's ``src/miaudit`` as it is now, files not yet committed included) this prints:

* the number of modules (``.py`` files) and their total lines;
* the 10 largest files, in lines;
* the 10 longest functions and methods (qualified name, file, lines from ``def`` to
  the last line of the body, decorators left out; a nested function counts on its own
  and inside its parent), and how many are longer than 50 and 100 lines;
* the import graph's cycles: its strongly connected components of more than one
  module. Every import counts, at module level, inside functions and under
  ``if TYPE_CHECKING:`` alike: ``import miaudit.x.y`` is an edge to ``miaudit.x.y``;
  ``from miaudit.x import y`` to ``miaudit.x.y`` where that is a module, else to
  ``miaudit.x``; ``from miaudit import y`` to ``miaudit.y`` where that is a module,
  else to the package ``miaudit`` (its ``__init__``); relative imports are resolved
  the same way. How many cycles are left once the imports under ``TYPE_CHECKING``
  (which never run) are dropped is said beside them.

Run: ``.venv/bin/python bench/layout.py [REV_OR_WORKTREE [REV_OR_WORKTREE]]`` (default
``e9e17e4 WORKTREE``, the tree before issue 29's refactor started and the tree now;
about a second). ``--edges`` also lists each cycle's imports (file and line).

Measured on the 2-core development VM (2026-12-06 09:58 UTC; the working tree
mid-refactor, ``pipeline.py`` split into ``stages/`` and ``games/``, not yet committed)::

                         e9e17e4             working tree
    modules, lines       83, 29,588          104, 30,665
    largest file         pipeline.py 1702    cli.py 1602
    longest function     cli:audit 463       api:evaluate 205
    over 50 / 100 lines  69 / 16             61 / 14
    import cycles        1 (23 modules)      none

Before, one cycle held the package's ``__init__``, the API, the pipeline, the config,
the result, the jobs, the models' family and I/O, the attacks' registry and the report;
``from miaudit import __version__`` in a module below is enough to close such a loop,
since ``miaudit/__init__.py`` imports the API.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKTREE = "WORKTREE"
TOP = 10


@dataclass
class Side:
    label: str
    modules: dict[str, Path]  # module name -> file
    lines: dict[str, int] = field(default_factory=dict)  # module -> lines
    functions: list[tuple[int, str, str]] = field(default_factory=list)  # lines, module, qualname
    # (importer, imported) -> [(line, under TYPE_CHECKING)]
    edges: dict[tuple[str, str], list[tuple[int, bool]]] = field(default_factory=dict)


def extract(rev: str, into: Path) -> Path:
    """``src`` of revision ``rev`` of this checkout, unpacked under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def module_name(package: Path, path: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class _Functions(ast.NodeVisitor):
    """Every function and method with its qualified name (``Class.method``,
    ``outer.inner``) and its length in lines."""

    def __init__(self) -> None:
        self.scope: list[str] = []
        self.found: list[tuple[int, str]] = []

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)
        self.found.append((node.end_lineno - node.lineno + 1, ".".join(self.scope)))
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """The lines of the bodies of ``if TYPE_CHECKING:`` (imports there never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    lines.update(range(stmt.lineno, stmt.end_lineno + 1))
    return lines


def _imported(module: str, is_package: bool, node: ast.stmt, modules: dict) -> list[str]:
    """The miaudit modules one import statement is an edge to."""
    if isinstance(node, ast.Import):
        return [_nearest(a.name, modules) for a in node.names if _ours(a.name)]
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        origin = ".".join(base + ([node.module] if node.module else []))
    else:
        origin = node.module or ""
    if not _ours(origin):
        return []
    out = []
    for alias in node.names:
        candidate = f"{origin}.{alias.name}"
        out.append(candidate if candidate in modules else _nearest(origin, modules))
    return out


def _ours(name: str) -> bool:
    return name == "miaudit" or name.startswith("miaudit.")


def _nearest(name: str, modules: dict) -> str:
    """``name`` if it is a module of the tree, else its nearest enclosing one."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def read_side(label: str, package: Path) -> Side:
    files = sorted(package.rglob("*.py"))
    side = Side(label, {module_name(package, p): p for p in files})
    for module, path in side.modules.items():
        text = path.read_text(encoding="utf-8")
        side.lines[module] = len(text.splitlines())
        tree = ast.parse(text, filename=str(path))
        finder = _Functions()
        finder.visit(tree)
        side.functions += [(n, module, q) for n, q in finder.found]
        guarded = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _imported(module, path.name == "__init__.py", node, side.modules):
                    if target != module:
                        where = side.edges.setdefault((module, target), [])
                        where.append((node.lineno, node.lineno in guarded))
    return side


def cycles(nodes: list[str], edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in sorted(edges):
        succ.setdefault(a, []).append(b)
        succ.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = itertools.count()
    for root in succ:
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = next(counter)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = next(counter)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(succ[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(found, key=lambda c: (-len(c), c))


def _short(module: str) -> str:
    return module.removeprefix("miaudit.") if module != "miaudit" else "miaudit (__init__)"


def report(side: Side, show_edges: bool) -> list[str]:
    """One side's lines of text."""
    out = [side.label, "-" * len(side.label)]
    total = sum(side.lines.values())
    out.append(f"modules {len(side.modules)}, lines {total:,}")
    out.append("")
    out.append(f"{TOP} largest files (lines):")
    largest = sorted(side.lines.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    for module, n in largest:
        out.append(f"  {n:5d}  {side.modules[module].relative_to(_package(side)).as_posix()}")
    out.append("")
    out.append(f"{TOP} longest functions (lines):")
    longest = sorted(side.functions, key=lambda f: (-f[0], f[1], f[2]))[:TOP]
    for n, module, qualname in longest:
        out.append(f"  {n:5d}  {_short(module)}:{qualname}")
    over50 = sum(1 for f in side.functions if f[0] > 50)
    over100 = sum(1 for f in side.functions if f[0] > 100)
    out.append(f"functions {len(side.functions)}: over 50 lines {over50}, over 100 lines {over100}")
    out.append("")
    all_edges = set(side.edges)
    runtime = {e for e, where in side.edges.items() if not all(tc for _, tc in where)}
    found = cycles(list(side.modules), all_edges)
    without_tc = cycles(list(side.modules), runtime)
    out.append(f"import graph: {len(all_edges)} edges; cycles: {_count(found)}")
    out.append(f"  without TYPE_CHECKING imports: {_count(without_tc)}")
    for i, component in enumerate(found, 1):
        inside = sorted(e for e in all_edges if e[0] in component and e[1] in component)
        out.append(f"cycle {i}: {len(component)} modules, {len(inside)} imports among them")
        out += _wrap([_short(m) for m in component], width=62, indent="  ")
        if show_edges:
            for a, b in inside:
                lines = sorted(set(side.edges[a, b]))
                where = ", ".join(f"{line}{' (TC)' if tc else ''}" for line, tc in lines)
                out.append(f"    {_short(a)} -> {_short(b)}  line {where}")
    return out


def _count(found: list[list[str]]) -> str:
    return f"{len(found)} ({sum(map(len, found))} modules)" if found else "none"


def _package(side: Side) -> Path:
    return side.modules["miaudit"].parent


def _wrap(words: list[str], width: int, indent: str) -> list[str]:
    lines, line = [], indent
    for word in words:
        piece = word + ", "
        if len(line) + len(piece) > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += piece
    if line.strip():
        lines.append(line.rstrip().rstrip(","))
    return lines


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _worktree_label() -> str:
    """``working tree`` with its HEAD and how many files under ``src`` differ from it."""
    changed = _git("status", "--porcelain", "--untracked-files=all", "--", "src").splitlines()
    changed = [line for line in changed if line.endswith(".py")]
    return f"working tree (HEAD {_git('rev-parse', '--short', 'HEAD')} + {len(changed)} files)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "sides",
        nargs="*",
        default=["e9e17e4", WORKTREE],
        help="git revisions of this checkout, or WORKTREE (at most two; default e9e17e4 WORKTREE)",
    )
    parser.add_argument("--edges", action="store_true", help="list the imports in each cycle")
    args = parser.parse_args()
    if not 1 <= len(args.sides) <= 2:
        parser.error("give one or two sides")
    with tempfile.TemporaryDirectory() as tmp:
        columns = []
        for i, name in enumerate(args.sides):
            if name == WORKTREE:
                package, label = ROOT / "src" / "miaudit", _worktree_label()
            else:
                folder = Path(tmp) / f"side{i}"
                folder.mkdir()
                package = extract(name, folder) / "miaudit"
                rev = _git("rev-parse", "--short", name)
                label = f"{name}" if rev.startswith(name) else f"{name} ({rev})"
            columns.append(report(read_side(label, package), args.edges))
    width = max(len(line) for line in columns[0]) + 4
    for row in itertools.zip_longest(*columns, fillvalue=""):
        print(row[0].ljust(width) + row[1] if len(row) == 2 else row[0])


if __name__ == "__main__":
    sys.exit(main())
