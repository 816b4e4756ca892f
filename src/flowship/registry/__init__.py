"""The model lifecycle on MLflow: stages, gates, history, rollback.

Stages (None -> Staging -> Production -> Archived) live in MLflow as the aliases
``staging``/``production``, a ``flowship.stage`` version tag and, while MLflow still
has them, native stages; every change is an event in flowship's state database.
"""

from flowship.registry._types import (
    ARCHIVED,
    NONE,
    PRODUCTION,
    STAGES,
    STAGING,
    ModelInfo,
    VersionInfo,
)
from flowship.registry.versions import (
    get_version,
    list_models,
    list_versions,
    register,
    register_estimator,
)

__all__ = [
    "ARCHIVED",
    "NONE",
    "PRODUCTION",
    "STAGES",
    "STAGING",
    "ModelInfo",
    "VersionInfo",
    "get_version",
    "list_models",
    "list_versions",
    "register",
    "register_estimator",
]
