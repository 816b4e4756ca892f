"""The lifecycle's value types: stages, versions, models."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowship.errors import UsageError

NONE, STAGING, PRODUCTION, ARCHIVED = "None", "Staging", "Production", "Archived"
STAGES = (NONE, STAGING, PRODUCTION, ARCHIVED)

#: The MLflow alias that marks the one version holding a stage.
ALIASES = {STAGING: "staging", PRODUCTION: "production"}
#: The version tag flowship writes with every stage change.
STAGE_TAG = "flowship.stage"


def parse_stage(value: str) -> str:
    """``"production"``, ``"PRODUCTION"``, ``"Production"`` -> ``"Production"``."""
    for stage in STAGES:
        if str(value).strip().lower() == stage.lower():
            return stage
    raise UsageError(
        f"Unknown stage {value!r}.",
        "Use one of: " + ", ".join(s.lower() for s in STAGES),
    )


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version as flowship sees it."""

    name: str
    version: str
    stage: str
    aliases: list[str]
    created_at: datetime
    run_id: str | None
    source: str
    metrics: dict[str, float] = field(default_factory=dict)
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """A URI that loads exactly this version."""
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "stage": self.stage,
            "aliases": list(self.aliases),
            "created_at": self.created_at.isoformat(),
            "run_id": self.run_id,
            "source": self.source,
            "metrics": dict(self.metrics),
            "description": self.description,
            "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class ModelInfo:
    """One registered model: its versions' count and who holds each stage."""

    name: str
    latest_version: str | None
    production: str | None
    staging: str | None
    versions: int
    updated_at: datetime | None
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latest_version": self.latest_version,
            "production": self.production,
            "staging": self.staging,
            "versions": self.versions,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "description": self.description,
        }
