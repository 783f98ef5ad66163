"""Kinds of record: the third extension point (:mod:`miaudit.data.kinds.base`).

Adding a kind is one file beside these and one line in :data:`KINDS`.
"""

from __future__ import annotations

from typing import Any

from miaudit.data.kinds.base import MAX_HANDLES, RecordKind, content_digest, excerpt
from miaudit.data.kinds.image import ImageKind
from miaudit.data.kinds.opaque import OpaqueKind
from miaudit.data.kinds.table import TableKind
from miaudit.data.kinds.text import TextKind

__all__ = ["KINDS", "MAX_HANDLES", "RecordKind", "content_digest", "excerpt", "kind_of"]

#: Every kind of record, by ``Dataset.kind``.
KINDS: dict[str, RecordKind] = {
    kind.name: kind for kind in (TableKind(), ImageKind(), TextKind(), OpaqueKind())
}


def kind_of(data: Any) -> RecordKind:
    """The kind of ``data``'s records."""
    return KINDS[data.kind]
