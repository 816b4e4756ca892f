"""A monitor job file (``kind: monitor``), validated once by pydantic.

::

    kind: monitor
    name: churn
    model: models:/ChurnPredictor@production
    webhook: https://hooks.slack.com/services/...
    drift:
      baseline: data/train.parquet        # default: the model version's attached baseline
      current: table:churn_predictions
    performance:
      predictions: table:churn_predictions
      actuals: data/actuals.parquet
      id: customer_id
      score: probability
      thresholds: ["auc>=0.75"]
      log_to_mlflow: true
    health:
      max_age_days: 90
      prediction_tables: [table:churn_predictions]
      max_silence_hours: 24
    report:
      html: reports/churn.html
      json: reports/churn.json

Relative paths are read from the file's folder. Run it with ``flowship monitor run
FILE`` or schedule it with ``flowship schedule FILE --cron ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flowship._validation import config_error
from flowship.errors import ConfigError, NotFound

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,199}$"
_PREFIXES = ("table:", "sql:", "models:/", "runs:/")
MAX_FILE_BYTES = 1_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DriftSpec(_Strict):
    baseline: str | None = None
    """Baseline source; default: the baseline attached to ``model``."""
    current: str = Field(min_length=1)
    method: Literal["default", "ks"] = "default"
    columns: list[str] | None = None
    column_types: dict[str, Literal["numerical", "categorical"]] = Field(default_factory=dict)
    prediction_columns: list[str] | None = None
    score_with_model: bool = False
    """Score both sides with ``model`` and compare its outputs too."""
    q: float = Field(0.05, gt=0, lt=1)
    psi_warn: float = Field(0.1, gt=0)
    psi_alert: float = Field(0.25, gt=0)
    alpha: float = Field(0.05, gt=0, lt=1)
    bins: int = Field(10, ge=2, le=100)
    drift_share: float = Field(0.5, gt=0, le=1)
    min_rows: int = Field(50, ge=1)
    sql_url: str | None = None
    where: str | None = Field(None, max_length=4000)
    """SQL condition on the current data, e.g. ``prediction_date >= '2026-11-01'``."""
    baseline_where: str | None = Field(None, max_length=4000)
    """SQL condition on the baseline (a baseline window of the same table)."""
    by: str | None = Field(None, min_length=1, max_length=200)
    """Compare each value of this column on its own (``variant`` of a prediction log)."""
    engine: Literal["local", "spark"] = "local"
    ks_mode: Literal["auto", "exact", "approx"] = "auto"
    """``ks`` only: exact in memory, the bounded approximation, or exact when it fits."""

    @model_validator(mode="after")
    def _ordered(self) -> DriftSpec:
        if self.psi_alert < self.psi_warn:
            raise ValueError("psi_alert must be >= psi_warn")
        return self


class PerformanceSpec(_Strict):
    predictions: str = Field(min_length=1)
    actuals: str = Field(min_length=1)
    id: str = Field(min_length=1)
    label: str | None = None
    score: str | None = None
    prediction: str | None = None
    task: Literal["auto", "classification", "regression"] = "auto"
    time_column: str | None = None
    window: str | None = None
    since: str | None = None
    segment: str | None = None
    thresholds: list[str] | None = None
    """Like ``auc>=0.75``; default: ``auc>=0.75`` for classification."""
    positive_label: Any = 1
    log_to_mlflow: bool = False
    min_rows: int = Field(50, ge=1)
    sql_url: str | None = None
    where: str | None = Field(None, max_length=4000)
    """SQL condition on the predictions (a date window)."""
    actuals_where: str | None = Field(None, max_length=4000)
    engine: Literal["local", "spark"] = "local"


class HealthSpec(_Strict):
    max_age_days: float = Field(90, gt=0)
    deployments: list[str] = Field(default_factory=list)
    prediction_tables: list[str] = Field(default_factory=list)
    max_silence_hours: float = Field(24, gt=0)


class ReportSpec(_Strict):
    html: str | None = None
    json_path: str | None = Field(None, alias="json")


class MonitorSpec(_Strict):
    kind: Literal["monitor"]
    name: str = Field(pattern=_NAME)
    model: str | None = None
    webhook: str | None = None
    drift: DriftSpec | None = None
    performance: PerformanceSpec | None = None
    health: HealthSpec | None = None
    report: ReportSpec = Field(default_factory=ReportSpec)
    schedule: str | None = None
    """A cron expression, read by ``flowship schedule`` when no --cron is given."""

    @field_validator("webhook")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _something(self) -> MonitorSpec:
        if not (self.drift or self.performance or self.health):
            raise ValueError("give at least one of drift, performance, health")
        if self.health and not self.model:
            raise ValueError("health needs model: models:/NAME@production (or a model name)")
        if self.drift and not self.drift.baseline and not self.model:
            raise ValueError("drift needs a baseline, or a model with an attached baseline")
        if self.drift and self.drift.score_with_model and not self.model:
            raise ValueError("drift.score_with_model needs model")
        if self.performance and self.performance.log_to_mlflow and not self.model:
            raise ValueError("performance.log_to_mlflow needs model")
        return self


def load_spec(path: str | Path) -> MonitorSpec:
    """Read and validate a monitor file; relative paths in it are made absolute."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise NotFound(f"Monitor file {str(path)!r} does not exist.", "Check the path.")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ConfigError(
            path, f"is larger than {MAX_FILE_BYTES:,} bytes", "A monitor file is short YAML."
        )
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(body, dict):
        raise ConfigError(path, "must be a YAML mapping with kind: monitor")
    try:
        spec = MonitorSpec.model_validate(body)
    except ValidationError as exc:
        raise config_error(path, exc, "See docs/monitoring.md for the file format.") from None
    return _absolute(spec, path.parent)


def _absolute(spec: MonitorSpec, base: Path) -> MonitorSpec:
    def fix(value: str | None) -> str | None:
        if not value or value.startswith(_PREFIXES) or "://" in value or Path(value).is_absolute():
            return value
        return str(base / value)

    if spec.drift:
        spec.drift.baseline = fix(spec.drift.baseline)
        spec.drift.current = fix(spec.drift.current)  # type: ignore[assignment]
    if spec.performance:
        spec.performance.predictions = fix(spec.performance.predictions)  # type: ignore[assignment]
        spec.performance.actuals = fix(spec.performance.actuals)  # type: ignore[assignment]
    if spec.health:
        spec.health.deployments = [
            fix(d) if d.endswith((".yaml", ".yml")) else d for d in spec.health.deployments
        ]  # type: ignore[misc]
        spec.health.prediction_tables = [fix(t) for t in spec.health.prediction_tables]  # type: ignore[misc]
    spec.report.html = fix(spec.report.html)
    spec.report.json_path = fix(spec.report.json_path)
    return spec
