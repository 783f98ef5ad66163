"""The registry: every attack miaudit runs, by name. The product reads only this.

Adding an attack is one module (a subclass of :class:`~miaudit.attacks.base.Attack`)
and one line below. Its settings become the ``[attacks.<section>]`` table of the
configuration, ``miaudit attacks`` lists it, and the planner reads its
:meth:`~miaudit.attacks.base.Attack.needs`.
"""

from __future__ import annotations

from pydantic import BaseModel

from miaudit.attacks.base import Attack
from miaudit.attacks.boundary import Boundary
from miaudit.attacks.label_only import Gap, Robustness
from miaudit.attacks.lira import LiRAOffline, LiRAOnline
from miaudit.attacks.qmia import QMIA
from miaudit.attacks.rmia import RMIAOffline, RMIAOnline
from miaudit.attacks.shokri import Shokri
from miaudit.attacks.threshold import THRESHOLD_ATTACKS
from miaudit.errors import ConfigError

__all__ = [
    "ATTACKS",
    "DEFAULT_ATTACKS",
    "SECTIONS",
    "get_attack",
    "parse_attacks",
    "section_attacks",
]

#: Every attack, in the order ``all`` runs them.
ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls
    for cls in (
        Shokri,
        *THRESHOLD_ATTACKS,
        LiRAOnline,
        LiRAOffline,
        RMIAOnline,
        RMIAOffline,
        Gap,
        Robustness,
        QMIA,
        Boundary,
    )
}

#: What an audit runs unless told otherwise.
DEFAULT_ATTACKS: tuple[str, ...] = (
    "shokri",
    "loss",
    "mentr-class",
    "gap",
    "lira-offline",
    "rmia-offline",
)


def _sections() -> dict[str, type[BaseModel]]:
    sections: dict[str, type[BaseModel]] = {}
    for cls in ATTACKS.values():
        if sections.setdefault(cls.section, cls.Config) is not cls.Config:
            # A programming error: variants sharing a section must share its settings.
            raise TypeError(f"attacks of section {cls.section!r} disagree on their settings")
    return sections


#: Settings table of each section, ``[attacks.<section>]``.
SECTIONS: dict[str, type[BaseModel]] = _sections()


def section_attacks(section: str) -> list[str]:
    """The attacks whose settings live in ``[attacks.<section>]``."""
    return [name for name, cls in ATTACKS.items() if cls.section == section]


def _distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap neighbours) between two words."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def nearest(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is a typo away from ``word``, else ``""``."""
    if not choices:
        return ""
    best = min(choices, key=lambda c: (_distance(word, c), c))
    return f" (did you mean '{best}'?)" if _distance(word, best) <= max(1, len(word) // 3) else ""


def get_attack(name: str) -> type[Attack]:
    """The attack class registered under ``name``."""
    try:
        return ATTACKS[name]
    except KeyError:
        raise ConfigError(
            f"unknown attack {name!r}{nearest(name, list(ATTACKS))}; choose from "
            f"{', '.join(ATTACKS)} (or all, default); `miaudit attacks` lists them"
        ) from None


def parse_attacks(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validated, de-duplicated attack names (``all``: every attack, ``default``: the
    default set)."""
    out: list[str] = []
    for name in names:
        name = str(name).strip().lower()
        if name == "all":
            out.extend(ATTACKS)
        elif name == "default":
            out.extend(DEFAULT_ATTACKS)
        else:
            get_attack(name)
            out.append(name)
    if not out:
        raise ConfigError("attacks is empty: name at least one attack")
    return tuple(dict.fromkeys(out))
