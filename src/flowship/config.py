"""Settings, read once from the environment.

Everything lives under ``FLOWSHIP_HOME`` (default ``./.flowship``) unless overridden:
MLflow's tracking store and artifacts, flowship's own state database and Delta tables.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWSHIP_", extra="ignore")

    home: Path = Path(".flowship")
    """Folder holding every default store; created on first use."""

    tracking_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("FLOWSHIP_TRACKING_URI", "MLFLOW_TRACKING_URI")
    )
    """MLflow tracking and registry URI: ``FLOWSHIP_TRACKING_URI`` (flowship's own, for a
    program that embeds flowship next to its own MLflow store), else
    ``MLFLOW_TRACKING_URI``; default ``sqlite:///$FLOWSHIP_HOME/mlflow.db``."""

    database_url: str | None = None
    """flowship's state database (SQLAlchemy URL); default ``sqlite:///$FLOWSHIP_HOME/flowship.db``.
    PostgreSQL: ``postgresql+psycopg://user@host:5432/db``."""

    tables_uri: str | None = None
    """Root of flowship's Delta tables; default ``$FLOWSHIP_HOME/tables``."""

    actor: str | None = None
    """Name recorded as the actor of lifecycle changes; default: the OS user."""

    debug: bool = False
    """Show tracebacks for unexpected errors in the CLI."""

    webhook: str | None = None
    """Slack/Teams incoming-webhook URL for monitor alerts when a monitor file names none
    (so a scheduled monitor reads it from a Secret, not from the file)."""

    run_lease_seconds: float = Field(default=60.0, gt=0, le=86_400)
    """How long a batch run's lease lasts; a running run renews it every third of that,
    and one that stops renewing (its process died) no longer holds its output."""

    @property
    def home_dir(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home.resolve()

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        return (self.home_dir / "mlartifacts").as_uri()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'flowship.db'}"

    @property
    def resolved_tables_uri(self) -> str:
        return self.tables_uri or str(self.home_dir / "tables")

    def table_uri(self, name: str) -> str:
        """Where flowship's Delta table ``name`` lives."""
        return f"{self.resolved_tables_uri.rstrip('/')}/{name}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings. Tests call ``get_settings.cache_clear()`` after
    changing the environment."""
    return Settings()
