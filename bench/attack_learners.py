"""Which learner should Shokri's attack models use? Strength against cost, measured.

Builds a small, self-contained test bed with scikit-learn only (no miaudit data,
split or training stages): a target MLP and ``k`` shadow MLPs, each trained
without regularisation on its own in-set (so they overfit, as the paper's
targets do), each with a disjoint out-set of the same size. Shadows draw from an
attacker pool disjoint from the target's data. The attack is fitted on the
shadows' prediction vectors and evaluated on the target's members and
non-members with :mod:`miaudit.metrics`.

Prints, per data set, a table learner × transform → AUC, TPR at 1 % FPR, mean
per-class precision/recall at the 0.5 threshold, fit and score seconds
(averaged over ``--seeds`` test beds), then the class-agnostic variant and the
``n_jobs`` comparison for the chosen learner.

Run: ``.venv/bin/python bench/attack_learners.py [--dataset synthetic|digits|both]
[--shadows 6] [--seeds 2]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np
from joblib import parallel_config
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from miaudit.attacks import ShokriAttack
from miaudit.metrics import evaluate_attack


@dataclass
class TestBed:
    name: str
    shadow_p: np.ndarray
    shadow_y: np.ndarray
    shadow_m: np.ndarray
    target_p: np.ndarray
    target_y: np.ndarray
    target_m: np.ndarray
    class_names: list[str]
    train_acc: float
    test_acc: float


def _load(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        return StandardScaler().fit_transform(X), y, 300
    X, y = make_classification(
        n_samples=20_000,
        n_features=40,
        n_informative=20,
        n_redundant=5,
        n_classes=20,
        n_clusters_per_class=2,
        class_sep=1.5,
        flip_y=0.02,
        random_state=seed,
    )
    return X, y, 1000


def _overfit_model(seed: int) -> MLPClassifier:
    # Capacity and no L2 penalty: the model memorises its training set.
    return MLPClassifier(hidden_layer_sizes=(256,), alpha=0.0, max_iter=200, random_state=seed)


def build_testbed(name: str, n_shadows: int, seed: int) -> TestBed:
    rng = np.random.default_rng(seed)
    X, y, n_in = _load(name, seed)
    order = rng.permutation(len(y))
    target_idx, pool = order[: 2 * n_in], order[2 * n_in :]
    t_in, t_out = target_idx[:n_in], target_idx[n_in:]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        target = _overfit_model(seed).fit(X[t_in], y[t_in])
        # Shadow in/out sets are disjoint within a shadow; different shadows may
        # share records, as in the paper.
        sp, sy, sm = [], [], []
        for k in range(n_shadows):
            pick = rng.choice(pool, size=2 * n_in, replace=False)
            s_in, s_out = pick[:n_in], pick[n_in:]
            shadow = _overfit_model(seed * 100 + k + 1).fit(X[s_in], y[s_in])
            both = np.concatenate((s_in, s_out))
            sp.append(_full_proba(shadow, X[both], int(y.max()) + 1))
            sy.append(y[both])
            sm.append(np.repeat([True, False], n_in))
    both = np.concatenate((t_in, t_out))
    n_classes = int(y.max()) + 1
    return TestBed(
        name=name,
        shadow_p=np.concatenate(sp),
        shadow_y=np.concatenate(sy),
        shadow_m=np.concatenate(sm),
        target_p=_full_proba(target, X[both], n_classes),
        target_y=y[both],
        target_m=np.repeat([True, False], n_in),
        class_names=[str(c) for c in range(n_classes)],
        train_acc=float(target.score(X[t_in], y[t_in])),
        test_acc=float(target.score(X[t_out], y[t_out])),
    )


def _full_proba(model: MLPClassifier, X: np.ndarray, n_classes: int) -> np.ndarray:
    # A class absent from a training set has no column; add it as probability 0.
    p = np.zeros((X.shape[0], n_classes))
    p[:, model.classes_] = model.predict_proba(X)
    return p


def run_attack(bed: TestBed, **options) -> dict[str, float]:
    attack = ShokriAttack(**options)
    t0 = time.perf_counter()
    attack.fit(bed.shadow_p, bed.shadow_y, bed.shadow_m)
    t1 = time.perf_counter()
    scores = attack.score(bed.target_p, bed.target_y)
    t2 = time.perf_counter()
    r = evaluate_attack(
        scores, bed.target_m, bed.target_y, bed.class_names, attack.decision_threshold
    )
    return {
        "auc": r.auc,
        "tpr1": r.tpr_at_fpr["0.01"] or 0.0,
        "prec": r.mean_class_precision or 0.0,
        "rec": r.mean_class_recall or 0.0,
        "fit": t1 - t0,
        "score": t2 - t1,
    }


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _print_row(label: str, r: dict[str, float]) -> None:
    print(
        f"{label:<26} {r['auc']:6.3f} {r['tpr1']:9.3f} {r['prec']:7.3f} {r['rec']:7.3f} "
        f"{r['fit']:7.2f} {r['score']:7.3f}"
    )


HEADER = (
    f"{'learner / transform':<26} {'AUC':>6} {'TPR@1%':>9} {'prec':>7} {'rec':>7} "
    f"{'fit s':>7} {'score s':>7}"
)

CONFIGS = [
    ("nn", "none"),
    ("nn", "log"),
    ("nn", "logit"),
    ("gbdt", "none"),
    ("logreg", "none"),
    ("logreg", "log"),
    ("logreg", "logit"),
    ("rf", "none"),
]
AGNOSTIC_CONFIGS = [
    ("nn", "none"),
    ("nn", "logit"),
    ("gbdt", "none"),
    ("logreg", "none"),
    ("rf", "none"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=["synthetic", "digits", "both"], default="both")
    ap.add_argument("--shadows", type=int, default=6)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--chosen", default="gbdt", help="learner for the n_jobs comparison")
    args = ap.parse_args()
    names = ["synthetic", "digits"] if args.dataset == "both" else [args.dataset]
    print(f"cores: {os.cpu_count()}, shadows: {args.shadows}, seeds: {args.seeds}")

    for name in names:
        beds = [build_testbed(name, args.shadows, seed) for seed in range(args.seeds)]
        compare(beds, args.chosen)


def compare(beds: list[TestBed], chosen: str) -> None:
    """Print the tables for test beds of one data set (one per seed)."""
    b = beds[0]
    print(
        f"\n== {b.name}: {len(b.class_names)} classes, target train acc "
        f"{np.mean([x.train_acc for x in beds]):.3f} / test acc "
        f"{np.mean([x.test_acc for x in beds]):.3f}; attack trained on "
        f"{len(b.shadow_y)} shadow records, evaluated on {len(b.target_y)} target records"
    )
    print(HEADER)
    for learner, transform in CONFIGS:
        rows = [run_attack(x, learner=learner, transform=transform) for x in beds]
        _print_row(f"{learner} / {transform}", _mean(rows))
    print("-- class-agnostic (per_class=False)")
    for learner, transform in AGNOSTIC_CONFIGS:
        rows = [run_attack(x, learner=learner, transform=transform, per_class=False) for x in beds]
        _print_row(f"{learner} / {transform}", _mean(rows))
    print(f"-- n_jobs for {chosen}, per class")
    for label, n_jobs, backend in [
        ("n_jobs=1", 1, None),
        ("n_jobs=2 threads", 2, None),
        ("n_jobs=2 processes", 2, "loky"),
    ]:
        with parallel_config(backend=backend) if backend else contextlib.nullcontext():
            rows = [run_attack(x, learner=chosen, n_jobs=n_jobs) for x in beds]
        _print_row(label, _mean(rows))


if __name__ == "__main__":
    main()
