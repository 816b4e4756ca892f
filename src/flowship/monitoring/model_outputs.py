"""Drift of the model's own outputs: score baseline and current with the same version."""

from __future__ import annotations

import logging

import pandas as pd

from flowship.errors import UsageError

log = logging.getLogger(__name__)


def add_model_outputs(ref: str, frames: list[pd.DataFrame]) -> list[str]:
    """Score every frame with the version ``ref`` points at (resolved once, so both
    sides see the same version) and add its output columns in place; returns their
    names. Classifiers give probabilities (more telling than labels), others values."""
    from flowship.predict import Predictor, resolve_ref

    pinned = resolve_ref(ref).uri
    try:
        predictor = Predictor.load(pinned, output="proba")
    except UsageError:
        predictor = Predictor.load(pinned, output="predict")
    columns = list(predictor.output_columns)
    for frame in frames:
        clash = [c for c in columns if c in frame.columns]
        if clash:
            log.info("Replacing column(s) %s with %s's outputs", clash, pinned)
        out = predictor.predict(frame).reshape(len(frame), -1)
        for i, name in enumerate(columns):
            frame[name] = out[:, i]
    return columns
