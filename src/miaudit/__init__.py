"""miaudit: measure how much a trained model leaks about which records it was trained on.

The Python API mirrors ``miaudit audit``::

    import miaudit
    result = miaudit.audit(dataset="adult", shadows=4, seed=1)
    result.attacks["shokri"].auc
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from miaudit.pipeline import AuditResult


def audit(
    config=None,
    *,
    out: str | None = None,
    token: str | None = None,
    query_cache: str | bool | None = None,
    execution=None,
    **settings: Any,
) -> AuditResult:
    """Run an audit and return its result (the same pipeline as ``miaudit audit``).

    Parameters
    ----------
    config:
        An :class:`miaudit.config.AuditConfig`, a dict of settings, or a path to a
        ``.toml``/``.json`` file; keyword ``settings`` override it (same names as
        the config file: ``dataset``, ``label``, ``target_size``, ``shadows``,
        ``target={"epochs": 5}``, ``attack={"learner": "nn"}``, ``seed``, …).
    out:
        When given, also write ``results.json``, ``scores.csv``, ``config.json`` and
        ``report.html`` into this folder.
    token, query_cache:
        For a remote target (``target_url=...``): the service's bearer token (never
        written) and the query cache's folder (``False`` keeps none).
    execution:
        A :class:`miaudit.jobs.Execution`: the job cache, Dask, workers.

    Raises
    ------
    miaudit.errors.MiauditError
        For invalid settings or data, with a message that says what to change.
    """
    from pathlib import Path

    from miaudit.config import AuditConfig, load_config_file, make_config, merge
    from miaudit.pipeline import run_audit
    from miaudit.report import prepare_out_dir, write_results

    if isinstance(config, AuditConfig):
        base = config.model_dump()
    elif isinstance(config, str | Path):
        base = load_config_file(config)
    else:
        base = dict(config or {})
    cfg = make_config(merge(base, settings))
    if out is not None:
        prepare_out_dir(out)
    result = run_audit(cfg, token=token, query_cache=query_cache, execution=execution)
    if out is not None:
        write_results(result, out)
    return result


__all__ = ["__version__", "audit"]
