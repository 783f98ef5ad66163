"""Your own model against miaudit's built-in recipe, audited the same way.

Where it sits: the whole pipeline with the user's model (``miaudit.audit(target=...,
trainer=...)``). Two comparisons, each printed as a table:

* ``images``: the PyTorch module of ``examples/torch_module.py`` (a small CNN with batch
  norm and a residual block, trained by its own loop) as the target, its 16 reference
  models trained by ``miaudit.TorchTrainer`` with the same code; next to the built-in
  ``cnn`` recipe as the target, with 16 stacked reference models of the same recipe.
  Same records (Fashion-MNIST when installed, else MNIST's 5,000), the same sizes
  (members, non-members, the attacker's pool), online LiRA, offline LiRA, online RMIA.
* ``adult``: the scikit-learn Pipeline of ``examples/sklearn_pipeline.py`` (a
  ColumnTransformer and a random forest on Adult's raw DataFrame) with shadows that are
  clones of it: Shokri's attack, LiRA offline, RMIA offline.

Run: ``.venv/bin/python bench/own_model.py [--part images|adult|both] [--members 2500]``.

Measured (2-core VM, torch 2.13 CPU, seed 0, defaults; 95 % bootstrap intervals):

* Fashion-MNIST, 2,500 members and 2,500 non-members, 16 reference models (online):

  ======================  ============  ==================  ==================  =============
  target                  LiRA AUC      LiRA TPR@0.1 %      LiRA TPR@1 %        time
  ======================  ============  ==================  ==================  =============
  own module, own loop    0.630         0.020               0.056 [0.043–0.075] 371 s
  built-in ``cnn``        0.628         0.037               0.071 [0.054–0.090] 180 s
  ======================  ============  ==================  ==================  =============

  (offline LiRA 0.611 / 0.618 AUC, online RMIA 0.654 / 0.658; train/test accuracy
  0.983/0.861 and 0.954/0.854). The user's module trains one model per process, the
  built-in recipe 8 stacked per thread: about twice the time.
* Adult, 5,000 members, 8 shadows cloned from the Pipeline (random forest): Shokri AUC
  0.654, TPR@1 % 0.001; LiRA offline AUC 0.708, TPR@0.1 % 0.006, TPR@1 % 0.045; RMIA
  offline AUC 0.795, TPR@1 % 0.097; train/test accuracy 0.994/0.834; 32 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

import miaudit
from miaudit.jobs import Execution

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _row(label: str, result, seconds: float) -> str:
    cells = [label]
    for name in ("lira", "lira-offline", "rmia", "shokri", "rmia-offline"):
        if name not in result.attacks:
            continue
        m = result.attacks[name]
        t = m.tpr_at_fpr
        ci = (m.tpr_at_fpr_ci or {}).get("0.01") or (None, None)
        low = "–" if t.get("0.001") is None else f"{t['0.001']:.4f}"
        cells.append(
            f"{name}: AUC {m.auc:.3f}, TPR@0.1% {low}, TPR@1% {t['0.01']:.3f} "
            f"[{ci[0]:.3f}–{ci[1]:.3f}]"
        )
    tg = result.target
    cells.append(
        f"train/test acc {tg['train_accuracy']:.3f}/{tg['test_accuracy']:.3f}; {seconds:.0f} s"
    )
    return " | ".join(cells)


def images(members: int, references: int, epochs: int, seed: int = 0) -> None:
    torch_module = _example("torch_module")
    installed = {i.name for i in miaudit.data.list_datasets() if i.installed}
    dataset = "fashion-mnist" if "fashion-mnist" in installed else "mnist"
    attacks = ["lira", "lira-offline", "rmia"]
    no_cache = Execution(job_cache=False)

    started = time.perf_counter()
    own = torch_module.main(dataset, members, references, epochs, seed=seed)
    own_s = time.perf_counter() - started

    # The built-in recipe on the same records and sizes: 3 x members images, the target's
    # members and non-members drawn by miaudit, the rest the attacker's pool.
    X, y = torch_module.load_images(dataset)
    chosen = np.random.default_rng(seed).choice(len(X), 3 * members, replace=False)
    started = time.perf_counter()
    builtin = miaudit.audit(
        target="cnn", data=(X[chosen], y[chosen]), target_size=members, shadows=references,
        attacks=attacks, seed=seed, execution=no_cache,
    )  # fmt: skip
    builtin_s = time.perf_counter() - started
    print(f"\n{dataset}: {members} members, {members} non-members, {references} reference models")
    print(_row("own module (TorchTrainer)", own, own_s))
    print(_row("built-in cnn", builtin, builtin_s))


def adult(members: int, shadows: int, seed: int = 0) -> None:
    started = time.perf_counter()
    result = _example("sklearn_pipeline").main(members, shadows, seed)
    print(f"\nAdult, {members} members, {shadows} shadows (clones of the Pipeline)")
    print(_row("Pipeline (forest)", result, time.perf_counter() - started))


if __name__ == "__main__":
    import os
    import tempfile

    # Every run trains: a job cache of its own, empty.
    os.environ["MIAUDIT_JOB_CACHE"] = tempfile.mkdtemp(prefix="miaudit-bench-")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["images", "adult", "both"], default="both")
    parser.add_argument("--members", type=int, default=2500)
    parser.add_argument("--references", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--adult-members", type=int, default=5000)
    parser.add_argument("--shadows", type=int, default=8)
    args = parser.parse_args()
    if args.part in ("adult", "both"):
        adult(args.adult_members, args.shadows)
    if args.part in ("images", "both"):
        images(args.members, args.references, args.epochs)
