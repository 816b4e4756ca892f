"""flowship: take MLflow models to production and keep them healthy there.

The public Python API is re-exported here; ``__all__`` is checked by a test. Names are
imported on first use, so ``import flowship`` (and so ``flowship --help``) stays fast
instead of loading MLflow, pandas and scipy up front.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowship.errors import FlowshipError

__version__ = "0.1.0"

_LAZY = {
    "Predictor": "flowship.predict",
    "resolve_ref": "flowship.predict",
    "ScoreJob": "flowship.batch",
    "load_job": "flowship.batch",
    "run_job": "flowship.batch",
    "ServeConfig": "flowship.serving",
    "serve": "flowship.serving",
    "check_drift": "flowship.monitoring",
    "run_monitor_file": "flowship.monitoring",
    **dict.fromkeys(
        [
            "VersionInfo",
            "approve",
            "get_version",
            "history",
            "list_models",
            "list_requests",
            "list_versions",
            "promote",
            "register",
            "register_estimator",
            "reject",
            "rollback",
            "stage_at",
        ],
        "flowship.registry",
    ),
}

__all__ = [
    "FlowshipError",
    "Predictor",
    "ScoreJob",
    "ServeConfig",
    "VersionInfo",
    "__version__",
    "approve",
    "check_drift",
    "get_version",
    "history",
    "list_models",
    "list_requests",
    "list_versions",
    "load_job",
    "promote",
    "register",
    "register_estimator",
    "reject",
    "resolve_ref",
    "rollback",
    "run_job",
    "run_monitor_file",
    "serve",
    "stage_at",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'flowship' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from flowship.batch import ScoreJob, load_job, run_job
    from flowship.monitoring import check_drift, run_monitor_file
    from flowship.predict import Predictor, resolve_ref
    from flowship.registry import (
        VersionInfo,
        get_version,
        history,
        list_models,
        list_versions,
        promote,
        register,
        register_estimator,
        rollback,
        stage_at,
    )
    from flowship.serving import ServeConfig, serve
