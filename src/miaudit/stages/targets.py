"""Where the target comes from besides a trained one: a saved folder (and the membership
file beside it, checked against the data it was trained on) or a service over HTTP.

What a target *is* (anything that answers probabilities, behind its output policy) is
:mod:`miaudit.target`; this module finds and opens one, and saves the targets
``miaudit train`` and ``--save-target`` write.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.config import AuditConfig
from miaudit.data import Dataset
from miaudit.errors import ConfigError, ModelError, key
from miaudit.files import check_npy_sizes, read_json_object, write_folder
from miaudit.models import Recipe, check_input, load_model, save_model
from miaudit.models.family import ModelFamily
from miaudit.progress import Reporter
from miaudit.splits import (
    AuditSplits,
)

#: File beside a saved target that says which records it was trained on.
MEMBERSHIP_FILE = "membership.npz"


@dataclass
class SavedTarget:
    """A target's membership, and its model and recipe where they are local."""

    model: Any
    recipe: Recipe | None
    members: np.ndarray
    non_members: np.ndarray


#: What a saved target's folder holds besides the model's own files.
TARGET_FILES = (MEMBERSHIP_FILE, "dataset.json")


def save_target(model, path: str | Path, data: Dataset, splits: AuditSplits) -> None:
    """Save a trained target and which records it was trained on (so it can be audited),
    the folder written whole (:func:`miaudit.files.write_folder`)."""

    def fill(tmp: Path) -> None:
        save_model(model, tmp, class_names=data.class_names, dataset_fingerprint=data.fingerprint())
        np.savez(
            tmp / MEMBERSHIP_FILE,
            members=splits.target_in,
            non_members=splits.target_out,
        )
        (tmp / "dataset.json").write_text(json.dumps(dataset_info(data), indent=2) + "\n")

    write_folder(path, fill, TARGET_FILES, ConfigError, "free space or choose another folder")


def dataset_info(data: Dataset) -> dict[str, Any]:
    """``dataset.json``: what a saved target's data was, and what `miaudit serve` needs."""
    return {
        "name": data.name,
        "fingerprint": data.fingerprint(),
        # What an audit names when the data it is given differs.
        "n_records": data.n_records,
        "features_sha256": digest_of(data.X),
        "labels_sha256": digest_of(data.y),
        # What `miaudit serve` needs to take raw records: the data's own columns
        # and the encoder that turns them into the model's inputs.
        "kind": data.kind,
        "input_shape": list(data.input_shape),
        "encoder": data.encoder,
        # Text: the token ids per text the model reads (`miaudit serve` hashes
        # the texts it is sent into as many).
        "text_tokens": data.notes.get("text_tokens"),
    }


def load_saved_target(path: str | Path, data: Dataset) -> SavedTarget:
    """Load a saved target for an audit; its membership must be known and fit ``data``."""
    path = Path(path)
    model = load_model(path)
    check_input(model, data)
    if not (path / MEMBERSHIP_FILE).is_file():
        raise ModelError(
            f"{path} has no {MEMBERSHIP_FILE}: an audit must know which records the target was "
            "trained on; save targets with `miaudit train` or `miaudit audit --save-target`"
        )
    membership = load_membership(path, data)
    return dataclasses.replace(membership, model=model, recipe=model.recipe)


def row_numbers(values: np.ndarray, name: str, path: Path) -> np.ndarray:
    """A membership file's ``members`` or ``non_members``: distinct row numbers, 1-D."""
    a = np.asarray(values)
    if a.ndim != 1 or a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise ConfigError(
            f"{path}: {name} must be a 1-D array of row numbers (integers); it has shape "
            f"{a.shape} of {a.dtype}: save the target again (`miaudit train`)"
        )
    if not len(a) and name == "members":
        raise ConfigError(f"{path}: {name} names no record; save the target again")
    repeated = len(a) - len(np.unique(a))
    if repeated:
        raise ConfigError(f"{path}: {name} names {repeated} row(s) more than once")
    return a.astype(np.int64)


