"""The game contract: every game is one module and one line of :data:`miaudit.games.GAMES`,
and the configuration, the command line and the pipeline read the registry alone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import typing

import pytest

from miaudit.config import AuditConfig
from miaudit.games import GAMES, get_game
from miaudit.games.base import GameRules


@pytest.mark.parametrize("name", sorted(GAMES))
def test_every_registered_game_is_a_game_named_as_registered(name):
    game = get_game(name)
    assert isinstance(game, GameRules)
    assert game.name == name


def test_the_configuration_accepts_exactly_the_registered_games():
    assert set(typing.get_args(AuditConfig.model_fields["game"].annotation)) == set(GAMES)


#: A game of one file: the paper's game with the target's members and non-members
#: swapped, so its result shows whose rules were played.
SWAPPED = """
from miaudit.games.shokri import ShokriGame
from miaudit.splits import AuditSplits
import dataclasses


class SwappedGame(ShokriGame):
    name = "swapped"

    def draw_splits(self, setting, plan, who, found, rng):
        splits, data, facts = super().draw_splits(setting, plan, who, found, rng)
        swapped = dataclasses.replace(
            splits, target_in=splits.target_out, target_out=splits.target_in
        )
        return swapped, data, facts
"""

PLAY = """
import json, sys
import miaudit.games
miaudit.games.GAMES["swapped"] = "swapped_game:SwappedGame"  # the one registry line
import miaudit
from miaudit.jobs import Execution

settings = dict(dataset="digits", target_size=150, shadows=2, seed=4, attacks=["loss"],
                target={"model": "logistic-regression"}, execution=Execution(job_cache=False))
shokri = miaudit.audit(**settings)
swapped = miaudit.audit(**settings, game="swapped")
json.dump({
    "shokri_in": sorted(shokri.record_index[shokri.member == 1].tolist()),
    "shokri_out": sorted(shokri.record_index[shokri.member == 0].tolist()),
    "swapped_in": sorted(swapped.record_index[swapped.member == 1].tolist()),
    "swapped_out": sorted(swapped.record_index[swapped.member == 0].tolist()),
    "game": swapped.config.game,
}, sys.stdout)
"""


def test_a_game_is_one_file_and_one_registry_line(tmp_path):
    """A new game, written as a user of the contract would, plays end to end: the
    configuration accepts its name and the pipeline plays its rules."""
    (tmp_path / "swapped_game.py").write_text(textwrap.dedent(SWAPPED))
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PLAY)],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    played = json.loads(out.stdout)
    assert played["game"] == "swapped"
    assert played["swapped_in"] == played["shokri_out"]
    assert played["swapped_out"] == played["shokri_in"]


def test_a_game_closes_what_it_opened_when_setting_up_fails(monkeypatch):
    """What a game opens is closed when a later step of its set-up refuses."""
    import miaudit
    import miaudit.games.shokri as shokri
    from miaudit.errors import ConfigError

    closed = []

    class Remote:
        label_only = False

        def close(self):
            closed.append(True)

    monkeypatch.setattr(shokri, "load_membership", lambda *a: None)
    monkeypatch.setattr(shokri, "open_remote", lambda *a, **k: Remote())

    def refuse(*args):
        raise ConfigError("refused after the remote was opened")

    monkeypatch.setattr(shokri, "_who_trains", refuse)
    with pytest.raises(ConfigError, match="refused after"):
        miaudit.audit(dataset="digits", target_url="http://127.0.0.1:9", membership="m.npz")
    assert closed == [True]
