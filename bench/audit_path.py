"""The path of one ``AuditConfig`` through an audit, and the calls that reach back up
into a module already further down the call stack, under a profiler.

Where it sits: the whole audit, :func:`miaudit.audit` down to the attacks. Issue 29
asks the refactor of :mod:`miaudit.pipeline` to show the path of one configuration
through an audit before and after: how many times it comes back to a module it left.
This runs one fixed small audit (built-in ``digits``, 200 target records, 2 shadows,
logistic regression, seed 0, no job cache, one worker so that every model trains in
this process) under ``sys.setprofile`` (and ``threading.setprofile``), recording each
call of a function defined in the package (module bodies, i.e. imports, left out; a
generator counts once, not at each resumption). From that record it prints:

(a) **the path of the AuditConfig**: in order, the calls that receive an
    :class:`miaudit.config.AuditConfig` as an argument (any parameter, ``*args`` and
    ``**kwargs`` included, read from the frame's locals at the call), as
    ``module.function`` (repeats in a row shown once, ``xN``); the config's own methods
    (where it is only ``self``) are counted apart. Then the modules it passes through
    (repeats in a row collapsed) and **how many times it returns to a module it left**:
    per module, how often it appears again in that sequence after its first time, and
    the total.
(b) **calls that reach back up**: each call into module B whose nearest caller in the
    package is in another module A, while B already has a frame further down the
    stack (B called something that, through A, calls B again: a callback handed down,
    or a lower layer importing a higher one), counted per pair ``A -> B`` with the
    first example's functions.

(a) also lists, marked ``(in ARG)``, the calls that receive the config held one level
down in an argument (an attribute of an object such as the refactor's ``Setting`` and
``Game``, or an item of a list, tuple or dict), and gives the modules and returns of
that fuller path too; each call that enters a module already further down the stack is
marked ``^``.

Plus the audit's wall time, twice without the profiler (the first pays the lazy imports
and the data set's parse; the data cache and its key live in a temporary folder, so
every side does the same work) and once under it: every Python call of the process
(scikit-learn's, PyTorch's too) passes through the hook. The attacks' AUCs under the
profiler are checked to be those without it.

Run: ``.venv/bin/python bench/audit_path.py`` (the working tree; about 20 s),
``--source e9e17e4`` (a git revision of this checkout: its ``src`` extracted with
``git archive`` into a temporary folder, this script run again with it first on
``PYTHONPATH``; a folder holding ``miaudit/`` or ``src/miaudit/`` works too), or
``--compare e9e17e4`` (that revision, then the working tree, each in its own process,
a summary line each; about 40 s). The imported ``miaudit.__file__`` is printed, and
checked to be the side's.

Measured on the 2-core development VM (2026-12-06 09:58 UTC; the working tree
mid-refactor, ``pipeline.py`` split into ``stages/`` and ``games/``, not yet
committed; ``--compare e9e17e4``)::

    e9e17e4: the config is received by 24 calls and returns to a module it left 1
      times (1 with the 3 calls that hold it); 104 calls reach back up (10 pairs, 0 on
      its path); 2.6 s under the profiler
    working tree: the config is received by 23 calls and returns to a module it left 5
      times (8 with the 11 calls that hold it); 104 calls reach back up (10 pairs, 0 on
      its path); 2.3 s under the profiler

Before, 23 of the 24 calls are in ``pipeline`` (``pipeline -> handover -> pipeline``).
After, the game (``games.shokri``) conducts the stages and the config comes back to it
after each: the count of returns reads the order of the calls, not the stack, and none
of them reaches back up into a module further down. The 104 calls that do are the same
on both sides: progress callbacks handed down to the attacks and the jobs, and the
attacks' own helpers; the audit's results are identical. The audit itself takes about
2 s (1.9-2.2 s; the profiler costs 1.2x here).
"""

from __future__ import annotations

import argparse
import collections
import dis
import os
import subprocess
import sys
import tempfile
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path

from layout import extract  # bench/layout.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
GENERATOR_FLAGS = 0x20 | 0x80 | 0x200  # CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR
SUMMARY = "summary: "


