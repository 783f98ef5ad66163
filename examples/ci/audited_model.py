"""What the audit step imports (``--target-python audited_model:model``): the model the
training step wrote, loaded as the service that ships it would load it."""

from __future__ import annotations

from pathlib import Path

import joblib

model = joblib.load(Path(__file__).parent / "build" / "model.joblib")
