"""The registry's listing, the configuration's schema and the CLI's options agree.

Each test fails when an attack, a setting or an option exists in one place and not
the others: an option the configuration lacks, a setting no option or file reaches,
an attack `miaudit attacks` does not list.
"""

from __future__ import annotations

import json

import typer
from pydantic import BaseModel

from miaudit.attacks.registry import ATTACKS, SECTIONS
from miaudit.cli import AUDIT_OPTIONS, RUN_OPTIONS, app, main, option_for
from miaudit.config import AttacksConfig, AuditConfig

#: Settings only a configuration file (or Python) sets, and why no option does.
FILE_ONLY = {
    "synthesis": "hill climbing's knobs, a table of their own",
    "http.batch_size": "records per request, a service's limit",
    "target.optimizer": "recipe details beyond the options",
    "target.momentum": "recipe details beyond the options",
    "target.filters": "recipe details beyond the options",
    "target.n_estimators": "recipe details beyond the options",
    "target.max_depth": "recipe details beyond the options",
    "shadow": "a shadow recipe beyond its model",
    "attacks": "every attack's settings: --attack-setting SECTION.KEY=VALUE",
}


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every setting of ``model``, dotted through its tables."""
    out = set()
    for name, field in model.model_fields.items():
        path = prefix + name
        out.add(path)
        inner = field.annotation
        for arg in getattr(inner, "__args__", ()) or (inner,):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out |= _keys(arg, path + ".")
    return out


def _audit_params() -> dict[str, object]:
    command = typer.main.get_command(app).commands["audit"]
    return {p.name: p for p in command.params}


def test_every_audit_option_is_a_setting_or_says_how_the_audit_runs():
    params = set(_audit_params())
    assert params == set(AUDIT_OPTIONS) | RUN_OPTIONS, params ^ (set(AUDIT_OPTIONS) | RUN_OPTIONS)
    assert not set(AUDIT_OPTIONS) & RUN_OPTIONS
    keys = _keys(AuditConfig)
    for name, (path, _) in AUDIT_OPTIONS.items():
        assert path in keys, f"--{name} sets {path}, which the configuration lacks"
        assert option_for(path) is not None


def test_every_setting_is_reached_by_an_option_or_a_file():
    reached = {path for path, _ in AUDIT_OPTIONS.values()}
    for name in AuditConfig.model_fields:
        by_option = name in reached or any(p.startswith(name + ".") for p in reached)
        assert by_option or name in FILE_ONLY, f"no option sets {name} and FILE_ONLY omits it"
    for path in FILE_ONLY:
        assert path in _keys(AuditConfig), f"FILE_ONLY names {path}, no setting"


def test_the_attack_sections_are_the_registry_s():
    assert set(AttacksConfig.model_fields) == {"run", "queries", *SECTIONS}
    for section, model in SECTIONS.items():
        assert AttacksConfig.model_fields[section].annotation == (model | None)


def test_miaudit_attacks_lists_every_registered_attack_and_setting(capsys):
    assert main(["attacks", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in listing] == list(ATTACKS)
    for entry in listing:
        cls = ATTACKS[entry["name"]]
        assert entry["section"] == cls.section
        assert set(entry["settings"]) == set(SECTIONS[cls.section].model_fields)
        assert entry["needs"] == cls().needs().describe()
    assert main(["attacks"]) == 0
    text = capsys.readouterr().out
    for name in ATTACKS:
        assert name in text
    for section in SECTIONS:
        if SECTIONS[section].model_fields:
            assert f"[attacks.{section}]" in text


def test_every_attack_setting_can_be_given_on_the_command_line(capsys):
    # --attack-setting reaches any section's key; a wrong one is refused naming it.
    assert main(["audit", "--attacks", "rmia", "--attack-setting", "rmia.gama=2"]) == 2
    err = capsys.readouterr().err
    assert "[attacks.rmia] has no setting 'gama'" in err and err.count("\n") == 1
    assert main(["audit", "--attack-setting", "rmia"]) == 2
    assert "write SECTION.KEY=VALUE" in capsys.readouterr().err


def test_errors_name_keys_from_python_and_options_from_the_cli(capsys):
    import pytest

    import miaudit

    with pytest.raises(miaudit.MiauditError) as err:
        miaudit.audit(game="recipe", shadow_data="noisy")
    assert str(err.value) == ("game=recipe trains every model on the pool: use shadow_data=real")
    assert main(["audit", "--game", "recipe", "--shadow-data", "noisy"]) == 2
    assert capsys.readouterr().err.strip() == (
        "miaudit: error: --game recipe trains every model on the pool: use --shadow-data real"
    )
