"""How long the command line takes to answer before it does any work: ``miaudit --help``,
``miaudit version`` and ``miaudit audit --help``, each against a bare ``python -c pass``
started the same way, in one run (the median of several starts of each, interleaved).

Where it sits: the edges (:mod:`miaudit.cli`). Issue 29 asks that ``--help`` and
``version`` answer in under a second: the command line imports the heavy layers
(PyTorch, scikit-learn, pandas) only once a command runs.

Run: ``.venv/bin/python bench/cli_startup.py`` (about 20 s).

Measured on the 2-core development VM::

    python -c pass        0.01 s
    miaudit --help        0.28 s  (23x a bare start)
    miaudit version       0.32 s  (26x a bare start)
    miaudit audit --help  0.42 s  (34x a bare start)

All three answer in well under a second here already.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

CLI = "import sys; from miaudit.cli import main; sys.exit(main())"
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "miaudit --help": [sys.executable, "-c", CLI, "--help"],
    "miaudit version": [sys.executable, "-c", CLI, "version"],
    "miaudit audit --help": [sys.executable, "-c", CLI, "audit", "--help"],
}
REPEATS = 7


def main() -> None:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(REPEATS):  # interleaved, so a noisy moment costs every command alike
        for name, argv in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    bare = statistics.median(times["python -c pass"])
    for name, seconds in times.items():
        median = statistics.median(seconds)
        ratio = "" if name == "python -c pass" else f"  ({median / bare:.0f}x a bare start)"
        print(f"{name:<22}{median:.2f} s{ratio}")


if __name__ == "__main__":
    main()
