"""code_identity: the job cache's key for the user's code changes exactly when the code does."""

from __future__ import annotations

import textwrap

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from miaudit.handover import load_object
from miaudit.models.identity import code_identity, is_library_module

SOURCE = """
    import torch

    SCALE = {scale}


    def helper(x):
        return x * SCALE  # {note}


    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.width = {width}

        def forward(self, x):
            return helper(x)


    def loop(model, X, y, generator, epochs={epochs}):
        return helper(X), Block()
"""


def _identity(tmp_path, name, **values):
    spec = {"scale": 2, "note": "", "width": 4, "epochs": 3, **values}
    file = tmp_path / f"{name}.py"
    file.write_text(textwrap.dedent(SOURCE.format(**spec)))
    identity, reason = code_identity(load_object(f"{file}:loop", None, "train_fn"))
    assert identity is not None, reason
    return identity


def test_the_identity_follows_every_part_of_the_users_code(tmp_path):
    base = _identity(tmp_path, "ident_a")
    assert _identity(tmp_path, "ident_a") == base  # nothing changed
    assert _identity(tmp_path, "ident_a", note="why") != base  # a line of a helper it calls
    assert _identity(tmp_path, "ident_a", scale=3) != base  # a global the helper reads
    assert _identity(tmp_path, "ident_a", width=8) != base  # a class it builds
    assert _identity(tmp_path, "ident_a", epochs=4) != base  # a default argument


def test_closures_estimators_and_arrays_are_described_by_value():
    def make(factor):
        def fit(X, y, seed):
            return X * factor

        return fit

    assert code_identity(make(2))[0] == code_identity(make(2))[0]
    assert code_identity(make(2))[0] != code_identity(make(3))[0]

    def pipe(c):
        return code_identity(make_pipeline(StandardScaler(), LogisticRegression(C=c)))[0]

    assert pipe(1.0) == pipe(1.0) and pipe(1.0) != pipe(2.0)
    # A transformer holding the user's function: that function's source counts.
    assert (
        code_identity(FunctionTransformer(np.log1p))[0]
        != code_identity(FunctionTransformer(lambda x: np.log1p(x) * 2))[0]
    )
    weights = np.arange(6.0)
    assert code_identity({"w": weights})[0] != code_identity({"w": weights + 1})[0]
    assert code_identity(torch.ones(3))[0] != code_identity(torch.zeros(3))[0]


def test_library_code_is_named_not_read_and_code_without_source_is_unknowable():
    identity, _ = code_identity(torch.nn.functional.relu, LogisticRegression)
    assert identity[0]["function"] == "torch.nn.functional.relu"
    assert identity[0]["version"] and "source" not in identity[0]
    assert identity[1]["class"].endswith("LogisticRegression") and "source" not in identity[1]
    assert is_library_module("torch") and is_library_module("miaudit.jobs")
    assert not is_library_module(__name__)
    scope: dict = {}
    exec("def fit(X, y, seed):\n    return None\n", scope)
    identity, reason = code_identity(scope["fit"])
    assert identity is None and "not in a file" in reason

    class Opaque:
        __slots__ = ()

    identity, reason = code_identity(Opaque())
    assert identity is None and "no stable description" in reason


def test_an_object_freed_during_the_walk_does_not_lend_its_id_to_the_next():
    # The walk makes temporaries (closure variables, attribute dicts). Once one was
    # freed, CPython gave its id to the next object of its kind, which was then
    # described as a reference to the first: a trainer's key changed from run to run.
    from miaudit.models.identity import _Walker

    walker = _Walker()
    first = walker.describe([1, 2])  # outside the assert: pytest's rewriting would hold it
    second = walker.describe([3, 4])
    assert (first, second) == ([1, 2], [3, 4])
