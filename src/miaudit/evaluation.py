"""Attacks on outputs computed elsewhere: the arrays in, the same result out.

Position in the pipeline: ``signals -> attack -> metrics -> report``, entered at the
signals. A user who already has their target's probabilities (or logits) on members
and non-members — and perhaps reference models' and shadow models' outputs — hands
the arrays to :func:`miaudit.evaluate` (or ``miaudit evaluate outputs.npz``). The
arrays are checked here, every attack they allow is run (an attack asked for whose
arrays are missing is refused, naming them), and the result is the same
:class:`~miaudit.result.AuditResult` an audit returns.

An audit's own arrays (:meth:`AuditResult.outputs`, ``--save-outputs``) carry its
settings too, and give back that audit's metrics bit for bit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from miaudit.attacks.base import Attack, build_config
from miaudit.attacks.registry import ATTACKS, SECTIONS, parse_attacks, section_attacks
from miaudit.attacks.suite import OUTPUT_ARRAYS
from miaudit.config import make_config
from miaudit.errors import ConfigError, DataError
from miaudit.files import check_npy_sizes

__all__ = ["allowed_attacks", "check_arrays", "check_identity", "read_outputs", "write_outputs"]

#: Arrays that come together: all of a group or none.
_GROUPS = {
    "shadow": ("shadow_outputs", "shadow_labels", "shadow_members"),
    "public": ("public_outputs", "public_labels", "public_features"),
    "reference": ("reference_outputs", "reference_members"),
    "population": ("population_outputs", "population_labels", "population_reference_outputs"),
    "calibration": ("calibration_outputs", "calibration_labels", "calibration_members"),
    "variants": ("variant_outputs", "reference_variant_outputs"),
    "population_variants": ("population_variant_outputs", "population_reference_variant_outputs"),
}
#: Arrays of outputs: probabilities, or logits with ``logits=True``.
_OUTPUTS = (
    "outputs",
    "shadow_outputs",
    "reference_outputs",
    "population_outputs",
    "population_reference_outputs",
    "calibration_outputs",
    "variant_outputs",
    "reference_variant_outputs",
    "population_variant_outputs",
    "population_reference_variant_outputs",
    "calibration_variant_outputs",
    "copies_outputs",
    "public_outputs",
)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _labels(values: Any, name: str, n: int, n_classes: int) -> np.ndarray:
    y = np.asarray(values)
    if y.shape != (n,):
        raise ConfigError(f"{name}: shape {y.shape}; expected ({n},), one class per record")
    if not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(
            f"{name}: {y.dtype} values; give class indices 0 .. {n_classes - 1}, the columns of "
            "the outputs"
        )
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ConfigError(
            f"{name}: classes {int(y.min())} .. {int(y.max())}, but the outputs have "
            f"{n_classes} columns: give class indices 0 .. {n_classes - 1}"
        )
    return y.astype(np.int64)


def _members(values: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    # The audit's membership rule, where only a mask can be meant: booleans, or 0/1
    # integers or floats, read alike.
    from miaudit.data.records import membership_mask

    return membership_mask(values, name, shape, error=ConfigError)


def check_arrays(given: dict[str, Any], *, logits: bool = False) -> dict[str, np.ndarray]:
    """The arrays checked for shapes and kinds, logits turned into probabilities.

    Raises
    ------
    ConfigError
        An unknown name, a missing partner array, mismatched lengths, outputs whose
        rows do not sum to 1 (without ``logits``), labels outside the columns, or
        members that are not 0/1.
    """
    unknown = sorted(set(given) - set(OUTPUT_ARRAYS))
    if unknown:
        raise ConfigError(
            f"unknown array {unknown[0]!r}; evaluate takes: {', '.join(OUTPUT_ARRAYS)}"
        )
    arrays = {k: v for k, v in given.items() if v is not None}
    for name in ("outputs", "labels", "members"):
        if name not in arrays:
            raise ConfigError(f"{name} is missing: evaluate needs outputs, labels and members")
    for group, names in _GROUPS.items():
        present = [n for n in names if n in arrays]
        if present and len(present) != len(names):
            missing = [n for n in names if n not in arrays]
            raise ConfigError(
                f"{present[0]} needs {', '.join(missing)} too (the {group} arrays come together)"
            )
    out: dict[str, np.ndarray] = {}
    for name in _OUTPUTS:
        if name not in arrays:
            continue
        P = np.asarray(arrays[name], dtype=np.float64 if logits else None)
        if not np.issubdtype(P.dtype, np.floating):
            raise ConfigError(f"{name}: {P.dtype} values; give probabilities (or logits=True)")
        if not np.isfinite(P).all():
            raise ConfigError(f"{name}: NaN or infinite values; every output must be finite")
        if logits:
            P = _softmax(P)
        else:
            sums = P.sum(axis=-1)
            bad = (P < -1e-6).any(axis=-1) | ~np.isclose(sums, 1.0, atol=1e-3)
            if bad.any():
                where = np.argwhere(bad)[0]
                raise ConfigError(
                    f"{name}: the row at {tuple(int(i) for i in where)} sums to "
                    f"{float(sums[tuple(where)]):.4g}, not 1: pass logits=True (--logits) if "
                    "these are logits, or the model's probabilities"
                )
        out[name] = P
    P = out["outputs"]
    if P.ndim != 2 or P.shape[1] < 2:
        raise ConfigError(f"outputs: shape {P.shape}; expected (n, C) with at least 2 classes")
    n, C = P.shape
    out["labels"] = _labels(arrays["labels"], "labels", n, C)
    out["members"] = _members(arrays["members"], "members", (n,)).astype(np.int8)
    if out["members"].all() or not out["members"].any():
        raise ConfigError("members: give both members (1) and non-members (0) to evaluate on")

    def shape(name: str, expected: tuple[int | None, ...]) -> tuple[int, ...]:
        got = out[name].shape
        if len(got) != len(expected) or any(
            e is not None and e != g for e, g in zip(expected, got, strict=False)
        ):
            want = "(" + ", ".join("?" if e is None else str(e) for e in expected) + ")"
            raise ConfigError(f"{name}: shape {got}; expected {want}")
        return got

    if "shadow_outputs" in out:
        m = shape("shadow_outputs", (None, C))[0]
        out["shadow_labels"] = _labels(arrays["shadow_labels"], "shadow_labels", m, C)
        out["shadow_members"] = _members(arrays["shadow_members"], "shadow_members", (m,)).astype(
            np.int8
        )
    if "reference_outputs" in out:
        K = shape("reference_outputs", (None, n, C))[0]
        out["reference_members"] = _members(
            arrays["reference_members"], "reference_members", (K, n)
        )
        if "population_outputs" in out:
            z = shape("population_outputs", (None, C))[0]
            out["population_labels"] = _labels(
                arrays["population_labels"], "population_labels", z, C
            )
            shape("population_reference_outputs", (K, z, C))
            given_members = arrays.get("population_reference_members")
            out["population_reference_members"] = (
                np.zeros((K, z), bool)
                if given_members is None
                else _members(given_members, "population_reference_members", (K, z))
            )
        if "calibration_outputs" in out:
            c = shape("calibration_outputs", (K, None, C))[1]
            out["calibration_labels"] = _labels(
                arrays["calibration_labels"], "calibration_labels", c, C
            )
            out["calibration_members"] = _members(
                arrays["calibration_members"], "calibration_members", (K, c)
            )
        if "variant_outputs" in out:
            a = shape("variant_outputs", (None, n, C))[0]
            shape("reference_variant_outputs", (K, a, n, C))
            if "population_variant_outputs" in out:
                if "population_outputs" not in out:
                    raise ConfigError("population_variant_outputs needs population_outputs")
                shape("population_variant_outputs", (a, z, C))
                shape("population_reference_variant_outputs", (K, a, z, C))
            if "calibration_variant_outputs" in out:
                if "calibration_outputs" not in out:
                    raise ConfigError("calibration_variant_outputs needs calibration_outputs")
                shape("calibration_variant_outputs", (K, a, c, C))
        else:
            extra = [k for k in ("population_variant_outputs", "calibration_variant_outputs")
                     if k in out]  # fmt: skip
            if extra:
                raise ConfigError(f"{extra[0]} needs variant_outputs and reference_variant_outputs")
    else:
        needing = [k for k in ("population_outputs", "calibration_outputs", "variant_outputs",
                               "population_variant_outputs", "calibration_variant_outputs")
                   if k in out]  # fmt: skip
        if needing:
            raise ConfigError(f"{needing[0]} needs reference_outputs and reference_members")
    if "copies_outputs" in out:
        shape("copies_outputs", (None, n, C))
    if "public_outputs" in out:
        p = shape("public_outputs", (None, C))[0]
        out["public_labels"] = _labels(arrays["public_labels"], "public_labels", p, C)
        out["public_features"] = _records(arrays["public_features"], "public_features", p)
    if "features" in arrays:
        out["features"] = _records(arrays["features"], "features", n)
    both = "public_features" in out and "features" in out
    if both and out["public_features"].shape[1:] != out["features"].shape[1:]:
        raise ConfigError(
            f"public_features: records of shape {out['public_features'].shape[1:]}, but "
            f"features has {out['features'].shape[1:]}: give both as the model reads them"
        )
    return out


def check_identity(
    n: int, n_classes: int, class_names: Any = None, records: Any = None, ids: Any = None
) -> tuple[list[str] | None, np.ndarray | None, np.ndarray | None]:
    """The names of ``n_classes`` classes and the row numbers and ids of ``n`` evaluated
    records, checked: ``(class_names, records, ids)``, each ``None`` when not given.

    Each names one thing on the page and in ``scores.csv``, so none may name two: a
    class name given twice (or two that print alike, ``1`` and ``"1"``, or differ only
    in spaces around them), an empty one or ``None``, and a record number or id given
    to two rows of outputs are refused.

    Raises
    ------
    ConfigError
        One line naming the input, the first value that repeats (or is missing) and
        the fix.
    """
    names = None
    if class_names is not None:
        given = list(np.asarray(class_names, dtype=object).reshape(-1))
        if len(given) != n_classes:
            raise ConfigError(
                f"class_names: {len(given)} names for outputs of {n_classes} columns; give one "
                "per column"
            )
        for k, name in enumerate(given):
            if name is None or (isinstance(name, float) and name != name) or not str(name).strip():
                raise ConfigError(
                    f"class_names: the name of class {k} is {name!r}: give every class a name "
                    "(or leave class_names out to number them)"
                )
        names = [str(c) for c in given]
        seen: dict[str, int] = {}
        for k, name in enumerate(names):
            first = seen.setdefault(name.strip(), k)
            if first != k:
                named = (
                    f"both named {name!r}"
                    if names[first] == name
                    else f"named {names[first]!r} and {name!r}, alike on the page"
                )
                raise ConfigError(
                    f"class_names: classes {first} and {k} are {named}: give each column of "
                    "outputs its own name"
                )
    rows = None
    if records is not None:
        rows = np.asarray(records)
        _one_per_row(rows, "records", n)
        if not np.issubdtype(rows.dtype, np.integer):
            raise ConfigError("records: give row numbers (integers); pass identifiers as ids=")
        order = np.argsort(rows, kind="stable")
        again = order[1:][rows[order][1:] == rows[order][:-1]]
        if len(again):
            later = int(again.min())
            earlier = int(np.flatnonzero(rows == rows[later])[0])
            raise ConfigError(
                f"records: record {int(rows[later])} is given for rows {earlier} and {later} of "
                f"outputs ({len(again)} row(s) repeat an earlier one's), but two rows of outputs "
                "cannot be one record: give each row its own record number"
            )
    names_of_rows = None
    if ids is not None:
        names_of_rows = np.asarray(ids)
        _one_per_row(names_of_rows, "ids", n)
        from miaudit.data.build import check_ids  # the data's own rule for ids

        try:
            check_ids(names_of_rows, n, "ids")
        except DataError as exc:
            raise ConfigError(str(exc)) from None
    return names, rows, names_of_rows


def _one_per_row(values: np.ndarray, name: str, n: int) -> None:
    if values.shape != (n,):
        got = f"{len(values)}" if values.ndim == 1 else f"an array of shape {values.shape}"
        raise ConfigError(f"{name}: {got} for {n} evaluated records; give one per row of outputs")


def _records(values: Any, name: str, n: int) -> np.ndarray:
    X = np.asarray(values)
    if X.ndim < 2 or len(X) != n or not np.issubdtype(X.dtype, np.number):
        raise ConfigError(
            f"{name}: shape {X.shape} of {X.dtype}; expected ({n}, ...) numbers, one record per row"
        )
    if not np.isfinite(X).all():
        raise ConfigError(f"{name}: NaN or infinite values; give the records as the model reads")
    return X.astype(np.float32)


def _missing(attack: Attack, arrays: dict[str, np.ndarray]) -> str:
    """What ``attack`` needs that ``arrays`` lack (``""`` when nothing), from its needs."""
    need = attack.needs()
    if need.adaptive:
        return "the target itself (it queries it adaptively): run it in an audit"
    if need.shadows and "shadow_outputs" not in arrays and not attack.runs_without_shadows():
        return "shadow_outputs, shadow_labels and shadow_members"
    if need.copies and "copies_outputs" not in arrays:
        return "copies_outputs"
    if need.public and "public_outputs" not in arrays:
        return "public_outputs, public_labels and public_features"
    if need.features and "features" not in arrays:
        return "features (the evaluated records)"
    if need.variants and "variant_outputs" not in arrays:
        return (
            f"variant_outputs and reference_variant_outputs (its {need.variants + 1} queries "
            "per record; or ask for 1)"
        )
    if need.reference is None:
        return ""
    if "reference_outputs" not in arrays:
        return "reference_outputs and reference_members"
    member = arrays["reference_members"]
    need_in, need_out = need.reference_models
    n_in = member.sum(axis=0)
    short_in, short_out = int((n_in < need_in).sum()), int((len(member) - n_in < need_out).sum())
    if short_in or short_out:
        return (
            f"reference models enough for it ({short_in} records have fewer than {need_in} IN "
            f"models)"
            if short_in
            else f"reference models enough for it ({short_out} records have fewer than "
            f"{need_out} OUT models)"
        )
    if need.population and "population_outputs" not in arrays:
        return "population_outputs, population_labels and population_reference_outputs"
    # Population attacks (RMIA) set their parameters by attacking one model with the others.
    if need.population and member.shape[0] < 2:
        return "at least 2 reference models"
    if need.reference == "in-out" and not member.any():
        return "reference models that trained on the records (reference_members all 0)"
    if need.calibration:
        cal = arrays.get("calibration_members", member)
        if cal.shape[0] and (cal[0].all() or not cal[0].any()):
            return (
                "records that the first reference model trained on and records it did not "
                "(calibration_outputs, to set a)"
            )
    return ""


def allowed_attacks(
    arrays: dict[str, np.ndarray], settings: Callable[[str], BaseModel] | None = None
) -> dict[str, str]:
    """For every attack, ``""`` if the arrays allow it, else what it misses.
    ``settings(section)`` gives each attack's settings (default: the defaults)."""
    reasons: dict[str, str] = {}
    for name, cls in ATTACKS.items():
        attack = cls(settings(cls.section)) if settings is not None else cls()
        reasons[name] = _missing(attack, arrays)
    return reasons


