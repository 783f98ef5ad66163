"""miaudit's version, at the bottom layer.

Any module can name it (a job's identity in the cache, ``results.json``'s
``miaudit_version``) without importing the package ``miaudit`` itself, whose
``__init__`` brings the Python API. ``miaudit.__version__`` is this string; keep it
equal to ``pyproject.toml``'s ``version``.
"""

from __future__ import annotations

__version__ = "0.1.0"