def audit_settings():
    import miaudit

    return dict(
        dataset="digits",
        target_size=200,
        shadows=2,
        seed=0,
        target={"model": "logistic-regression"},
        execution=miaudit.Execution(job_cache=False, workers=1),
    )


class Recorder:
    """The profile hook: what it sees of calls into miaudit's functions."""

    def __init__(self, package_dir: Path, config_class: type) -> None:
        self.prefix = str(package_dir) + os.sep
        self.config_class = config_class
        self.ours: dict[str, str | None] = {}  # file -> module, or None when not ours
        self.first_resume: dict[object, int] = {}
        self.calls = 0
        self.path: list[Step] = []
        self.own_methods: collections.Counter[str] = collections.Counter()
        self.configs: list[object] = []  # each instance seen, kept alive (ids stay unique)
        self.reach_back: collections.Counter[tuple[str, str]] = collections.Counter()
        self.example: dict[tuple[str, str], str] = {}

    def _module(self, frame) -> str | None:
        filename = frame.f_code.co_filename
        try:
            return self.ours[filename]
        except KeyError:
            module = frame.f_globals.get("__name__") if filename.startswith(self.prefix) else None
            self.ours[filename] = module
            return module

    def _resumed(self, frame) -> bool:
        """A generator's (or coroutine's) call event when it resumes, not when it starts."""
        code = frame.f_code
        if not code.co_flags & GENERATOR_FLAGS:
            return False
        if code not in self.first_resume:
            offsets = [i.offset for i in dis.get_instructions(code) if i.opname == "RESUME"]
            self.first_resume[code] = offsets[0] if offsets else -1
        return frame.f_lasti != self.first_resume[code]

    def hook(self, frame, event, arg) -> None:
        if event != "call":
            return
        module = self._module(frame)
        if module is None or frame.f_code.co_name == "<module>" or self._resumed(frame):
            return
        self.calls += 1
        up = self._reaching_back(frame, module)
        self._config_arguments(frame, module, up)

    def _config_arguments(self, frame, module: str, up: bool) -> None:
        code = frame.f_code
        named = code.co_argcount + code.co_kwonlyargcount
        varargs, varkw = bool(code.co_flags & 0x04), bool(code.co_flags & 0x08)
        if not named + varargs + varkw:
            return
        local = frame.f_locals
        names = code.co_varnames
        given = [(i, name, local.get(name)) for i, name in enumerate(names[:named])]
        if varargs:
            given += [(-1, names[named], v) for v in local.get(names[named], ())]
        if varkw:
            given += [(-1, k, v) for k, v in local.get(names[named + varargs], {}).items()]
        direct, carried, carriers, only_self = [], [], [], True
        for i, name, value in given:
            if isinstance(value, self.config_class):
                direct.append(self._index(value))
                only_self &= i == 0 and name == "self"
            else:
                held = [self._index(v) for v in _held(value) if isinstance(v, self.config_class)]
                if held:
                    carried += held
                    carriers.append(name)
        if direct and only_self:
            self.own_methods[f"{module}.{code.co_qualname}"] += 1
        elif direct:
            self.path.append(Step(module, code.co_qualname, tuple(direct), None, up))
        elif carried:
            self.path.append(Step(module, code.co_qualname, tuple(carried), tuple(carriers), up))

    def _index(self, config: object) -> int:
        for i, seen in enumerate(self.configs):
            if seen is config:
                return i + 1
        self.configs.append(config)
        return len(self.configs)

    def _reaching_back(self, frame, module: str) -> bool:
        """Whether this call enters ``module`` from another module of the package while
        ``module`` has a frame further down the stack (counted per pair)."""
        caller = frame.f_back
        while caller is not None and self._module(caller) is None:
            caller = caller.f_back
        if caller is None:
            return False
        above = self._module(caller)
        if above == module:
            return False
        below = caller.f_back
        while below is not None and self._module(below) != module:
            below = below.f_back
        if below is None:
            return False
        pair = (above, module)
        self.reach_back[pair] += 1
        if pair not in self.example:
            self.example[pair] = (
                f"{_short(module)}.{below.f_code.co_qualname} ... "
                f"{_short(above)}.{caller.f_code.co_qualname} -> "
                f"{_short(module)}.{frame.f_code.co_qualname}"
            )
        return True


