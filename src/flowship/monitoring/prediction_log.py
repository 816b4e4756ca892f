"""The live prediction log as a monitoring source.

A deployment's log (docs/deployments.md) is a Delta table partitioned by ``date`` with
these columns, then the model's input features under their own names. Drift on a log
compares the features and the ``output``; the rest describe the request.
"""

from __future__ import annotations

from collections.abc import Sequence

from flowship.deployments.spec import LOG_COLUMNS

_SIGNATURE = {"request_id", "ts", "deployment", "variant", "role", "latency_ms", "status"}


def is_prediction_log(columns: Sequence[str]) -> bool:
    return set(columns) >= _SIGNATURE


def feature_columns(columns: Sequence[str]) -> list[str]:
    """The model's inputs and its output: what drift compares on a log."""
    meta = set(LOG_COLUMNS) - {"output"}
    return [c for c in columns if c not in meta]
