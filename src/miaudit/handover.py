"""What the user hands over: their model, their training code, their data, its members.

Position in the pipeline: ``config -> data -> splits -> target / shadows``. The
configuration (:class:`~miaudit.config.AuditConfig`) holds settings; the objects of
a Python session — a fitted Pipeline, a ``TorchTrainer``, a DataFrame, a mask of
members — are no settings and travel beside it as a :class:`Handover`. The CLI
makes the same objects from ``--target-python module:attribute``,
``--trainer-python`` and ``--members FILE``. This module validates them at the edge
and turns them into what the stages take:

* :func:`audit_data` — the :class:`~miaudit.data.Dataset`, with the user's own
  records beside the encoded ones when a user's model will read them;
* :func:`open_target` — the user's model as a target answering encoded records;
* :func:`clone_family` — clones of the user's scikit-learn target, which train the
  shadows when no trainer is given;
* :func:`records_for` — the records in the form a family's models read.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.data import Dataset, load_dataset
from miaudit.data.build import UnencodableError, check_ids
from miaudit.data.builtin import is_builtin, resolve_builtin
from miaudit.data.files import file_format, file_stem, read_npz, read_table
from miaudit.data.memory import memory_dataset
from miaudit.data.records import attach_arrays, attach_table, resolve_members
from miaudit.errors import ConfigError, MiauditError, key
from miaudit.files import check_npy_sizes
from miaudit.models.family import ModelFamily
from miaudit.models.user import (
    ClassMap,
    EstimatorModel,
    RecordAdapter,
    TorchModel,
    as_predictor,
    could_predict,
    could_train,
    make_family,
)

__all__ = [
    "Handover",
    "audit_data",
    "class_map",
    "clone_family",
    "load_object",
    "open_target",
    "read_members",
    "records_for",
]


@dataclass
class Handover:
    """Objects from the user's session, beside the configuration.

    ``target``: a fitted model (estimator, Pipeline, ``nn.Module``, callable);
    ``trainer``: what trains shadows and reference models; ``data``: a DataFrame or
    ``(X, y)``; ``members`` / ``non_members``: a mask, row positions or ids;
    ``ids``: one identifier per row; ``cache_key``: a name for the trainer's jobs in
    the cache when no honest key can be derived from its code.
    """

    target: Any = None
    trainer: Any = None
    data: Any = None
    members: Any = None
    non_members: Any = None
    ids: Any = None
    cache_key: str | None = None

    @property
    def user_models(self) -> bool:
        return self.target is not None or self.trainer is not None


def load_object(
    spec: str, python_path: list[str] | None, what: str, expect: str | None = None
) -> Any:
    """The object ``module:attribute`` (or ``path/to/file.py:attribute``) names.

    ``expect`` is ``"target"`` (a fitted model) or ``"trainer"``; by default it follows
    ``what`` (``target_python``, ``trainer_python``), and ``None`` checks nothing.

    Raises
    ------
    ConfigError
        A malformed spec, a module that cannot be imported (or raises while it is),
        an attribute it does not have, or one that holds no model or trainer (``None``,
        text, a number, a class): never read as "no target given".
    """
    if expect is None:
        expect = {key("target_python"): "target", key("trainer_python"): "trainer"}.get(what)
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{what} {spec}: write module:attribute, e.g. mymodels:model")
    for folder in reversed(python_path or []):
        folder = str(Path(folder).expanduser().resolve())
        if not Path(folder).is_dir():
            raise ConfigError(f"{key('python_path', folder)}: not a folder")
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"{what} {spec}: {path} does not exist")
            name = path.stem
            loaded = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(loaded)
            sys.modules[name] = module
            loaded.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except MiauditError:
        raise
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"{what} {spec}: cannot import {module_name} ({exc}); pass {key('python_path')} "
            "with the folder that holds it"
        ) from None
    except Exception as exc:
        raise ConfigError(
            f"{what} {spec}: importing {module_name} raised {type(exc).__name__}: {exc}"
        ) from None
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n in vars(module) if not n.startswith("_"))[:20]
            raise ConfigError(
                f"{what} {spec}: {module_name} has no {attribute!r}; it has {', '.join(names)}"
            )
        obj = getattr(obj, part)
    if expect is not None:
        _check_loaded(obj, spec, what, expect)
    return obj


def _described(obj: Any) -> str:
    """What an object that is no model is, for a message."""
    if obj is None:
        return "None"
    if isinstance(obj, type):
        return f"the class {obj.__name__}"
    text = " ".join(repr(obj).split())
    text = text if len(text) <= 40 else text[:39] + "…"
    kind = type(obj).__name__
    return f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind} ({text})"


def _check_loaded(obj: Any, spec: str, what: str, expect: str) -> None:
    """Refuse an attribute that holds no model (``expect="target"``) or no trainer."""
    module_name, _, attribute = spec.partition(":")
    if expect == "target" and not could_predict(obj):
        fix = (
            f"{module_name} must set {attribute} to the fitted model when it is imported (an "
            "estimator or Pipeline with predict_proba, a torch.nn.Module or a function records "
            "-> probabilities), or name the attribute that holds one"
        )
        if obj is None:
            fix += " (is the model fitted under if __name__ == '__main__'?)"
        elif isinstance(obj, type):
            fix = f"fit an instance of {obj.__name__} and name the attribute that holds it"
        elif isinstance(obj, str):
            fix += (
                f"; a recipe, a saved model's folder or a URL is passed as {key('target.model')}, "
                f"{key('target_model')} or {key('target_url')}"
            )
        raise ConfigError(f"{what} {spec} is {_described(obj)}, not a fitted model: {fix}")
    if expect == "trainer" and not could_train(obj):
        fix = (
            f"{module_name} must set {attribute} to an unfitted scikit-learn estimator or "
            "Pipeline, miaudit.TorchTrainer(model_fn, train_fn) or a function fit(X, y, seed) "
            "-> model when it is imported, or name the attribute that holds one"
        )
        if isinstance(obj, type):
            fix = f"name an instance of {obj.__name__} (e.g. {attribute} = {obj.__name__}())"
        raise ConfigError(f"{what} {spec} is {_described(obj)}, not a trainer: {fix}")


def read_members(path: str | Path, what: str) -> np.ndarray:
    """The values of a file of members for the membership rule
    (:func:`miaudit.data.records.named_rows`): ``.npy`` (a mask, positions or ids),
    ``.txt`` (one per line: integers, numbers, True/False or text ids) or ``.csv`` (one
    column, with a header). ``what`` is the setting that named the file (``members``,
    ``non_members``)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{key(what, p)}: no such file")
    try:
        if p.suffix == ".npy":
            check_npy_sizes(p, ConfigError, "pass a .npy of a mask, rows or ids", key(what, p))
            return np.load(p, allow_pickle=False)
        if p.suffix == ".csv":
            import pandas as pd

            frame = pd.read_csv(p)
            if frame.shape[1] != 1:
                raise ConfigError(
                    f"{key(what, p)}: {frame.shape[1]} columns; keep one column (a mask, row "
                    "positions or ids, with a header)"
                )
            return frame.iloc[:, 0].to_numpy()
        if p.suffix == ".txt":
            lines = [line.strip() for line in p.read_text().splitlines() if line.strip()]
            return _values_of_lines(lines)
    except MiauditError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key(what, p)}: cannot read it ({exc})") from None
    raise ConfigError(f"{key(what, p)}: use a .npy, .txt (one per line) or .csv (one column) file")


