"""Audit configuration, validated once at the edge (CLI or API) into typed objects.

Position in the pipeline: ``config -> data -> ...``. The CLI and :func:`miaudit.audit`
both build an :class:`AuditConfig` here; inner code takes these objects, never raw
dicts. ``config.json`` written next to the results is :meth:`AuditConfig.resolved_dict`,
which :func:`load_config_file` reads back to repeat a run.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from miaudit.attacks.shokri import ShokriConfig
from miaudit.attacks.suite import DEFAULT_ATTACKS, parse_attacks
from miaudit.errors import ConfigError
from miaudit.synthesis import SynthesisConfig


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

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class HttpConfig(BaseModel):
    """How the audit talks to a remote target (``--target-url``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float = Field(default=30.0, gt=0)
    retries: int = Field(default=5, ge=0)
    batch_size: int = Field(default=512, ge=1)


class RMIASettings(BaseModel):
    """RMIA's knobs: ``gamma`` and how many population records ``z`` to draw."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gamma: float = Field(default=1.0, gt=0)
    population: int = Field(default=2000, ge=10)


class RobustnessSettings(BaseModel):
    """The label-only robustness attack: perturbed copies per record and their noise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    copies: int = Field(default=8, ge=1)
    noise: float = Field(default=0.3, gt=0)


class AuditConfig(BaseModel):
    """Everything that determines an audit's result (apart from library versions).

    ``target`` is the recipe the target model is trained with; ``shadow`` the one
    the shadows use (the target's when ``None`` — the paper's attacker knows the
    training algorithm). ``target_model`` loads a saved target instead of training one;
    ``target_url`` attacks a prediction service instead, whose membership (to evaluate
    the attack, never to train it) comes from ``membership``. ``query_budget`` caps
    the queries sent to the target; hill-climbing synthesis stops early to leave what
    scoring needs. The service's token is not configuration: it is never written.

    The user's own model and training code: ``target_python`` and ``trainer_python``
    name them as ``module:attribute`` (found on ``python_path``); ``members`` and
    ``non_members`` are files naming the target's training records (rows or ids, see
    :func:`miaudit.handover.read_members`). ``id_column`` names a table's record ids;
    ``shadow_size`` trains shadows on fewer records than the target when the
    attacker's pool is too small for the target's size; ``pixel_scale`` is the value
    of white in images that are not ``uint8``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = "census"
    label: str | None = None
    categorical: list[str] | None = None
    id_column: str | None = None
    pixel_scale: float | None = Field(default=None, gt=0)
    target_size: int | None = Field(default=None, ge=1)
    shadows: int = Field(default=10)
    shadow_size: int | None = Field(default=None, ge=1)
    target_python: str | None = None
    trainer_python: str | None = None
    python_path: list[str] = Field(default_factory=list)
    members: str | None = None
    non_members: str | None = None
    target: RecipeSpec = RecipeSpec()
    shadow: RecipeSpec | None = None
    target_model: str | None = None
    target_url: str | None = None
    membership: str | None = None
    http: HttpConfig = HttpConfig()
    save_target: str | None = None
    defense: list[str] = Field(default_factory=list)
    shadow_data: Literal["real", "noisy", "marginal", "synthetic"] = "real"
    synthesis: SynthesisConfig = SynthesisConfig()
    query_budget: int | None = Field(default=None, ge=1)
    noise: float = Field(default=0.1, gt=0.0, le=1.0)
    shadow_labels: Literal["data", "target"] = "data"
    attack: ShokriConfig = ShokriConfig()
    attacks: list[str] = Field(default_factory=lambda: list(DEFAULT_ATTACKS))
    lira_variance: Literal["per-record", "global"] = "global"
    lira_queries: int = Field(default=1, ge=1, le=6)
    rmia: RMIASettings = RMIASettings()
    robustness: RobustnessSettings = RobustnessSettings()
    game: Literal["shokri", "recipe"] = "shokri"
    bootstrap: int = Field(default=1000, ge=0)
    fprs: list[float] = Field(default_factory=list)
    seed: int = Field(default=0, ge=0)
    device: Literal["cpu", "cuda"] = "cpu"

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
        if v is not None and (":" not in v or v.startswith(":") or v.endswith(":")):
            raise ValueError(f"{v!r}: write module:attribute, e.g. mymodels:model")
        return v

    @field_validator("attacks")
    @classmethod
    def _known_attacks(cls, v: list[str]) -> list[str]:
        return list(parse_attacks(v))

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

    def resolved_dict(self) -> dict[str, Any]:
        """JSON-ready configuration; feeding it back through ``--config`` repeats the run."""
        return self.model_dump(mode="json")


def flatten_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line naming the first invalid setting and what is wrong with it."""
    first = err.errors()[0]
    where = prefix + (".".join(str(p) for p in first["loc"]) or "config")
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
    if first["type"] == "extra_forbidden":
        return f"unknown configuration key '{where}': check its spelling{more}"
    return f"invalid configuration value for '{where}': {msg}{more}"


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
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(p.read_text())
        elif p.suffix.lower() == ".toml":
            data = tomllib.loads(p.read_text())
        else:
            raise ConfigError(
                f"config file {p} has suffix '{p.suffix}': use .toml or .json (a results "
                "folder's config.json repeats that run)"
            )
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {p} does not parse: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {p} must hold a table of settings, not {type(data).__name__}"
        )
    return data


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Nested merge: values in ``overrides`` (``None`` means "not given") win over ``base``."""
    out = dict(base)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif isinstance(value, dict):
            out[key] = {k: v for k, v in value.items() if v is not None} or out.get(key)
        else:
            out[key] = value
    return {k: v for k, v in out.items() if v is not None}
