"""The game contract: what every game is given (:class:`Setting`), what it yields
(:class:`Game`), and the one method a game writes (:meth:`GameRules.set_up`).

A game decides who trains on what and which records are scored: the paper's game (a
deployed target against shadows trained on the attacker's pool), the recipe game (the
target and the reference models each trained on a random half of one pool), the canary
game (a target trained with canaries). Once a game has set up its target and its
models' jobs, every game is played the same way (:func:`miaudit.pipeline.play`): the
models train, the target is asked, the attacks score, the result is assembled.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from miaudit.attacks.suite import AttackPlan
from miaudit.config import AuditConfig
from miaudit.data import Dataset
from miaudit.handover import Handover
from miaudit.jobs import Execution, ShadowJob
from miaudit.models.family import ModelFamily
from miaudit.policies import PolicyTarget
from miaudit.progress import Reporter


@dataclass
class Setting:
    """What every game is given: the validated configuration, the loaded records, the
    user's objects, the audit's seeds (:func:`miaudit.seeds.seeds_for`), where it reports
    and where its models train, and a remote target's token and query cache (kept out
    of the configuration, so never written to ``config.json``)."""

    config: AuditConfig
    data: Dataset
    handed: Handover
    seeds: dict[str, np.random.SeedSequence]
    reporter: Reporter
    execution: Execution | None = None
    token: str | None = None
    query_cache: str | Path | bool | None = None


@dataclass
class Game:
    """What a game yields once its target exists: the evaluated records, who trains on
    what, the attacks' plan and the target as the attacker reaches it.

    ``data`` holds the evaluated records (and the target's answers come from it);
    ``shadow_data`` the records the models train on and answer (noisy, marginal or
    synthetic shadow data replaces the real). Every model ``k`` (a shadow, or a
    reference model) is trained by ``family`` on ``jobs[k].train`` and answers
    ``jobs[k].query`` then ``extra``. Its first ``len(own_member[k])`` answers are its
    own records (``own_member[k]``: which it trained on), which Shokri's attack and the
    thresholds learn from; its answers from ``reference_from[k]`` on are the reference
    records, laid out by ``reference`` (:func:`miaudit.stages.queries.reference_records`),
    which LiRA and RMIA read.

    ``target`` answers through its output policy (``policies``, which the models'
    answers pass through too); ``facts`` are what the report says of it; ``resolved`` is
    the configuration that repeats the run. :meth:`close` lets go of the target (a
    service's connections, the user's resources).
    """

    name: str
    data: Dataset
    shadow_data: Dataset
    eval_index: np.ndarray
    eval_member: np.ndarray
    jobs: list[ShadowJob]
    own_member: list[np.ndarray]
    plan: AttackPlan
    target: PolicyTarget
    policies: list[Any]
    family: ModelFamily
    resolved: AuditConfig
    facts: dict[str, Any]
    extra: np.ndarray | None = None
    reference: dict[str, Any] | None = None
    reference_from: list[int] = field(default_factory=list)
    public: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    models: str = "shadows"
    shadows: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], Any]] = field(default_factory=list)

    def close(self) -> None:
        """Let go of the target, once; every closer runs even when one fails."""
        closers, self.closers = self.closers, []
        close_all(closers)


def close_all(closers: list[Callable[[], Any]]) -> None:
    """Run every closer, the last opened first; the first failure is raised after all
    have run."""
    failure = None
    for close in reversed(closers):
        try:
            close()
        except BaseException as exc:  # raised once all have run
            failure = failure or exc
    if failure is not None:
        raise failure


class GameRules(ABC):
    """A game: one file under ``miaudit/games/`` and one line in
    :data:`miaudit.games.GAMES`.

    :meth:`set_up` draws the splits, makes (or opens) the target and lays out every
    model's job; it refuses, before anything trains, what the game cannot play. What it
    opens, it closes on failure; on success the :class:`Game` closes it.
    """

    #: The game's name: ``config.game`` and ``--game``.
    name: ClassVar[str]

    @abstractmethod
    def set_up(self, setting: Setting) -> Game:
        """The game's target and models, ready to train and ask."""
