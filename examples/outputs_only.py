"""Evaluate membership leakage from outputs you computed elsewhere: no model handed over.

Your model runs somewhere miaudit cannot reach (another framework, another machine, a
service you only have logs of). What you can export is its outputs: here its logits on
records it was trained on and on records it never saw, and the logits of a few reference
models trained the same way on random halves of those records, and all of their logits on
some population records none of them trained on. ``miaudit.evaluate`` runs every attack
these arrays allow (LiRA and RMIA, online and offline; on the target's outputs alone the
loss, confidence, entropy and modified-entropy attacks and the label-only gap attack;
with shadow models' outputs, Shokri's too), lists the ones it could not run with what
they need, and writes the same results as an audit.

The script plays both parts: it trains the models and saves their logits to an .npz
(what you would export), then evaluates the file as ``miaudit evaluate`` would.

Run it (a few seconds)::

    python examples/outputs_only.py
    miaudit evaluate outputs.npz --logits        # the same, from the command line
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

import miaudit
from miaudit.splits import balanced_memberships


def train(X, y, seed):
    model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=seed)
    with warnings.catch_warnings():  # trained to the end on purpose: it overfits
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def logits(model, X):
    """The network's pre-softmax outputs (what many serving logs hold)."""
    return np.log(np.clip(model.predict_proba(X), 1e-12, None))


def export(path: str, n: int = 600, references: int = 8, seed: int = 0) -> None:
    """'Elsewhere': train a target and reference models, save only their logits."""
    data = miaudit.load_dataset("digits")
    rng = np.random.default_rng(seed)
    records = rng.choice(data.n_records, 2 * n + 200, replace=False)
    # 2n records to evaluate, and 200 population records no model trains on (for RMIA).
    X, y = data.X[records[: 2 * n]], data.y[records[: 2 * n]]
    Z, z_labels = data.X[records[2 * n :]], data.y[records[2 * n :]]
    members = np.r_[np.ones(n, np.int8), np.zeros(n, np.int8)]  # the first n trained on
    target = train(X[:n], y[:n], seed)
    # Each reference model trains on a random half of the records (every record IN for
    # half of them), as online LiRA and RMIA want.
    ref_members = balanced_memberships(references, 2 * n, rng)
    reference_models = [train(X[m], y[m], seed + 1 + k) for k, m in enumerate(ref_members)]
    np.savez(
        path,
        outputs=logits(target, X),
        labels=y,
        members=members,
        reference_outputs=np.stack([logits(model, X) for model in reference_models]),
        reference_members=ref_members,
        population_outputs=logits(target, Z),
        population_labels=z_labels,
        population_reference_outputs=np.stack([logits(model, Z) for model in reference_models]),
    )


def main(path: str = "outputs.npz", n: int = 600, references: int = 8, out: str | None = None):
    export(path, n, references)
    result = miaudit.evaluate(path, logits=True, out=out, overwrite=True)
    print(result.summary())
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default="outputs.npz")
    parser.add_argument("--references", type=int, default=8)
    parser.add_argument("--out")
    args = parser.parse_args()
    main(args.path, references=args.references, out=args.out)
