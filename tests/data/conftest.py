"""Fixtures for the data stage's tests: every test reads and writes a private cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from miaudit.data.cache import CACHE_ENV


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the session, so a slow built-in set is parsed once."""
    return tmp_path_factory.mktemp("miaudit-data-cache")


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch: pytest.MonkeyPatch, session_cache: Path) -> None:
    # Tests must never write into the user's ~/.cache.
    monkeypatch.setenv(CACHE_ENV, str(session_cache))
