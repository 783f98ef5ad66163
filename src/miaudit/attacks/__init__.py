"""Membership-inference attacks: shadow signals in, one score per target record out.

Position in the pipeline: ``signals -> attack -> scores -> metrics -> report``.
Each attack is a small module registered by name; importing this package
registers them all, so ``get_attack("shokri")`` works after ``import miaudit.attacks``.
"""

from miaudit.attacks.base import Attack, available_attacks, get_attack, register
from miaudit.attacks.shokri import ShokriAttack, ShokriConfig

__all__ = [
    "Attack",
    "ShokriAttack",
    "ShokriConfig",
    "available_attacks",
    "get_attack",
    "register",
]
