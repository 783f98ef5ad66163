"""The paper's experiments, one command each (``miaudit experiment NAME``): each a sweep
of audits with a table, a plot and a sentence on whether the paper's finding holds.

One experiment is one file and one line of :data:`EXPERIMENTS`
(:class:`~miaudit.experiments.base.Experiment`)."""

from __future__ import annotations

from miaudit.experiments.base import Experiment, Point, get_experiment, run_experiment
from miaudit.experiments.classes import Classes
from miaudit.experiments.mitigations import Mitigations
from miaudit.experiments.overfitting import Overfitting
from miaudit.experiments.shadows import Shadows
from miaudit.experiments.size import Size
from miaudit.experiments.synthesis import Synthesis

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e for e in (Classes(), Size(), Shadows(), Overfitting(), Mitigations(), Synthesis())
}

__all__ = ["EXPERIMENTS", "Experiment", "Point", "get_experiment", "run_experiment"]
