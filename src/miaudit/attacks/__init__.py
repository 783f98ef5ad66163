"""Membership-inference attacks: shadow signals in, one score per target record out.

Position in the pipeline: ``signals -> attack -> scores``. Each attack is one module
(a subclass of :class:`Attack`, :mod:`miaudit.attacks.base`) and one line of the
registry (:mod:`miaudit.attacks.registry`); :mod:`miaudit.attacks.suite` plans and
runs the attacks of an audit from their declarations.
"""

from miaudit.attacks.base import Attack, AttackInputs, Needs
from miaudit.attacks.registry import ATTACKS, DEFAULT_ATTACKS, get_attack, parse_attacks
from miaudit.attacks.shokri import ShokriAttack, ShokriConfig

__all__ = [
    "ATTACKS",
    "DEFAULT_ATTACKS",
    "Attack",
    "AttackInputs",
    "Needs",
    "ShokriAttack",
    "ShokriConfig",
    "get_attack",
    "parse_attacks",
]
