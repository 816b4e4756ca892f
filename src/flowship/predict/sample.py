"""The rows a backend must get right before it is trusted: the model's logged input
example plus synthetic rows spread around it (fixed seed, so a check is repeatable)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from flowship.predict.signature import InputSchema

log = logging.getLogger(__name__)

SYNTHETIC_ROWS = 256


def parity_sample(schema: InputSchema, meta: Any, path: Path) -> tuple[dict[str, np.ndarray], int]:
    """The sample's columns and how many of its first rows come from the input example.
    Numeric schemas only (the ones that reach the matrix and ONNX backends)."""
    example = _example(schema, meta, path)
    rng = np.random.default_rng(0)
    columns: dict[str, np.ndarray] = {}
    for c in schema.columns:
        seen = example.get(c.name, np.empty(0))
        finite = seen[np.isfinite(seen)]
        centre = float(finite.mean()) if finite.size else 0.0
        spread = float(finite.std()) if finite.size else 0.0
        spread = spread or max(abs(centre), 1.0)
        seen = np.where(np.isfinite(seen), seen, centre)
        values = centre + spread * 2 * rng.standard_normal(SYNTHETIC_ROWS)
        if finite.size and finite.min() >= 0:  # counts, amounts: keep the sign the model saw
            values = np.abs(values)
        if c.type in ("long", "integer"):
            values = np.round(values)
        columns[c.name] = np.concatenate([seen, values])
    return columns, len(next(iter(example.values()), ()))


def _example(schema: InputSchema, meta: Any, path: Path) -> dict[str, np.ndarray]:
    try:
        example = meta.load_input_example(str(path))
        if example is None:
            return {}
        _, checked = schema.check(example)
    except Exception as exc:  # an example is a bonus; synthetic rows still test parity
        log.debug("Ignoring the input example of %s: %s", path, exc)
        return {}
    lengths = {len(v) for v in checked.values()}
    return checked if len(lengths) == 1 else {}
