"""The games an audit can play, by name: the product reads only :data:`GAMES`.

Adding a game is one module under ``miaudit/games/`` (a subclass of
:class:`~miaudit.games.base.GameRules`) and one line below. Its name becomes a value of
``game`` in the configuration and of ``--game``. The registry names each game's class by
its module, imported only when the game is played, so that the configuration can read
the names without importing the games (which read the configuration).
"""

from __future__ import annotations

import importlib

#: Every game, by name: ``module:class``.
GAMES: dict[str, str] = {
    "shokri": "miaudit.games.shokri:ShokriGame",
    "recipe": "miaudit.games.recipe:RecipeGame",
    "canaries": "miaudit.games.canaries:CanaryGame",
}


def get_game(name: str):
    """The game called ``name`` (a value the configuration has already checked): an
    instance of its :class:`~miaudit.games.base.GameRules`."""
    module, _, cls = GAMES[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
