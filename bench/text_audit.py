"""Text models audited three ways on the same real messages, and whether word-level
query variants help LiRA.

Where it sits: the whole pipeline on text records (``miaudit.data.kinds.text``). Data:
the built-in UCI SMS Spam Collection (``sms-spam``, 5,171 distinct messages), the same
1,500 members for (a) and (b), every audit with 16 reference models (LiRA's full
strength online), the job cache off so every model trains:

* (a) the user's scikit-learn Pipeline of ``examples/text_pipeline.py`` (word and word
  pair TF-IDF, logistic regression at C = 1000), shadows cloned from it;
* (b) the user's PyTorch module, tokenizer and loop of ``examples/torch_text.py``
  (``TorchModel(module, collate=tokenize)``, ``TorchTrainer(make_model, train,
  collate=tokenize)``);
* (c) the built-in ``tfidf-lr`` recipe from the command line (``miaudit audit --dataset
  sms-spam --target-size 1500 --shadows 16``), target and shadows trained by miaudit.

Each prints Shokri's attack, LiRA and RMIA online and offline: AUC, TPR at 0.1 % and
1 % FPR with 95 % bootstrap intervals, and the audit's seconds. ``--part variants``
then runs (c)'s recipe game with LiRA at 1, 4 and 8 queries per record (the record and
its word drops and swaps), side by side.

Run: ``.venv/bin/python bench/text_audit.py [--part audits|variants|both]``.

Measured (2-core VM, torch 2.13 CPU, seed 0; about 1,450 members and 1,450 non-members
evaluated once duplicates are merged; 95 % bootstrap intervals; seconds for the whole
audit, 16 reference models trained):

==========================  ============  =====  ====================  ====================  =====
target                      attack        AUC    TPR@0.1 %             TPR@1 %               s
==========================  ============  =====  ====================  ====================  =====
(a) user's Pipeline         shokri        0.627  0.001 [0.000–0.004]   0.014 [0.003–0.030]   10.6
(a) user's Pipeline         lira          0.751  0.016 [0.007–0.045]   0.086 [0.046–0.136]   10.6
(a) user's Pipeline         lira-offline  0.507  0.020 [0.010–0.043]   0.051 [0.039–0.075]   10.6
(a) user's Pipeline         rmia          0.603  0.016 [0.005–0.031]   0.046 [0.030–0.062]   10.6
(a) user's Pipeline         rmia-offline  0.584  0.014 [0.006–0.028]   0.041 [0.028–0.060]   10.6
(b) user's torch module     shokri        0.648  0.001 [0.000–0.010]   0.024 [0.013–0.043]   19.6
(b) user's torch module     lira          0.722  0.029 [0.016–0.040]   0.084 [0.053–0.108]   19.6
(b) user's torch module     lira-offline  0.691  0.007 [0.002–0.020]   0.065 [0.026–0.087]   19.6
(b) user's torch module     rmia          0.658  0.026 [0.017–0.038]   0.040 [0.029–0.060]   19.6
(b) user's torch module     rmia-offline  0.657  0.026 [0.017–0.039]   0.039 [0.030–0.062]   19.6
(c) tfidf-lr, command line  shokri        0.571  0.000 [0.000–0.003]   0.012 [0.002–0.022]   18.1
(c) tfidf-lr, command line  lira          0.689  0.035 [0.026–0.066]   0.091 [0.071–0.119]   18.1
(c) tfidf-lr, command line  lira-offline  0.689  0.033 [0.021–0.056]   0.086 [0.061–0.105]   18.1
(c) tfidf-lr, command line  rmia          0.727  0.031 [0.023–0.056]   0.077 [0.062–0.124]   18.1
(c) tfidf-lr, command line  rmia-offline  0.710  0.029 [0.021–0.046]   0.075 [0.058–0.119]   18.1
==========================  ============  =====  ====================  ====================  =====

(c) trains its own target on its own 1,500 records, so its rows are not the same
members as (a) and (b). Offline LiRA's AUC on the word-pair Pipeline (a) is at chance
(0.51; 0.52 at C = 22 too) while its TPR at low FPR is not: the one-sided test singles
out the records the model is surest of and leaves the rest unranked.

Word-level query variants, LiRA online on the recipe game (``tfidf-lr``, 1,500
members): 1 query AUC 0.680, TPR@0.1 % 0.043, TPR@1 % 0.089; 4 queries 0.678, 0.045,
0.085; 8 queries 0.680, 0.041, 0.087. They do not help here, so text keeps 1 query by
default (as ``PAPER.md`` advises: measure before making them a default).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import miaudit
from miaudit.jobs import Execution

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ["shokri", "lira", "lira-offline", "rmia", "rmia-offline"]
MEMBERS, SHADOWS, SEED = 1500, 16, 0


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _row(what: str, attacks: dict, seconds: float) -> None:
    for name in ATTACKS:
        a = attacks[name]
        cells = []
        for fpr in ("0.001", "0.01"):
            tpr, ci = a["tpr_at_fpr"][fpr], (a.get("tpr_at_fpr_ci") or {}).get(fpr)
            span = "" if not ci else f" [{ci[0]:.3f}–{ci[1]:.3f}]"
            cells.append("–" if tpr is None else f"{tpr:.3f}{span}")
        print(f"{what:<26} {name:<13} {a['auc']:.3f}  {cells[0]:<22} {cells[1]:<22} {seconds:6.1f}")


def audits() -> None:
    frame = miaudit.load_frame("sms-spam")
    texts, labels = frame["text"], frame["label"]
    rows = np.random.default_rng(SEED).choice(len(frame), MEMBERS, replace=False)
    common = dict(data=(texts, labels), members=rows, shadows=SHADOWS, attacks=ATTACKS,
                  seed=SEED, progress=False, execution=Execution(job_cache=False))  # fmt: skip
    head = "AUC    TPR@0.1 % [95 %]       TPR@1 % [95 %]         seconds"
    print(f"{'target':<26} {'attack':<13} {head}")

    text = _example("text_pipeline")
    pipeline = text.make_text_pipeline().fit(texts.iloc[rows], labels.iloc[rows])
    started = time.perf_counter()
    result = miaudit.audit(target=pipeline, **common)
    _row("(a) user's Pipeline", result.to_dict()["attacks"], time.perf_counter() - started)

    torch_text = _example("torch_text")
    tokenize, make_model, train = torch_text.your_code(texts, epochs=20)
    module = torch_text.trained_target(texts, labels, rows, make_model, train, tokenize, SEED)
    started = time.perf_counter()
    result = miaudit.audit(
        target=miaudit.TorchModel(module, collate=tokenize),
        trainer=miaudit.TorchTrainer(make_model, train, collate=tokenize), **common,
    )  # fmt: skip
    _row("(b) user's torch module", result.to_dict()["attacks"], time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "miaudit"), "audit", "--dataset", "sms-spam",
             "--target-size", str(MEMBERS), "--shadows", str(SHADOWS), "--attacks",
             ",".join(ATTACKS), "--seed", str(SEED), "--no-job-cache", "--out", folder,
             "--quiet"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        attacks = json.loads((Path(folder) / "results.json").read_text())["attacks"]
    _row("(c) tfidf-lr, command line", attacks, seconds)


def variants() -> None:
    print(f"{'LiRA queries':<14} AUC    TPR@0.1 %  TPR@1 %    seconds")
    for queries in (1, 4, 8):
        started = time.perf_counter()
        result = miaudit.audit(
            dataset="sms-spam", game="recipe", target_size=MEMBERS, shadows=SHADOWS,
            attacks={"run": ["lira"], "lira": {"queries": queries}}, seed=SEED,
            progress=False, execution=Execution(job_cache=False),
        )  # fmt: skip
        a = result.attacks["lira"]
        print(f"{queries:<14} {a.auc:.3f}  {a.tpr_at_fpr['0.001']:.3f}      "
              f"{a.tpr_at_fpr['0.01']:.3f}      {time.perf_counter() - started:6.1f}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("audits", "variants", "both"), default="both")
    part = parser.parse_args().part
    if part in ("audits", "both"):
        audits()
    if part in ("audits", "both") and part == "both":
        print()
    if part in ("variants", "both"):
        variants()
