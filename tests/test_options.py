"""The registry's listing, the configuration's schema and the CLI's options agree.

Each test fails when an attack, a setting or an option exists in one place and not
the others: an option the configuration lacks, a setting no option or file reaches,
an attack `miaudit attacks` does not list.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from pathlib import Path

import pytest
import typer
from pydantic import BaseModel

from miaudit import cli
from miaudit.attacks.registry import ATTACKS, SECTIONS
from miaudit.cli import AUDIT, AUDIT_OPTIONS, RUN_OPTIONS, OptionSpec, app, main, option_for
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


def _without_settings(table: tuple[OptionSpec, ...]) -> list[str]:
    """The entries of ``table`` that name a configuration key the configuration lacks."""
    keys = _keys(AuditConfig)
    return [s.name for s in table if s.key is not None and s.key not in keys]


def test_every_audit_option_is_a_setting_or_says_how_the_audit_runs():
    params = set(_audit_params())
    assert params == set(AUDIT_OPTIONS) | RUN_OPTIONS, params ^ (set(AUDIT_OPTIONS) | RUN_OPTIONS)
    assert not set(AUDIT_OPTIONS) & RUN_OPTIONS
    assert _without_settings(AUDIT) == []
    for spec in AUDIT:
        assert (spec.key is None) == spec.run, f"--{spec.name}: a setting or a run option"
        if spec.key is not None:
            assert cli.config_field(spec.key) is not None
            assert option_for(spec.key) is not None


def test_an_entry_without_a_setting_fails():
    # A key the configuration lacks: the check above, config_field and choices say so.
    bogus = (*AUDIT[:5], OptionSpec("gamez", str | None, key="gamez"), *AUDIT[5:])
    assert _without_settings(bogus) == ["gamez"]
    for key in ("gamez", "target.gamez", "game.gamez"):
        with pytest.raises(KeyError):
            cli.config_field(key)
    with pytest.raises(KeyError):
        _ = cli.OPTIONS["game"].but(key="gamez").choices
    # Neither a setting nor a run option, both, or declared twice: the table refuses it.
    for broken in (
        OptionSpec("loose", str | None),
        OptionSpec("both", str | None, key="game", run=True),
    ):
        with pytest.raises(AssertionError, match=broken.name):
            cli._table(*AUDIT, broken)
    with pytest.raises(AssertionError, match="twice"):
        cli._table(*AUDIT, AUDIT[0])


def test_the_commands_signatures_are_generated_from_the_table():
    # Every command that takes the table's options sees exactly its specs, in order:
    # names, flags, types, defaults, help, panels (shared ones differ from audit's
    # only where the command says so).
    group = typer.main.get_command(app)
    for name, specs in {
        "audit": AUDIT, "train": cli.TRAIN, "evaluate": cli.EVALUATE, "serve": cli.SERVE,
    }.items():  # fmt: skip
        signature = inspect.signature(getattr(cli, name))
        assert list(signature.parameters) == [s.name for s in specs], name
        params = group.commands[name].params
        assert [p.name for p in params] == [s.name for s in specs], name
        for spec, param, parameter in zip(
            specs, params, signature.parameters.values(), strict=True
        ):
            base, info = typing.get_args(parameter.annotation)
            assert base == spec.type and info.help == spec.help, spec.name
            assert param.help == spec.help and param.hidden == spec.hidden, spec.name
            expected = inspect.Parameter.empty if param.required else param.default
            assert spec.default == expected, spec.name
            if not spec.argument:
                assert param.opts[0] == spec.flag, spec.name
                assert param.rich_help_panel == spec.panel, spec.name
                assert param.envvar == spec.envvar, spec.name
            shared = cli.OPTIONS.get(spec.name)
            if shared is not None and name != "audit":
                assert (spec.flags, spec.key, spec.read) == (shared.flags, shared.key, shared.read)


def test_the_audit_table_is_the_audit_command():
    # Dropping an entry drops the option: the signature is the table, nothing else.
    assert [p.name for p in _audit_params().values()] == [s.name for s in AUDIT]
    assert list(AUDIT_OPTIONS) == [s.name for s in AUDIT if s.key is not None]
    assert {path for path, _ in AUDIT_OPTIONS.values()} == {s.key for s in AUDIT if s.key}


def _literal(annotation: object) -> tuple[object, ...] | None:
    for kind in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(kind) is typing.Literal:
            return typing.get_args(kind)
    return None


def test_an_option_s_choices_are_its_setting_s_values_and_its_help_names_them():
    with_choices = set()
    for spec in AUDIT:
        if spec.key is None:
            assert spec.choices is None
            continue
        allowed = _literal(cli.config_field(spec.key).annotation)
        assert spec.choices == allowed, spec.name
        if allowed is None:
            continue
        with_choices.add(spec.name)
        # The help cannot forget a value the setting gained (a flag, --canaries, is
        # not the value canaries).
        words = set(re.findall(r"(?<![\w-])[a-z][a-z0-9-]*", spec.help or ""))
        assert set(allowed) <= words, f"--{spec.name}'s help omits {set(allowed) - words}"
    assert with_choices >= {"game", "shadow_data", "records", "device", "members_as"}


def test_option_for_names_the_flag_click_shows():
    params = _audit_params()
    for spec in AUDIT:
        if spec.key is None:
            continue
        param = params[spec.name]
        shown = param.secondary_opts[0] if spec.name == "class_agnostic" else param.opts[0]
        assert option_for(spec.key) == shown
    assert option_for("attacks.shokri.per_class") == "--per-class"
    assert option_for("synthesis") is None


def test_a_generated_command_called_from_python_fills_its_defaults(tmp_path: Path):
    # The command is still a function: keyword arguments, defaults from the table.
    with pytest.raises(cli.ConfigError, match="--no-auth and a token contradict"):
        cli.serve(model_dir=tmp_path, token=["t"], no_auth=True)
    with pytest.raises(TypeError):
        cli.serve(no_auth=True)  # model_dir is required


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
