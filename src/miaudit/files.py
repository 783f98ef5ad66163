"""Reading the small JSON files miaudit writes, which a user may have edited or damaged.

``model.json``, ``dataset.json`` and a results folder's ``config.json`` are read
back by later commands. Whatever they hold (invalid JSON, a list, nesting deep
enough to exhaust the parser, a 5,000-digit integer, gigabytes), reading them
ends in one line naming the file and the fix, never in a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from miaudit.errors import MiauditError

#: Larger than any file of settings or metadata miaudit writes.
MAX_JSON_BYTES = 64 * 2**20


def read_json_object(path: Path, error: type[MiauditError], fix: str) -> dict[str, Any]:
    """The JSON object in ``path``; anything else raises ``error`` naming ``path`` and ``fix``."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise error(
                f"{path} is {size / 2**20:,.0f} MiB, larger than any file miaudit writes "
                f"there: {fix}"
            )
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path} cannot be read ({exc.strerror or exc}): {fix}") from None
    except RecursionError:
        raise error(f"{path} is nested too deeply to be a file miaudit wrote: {fix}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        # JSONDecodeError, and integers of more digits than Python converts.
        raise error(f"{path} is not valid JSON ({str(exc)[:200]}): {fix}") from None
    if not isinstance(data, dict):
        raise error(f"{path} holds a JSON {type(data).__name__}, not an object: {fix}")
    return data
