"""Splits: disjointness, sizes, determinism, and the messages for sizes that do not fit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miaudit.errors import ConfigError, DataError
from miaudit.splits import make_splits, max_target_size, resolve_target_size


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(4, 3000),
    frac=st.floats(0.01, 1.0),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
)
def test_members_nonmembers_and_pool_never_share_a_record(n, frac, k, seed):
    size = max(1, int(max_target_size(n) * frac))
    s = make_splits(n, size, k, np.random.default_rng(seed))
    sets = [s.target_in, s.target_out, s.pool]
    union = np.concatenate(sets)
    assert len(np.unique(union)) == len(union) == n
    assert len(s.target_in) == len(s.target_out) == size
    pool = set(s.pool.tolist())
    for i, o in zip(s.shadow_in, s.shadow_out, strict=True):
        assert len(i) == len(o) == size
        assert not set(i.tolist()) & set(o.tolist())
        assert set(i.tolist()) <= pool and set(o.tolist()) <= pool


def test_same_seed_same_splits_and_different_seed_differs():
    a = make_splits(1000, 100, 3, np.random.default_rng(7))
    b = make_splits(1000, 100, 3, np.random.default_rng(7))
    c = make_splits(1000, 100, 3, np.random.default_rng(8))
    assert np.array_equal(a.target_in, b.target_in)
    assert all(np.array_equal(x, y) for x, y in zip(a.shadow_in, b.shadow_in, strict=True))
    assert not np.array_equal(a.target_in, c.target_in)


def test_evaluation_is_balanced_and_labelled():
    s = make_splits(400, 50, 1, np.random.default_rng(0))
    index, member = s.evaluation()
    assert member.sum() == 50 and len(member) == 100
    assert set(index[member == 1].tolist()) == set(s.target_in.tolist())


def test_too_large_target_says_what_fits():
    with pytest.raises(DataError, match=r"target_size=500 needs 2000 records.*1797.*449"):
        make_splits(1797, 500, 2, np.random.default_rng(0))


def test_zero_shadows_is_refused():
    with pytest.raises(ConfigError, match="shadows must be at least 1"):
        make_splits(100, 10, 0, np.random.default_rng(0))


def test_default_target_size_shrinks_to_what_the_data_allows():
    assert resolve_target_size(1_000_000, None) == 10_000
    assert resolve_target_size(1797, None) == 449
    with pytest.raises(DataError, match="at least 4"):
        resolve_target_size(3, None)


def test_fixed_target_keeps_its_members_and_pools_the_rest():
    members, non_members = np.arange(0, 10), np.arange(10, 20)
    s = make_splits(100, 0, 2, np.random.default_rng(0), fixed_target=(members, non_members))
    assert np.array_equal(s.target_in, members)
    assert np.array_equal(s.pool, np.arange(20, 100))
    with pytest.raises(DataError, match="audit it with the data set it was trained on"):
        make_splits(15, 0, 1, np.random.default_rng(0), fixed_target=(members, non_members))
