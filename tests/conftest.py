"""Shared fixtures: per-session caches, and a small saved target for the HTTP tests."""

from __future__ import annotations

import os
import subprocess

import pytest


@pytest.fixture(scope="session", autouse=True)
def _data_cache(tmp_path_factory):
    # Reuse a developer's cache when one is configured; otherwise one cache per run.
    if "MIAUDIT_DATA_CACHE" not in os.environ:
        os.environ["MIAUDIT_DATA_CACHE"] = str(tmp_path_factory.mktemp("data-cache"))
    # Answered queries never go to the user's own cache from a test.
    os.environ["MIAUDIT_QUERY_CACHE"] = str(tmp_path_factory.mktemp("query-cache"))
    os.environ["MIAUDIT_JOB_CACHE"] = str(tmp_path_factory.mktemp("job-cache"))
    # The key that signs cache entries: never the user's own (~/.config/miaudit/cache.key).
    # One a developer names is kept, for the data cache reused above; without one, that
    # cache's entries are read again once per run (per test process).
    if "MIAUDIT_CACHE_KEY" not in os.environ:
        os.environ["MIAUDIT_CACHE_KEY"] = str(tmp_path_factory.mktemp("key") / "cache.key")
    yield


@pytest.fixture(scope="session")
def saved_adult(tmp_path_factory):
    """A target saved as `miaudit train` saves it: MLP on 600 Adult records (mixed columns)."""
    from miaudit.config import make_config
    from miaudit.pipeline import train_target_only

    out = tmp_path_factory.mktemp("saved-adult")
    config = make_config({"dataset": "adult", "target_size": 600, "target": {"epochs": 10}})
    train_target_only(config, out)
    return out


@pytest.fixture
def error_line():
    """Read the one ``miaudit: error:`` line of a command that ended with status 2."""

    def read(code: int, err: str) -> str:
        assert code == 2, err
        lines = [ln for ln in err.strip().splitlines() if ln.startswith("miaudit: error: ")]
        assert len(lines) == 1, err
        return lines[0]

    return read


@pytest.fixture(scope="session")
def stop_server():
    """Stop a server the tests started in a session of its own (``start_new_session``):
    SIGTERM to its whole group (uvicorn's children go with it), SIGKILL after 20 s."""

    def stop(process: subprocess.Popen) -> None:
        if process.poll() is not None:
            return
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()

    return stop
