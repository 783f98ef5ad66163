"""Where the shadows' records come from when the attacker has no real data of its own.

Position in the pipeline: ``splits -> shadows (source -> train)``. The attacker's
pool (see :mod:`miaudit.splits`) holds real records; the sources here replace
them, record for record, so the shadows' in/out index sets stay as drawn:

``real``
    The pool as it is (the paper's main setting).
``noisy``
    Each pool record with a fraction ``noise`` of its features re-drawn from their
    marginal distribution — an attacker whose data is only similar (the paper's
    Location experiment, 10 % and 20 % noise).
``marginal``
    Every feature drawn independently from its marginal within the record's class
    (statistics-based synthesis): the attacker knows per-class feature statistics
    but no record.

A "feature" is a raw input column: a categorical column's one-hot block is re-drawn
as a whole, so a record never gets two categories or none. Marginals are the
empirical distribution of the pool (drawing a feature from its marginal = copying
that feature from a random pool record). Images have one feature per pixel.
"""

from __future__ import annotations

import numpy as np

from miaudit.data import Dataset
from miaudit.errors import ConfigError, key

SOURCES = ("real", "noisy", "marginal")


def feature_groups(data: Dataset) -> list[np.ndarray]:
    """Encoded column indices of each raw feature, in encoded order."""
    width = data.n_features
    if data.encoder is None:
        return [np.array([j]) for j in range(width)]
    groups, start = [], 0
    categorical = data.encoder.get("categorical", {})
    for column in data.encoder["columns"]:
        size = len(categorical[column]) if column in categorical else 1
        groups.append(np.arange(start, start + size))
        start += size
    if start != width:
        raise ConfigError(
            f"the encoder of {data.name} describes {start} columns but the data has {width}"
        )
    return groups


def shadow_records(
    data: Dataset,
    pool: np.ndarray,
    source: str,
    rng: np.random.Generator,
    *,
    noise: float = 0.1,
) -> np.ndarray:
    """Features the shadows train on: ``data.X`` with the pool's rows replaced per ``source``.

    Rows outside the pool are left as they are (the shadows never see them), so
    the splits' index sets keep their meaning. Returns a new array for ``noisy``
    and ``marginal``, ``data.X`` itself for ``real``.
    """
    if source == "real":
        return data.X
    if source not in SOURCES:
        raise ConfigError(f"unknown shadow data source '{source}': use {', '.join(SOURCES)}")
    flat = data.X.reshape(data.n_records, -1)
    groups = feature_groups(data)
    pool_X = flat[pool]
    out_pool = pool_X.copy()
    n = len(pool)
    if source == "noisy":
        if not 0.0 < noise <= 1.0:
            raise ConfigError(f"{key('noise')} must be in (0, 1], got {noise}")
        k = max(1, round(noise * len(groups)))
        # Exactly k features per record, chosen uniformly: the k smallest of random keys.
        keys = rng.random((n, len(groups)), dtype=np.float32)
        redraw = keys <= np.partition(keys, k - 1, axis=1)[:, k - 1 : k]
        for g, cols in enumerate(groups):
            rows = np.flatnonzero(redraw[:, g])
            donors = rng.integers(0, n, size=len(rows))
            out_pool[np.ix_(rows, cols)] = pool_X[np.ix_(donors, cols)]
    else:  # marginal, within each class
        y = data.y[pool]
        order = np.argsort(y, kind="stable")
        counts = np.bincount(y, minlength=data.n_classes)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        for cols in groups:
            u = rng.random(n)
            donors = order[starts[y] + np.floor(u * counts[y]).astype(np.int64)]
            out_pool[:, cols] = pool_X[np.ix_(donors, cols)]
    out = flat.copy()
    out[pool] = out_pool
    return out.reshape(data.X.shape)
