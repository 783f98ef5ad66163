"""Shared fixtures: a per-session data cache so real data sets are parsed once."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _data_cache(tmp_path_factory):
    # Reuse a developer's cache when one is configured; otherwise one cache per run.
    if "MIAUDIT_DATA_CACHE" not in os.environ:
        os.environ["MIAUDIT_DATA_CACHE"] = str(tmp_path_factory.mktemp("data-cache"))
    yield
