"""miaudit: measure how much a trained model leaks about its training records."""

from __future__ import annotations

__version__ = "0.1.0"
