"""Audit configuration, validated once at the edge (CLI or API) into typed objects.

Position in the pipeline: ``config -> data -> ...``. The CLI and :func:`miaudit.audit`
both build an :class:`AuditConfig` here; inner code takes these objects, never raw
dicts. ``config.json`` written next to the results is :meth:`AuditConfig.resolved_dict`,
which :func:`load_config_file` reads back to repeat a run.
"""

from __future__ import annotations

import math
import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from miaudit.attacks.registry import SECTIONS, nearest, parse_attacks, section_attacks
from miaudit.attacks.variants import MAX_QUERIES
from miaudit.errors import ConfigError, flatten_validation_error
from miaudit.errors import key as name_key
from miaudit.files import read_json_object
from miaudit.games import GAMES
from miaudit.metrics import MAX_BOOTSTRAP
from miaudit.synthesis import SynthesisConfig

#: The games :data:`miaudit.games.GAMES` registers, by name (``game`` and ``--game``).
GameName = Literal[tuple(GAMES)]  # type: ignore[valid-type]


class RecipeSpec(BaseModel):
    """A model recipe as the user gives it: unset fields take the model's defaults.

    The pipeline resolves it, with the data set's kind (MLP for tables, CNN for
    images), into a full :class:`miaudit.models.Recipe`; ``config.json`` holds the
    resolved values so a repeat does not depend on today's defaults.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    hidden: int | None = None
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    l2: float | None = None
    optimizer: str | None = None
    momentum: float | None = None
    filters: int | None = None
    n_estimators: int | None = None
    max_depth: int | None = None
    augment: bool | None = None
    dp_epsilon: float | None = None
    dp_delta: float | None = None
    max_grad_norm: float | None = None
    dp_accountant: str | None = None

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class HttpConfig(BaseModel):
    """How the audit talks to a remote target (``--target-url``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float = Field(default=30.0, gt=0)
    retries: int = Field(default=5, ge=0)
    batch_size: int = Field(default=512, ge=1)


class _AttacksBase(BaseModel):
    """Which attacks run (``run``; ``None``: the default set) and each one's settings, a
    table per section: ``[attacks.rmia] gamma = 2``. The sections are the registry's
    (:data:`miaudit.attacks.registry.SECTIONS`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run: list[str] | None = None
    #: Queries per record for every attack with a ``queries`` setting that its own
    #: table does not set (``None``: each attack's default, 1).
    queries: int | None = Field(default=None, ge=1, le=MAX_QUERIES)

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        value = attacks_table(value)
        if not isinstance(value, dict):
            return value
        for key, table in value.items():
            if key in ("run", "queries"):
                continue
            if key not in SECTIONS:
                raise ConfigError(
                    f"unknown attack section [attacks.{key}]{nearest(key, list(SECTIONS))}: "
                    f"the sections are {', '.join(SECTIONS)} (`miaudit attacks` lists each "
                    "one's settings)"
                )
            if not isinstance(table, dict):
                continue
            fields = SECTIONS[key].model_fields
            for setting in table:
                if setting in fields:
                    continue
                owners = [s for s, m in SECTIONS.items() if setting in m.model_fields]
                where = f"; {setting} is a setting of [attacks.{owners[0]}]" if owners else ""
                raise ConfigError(
                    f"[attacks.{key}] has no setting {setting!r} (its settings: "
                    f"{', '.join(fields) or 'none'}){where}"
                )
        return value

    @field_validator("run")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else list(parse_attacks(v))

    @model_validator(mode="after")
    def _sections_of_attacks_run(self) -> Any:
        names = set(self.names())
        for section in SECTIONS:
            if getattr(self, section) is None:
                continue
            members = section_attacks(section)
            if not names & set(members):
                raise ConfigError(
                    f"[attacks.{section}] sets {' and '.join(members)}, which this audit does "
                    f"not run (it runs {', '.join(self.names())}): add {members[0]} to the "
                    "attacks, or drop the section"
                )
        return self

    def names(self) -> tuple[str, ...]:
        """The attacks asked for (the default set when none were named)."""
        return parse_attacks(self.run if self.run is not None else ["default"])

    def settings(self, section: str) -> BaseModel:
        """The settings of ``[attacks.<section>]``, defaults filled in (``queries`` from
        ``[attacks] queries`` where the table does not set it)."""
        given = getattr(self, section)
        model = SECTIONS[section]
        shared = self.queries is not None and "queries" in model.model_fields
        if shared and (given is None or "queries" not in given.model_fields_set):
            values = {} if given is None else given.model_dump(exclude_unset=True)
            try:
                return model(**{**values, "queries": self.queries})
            except ValidationError as exc:
                raise ConfigError(
                    f"{name_key('attacks.queries', self.queries)}: "
                    f"{exc.errors()[0]['msg']} for [attacks.{section}]"
                ) from None
        return given if given is not None else model()

    def resolved(self, names: tuple[str, ...] | None = None) -> dict[str, Any]:
        """``run`` and the full settings of every section those attacks use."""
        names = self.names() if names is None else names
        sections = dict.fromkeys(s for s in SECTIONS for n in names if n in section_attacks(s))
        return {
            "run": list(names),
            **({} if self.queries is None else {"queries": self.queries}),
            **{s: self.settings(s).model_dump(mode="json") for s in sections},
        }


#: The attacks' settings: ``run`` and one optional table per registry section.
AttacksConfig = create_model(
    "AttacksConfig",
    __base__=_AttacksBase,
    **{section: (model | None, None) for section, model in SECTIONS.items()},
)

#: Settings that moved into ``[attacks.<section>]``: old key -> (section, its key there;
#: ``None`` when the old key held the whole table).
MOVED: dict[str, tuple[str, str | None]] = {
    "attack": ("shokri", None),
    "lira_variance": ("lira", "variance"),
    "lira_queries": ("lira", "queries"),
    "rmia": ("rmia", None),
    "robustness": ("robustness", None),
}


def attacks_table(value: Any) -> Any:
    """``attacks`` as a table: a list of names (or comma-separated text) is its ``run``,
    and so is ``run`` written as text. Anything else is left for validation to refuse."""
    if isinstance(value, str | list | tuple):
        value = {"run": value}
    if not isinstance(value, dict):
        return value
    run = value.get("run")
    if isinstance(run, str):
        run = [v for v in run.split(",") if v.strip()]
    return {**value, "run": list(run)} if isinstance(run, list | tuple) else dict(value)


def _run_of(values: dict[str, Any]) -> Any:
    table = attacks_table(values.get("attacks"))
    return table.get("run") if isinstance(table, dict) else None


def move_old_keys(values: dict[str, Any], run: Any = None) -> tuple[dict[str, Any], list[str]]:
    """``values`` with the settings of :data:`MOVED` under ``attacks``, and a line for
    each saying what to write instead. A moved table of attacks the audit does not run
    (``run``, default: the attacks ``values`` names) is dropped: it never had an effect."""
    values = dict(values)
    old = [k for k in MOVED if k in values]
    if not old:
        return values, []
    attacks = attacks_table(values.get("attacks") or {})
    if not isinstance(attacks, dict):
        raise ConfigError("attacks: give a list of attack names or a table of them")
    run = run if run is not None else attacks.get("run")
    run = set(parse_attacks(run if run is not None else ["default"]))
    notes = []
    for key in old:
        section, setting = MOVED[key]
        value = values.pop(key)
        if value is None:
            continue
        table = dict(attacks.get(section) or {})
        given = value if setting is None else {setting: value}
        if not isinstance(given, dict):
            raise ConfigError(f"'{key}' must be a table of {section} settings")
        clash = [k for k in given if k in table]
        if clash:
            raise ConfigError(
                f"'{key}' and [attacks.{section}] both set {clash[0]}: keep [attacks.{section}]"
            )
        file = f"[attacks.{section}]" + (f" {setting} = …" if setting else "")
        inner = f"'{setting}': …" if setting else "…"
        python = "attacks={'" + section + "': {" + inner + "}}"
        if not run & set(section_attacks(section)):
            notes.append(f"setting '{key}' has moved to {file}; ignored: no {section} attack runs")
            continue
        attacks[section] = {**table, **given}
        notes.append(
            f"setting '{key}' has moved: write {file} in a config file, {python} in Python"
        )
    values["attacks"] = attacks
    return values, notes


class AuditConfig(BaseModel):
    """Everything that determines an audit's result (apart from library versions).

    ``target`` is the recipe the target model is trained with; ``shadow`` the one
    the shadows use (the target's when ``None`` — the paper's attacker knows the
    training algorithm). ``target_model`` loads a saved target instead of training one
    (or names an MLflow model, ``models:/NAME/VERSION`` or ``runs:/RUN_ID/PATH``, which
    the edge loads as the user's own model: :mod:`miaudit.mlflow`);
    ``target_url`` attacks a prediction service instead, whose membership (to evaluate
    the attack, never to train it) comes from ``membership``; ``protocol`` says what the
    service speaks (``miaudit``: ``miaudit serve``'s; ``mlflow``: MLflow's scoring
    server; ``v2``: the Open Inference Protocol of KServe, Triton, MLServer and Seldon,
    ``target_url`` then naming the model, ``…/v2/models/NAME[/versions/V]``).
    ``query_budget`` caps the queries sent to the target; hill-climbing synthesis stops
    early to leave what scoring needs. The service's token is not configuration: it is
    never written.

    The user's own model and training code: ``target_python`` and ``trainer_python``
    name them as ``module:attribute`` (found on ``python_path``); ``members`` and
    ``non_members`` are files naming the target's training records (a mask, rows or ids,
    see :func:`miaudit.data.records.named_rows`); ``members_as`` says which reading of
    them holds where several fit. ``id_column`` names a table's record ids;
    ``text_column`` its column of texts (the records are then text records);
    ``shadow_size`` trains shadows on fewer records than the target when the
    attacker's pool is too small for the target's size; ``pixel_scale`` is the value
    of white in images that are not ``uint8``.

    ``show_records`` says how much of each record the run's files show: ``values``,
    ``ids`` (the default) or ``none`` (:mod:`miaudit.report.disclosure`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = "census"
    label: str | None = None
    categorical: list[str] | None = None
    id_column: str | None = None
    text_column: str | None = None
    pixel_scale: float | None = Field(default=None, gt=0)
    target_size: int | None = Field(default=None, ge=1)
    shadows: int = Field(default=10)
    shadow_size: int | None = Field(default=None, ge=1)
    target_python: str | None = None
    trainer_python: str | None = None
    python_path: list[str] = Field(default_factory=list)
    members: str | None = None
    non_members: str | None = None
    members_as: Literal["mask", "positions", "ids"] | None = None
    target: RecipeSpec = RecipeSpec()
    shadow: RecipeSpec | None = None
    target_model: str | None = None
    target_url: str | None = None
    protocol: Literal["miaudit", "mlflow", "v2"] = "miaudit"
    membership: str | None = None
    http: HttpConfig = HttpConfig()
    save_target: str | None = None
    defense: list[str] = Field(default_factory=list)
    shadow_data: Literal["real", "noisy", "marginal", "synthetic"] = "real"
    synthesis: SynthesisConfig = SynthesisConfig()
    query_budget: int | None = Field(default=None, ge=1)
    noise: float = Field(default=0.1, gt=0.0, le=1.0)
    shadow_labels: Literal["data", "target"] = "data"
    attacks: AttacksConfig = Field(default_factory=AttacksConfig)
    game: GameName = "shokri"
    canaries: int = Field(default=1000, ge=2)
    canary_kind: Literal["population", "mislabelled"] = "population"
    bootstrap: int = Field(default=1000, ge=0, le=MAX_BOOTSTRAP)
    fprs: list[float] = Field(default_factory=list)
    seed: int = Field(default=0, ge=0)
    device: Literal["cpu", "cuda"] = "cpu"
    show_records: Literal["values", "ids", "none"] = "ids"

    @field_validator("shadows")
    @classmethod
    def _at_least_one_shadow(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be at least 1: the attack learns from shadow models")
        return v

    @field_validator("python_path", mode="before")
    @classmethod
    def _paths(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("target_python", "trainer_python")
    @classmethod
    def _object_spec(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if ":" not in v or v.startswith(":") or v.endswith(":"):
            raise ValueError(f"{v!r}: write module:attribute, e.g. mymodels:model")
        module, _, attribute = v.partition(":")
        if module.endswith(".py"):  # path/to/file.py:attribute names a file
            return f"{absolute_path(module)}:{attribute}"
        return v

    # Paths are made absolute against the current folder when the config is made (a
    # config file's relative paths too): config.json restates them, and must repeat the
    # run from any folder.
    @field_validator("python_path")
    @classmethod
    def _absolute_folders(cls, v: list[str]) -> list[str]:
        return [absolute_path(folder) for folder in v]

    @field_validator("members", "non_members", "target_model", "membership", "save_target")
    @classmethod
    def _absolute_paths(cls, v: str | None) -> str | None:
        # An MLflow model's URI is no path: config.json restates it as given.
        return v if v is None or is_mlflow_uri(v) else absolute_path(v)

    @field_validator("dataset")
    @classmethod
    def _dataset_path(cls, v: str) -> str:
        from miaudit.data import MEMORY_NAMES
        from miaudit.data.builtin import is_builtin

        if is_builtin(v) or v in MEMORY_NAMES:
            return v
        # Only a file that exists: an unknown name (a misspelt built-in set) keeps its
        # text, so the loader's message can say so rather than "file not found".
        path = Path(v).expanduser()
        return absolute_path(v) if path.is_file() else v

    #: Lines saying which old settings were moved (see :func:`move_old_keys`).
    _moved: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _moved_keys(cls, values: Any, handler: Any) -> Any:
        notes: list[str] = []
        if isinstance(values, dict):
            values, notes = move_old_keys(values)
        config = handler(values)
        config._moved = notes
        return config

    @property
    def moved(self) -> list[str]:
        """Old settings this config was given, each with what to write instead."""
        return list(self._moved)

    @field_validator("fprs")
    @classmethod
    def _rates(cls, v: list[float]) -> list[float]:
        for f in v:
            if not 0 < f < 1:
                raise ValueError(f"{f} is not a false-positive rate between 0 and 1")
        return sorted(set(v))

    @field_validator("target_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        from miaudit.remote import check_url

        return None if v is None else check_url(v)

    @field_validator("defense")
    @classmethod
    def _known_policies(cls, v: list[str]) -> list[str]:
        from miaudit.policies import parse_policy

        # Normalised spelling, so config.json states exactly what was applied.
        return [parse_policy(spec).spec for spec in v]

    @model_validator(mode="after")
    def _finite(self) -> AuditConfig:
        """No setting may be infinite or NaN (``timeout = inf``, ``gamma = inf``): refused
        here, not when ``config.json`` is written after the whole audit ran."""

        def walk(value: Any, path: str) -> None:
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(
                    f"{name_key(path, value)}: give a finite number (inf and nan cannot be "
                    "used or written back to config.json)"
                )
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(v, f"{path}.{k}" if path else str(k))
            elif isinstance(value, list | tuple):
                for v in value:
                    walk(v, path)

        walk(self.model_dump(), "")
        return self

    @model_validator(mode="after")
    def _combinations(self) -> AuditConfig:
        """Settings that contradict each other, refused before any data is loaded."""
        if self.game == "recipe":
            self._refuse_set(
                ("target_model", "target_url", "save_target", "membership", "target_python",
                 "members", "non_members"),
                f"{name_key('game', 'recipe')} trains its own target and draws its members, so "
                f"{{key}} does not apply: drop it, or use {name_key('game', 'shokri')}",
            )  # fmt: skip
            if self.shadow_data != "real":
                raise ConfigError(
                    f"{name_key('game', 'recipe')} trains every model on the pool: use "
                    f"{name_key('shadow_data', 'real')}"
                )
        if self.game == "canaries":
            self._refuse_set(
                ("target_model", "target_url", "save_target", "membership", "target_python",
                 "members", "non_members"),
                f"{name_key('game', 'canaries')} trains its own target with canaries in its "
                f"training set, so {{key}} does not apply: drop it, or use "
                f"{name_key('game', 'shokri')}",
            )  # fmt: skip
        elif self.canaries != 1000 or self.canary_kind != "population":
            raise ConfigError(
                f"{name_key('canaries')} and {name_key('canary_kind')} set up the canary game: "
                f"add {name_key('game', 'canaries')}, or drop them"
            )
        if self.target_url is not None:
            self._check_remote()
        elif self.protocol != "miaudit":
            raise ConfigError(
                f"{name_key('protocol', self.protocol)} says what a remote target speaks: use "
                f"it with {name_key('target_url')}, or drop it"
            )
        elif self.membership is not None:
            raise ConfigError(
                f"{name_key('membership')} says which records a remote target was trained on: use "
                f"it with {name_key('target_url')} (a saved model's membership comes with "
                f"{name_key('target_model')})"
            )
        if self.target_model is not None and self.target.given():
            raise ConfigError(
                f"target recipe settings ({', '.join(sorted(self.target.given()))}) would be "
                f"ignored: {name_key('target_model')} loads a trained target; drop them, or set "
                f"the shadows' recipe with {name_key('shadow.model')}"
            )
        if self.target_python is not None:
            self.check_own_target(name_key("target_python"))
        if self.trainer_python is not None and self.shadow is not None:
            raise ConfigError(
                f"{name_key('trainer_python')} and the shadow recipe "
                f"({name_key('shadow.model')}) both say how shadows train: pass one"
            )
        return self

    def _refuse_set(self, names: tuple[str, ...], why: str) -> None:
        for name in names:
            if getattr(self, name) is not None:
                raise ConfigError(why.format(key=name_key(name)))

    def _check_remote(self) -> None:
        if self.target_model is not None:
            raise ConfigError(
                f"{name_key('target_url')} and {name_key('target_model')} both name the target: "
                "pass one"
            )
        if self.save_target is not None:
            raise ConfigError(
                f"{name_key('save_target')} saves a target trained here; a remote one cannot be"
            )
        if self.defense:
            raise ConfigError(
                f"{name_key('defense')} applies an output policy to a local target; a service "
                "applies its own and reports it (miaudit serve --top-k/--round/--temperature/"
                "--label-only)"
            )
        path = urlsplit(self.target_url).path.rstrip("/")
        if "/v2/models/" in path + "/" and self.protocol != "v2":
            raise ConfigError(
                f"{name_key('target_url')} is a model's address in the Open Inference Protocol "
                f"(KServe v2): add {name_key('protocol', 'v2')}"
            )
        for tail, speaker in (("/invocations", "mlflow"), ("/v1/predict", "miaudit"),
                              ("/v1/info", "miaudit"), ("/infer", "v2")):  # fmt: skip
            if path.endswith(tail):
                what = "the model's address" if speaker == "v2" else "the service's base address"
                raise ConfigError(
                    f"{name_key('target_url')} ends in {tail}: give {what} (without {tail}) "
                    f"and {name_key('protocol', speaker)}"
                )
        if self.protocol == "v2":
            from miaudit.openinference import split_model_url

            split_model_url(self.target_url)  # a path under /v2/models that is no model's
        if self.membership is None:
            raise ConfigError(
                f"an audit of {name_key('target_url')} must know which records the target was "
                f"trained on: pass {name_key('membership')} (the saved target's folder or its "
                "membership.npz)"
            )

    def check_own_target(self, what: str = "target=") -> None:
        """Refuse settings that contradict auditing the user's own fitted model
        (``what`` names how it was given)."""
        self._refuse_set(
            ("target_url", "target_model", "save_target", "membership"),
            f"{what} is your own model, so {{key}} does not apply: pass one target",
        )
        if self.target.given():
            given = ", ".join(sorted(self.target.given()))
            raise ConfigError(
                f"target recipe settings ({given}) would be ignored: {what} is already "
                f"trained; say how to train shadows with {name_key('trainer_python')} (trainer= "
                f"in Python) or {name_key('shadow.model')}"
            )

    def resolved_dict(self) -> dict[str, Any]:
        """JSON-ready configuration; feeding it back through ``--config`` repeats the run,
        from any folder: its paths are absolute (made so when the config was made)."""
        return {**self.model_dump(mode="json"), "attacks": self.attacks.resolved()}


#: How an MLflow model's URI begins (``models:/NAME/VERSION``, ``models:/NAME@ALIAS``,
#: ``runs:/RUN_ID/PATH``): ``target_model`` (``--target-model``, ``target=``) then names a
#: model that MLflow loads (:mod:`miaudit.mlflow`), not a folder.
MLFLOW_SCHEMES = ("models:/", "runs:/")


def is_mlflow_uri(value: Any) -> bool:
    """Whether ``value`` is an MLflow model's URI (text beginning ``models:/`` or ``runs:/``)."""
    return isinstance(value, str) and value.startswith(MLFLOW_SCHEMES)


def absolute_path(path: str) -> str:
    """``path`` (``~`` expanded) made absolute against the current folder; links in it
    are kept as named (the record says what the user gave, only from the root)."""
    return os.path.abspath(os.path.expanduser(path))


def make_config(values: dict[str, Any]) -> AuditConfig:
    """Validate a plain dict (from a file, flags or keyword arguments) into a config."""
    try:
        return AuditConfig.model_validate(values)
    except ValidationError as err:
        cause = err.errors()[0].get("ctx", {}).get("error")
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(flatten_validation_error(err)) from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``audit.toml``) or JSON (``config.json``) configuration file as a dict."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist: pass the path of a .toml or .json file")
    fix = "fix the file, or pass the settings as options"
    try:
        if p.suffix.lower() == ".json":
            data = read_json_object(p, ConfigError, fix)
        elif p.suffix.lower() == ".toml":
            data = tomllib.loads(p.read_text())
        else:
            raise ConfigError(
                f"config file {p} has suffix '{p.suffix}': use .toml or .json (a results "
                "folder's config.json repeats that run)"
            )
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError) as err:
        raise ConfigError(f"config file {p} does not parse: {str(err)[:200]}") from None
    except RecursionError:
        raise ConfigError(f"config file {p} is nested too deeply to be settings: {fix}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {p} must hold a table of settings, not {type(data).__name__}"
        )
    # A results folder's config.json names the run it came from: not a setting.
    data.pop("run_id", None)
    return data


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Nested merge: values in ``overrides`` (``None`` means "not given") win over ``base``;
    a table left empty is dropped."""
    out = dict(base)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict):
            below = out.get(key) if isinstance(out.get(key), dict) else {}
            merged = merge(below, value)
            if merged:
                out[key] = merged
        else:
            out[key] = value
    return {k: v for k, v in out.items() if v is not None}


def _new_style(values: dict[str, Any], run: Any) -> tuple[dict[str, Any], list[str]]:
    """``values`` with moved keys in their new place and ``attacks`` as a table."""
    values, notes = move_old_keys(values, run)
    if values.get("attacks") is not None:
        values["attacks"] = attacks_table(values["attacks"])
    return values, notes


def combine(base: dict[str, Any], overrides: dict[str, Any]) -> AuditConfig:
    """The config of a file's (or dict's) settings with ``overrides`` (flags, keyword
    arguments) on top; settings written the old way in either are moved, and
    :attr:`AuditConfig.moved` says what to write instead."""
    run = _run_of(overrides)
    run = run if run is not None else _run_of(base)
    base, notes = _new_style(base, run)
    overrides, more = _new_style(overrides, run)
    config = make_config(merge(base, overrides))
    config._moved = notes + more + config._moved
    return config


#: Settings that import and run Python code.
PYTHON_KEYS = ("target_python", "trainer_python")


def refuse_python_from_file(base: dict[str, Any], path: Any, allowed: bool) -> None:
    """Refuse a settings file that names Python code to import and run, unless the
    caller allowed it: a ``config.json`` received with a run folder must not run code
    because someone repeats the run. The message names the module it would import.

    Raises
    ------
    ConfigError
        A file setting ``target_python`` or ``trainer_python`` without the allowance.
    """
    named = [(k, base[k]) for k in PYTHON_KEYS if base.get(k)]
    if not named or allowed:
        return
    setting, spec = named[0]
    module = str(spec).partition(":")[0]
    raise ConfigError(
        f"{path} sets {setting} = {spec!r}: repeating it would import and run {module!r}. "
        "Pass --allow-python (allow_python=True in Python) if you trust that file, or "
        f"give {name_key(setting)} yourself"
    )
