"""Results as files: ``results.json`` (the contract), ``scores.csv``, ``config.json``, HTML.

Position in the pipeline: ``... -> metrics -> report``. Writing is all-or-nothing:
files go into a temporary folder beside ``--out`` that is renamed into place, so
an interrupted or failed audit never leaves something that looks like a result.
"""

from miaudit.report.files import default_out_dir, prepare_out_dir, write_results

__all__ = ["default_out_dir", "prepare_out_dir", "write_results"]