def digest_of(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def data_differs(folder: Path, info: dict[str, Any], data: Dataset) -> str:
    """Why a saved target's data set is not ``data``: what differs, and what to do."""
    name = info.get("name")
    what = []
    if info.get("n_records") is not None and info["n_records"] != data.n_records:
        what.append(f"it had {info['n_records']:,} records, this has {data.n_records:,}")
    else:
        if info.get("features_sha256") not in (None, digest_of(data.X)):
            what.append("the features differ")
        if info.get("labels_sha256") not in (None, digest_of(data.y)):
            what.append("the labels differ")
    differs = "; ".join(what) or "its content differs"
    if name != data.name:
        return (
            f"{folder} was trained on data set '{name}', not '{data.name}' ({differs}): audit "
            f"it with {key('dataset', name)}"
        )
    return (
        f"{folder} was trained on '{name}', but the '{data.name}' loaded now differs from it "
        f"({differs}): its source files changed, or the data cache is damaged; `miaudit cache "
        "clear datasets` rebuilds the cache (or retrain the target on today's data)"
    )


def load_membership(path: str | Path, data: Dataset) -> SavedTarget:
    """Which records of ``data`` a target was trained on, from a saved target's folder
    (or its ``membership.npz``); the folder's data fingerprint must match ``data``."""
    path = Path(path)
    folder, membership = (path, path / MEMBERSHIP_FILE) if path.is_dir() else (path.parent, path)
    if not membership.is_file():
        raise ConfigError(
            f"{key('membership', path)}: no {MEMBERSHIP_FILE} there; pass the folder `miaudit "
            "train` saved the target into, or its membership.npz"
        )
    info_file = folder / "dataset.json"
    if info_file.is_file():
        info = read_json_object(
            info_file, ConfigError, "save the target again with `miaudit train` or --save-target"
        )
        if info.get("fingerprint") != data.fingerprint():
            raise ModelError(data_differs(folder, info, data))
    check_npy_sizes(
        membership, ConfigError, "save the target again with `miaudit train`", str(membership)
    )
    try:
        with np.load(membership, allow_pickle=False) as f:
            members, non_members = f["members"], f["non_members"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{membership} is not a membership file ({exc})") from None
    from miaudit.data.records import membership_mask

    def records(values: np.ndarray, name: str) -> np.ndarray:
        # miaudit writes record numbers; a mask over the records (a file written by
        # hand) reads as the audit's membership rule reads one. Over more than two
        # records a 0/1 array of that length cannot be distinct record numbers.
        if np.ndim(values) == 1 and len(values) == data.n_records > 2:
            try:
                shape = (data.n_records,)
                return np.flatnonzero(membership_mask(values, name, shape, error=ConfigError))
            except ConfigError:
                pass  # not a mask: record numbers, checked as such
        return row_numbers(values, name, membership)

    members = records(members, "members")
    non_members = records(non_members, "non_members")
    if np.intersect1d(members, non_members).size:
        raise ConfigError(
            f"{membership}: {np.intersect1d(members, non_members).size} records are both "
            "members and non_members; save the target again"
        )
    everything = np.concatenate([members, non_members])
    if len(everything) and (everything.min() < 0 or everything.max() >= data.n_records):
        raise ConfigError(
            f"{membership} names records beyond the {data.n_records} of '{data.name}': "
            "audit it with the data set the target was trained on"
        )
    return SavedTarget(None, None, members, non_members)


def open_remote(config: AuditConfig, data: Dataset, reporter: Reporter, *, token, query_cache):
    from miaudit.openinference import OpenInferenceTarget
    from miaudit.protocol import InputSchema
    from miaudit.remote import HttpTarget, MlflowServingTarget

    # MLflow's server, and a v2 server, say nothing of what the model answers: one record
    # the audit evaluates probes it (one query more, within the budget).
    extra = {}
    if config.protocol != "miaudit":
        first = load_membership(config.membership, data).members[:1]
        extra = {"probe": data.X[first]}
    kind = {"miaudit": HttpTarget, "mlflow": MlflowServingTarget, "v2": OpenInferenceTarget}
    target = kind[config.protocol](
        config.target_url,
        InputSchema.for_dataset(data),
        data.class_names,
        **extra,
        token=token,
        query_budget=config.query_budget,
        cache_dir=query_cache,
        batch_size=config.http.batch_size,
        timeout=config.http.timeout,
        retries=config.http.retries,
        on_retry=reporter.message,
    )
    if config.protocol != "miaudit":
        where = "MLflow" if config.protocol == "mlflow" else "v2"
        reporter.message(
            f"{target.describe()['url']} ({where}) answers "
            + (
                "labels only: a label-only audit (integer labels read as the classes' "
                + target.describe()["integer_labels"]
                + ")"
                if target.label_only
                else "probabilities (columns in the order of the data set's classes)"
            )
            + " (one record asked on its own to find out, counted against the query budget)"
        )
    if target.cache is not None and len(target.cache):
        reporter.message(
            f"resuming: {len(target.cache)} answered queries of {target.url} are in the query cache"
        )
    if target.cache is not None and target.cache.skipped_chunks:
        reporter.message(
            f"{len(target.cache.skipped_chunks)} query-cache chunks failed authentication "
            "(damaged, edited, or not written with your cache key) or did not read back, and "
            "were set aside (.bad); their records are asked again"
        )
    return target


def privacy(family: ModelFamily, n_train: int) -> dict[str, Any]:
    """The DP-SGD plan a recipe trained the target with (``results.json``'s
    ``target.dp``: the claimed ε and δ, noise multiplier, clipping norm, accountant),
    or nothing."""
    plan = family.privacy(n_train)
    return {} if plan is None else {"dp": plan.as_dict()}