def choose_attacks(
    arrays: dict[str, np.ndarray],
    asked: list[str] | None,
    settings: Callable[[str], BaseModel] | None = None,
) -> tuple[str, ...]:
    """The attacks asked for (all that the arrays allow when ``None``); refuses one whose
    arrays are missing."""
    reasons = allowed_attacks(arrays, settings)
    if asked is None:
        return tuple(name for name in ATTACKS if not reasons[name])
    names = parse_attacks(asked)
    for name in names:
        if reasons[name]:
            raise ConfigError(f"{name} needs {reasons[name]}: pass them, or drop {name}")
    return names


_META = ("settings", "class_names", "records", "ids")


def write_outputs(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Save arrays (names of :data:`OUTPUT_ARRAYS`) and their settings as one ``.npz``."""
    path = Path(path)
    extra = {"settings": np.array(json.dumps(meta["settings"]))}
    if meta.get("class_names") is not None:
        extra["class_names"] = np.array([str(c) for c in meta["class_names"]])
    for key in ("records", "ids"):
        if meta.get(key) is not None:
            extra[key] = np.asarray(meta[key])
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays, **extra)
    tmp.replace(path)
    return path


def read_outputs(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and settings of an ``outputs.npz`` (nothing is unpickled)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{p}: no such file; pass the .npz of outputs to evaluate")
    check_npy_sizes(p, ConfigError, "pass the .npz of outputs miaudit or numpy.savez wrote", str(p))
    try:
        with np.load(p, allow_pickle=False) as f:
            found = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ConfigError(f"{p}: cannot read it as .npz of numeric arrays ({exc})") from None
    meta: dict[str, Any] = {"settings": {}}
    if "settings" in found:
        try:
            meta["settings"] = json.loads(str(found.pop("settings")))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{p}: its 'settings' is not JSON ({exc})") from None
    for key in ("class_names", "records", "ids"):
        if key in found:
            meta[key] = found.pop(key)
    return found, meta


@dataclass
class Evaluation:
    """What ``miaudit.evaluate`` runs: the checked arrays, the configuration, the
    records' identity (class names, row numbers, ids, each checked for repeats), and the
    attacks the arrays do not allow, each with why (a verdict from the weaker attacks
    alone is a lower bound, and says so)."""

    arrays: dict[str, np.ndarray]
    config: Any
    class_names: list[str] | None
    records: np.ndarray | None
    ids: np.ndarray | None
    skipped: dict[str, str]


def prepare_evaluation(
    given: dict[str, Any],
    *,
    logits: bool,
    attacks: list[str] | str | None,
    class_names: list[str] | None,
    records: Any,
    ids: Any,
    chosen: dict[str, Any],
    attack_settings: dict[str, Any] | None,
    show_records: str,
) -> Evaluation:
    """The arrays, the attacks and the settings of :func:`miaudit.evaluate`, checked
    before anything runs or is written. ``given`` holds the arrays by name; its
    ``outputs`` may instead be a dict of them all or the path of a saved ``.npz`` (whose
    settings and records become the defaults). ``chosen`` holds ``seed``, ``bootstrap``
    and ``fprs`` as the caller gave them (``None``: not given)."""
    settings: dict[str, Any] = {}
    if isinstance(given.get("outputs"), str | Path | dict):
        given, meta = _saved_arrays(given)
        settings = dict(meta.get("settings") or {})
        class_names = class_names if class_names is not None else meta.get("class_names")
        records = records if records is not None else meta.get("records")
        ids = ids if ids is not None else meta.get("ids")
    arrays = check_arrays(given, logits=logits)
    settings.update({k: v for k, v in chosen.items() if v is not None})
    sections = attack_sections(settings, attack_settings)
    if isinstance(attacks, str):
        attacks = [a.strip() for a in attacks.split(",") if a.strip()]
    asked = attacks if attacks is not None else settings.get("attacks")
    # Refused before anything runs or is written: a name that names two things.
    class_names, records, ids = check_identity(
        *arrays["outputs"].shape, class_names=class_names, records=records, ids=ids
    )
    # Arrays with extra queries and no word on how many to use: every attack that
    # averages over queries uses them all.
    queries = sections.pop("queries", None)
    said = queries is not None or any("queries" in v for v in sections.values())
    if "variant_outputs" in arrays and not said:
        queries = 1 + len(arrays["variant_outputs"])

    def section(name: str):
        values = sections.get(name, {})
        if queries is not None and "queries" in SECTIONS[name].model_fields:
            values = {"queries": queries, **values}
        return build_config(SECTIONS[name], f"attacks.{name}", **values)

    names = choose_attacks(arrays, asked, section)
    # What the arrays do not allow, said wherever the verdict is.
    skipped = {
        name: reason
        for name, reason in allowed_attacks(arrays, section).items()
        if reason and name not in names
    }
    config = _config(names, queries, sections, attack_settings, settings, show_records)
    return Evaluation(arrays, config, class_names, records, ids, skipped)


def _saved_arrays(given: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arrays (and what was saved with them) of ``outputs=``, a dict of them all or
    the path of an ``.npz``; an array also given on its own is refused."""
    outputs = given["outputs"]
    if isinstance(outputs, dict):
        found, meta = dict(outputs), {"settings": {}}
    else:
        found, meta = read_outputs(outputs)
    clash = [k for k, v in given.items() if v is not None and k != "outputs"]
    if clash:
        raise ConfigError(
            f"{clash[0]}= and the arrays in outputs both give {clash[0]}: pass them one way"
        )
    return found, meta


def _config(names, queries, sections, attack_settings, settings, show_records):
    """The evaluation's configuration: the attacks chosen with their settings (those an
    earlier audit saved for attacks these arrays do not allow are not asked for)."""
    return make_config(
        {
            "dataset": "outputs",
            "attacks": {
                "run": list(names),
                **({} if queries is None else {"queries": queries}),
                **{
                    k: v
                    for k, v in sections.items()
                    if (k in SECTIONS and (attack_settings or {}).get(k) is not None)
                    or any(n in section_attacks(k) for n in names)
                },
            },
            "seed": settings.get("seed", 0),
            "bootstrap": settings.get("bootstrap", 1000),
            "fprs": settings.get("fprs", []),
            "show_records": show_records,
        }
    )


def attack_sections(
    saved: dict[str, Any], given: dict[str, dict[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """Each section's settings: ``given`` over those an ``outputs.npz`` carries (read
    from its earlier keys, ``lira_variance``, ``rmia_gamma``, ``attack``, too)."""
    saved_settings = dict(saved.get("attack_settings") or {})
    # ``queries`` is the one setting of all the attacks together (``[attacks] queries``).
    shared = {"queries": saved_settings.pop("queries")} if "queries" in saved_settings else {}
    sections: dict[str, Any] = {k: dict(v) for k, v in saved_settings.items()}
    legacy = {
        "lira": {"variance": saved.get("lira_variance")},
        "rmia": {"gamma": saved.get("rmia_gamma")},
        "shokri": saved.get("attack") or {},
    }
    for name, values in legacy.items():
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            sections[name] = {**values, **sections.get(name, {})}
    if given and "queries" in given:
        # Asked now for all the attacks: it overrides what the file's tables say.
        for name, values in sections.items():
            if name not in given:
                values.pop("queries", None)
    for name, values in (given or {}).items():
        if name == "queries":
            shared["queries"] = values
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"attack_settings[{name!r}]: give a dict of that attack's settings")
        sections[name] = {**sections.get(name, {}), **values}
    return {**sections, **shared}
