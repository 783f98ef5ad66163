"""The canary game (auditing in one training run: Steinke, Nasr and Jagielski, NeurIPS
2023): the paper's game with canaries in the target's training set.

``canaries`` records are drawn from the evaluation and each is put in the target's
training set with probability one half (:func:`~miaudit.splits.with_canaries`);
``mislabelled`` canaries carry a label drawn from the other classes. The attacks score
the canaries alone, and :mod:`miaudit.claim` turns their scores into lower bounds on ε.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from miaudit.data import Dataset
from miaudit.errors import ConfigError, DataError, key
from miaudit.games.base import Setting
from miaudit.games.shokri import ShokriGame
from miaudit.splits import AuditSplits, with_canaries


class CanaryGame(ShokriGame):
    """The paper's game, its target trained here with canaries among its members."""

    name = "canaries"

    def draw_splits(self, setting: Setting, plan, who, found, rng):
        splits, data, _ = super().draw_splits(setting, plan, who, found, rng)
        return _canaries(setting.config, data, splits, who, setting.seeds)


def _canaries(config, data, splits, who, seeds) -> tuple[AuditSplits, Dataset, dict[str, Any]]:
    """The canary game's splits (:func:`~miaudit.splits.with_canaries`), its data (the
    canaries given wrong labels when ``canary_kind`` is ``mislabelled``: each a label
    drawn uniformly from the others), and what the report says of the canaries."""
    if who.user or who.saved is not None:
        raise ConfigError(
            f"{key('game', 'canaries')} trains its own target with canaries in its training "
            f"set: drop target= and members=, or use {key('game', 'shokri')}"
        )
    rng = np.random.default_rng(seeds["canaries"])
    splits = with_canaries(splits, config.canaries, rng)
    canaries = np.concatenate([splits.target_in, splits.target_out])
    if config.canary_kind == "mislabelled":
        if data.n_classes < 2:
            raise DataError("mislabelled canaries need at least two classes")
        y = data.y.copy()
        shift = rng.integers(1, data.n_classes, len(canaries))
        y[canaries] = (y[canaries] + shift) % data.n_classes
        data = dataclasses.replace(data, y=y)
    facts = {
        "members_given": splits.target_size,
        "canaries": {
            "count": len(canaries),
            "included": len(splits.target_in),
            "kind": config.canary_kind,
        },
    }
    return splits, data, facts
