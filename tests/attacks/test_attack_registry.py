"""The attack contract: one registry, declarations the planner reads, settings by section."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import BaseModel, Field

from miaudit.attacks.base import (
    Attack,
    Needs,
    PlanContext,
    build_config,
    check_prediction_signals,
)
from miaudit.attacks.registry import (
    ATTACKS,
    DEFAULT_ATTACKS,
    SECTIONS,
    get_attack,
    parse_attacks,
    section_attacks,
)
from miaudit.attacks.shokri import Shokri
from miaudit.attacks.suite import AttackPlan
from miaudit.config import AttacksConfig, combine, make_config
from miaudit.errors import ConfigError


def test_every_registered_attack_follows_the_contract():
    for name, cls in ATTACKS.items():
        assert issubclass(cls, Attack) and cls.name == name, name
        assert cls.summary and cls.section in SECTIONS, name
        attack = cls()
        assert isinstance(attack.needs(), Needs), name
        # Settings are a frozen pydantic model that refuses unknown keys.
        assert attack.config.model_config.get("extra") == "forbid", name
        assert attack.config.model_config.get("frozen"), name
    assert get_attack("shokri") is Shokri
    assert set(DEFAULT_ATTACKS) <= set(ATTACKS)


def test_unknown_attacks_suggest_the_nearest_name():
    with pytest.raises(ConfigError, match=r"unknown attack 'lirra' \(did you mean 'lira'\?\)"):
        get_attack("lirra")
    with pytest.raises(ConfigError, match="did you mean 'boundary'"):
        parse_attacks(["boundry"])
    assert parse_attacks(["all"]) == tuple(ATTACKS)
    assert parse_attacks(["default", "gap", "qmia"])[-1] == "qmia"


def test_the_planner_reads_declarations_not_names():
    def plan(*names, **settings):
        cfg = AttacksConfig.model_validate({"run": list(names), **settings})
        return AttackPlan.build(cfg.run, cfg.settings)

    assert plan("lira").online and not plan("lira-offline").online
    assert plan("rmia-offline").population == 2000 and plan("rmia-offline").calibration
    assert plan("rmia", rmia={"population": 300}).population == 300
    assert plan("lira", lira={"queries": 3}).variants == 2
    assert plan("robustness", robustness={"copies": 5}).copies == 5
    assert plan("boundary", boundary={"directions": 2, "scan": 5, "steps": 3}).adaptive == 16
    assert plan("qmia").public == 5000 and plan("qmia").features
    assert not plan("gap").reference and not plan("gap").shadows
    # Extra target queries add up from the declarations.
    p = plan("robustness", "boundary", "qmia", robustness={"copies": 2})
    assert p.extra_queries(100, 0, 50) == 50 + 100 * (2 + 8 * (8 + 6))


def test_a_new_attack_needs_only_its_class():
    """An attack outside the registry runs through the same planner and runner."""

    class Coin(Attack):
        name = "coin"
        section = "gap"
        summary = "a fair coin"

        def needs(self) -> Needs:
            return Needs(probabilities=False)

        def score(self, inputs):
            return np.random.default_rng(inputs.seed).random(len(inputs.labels))

    from miaudit.attacks.base import AttackInputs
    from miaudit.attacks.suite import run_attacks

    p = AttackPlan((Coin(),))
    p.check(PlanContext(2, "real", "shokri", False, True))
    inputs = AttackInputs(
        np.zeros((0, 2)), np.zeros(0, int), np.zeros(0, bool), np.full((5, 2), 0.5),
        np.zeros(5, int), seed=3,
    )  # fmt: skip
    ((name, out),) = run_attacks(p, inputs)
    # Its scores are what its own score() gives from the audit's seed.
    assert name == "coin" and out.threshold == 0.5
    np.testing.assert_array_equal(out.scores, np.random.default_rng(3).random(5))


def test_label_only_targets_adapt_the_default_set_and_refuse_explicit_requests():
    cfg = AttacksConfig()
    plan = AttackPlan.build(cfg.run, cfg.settings, label_only=True)
    assert plan.names == ("shokri", "gap")
    assert set(plan.left_out) == {"loss", "mentr-class", "lira-offline", "rmia-offline"}
    with pytest.raises(ConfigError, match="labels only, but loss need probabilities"):
        AttackPlan.build(["gap", "loss"], cfg.settings, label_only=True)


@pytest.mark.parametrize(
    ("attacks", "message"),
    [
        ({"run": ["lira"], "rmia": {"gamma": 2}},
         r"\[attacks.rmia\] sets rmia and rmia-offline, which this audit does not run"),
        ({"run": ["lira"], "lira": {"gamma": 2}},
         r"\[attacks.lira\] has no setting 'gamma' .*gamma is a setting of \[attacks.rmia\]"),
        ({"run": ["lira"], "lria": {}}, r"unknown attack section \[attacks.lria\] .*'lira'"),
        ({"run": ["rmia"], "rmia": {"gamma": 0}}, "attacks.rmia.gamma"),
    ],
)  # fmt: skip
def test_settings_live_under_their_attack(attacks, message):
    with pytest.raises(ConfigError, match=message):
        make_config({"attacks": attacks})


def test_old_keys_still_work_and_say_what_to_write():
    old = combine({"attacks": ["lira", "rmia"], "lira_variance": "per-record"},
                  {"rmia": {"gamma": 2.0}, "attack": {"learner": "nn"}})  # fmt: skip
    new = make_config(
        {"attacks": {"run": ["lira", "rmia"], "lira": {"variance": "per-record"},
                     "rmia": {"gamma": 2.0}}}
    )  # fmt: skip
    assert old.attacks == new.attacks
    assert any("[attacks.lira] variance" in line for line in old.moved)
    # Shokri's settings for an audit without Shokri never had an effect: dropped, said so.
    assert any("'attack' has moved" in line and "ignored" in line for line in old.moved)
    assert new.moved == []
    with pytest.raises(ConfigError, match=r"both set variance: keep \[attacks.lira\]"):
        make_config({"lira_variance": "global", "attacks": {"run": ["lira"],
                     "lira": {"variance": "global"}}})  # fmt: skip


def test_resolved_config_repeats_the_attacks_with_their_settings():
    cfg = make_config({"attacks": {"run": ["lira-offline", "gap"]}})
    resolved = cfg.resolved_dict()["attacks"]
    assert resolved == {"run": ["lira-offline", "gap"], "lira": {"variance": "auto",
                        "queries": 1}, "gap": {}}  # fmt: skip
    assert make_config(json.loads(json.dumps(cfg.resolved_dict()))).attacks.names() == (
        "lira-offline",
        "gap",
    )


def test_sections_and_variants_agree():
    for section, model in SECTIONS.items():
        members = section_attacks(section)
        assert members and all(ATTACKS[n].Config is model for n in members)


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


def test_check_prediction_signals_keeps_float32_when_asked_and_finds_every_bad_entry():
    from miaudit.signals import BLOCK_ROWS

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), 2 * BLOCK_ROWS + 10).astype(np.float32)
    y = rng.integers(0, 3, len(p))
    kept, _ = check_prediction_signals(p, y, float64=False)
    assert kept is p
    assert check_prediction_signals(p.astype(np.int64) * 0, y, float64=False)[0].dtype == np.float64
    # Bad entries in the second and third blocks: counted over all blocks, the first named.
    p[BLOCK_ROWS + 5, 2] = 1.5
    p[2 * BLOCK_ROWS + 1, 0] = np.nan
    p[2 * BLOCK_ROWS + 1, 1] = -0.5
    for float64 in (True, False):
        with pytest.raises(ConfigError) as err:
            check_prediction_signals(p, y, float64=float64)
        assert str(err.value) == (
            f"signals must be probabilities in [0, 1]; 3 entries are not (first: row "
            f"{BLOCK_ROWS + 5}, column 2, value 1.5). Pass predict_proba outputs, not logits."
        )


def test_rows_by_class_gives_each_classes_rows_in_order():
    from miaudit.attacks.base import rows_by_class

    rng = np.random.default_rng(0)
    for y, n in ((rng.integers(0, 46, 10_000), 46), (rng.integers(0, 70_000, 5_000), 70_000),
                 (np.array([2, 2, 0]), 4), (np.zeros(0, np.int64), 3)):  # fmt: skip
        groups = rows_by_class(y, n)
        assert len(groups) == n
        for c, rows in enumerate(groups):
            np.testing.assert_array_equal(rows, np.flatnonzero(y == c))


#: Words a sentence does not end on: a text ending on one was cut short.
_DANGLING = {"a", "an", "the", "of", "by", "to", "and", "or", "with", "for", "in", "on",
             "from", "at", "as", "than", "its", "their", "is", "are"}  # fmt: skip


def test_attack_descriptions_are_whole():
    from miaudit.attacks.listing import attack_listing

    for entry in attack_listing():
        texts = [entry["summary"], *entry["needs"]]
        texts += [f["description"] for f in entry["settings"].values() if f["description"]]
        for text in texts:
            last = text.rstrip(" .)").rsplit(" ", 1)[-1].lower()
            assert last not in _DANGLING, (entry["name"], text)
            assert text.count("(") == text.count(")"), (entry["name"], text)
        # A need of none is no need: IN models go unmentioned when none are required.
        for need in entry["needs"]:
            assert "at least 0" not in need and " 0 IN" not in need, (entry["name"], need)


def test_needs_name_only_the_reference_models_required():
    assert Needs(reference="in-out", reference_models=(0, 1)).describe()[0] == (
        "reference models' outputs on the evaluated records, trained on halves of them "
        "(at least 1 OUT per record)"
    )
    assert Needs(reference="in-out", reference_models=(2, 3)).describe()[0] == (
        "reference models that trained on each evaluated record and ones that did not "
        "(at least 2 IN and 3 OUT per record)"
    )
