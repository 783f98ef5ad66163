"""How long the command line takes to answer before it does any work: ``miaudit --help``,
``miaudit version`` and ``miaudit audit --help``, each against a bare ``python -c pass``
started the same way, in one run (the median of several starts of each, interleaved).

Where it sits: the edges (:mod:`miaudit.cli`). Issue 29 asks that ``--help`` and
``version`` answer in under a second: the command line imports the heavy layers
(PyTorch, scikit-learn, pandas) only once a command runs.

With ``--before REV`` (e.g. ``e9e17e4``, before issue 29's refactor) the same commands
run on revision ``REV`` too: its ``src`` extracted with ``git archive`` into a temporary
folder and put first on ``PYTHONPATH`` (this tree's ``src`` likewise for the other
side; each side's ``miaudit.__file__`` is printed), the two sides started in turn, so
both columns and their ratio come from one run.

Run: ``.venv/bin/python bench/cli_startup.py [--before REV] [--repeats 7]`` (about 10 s,
20 s with ``--before``).

Measured on the 2-core development VM (2026-12-06 09:57 UTC; the working tree mid-way
through issue 29's refactor)::

    python -c pass        0.01 s
    miaudit --help        0.32 s  (28x a bare start)
    miaudit version       0.35 s  (31x a bare start)
    miaudit audit --help  0.44 s  (38x a bare start)

and with ``--before e9e17e4``::

                            e9e17e4      now   now/e9e17e4
    python -c pass            0.01s    0.01s
    miaudit --help            0.30s    0.29s   0.96
    miaudit version           0.33s    0.32s   0.96
    miaudit audit --help      0.44s    0.43s   0.98

All three answer in well under a second, before and now alike (differences of a few
percent are noise on a shared VM). Of ``--help``'s 0.3 s, importing :mod:`miaudit.cli`
takes about 0.21 s (``python -X importtime``), and 0.15 s of that is
:mod:`miaudit.experiments` (NumPy, metrics, the report's plots): the ``experiment``
command's help text lists the experiments, and is built when the module is imported.
Typer takes 0.03 s to import, rich's Markdown (for the help's rendering) another 0.03 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from layout import extract  # bench/layout.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
CLI = "import sys; from miaudit.cli import main; sys.exit(main())"
BARE = "python -c pass"
COMMANDS = {
    BARE: [sys.executable, "-c", "pass"],
    "miaudit --help": [sys.executable, "-c", CLI, "--help"],
    "miaudit version": [sys.executable, "-c", CLI, "version"],
    "miaudit audit --help": [sys.executable, "-c", CLI, "audit", "--help"],
}
REPEATS = 7


def _time(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def now_only(repeats: int) -> None:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeats):  # interleaved, so a noisy moment costs every command alike
        for name, argv in COMMANDS.items():
            times[name].append(_time(argv))
    bare = statistics.median(times[BARE])
    for name, seconds in times.items():
        median = statistics.median(seconds)
        ratio = "" if name == BARE else f"  ({median / bare:.0f}x a bare start)"
        print(f"{name:<22}{median:.2f} s{ratio}")


def _env(src: Path) -> dict[str, str]:
    """This environment with ``src`` first on ``PYTHONPATH`` (before the editable install)."""
    rest = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), *([rest] if rest else [])]))


def before_and_now(rev: str, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sides = {rev: _env(extract(rev, Path(tmp))), "now": _env(ROOT / "src")}
        for side, env in sides.items():
            where = subprocess.run(
                [sys.executable, "-c", "import miaudit; print(miaudit.__file__)"],
                check=True,
                capture_output=True,
                text=True,
                env=env,
            ).stdout.strip()
            print(f"{side}: miaudit from {where}")
            for name, argv in COMMANDS.items():  # a first start writes the .pyc files
                if name != BARE:
                    _time(argv, env)
        bare: list[float] = []
        times: dict[tuple[str, str], list[float]] = {}
        for r in range(repeats):  # interleaved, the sides in turn first
            bare.append(_time(COMMANDS[BARE]))
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for name, argv in COMMANDS.items():
                if name == BARE:
                    continue
                for side in order:
                    times.setdefault((name, side), []).append(_time(argv, sides[side]))
    base = statistics.median(bare)
    print(f"\n{'':<22}{rev:>9}{'now':>9}   now/{rev}")
    print(f"{BARE:<22}{base:>8.2f}s{base:>8.2f}s")
    for name in COMMANDS:
        if name == BARE:
            continue
        old, new = (statistics.median(times[name, side]) for side in sides)
        print(f"{name:<22}{old:>8.2f}s{new:>8.2f}s   {new / old:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--before", metavar="REV", help="also measure git revision REV, side by side"
    )
    parser.add_argument("--repeats", type=int, default=REPEATS, help="starts of each (median)")
    args = parser.parse_args()
    if args.before:
        before_and_now(args.before, args.repeats)
    else:
        now_only(args.repeats)


if __name__ == "__main__":
    main()
