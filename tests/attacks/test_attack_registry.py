"""Tests of the attack contract helpers: the registry and config validation."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import BaseModel, Field

from miaudit.attacks import Attack, ShokriAttack, available_attacks, get_attack, register
from miaudit.attacks.base import build_config, check_prediction_signals
from miaudit.errors import ConfigError


def test_shokri_is_registered_by_name():
    assert "shokri" in available_attacks()
    assert get_attack("shokri") is ShokriAttack
    assert ShokriAttack.name == "shokri"
    assert issubclass(ShokriAttack, Attack)


def test_unknown_attack_lists_the_choices():
    with pytest.raises(ConfigError, match=r"unknown attack 'lira2'; choose one of: .*shokri"):
        get_attack("lira2")


def test_a_name_cannot_be_claimed_twice():
    with pytest.raises(ValueError, match="already registered"):

        @register("shokri")
        class Impostor(ShokriAttack):
            pass


def test_build_config_reports_every_bad_field_in_one_line():
    class Cfg(BaseModel):
        k: int = Field(default=1, ge=1)
        name: str = "x"

    with pytest.raises(ConfigError) as err:
        build_config(Cfg, "toy attack", k=0, name=3)
    message = str(err.value)
    assert message.startswith("invalid toy attack option(s): k:")
    assert "name:" in message and "\n" not in message


def test_check_prediction_signals_returns_float_and_int_arrays():
    p, y = check_prediction_signals(np.array([[0.25, 0.75]], dtype=np.float32), [1])
    assert p.dtype == np.float64 and y.dtype == np.int64
    # Rounded outputs (an output policy) need not sum to exactly 1.
    check_prediction_signals(np.array([[0.3, 0.3, 0.3]]), [0])
    with pytest.raises(ConfigError, match="at least 2 classes"):
        check_prediction_signals(np.ones((3, 1)), [0, 0, 0])
