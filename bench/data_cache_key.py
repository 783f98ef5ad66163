"""The data cache's key: hashing the source files' bytes against reading their stat, and
against parsing them, in one run.

Where it sits: ``data`` (:mod:`miaudit.data.cache`). The cache is keyed by the SHA-256
of each source file's bytes, so an edit that keeps a file's size and times is a miss.
This prints what that costs on every load (hit or miss) next to the ``stat`` the key
used to read, to parsing the files (a miss), and to reading a cached entry back (a hit,
the key included):

1. the largest built-in data set, Census-Income (two CSV files, 156 MB);
2. a 100 MB CSV of numbers and a categorical column, generated in a temporary folder.

Run: ``.venv/bin/python bench/data_cache_key.py`` (about a minute).

Measured on the 2-core development VM::

    census (155,793,282 bytes): stat 0.000006 s, SHA-256 0.110 s, parse 2.43 s
      (hashing is 4.5% of parsing); a cache hit, key included, 0.38 s
    100 MB CSV (93,027,559 bytes): stat 0.000003 s, SHA-256 0.068 s, parse 3.13 s
      (hashing is 2.2% of parsing); a cache hit, key included, 0.16 s

Hashing the sources costs a few percent of parsing them, and about as much as reading
the cached arrays back: the content is the key.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def _stat(paths: list[Path]) -> list[tuple[int, int, int, int]]:
    return [(s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino) for s in map(os.stat, paths)]


def _best(work, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def _measure(title: str, paths: list[Path], load) -> None:
    size = sum(p.stat().st_size for p in paths)
    stat_s = _best(lambda: _stat(paths))
    hash_s = _best(lambda: _sha256(paths))
    parse_s = _best(lambda: load(False), repeat=1)
    load(True)  # fills the cache
    hit_s = _best(lambda: load(True))
    print(
        f"{title} ({size:,} bytes): stat {stat_s:.6f} s, SHA-256 {hash_s:.3f} s, parse "
        f"{parse_s:.2f} s\n  (hashing is {hash_s / parse_s:.1%} of parsing); a cache hit, key "
        f"included, {hit_s:.2f} s"
    )


def main() -> None:
    from miaudit.data import load_dataset
    from miaudit.data.builtin import resolve_builtin

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MIAUDIT_DATA_CACHE"] = str(Path(tmp) / "cache")
        os.environ.setdefault("MIAUDIT_CACHE_KEY", str(Path(tmp) / "cache.key"))
        census = [Path(p) for p in resolve_builtin("census", None).source_files()]
        _measure("census", census, lambda cache: load_dataset("census", use_cache=cache))
        csv = Path(tmp) / "hundred.csv"
        rng = np.random.default_rng(0)
        n = 1_150_000
        frame = pd.DataFrame({f"x{i}": rng.normal(size=n).round(4) for i in range(10)})
        frame["colour"] = rng.choice(["red", "green", "blue"], n)
        frame["label"] = rng.choice(["a", "b"], n)
        frame.to_csv(csv, index=False)
        _measure(
            "100 MB CSV",
            [csv],
            lambda cache: load_dataset(str(csv), label="label", use_cache=cache),
        )


if __name__ == "__main__":
    main()