@dataclass(frozen=True)
class Step:
    """One call on the config's path: which configs it receives, directly or (``carriers``:
    the arguments' names) held in an argument, and whether it reaches back up."""

    module: str
    qualname: str
    configs: tuple[int, ...]
    carriers: tuple[str, ...] | None
    up: bool

    def line(self, many: bool) -> str:
        text = f"{_short(self.module)}.{self.qualname}"
        if self.carriers:
            text += f"  (in {', '.join(self.carriers)})"
        if many:
            text += f"  [config #{','.join(map(str, sorted(set(self.configs))))}]"
        return text + ("  ^ reaches back up" if self.up else "")


def _held(value) -> list:
    """What one argument holds, one level down: a container's items, an object's
    attributes (read from its ``__dict__`` and slots, so no property runs)."""
    if isinstance(value, list | tuple | set | frozenset):
        return list(value) if len(value) <= 64 else []
    if isinstance(value, dict):
        return list(value.values()) if len(value) <= 64 else []
    if isinstance(value, type | types.ModuleType | types.FunctionType):
        return []
    held = list(getattr(value, "__dict__", {}).values())
    for name in getattr(type(value), "__slots__", ()):
        held.append(getattr(value, name, None))
    return held


def _short(module: str) -> str:
    return module.removeprefix("miaudit.")


def _collapse(items: list) -> list[tuple[object, int]]:
    out: list[tuple[object, int]] = []
    for item in items:
        if out and out[-1][0] == item:
            out[-1] = (item, out[-1][1] + 1)
        else:
            out.append((item, 1))
    return out


