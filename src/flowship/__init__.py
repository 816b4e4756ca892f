"""flowship: take MLflow models to production and keep them healthy there.

The public Python API is re-exported here; ``__all__`` is checked by a test.
"""

from flowship.batch import ScoreJob, load_job, run_job
from flowship.errors import FlowshipError
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

__version__ = "0.1.0"

__all__ = [
    "FlowshipError",
    "Predictor",
    "ScoreJob",
    "ServeConfig",
    "VersionInfo",
    "__version__",
    "get_version",
    "history",
    "list_models",
    "list_versions",
    "load_job",
    "promote",
    "register",
    "register_estimator",
    "resolve_ref",
    "rollback",
    "run_job",
    "serve",
    "stage_at",
]
