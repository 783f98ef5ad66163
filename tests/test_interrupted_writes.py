"""A cache write interrupted (Ctrl-C, or SIGTERM, which miaudit turns into Ctrl-C) leaves
no temporary file behind, whichever of its files was being written."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import miaudit.jobs as jobs
import miaudit.remote as remote


def _interrupting(real, at: int):
    """``write_private`` that is interrupted at its ``at``-th call."""
    calls = [0]

    def write(path, data):
        calls[0] += 1
        if calls[0] == at:
            path.write_bytes(data[: len(data) // 2])  # half-written, as a kill leaves it
            raise KeyboardInterrupt
        return real(path, data)

    return write


def _hidden(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*") if p.name != ".miaudit-cache")


@pytest.mark.parametrize("at", [1, 2], ids=["arrays", "mac"])
def test_an_interrupted_job_cache_entry_leaves_nothing_behind(tmp_path, monkeypatch, at):
    monkeypatch.setattr(jobs, "write_private", _interrupting(jobs.write_private, at))
    cache = jobs.JobCache(tmp_path / "jobs")
    with pytest.raises(KeyboardInterrupt):
        cache.put_arrays("ab" + "0" * 62, {"outputs": np.ones((3, 2))})
    assert _hidden(tmp_path / "jobs") == []
    assert cache.get("ab" + "0" * 62) is None  # no entry either: computed again next time


@pytest.mark.parametrize("at", [1, 2], ids=["answers", "mac"])
def test_an_interrupted_query_cache_chunk_leaves_nothing_behind(tmp_path, monkeypatch, at):
    monkeypatch.setattr(remote, "write_private", _interrupting(remote.write_private, at))
    cache = remote.QueryCache(tmp_path / "queries" / "service", width=2)
    keys = [hashlib.sha256(b"record").digest()]
    with pytest.raises(KeyboardInterrupt):
        cache.add(keys, np.array([[0.25, 0.75]]))
    assert _hidden(tmp_path / "queries") == []
