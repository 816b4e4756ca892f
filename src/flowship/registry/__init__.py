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
from flowship.registry.gates import (
    ChecklistItem,
    GateResult,
    MetricThreshold,
    NoRegression,
    SignaturePresent,
)
from flowship.registry.history import history, stage_at
from flowship.registry.promote import Transition, promote, rollback
from flowship.registry.review import Decision, approve, list_requests, reject
from flowship.registry.versions import (
    get_version,
    list_models,
    list_versions,
    register,
    register_estimator,
)
from flowship.store.requests import PromotionRequest

__all__ = [
    "ARCHIVED",
    "ChecklistItem",
    "Decision",
    "GateResult",
    "MetricThreshold",
    "ModelInfo",
    "NONE",
    "NoRegression",
    "PRODUCTION",
    "PromotionRequest",
    "STAGES",
    "STAGING",
    "SignaturePresent",
    "Transition",
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
]
