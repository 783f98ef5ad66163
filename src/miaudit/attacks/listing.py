"""What ``miaudit attacks`` lists, generated from the registry alone."""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from miaudit.attacks.registry import ATTACKS, DEFAULT_ATTACKS, SECTIONS

__all__ = ["attack_listing"]


def _type_name(annotation: Any) -> str:
    choices = get_args(annotation) if get_origin(annotation) is Literal else ()
    if choices:
        return " | ".join(repr(c) for c in choices)
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("NoneType", "None")


def attack_listing() -> list[dict[str, Any]]:
    """Every registered attack: name, summary, whether it runs by default, its settings'
    section, what it needs (with default settings) and each setting's type, default and
    meaning."""
    out = []
    for name, cls in ATTACKS.items():
        model = SECTIONS[cls.section]
        settings = {
            key: {
                "type": _type_name(field.annotation),
                "default": field.default,
                "description": field.description or "",
            }
            for key, field in model.model_fields.items()
        }
        out.append(
            {
                "name": name,
                "summary": cls.summary,
                "default": name in DEFAULT_ATTACKS,
                "section": cls.section,
                "needs": cls().needs().describe(),
                "settings": settings,
            }
        )
    return out