def _values_of_lines(lines: list[str]) -> np.ndarray:
    """A text file's lines as the values they write: integers, else numbers (np.savetxt
    writes a mask as 0.000e+00), else True/False, else text ids."""
    for kind in (int, float):
        try:
            return np.array([kind(v) for v in lines], dtype=np.int64 if kind is int else float)
        except (ValueError, OverflowError):
            pass
    if {v.lower() for v in lines} <= {"true", "false"}:
        return np.array([v.lower() == "true" for v in lines], dtype=bool)
    return np.array(lines, dtype=str)


def audit_data(config, handed: Handover) -> Dataset:
    """The audit's data set, with the user's own records attached where a user's model
    reads them or ``members`` name the user's rows. A table miaudit's encoder refuses
    is held as given when the user's code trains and predicts (:mod:`miaudit.data.memory`)."""
    if handed.data is not None:
        return memory_dataset(
            handed.data,
            config.label,
            ids=handed.ids,
            id_column=config.id_column,
            categorical=config.categorical,
            pixel_scale=config.pixel_scale,
            text_column=config.text_column,
            hold=handed.user_models,
        )
    if handed.ids is not None:
        raise ConfigError(f"ids= names the rows of data=; for a file use {key('id_column')}")
    try:
        data = load_dataset(
            config.dataset,
            label=config.label,
            categorical=config.categorical,
            id_column=config.id_column,
            pixel_scale=config.pixel_scale,
            text_column=config.text_column,
        )
    except UnencodableError:
        if not handed.user_models or is_builtin(str(config.dataset)):
            raise
        return _held_file(config)
    if data.raw is not None:  # text: its records are attached as they were read
        return data
    named = (handed.members, handed.non_members, config.members, config.non_members)
    if not (handed.user_models or any(m is not None for m in named)):
        return data
    if data.kind == "image" and is_builtin(str(config.dataset)):
        return data  # a built-in set's images are its arrays: nothing else to attach
    return _attach_source(data, config)


def _held_file(config) -> Dataset:
    """A user's table that miaudit's encoder refuses, held as given for the user's model."""
    path = Path(str(config.dataset)).expanduser()
    frame = read_table(path, file_format(path), config.label)
    held = memory_dataset(
        frame, config.label, id_column=config.id_column, categorical=config.categorical,
        hold=True,
    )  # fmt: skip
    held.raw.in_memory = False  # the rows of a file, which a module may read as arrays
    return dataclasses.replace(held, name=file_stem(path), source=str(path))