def run_here(label: str, expect: Path | None) -> None:
    """Run and report the audit with the miaudit this interpreter imports."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MIAUDIT_DATA_CACHE"] = str(Path(tmp) / "data-cache")
        os.environ["MIAUDIT_CACHE_KEY"] = str(Path(tmp) / "cache.key")
        import miaudit
        from miaudit.config import AuditConfig

        package = Path(miaudit.__file__).resolve().parent
        print(f"{label}: miaudit imported from {miaudit.__file__}")
        if expect is not None and package != expect.resolve():
            raise SystemExit(f"expected miaudit from {expect}, got {package}")
        plain_s = []
        for _ in range(2):  # the first pays the lazy imports and fills the data cache
            start = time.perf_counter()
            plain = miaudit.audit(**audit_settings())
            plain_s.append(time.perf_counter() - start)
        recorder = Recorder(package, AuditConfig)
        settings = audit_settings()
        start = time.perf_counter()
        threading.setprofile(recorder.hook)
        sys.setprofile(recorder.hook)
        try:
            result = miaudit.audit(**settings)
        finally:
            sys.setprofile(None)
            threading.setprofile(None)  # type: ignore[arg-type]
        wall = time.perf_counter() - start
    same = _aucs(plain) == _aucs(result)
    _report(label, recorder, result, wall, plain_s, same)


def _aucs(result) -> dict[str, float]:
    return {name: a.auc for name, a in result.attacks.items()}


def _sequence(title: str, steps: list[Step]) -> tuple[int, int]:
    """Print the modules ``steps`` pass through and the returns to a module left; give
    the returns and how many of the steps reach back up."""
    modules = [m for m, _ in _collapse([s.module for s in steps])]
    back = {m: n - 1 for m, n in collections.Counter(modules).items() if n > 1}
    total, up = sum(back.values()), sum(s.up for s in steps)
    print(f"{title}: {len(steps)} calls, {len(modules)} module visits")
    print("  " + " -> ".join(_short(m) for m in modules))
    print(f"  returns to a module it left: {total}", end="")
    print(": " + ", ".join(f"{_short(m)} {n}" for m, n in sorted(back.items())) if back else "")
    print(f"  calls that reach back up into a module further down the stack: {up}")
    return total, up


def _report(
    label: str, rec: Recorder, result, wall: float, plain_s: list[float], same: bool
) -> None:
    aucs = ", ".join(f"{name} {auc:.4f}" for name, auc in _aucs(result).items())
    print(f"attacks' AUC: {aucs} (the same without the profiler: {same})")
    print(f"calls of miaudit functions recorded: {rec.calls:,}")
    many = len(rec.configs) > 1
    direct = [s for s in rec.path if s.carriers is None]
    print(
        f"\n(a) the AuditConfig's path: {len(direct)} calls receive it as an argument, "
        f"{len(rec.path) - len(direct)} more hold it in an argument (shown: in ARG); "
        f"{len(rec.configs)} AuditConfig instance{'s' if many else ''} seen"
    )
    for step, n in _collapse(rec.path):
        print(f"  {step.line(many)}{f'  x{n}' if n > 1 else ''}")
    if rec.own_methods:
        own = sum(rec.own_methods.values())
        print(f"  (and {own} calls of the config's own methods, where it is only `self`: ", end="")
        print(", ".join(f"{_short(k)} x{n}" for k, n in rec.own_methods.most_common()) + ")")
    print()
    returns, _ = _sequence("received as an argument (the issue's measure)", direct)
    held_returns, held_up = _sequence("received as an argument or held in one", rec.path)
    pairs = sum(rec.reach_back.values())
    print(
        f"\n(b) calls that reach back up (A -> B, B already further down the stack): "
        f"{pairs:,} calls, {len(rec.reach_back)} pairs"
    )
    for (above, module), n in sorted(rec.reach_back.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {n:7,}  {_short(above)} -> {_short(module)}")
        print(f"           e.g. {rec.example[above, module]}")
    print(
        f"\naudit wall time: {plain_s[1]:.2f} s without the profiler ({plain_s[0]:.2f} s the "
        f"first time, with the lazy imports and the data set's parse), {wall:.2f} s under it "
        f"({wall / plain_s[1]:.1f}x; each Python call of the process passes through the hook)"
    )
    print(
        f"{SUMMARY}{label}: the config is received by {len(direct)} calls and returns to "
        f"a module it left {returns} times ({held_returns} with the {len(rec.path) - len(direct)} "
        f"calls that hold it); {pairs:,} calls reach back up ({len(rec.reach_back)} pairs, "
        f"{held_up} on its path); {wall:.1f} s under the profiler"
    )


def _src_of(folder: Path) -> Path:
    """The folder that holds ``miaudit/`` in ``folder`` (itself or its ``src``)."""
    for candidate in (folder, folder / "src"):
        if (candidate / "miaudit" / "__init__.py").is_file():
            return candidate
    raise SystemExit(f"{folder}: no miaudit/ nor src/miaudit/ in it")


def run_child(source: str | None) -> str:
    """Run this script on one side in a fresh process; its output passes through, its
    summary line is returned."""
    with tempfile.TemporaryDirectory() as tmp:
        if source is None:
            src, label = ROOT / "src", "working tree"
        elif Path(source).is_dir():
            src, label = _src_of(Path(source)), source
        else:
            src, label = extract(source, Path(tmp)), source
        rest = os.environ.get("PYTHONPATH")  # an empty entry would put the folder we are in
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), *([rest] if rest else [])]))
        argv = [sys.executable, __file__, "--inner", str(src), "--label", label]
        child = subprocess.run(argv, env=env, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(child.stdout)
        sys.stdout.flush()
        if child.returncode:
            raise SystemExit(f"{label}: the audit failed (exit {child.returncode})")
    lines = [line for line in child.stdout.splitlines() if line.startswith(SUMMARY)]
    return lines[-1].removeprefix(SUMMARY) if lines else f"{label}: no summary"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    side = parser.add_mutually_exclusive_group()
    side.add_argument("--source", help="a git revision of this checkout, or a folder")
    side.add_argument("--compare", metavar="REV", help="REV, then the working tree")
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    parser.add_argument("--label", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        run_here(args.label, Path(args.inner) / "miaudit")
    elif args.compare:
        summaries = [run_child(args.compare)]
        print("\n" + "=" * 78 + "\n")
        summaries.append(run_child(None))
        print("\n" + "=" * 78)
        for line in summaries:
            print(line)
    else:
        run_child(args.source)


if __name__ == "__main__":
    main()
