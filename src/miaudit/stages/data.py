"""The data stage: the records an audit reads (a built-in set, a file, or the user's
objects), what the user's Python objects are, and what is said of the records before
anything trains."""

from __future__ import annotations

import dataclasses

from miaudit.config import AuditConfig
from miaudit.data import Dataset
from miaudit.errors import ConfigError, key
from miaudit.handover import Handover, audit_data, load_object
from miaudit.progress import Reporter


def load(config: AuditConfig, handed: Handover, reporter: Reporter) -> Dataset:
    """The audit's records (:func:`miaudit.handover.audit_data`), said of before use."""
    with reporter.stage("load_data", "loading data"):
        data = audit_data(config, handed)
    say_what_the_records_are(data, reporter)
    return data


def with_python_objects(config: AuditConfig, handed: Handover) -> Handover:
    """``handed`` with the objects ``--target-python`` and ``--trainer-python`` name."""
    for spec, field_name, flag in (
        (config.target_python, "target", key("target_python")),
        (config.trainer_python, "trainer", key("trainer_python")),
    ):
        if spec is None:
            continue
        if getattr(handed, field_name) is not None:
            raise ConfigError(f"{flag} and {field_name}= both name the {field_name}: pass one")
        handed = dataclasses.replace(
            handed, **{field_name: load_object(spec, config.python_path, flag)}
        )
    return handed


def say_what_the_records_are(data: Dataset, reporter: Reporter) -> None:
    """Say, before anything trains, that the records are held as given, and warn of
    columns that look like identifiers (a model memorises them), for ``audit`` and
    ``train`` alike."""
    if data.notes.get("held_because"):
        reporter.message(
            f"your model reads the records as given: {data.notes['held_because']}; miaudit "
            "refuses only what would need it to encode them"
        )
    if data.notes.get("id_like_columns"):
        columns = ", ".join(data.notes["id_like_columns"])
        reporter.warn(
            f"column(s) {columns} hold a different value in every row: identifiers, most "
            f"likely, which let a model memorise records; name one with {key('id_column')} or "
            "drop it"
        )
