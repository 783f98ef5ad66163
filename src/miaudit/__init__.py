"""miaudit: measure how much a trained model leaks about which records it was trained on.

The Python API mirrors ``miaudit audit``::

    import miaudit
    result = miaudit.audit(dataset="adult", shadows=4, seed=1)
    result.attacks["shokri"].auc

and audits your own model, trained by your own code::

    result = miaudit.audit(target=pipeline, data=frame, label="income", members=train_rows)
"""

from __future__ import annotations

from typing import Any

from miaudit.api import audit, evaluate
from miaudit.version import __version__

#: Names imported on first use, so that ``import miaudit`` stays light (no PyTorch).
_LAZY = {
    "TorchTrainer": "miaudit.models.user",
    "TorchModel": "miaudit.models.user",
    "load_dataset": "miaudit.data",
    "load_frame": "miaudit.data",
    "AuditResult": "miaudit.result",
    "Execution": "miaudit.jobs",
    "MiauditError": "miaudit.errors",
    "GateFailed": "miaudit.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'miaudit' has no attribute {name!r}")


__all__ = ["__version__", "audit", "evaluate", *_LAZY]