def _attach_source(data: Dataset, config) -> Dataset:
    """``data`` with the table it was read from (a built-in's or the user's file)."""
    name = str(config.dataset)
    if is_builtin(name):
        table = resolve_builtin(name, config.label).frame()
        return attach_table(data, table.frame.drop(columns=[table.label]), table.frame[table.label])

    path = Path(name).expanduser()
    fmt = file_format(path)
    if fmt == "npz":
        arrays = read_npz(path)
        return attach_arrays(data, arrays["X"], arrays["y"])
    frame = read_table(path, fmt, config.label)
    dropped = [config.label, *([config.id_column] if config.id_column else [])]
    attached = attach_table(data, frame.drop(columns=dropped), frame[config.label])
    if config.id_column is not None:
        attached.raw.source_ids = check_ids(frame[config.id_column], len(frame), str(path))
    return attached


def class_map(data: Dataset) -> ClassMap:
    """The data's classes, for matching a user's model's outputs to them."""
    values = data.raw.label_values if data.raw is not None else np.arange(data.n_classes)
    return ClassMap(values, data.class_names)


def records_for(takes: str, data: Dataset, what: str):
    """A function turning encoded records into what a model that ``takes`` them reads.

    A torch module reads arrays: the user's arrays when the data came as arrays, and
    miaudit's encoded arrays for a table read from a built-in set or a file (they are
    the arrays ``miaudit.load_dataset(...).X`` gives); a DataFrame handed over in
    memory has no arrays a module could have been trained on.
    """
    if takes == "encoded" or data.raw is None:
        return _same
    if takes == "arrays" and data.raw.held:
        raise ConfigError(
            f"{what} is a torch module, which reads tensors, but the records are held as "
            f"given ({data.kind}): pass the function that turns a batch of them into the "
            "module's input as collate= (TorchModel(module, collate=tokenize), "
            "TorchTrainer(..., collate=tokenize))"
        )
    if takes == "arrays" and data.raw.is_frame:
        if data.raw.in_memory:
            raise ConfigError(
                f"{what} reads arrays (a torch module), but data= is a DataFrame: pass "
                "data=(X, y) with the arrays the module was trained on"
            )
        return _same
    return data.raw.decode


def _same(X: np.ndarray) -> np.ndarray:
    return X


def labels_for(family: ModelFamily, data: Dataset) -> np.ndarray:
    """The labels a family's models train on: class codes, or the user's own values."""
    if family.labels == "codes" or data.raw is None:
        return data.y
    return data.raw.labels(data.y)


def _takes(predictor: Any) -> str:
    """What a predictor reads: a torch module without a collate reads arrays; anything
    else the records as given."""
    if isinstance(predictor, TorchModel) and predictor.collate is None:
        return "arrays"
    return "raw"


def open_target(obj: Any, data: Dataset) -> tuple[RecordAdapter, dict[str, Any]]:
    """The user's fitted model as a target of encoded records, and what the report says of it."""
    predictor = as_predictor(obj, class_map(data), who="the target")
    model = RecordAdapter(predictor, records_for(_takes(predictor), data, "the target"))
    if isinstance(predictor, EstimatorModel) and data.raw is not None and data.raw.is_frame:
        # Before any shadow trains: a model fitted on one column (a Series of texts) that
        # is handed DataFrame rows fails here with the fix, not in every shadow's fit.
        # More rows than columns: one answer per column is then told apart.
        model.predict_proba(data.X[: data.raw.features.shape[1] + 1])
    kind = type(getattr(predictor, "module", None) or obj)
    facts = {
        "source": "python",
        "model": kind.__name__,
        "class": f"{kind.__module__}.{kind.__qualname__}",
    }
    return model, facts


def clone_family(target: Any, data: Dataset, cache_key: str | None) -> ModelFamily | None:
    """Clones of a scikit-learn target, to train shadows as it was trained (the user gave
    no trainer); ``None`` for any other target."""
    if target is not None and hasattr(target, "fit") and hasattr(target, "get_params"):
        return make_family(target, class_map(data), cache_key)
    return None


def membership(data: Dataset, handed: Handover, config, rng: np.random.Generator):
    """The target's members and non-members among ``data``, from the user's ``members``.

    Raises
    ------
    ConfigError
        If a user's target comes without its members.
    """
    members = handed.members
    if members is None and config.members is not None:
        members = read_members(config.members, "members")
    non_members = handed.non_members
    if non_members is None and config.non_members is not None:
        non_members = read_members(config.non_members, "non_members")
    if members is None:
        if non_members is not None:
            raise ConfigError("non_members= needs members=: name the target's training records")
        return None
    return resolve_members(data, members, non_members, rng, config.members_as)
