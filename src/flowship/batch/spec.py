"""The scoring job: one pydantic model, loaded from YAML or built from CLI flags.

Every wrong field becomes one ``ConfigError`` line naming the file, the field, what was
received and what is allowed (``load_job``), so a typo never reaches the engine.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flowship._validation import config_error
from flowship.errors import ConfigError

Format = Literal["parquet", "csv", "delta", "sql"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_JOB_FILE_BYTES = 1_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    """Where the rows to score come from."""

    path: str | None = None
    """A Parquet file or directory, a CSV file, or a Delta table (path or URI)."""
    format: Format | None = None
    """Inferred from the path when omitted: ``.csv`` → csv, a ``_delta_log`` → delta."""
    query: str | None = None
    """A SQL query, with ``url``: format ``sql``."""
    url: str | None = None
    """SQLAlchemy URL of the database the query runs on."""

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        if self.query is not None or self.format == "sql":
            if not (self.query and self.url):
                raise ValueError("a SQL input needs both 'query' and 'url'")
            if self.path is not None:
                raise ValueError("give either 'path' or 'query', not both")
        elif not self.path:
            raise ValueError("give 'path' (a Parquet, CSV or Delta location) or 'query' + 'url'")
        return self

    @property
    def kind(self) -> Format:
        if self.query is not None:
            return "sql"
        if self.format is not None:
            return self.format
        assert self.path is not None
        lowered = self.path.lower().rstrip("/")
        if lowered.endswith((".csv", ".csv.gz")):
            return "csv"
        if lowered.startswith("delta:") or Path(self.path, "_delta_log").is_dir():
            return "delta"
        return "parquet"

    @property
    def location(self) -> str:
        assert self.path is not None
        return self.path.removeprefix("delta:")

    def describe(self) -> str:
        return f"sql:{self.url_redacted}" if self.kind == "sql" else self.location

    @property
    def url_redacted(self) -> str:
        from flowship.redact import redact

        return redact(self.url) if self.url else ""


class SinkSpec(_Strict):
    """Where predictions go; the rejects table sits next to it unless named."""

    path: str
    """A Delta table (default) or a Parquet directory; a bare name is a flowship table."""
    format: Literal["delta", "parquet", "sql"] = "delta"
    url: str | None = None
    """SQLAlchemy URL of the database, for format ``sql`` (``path`` is the table name)."""
    rejects: str | None = None
    """Where rejected rows go; default ``<path>_rejects`` in the same format."""
    rows_per_file: int = Field(default=2_000_000, ge=1_000, le=100_000_000)
    """Roll to a new data file after this many rows."""

    @model_validator(mode="after")
    def _sql_needs_url(self) -> SinkSpec:
        if (self.format == "sql") != (self.url is not None):
            raise ValueError("format 'sql' and 'url' go together (path is then the table name)")
        if self.format == "sql" and not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", self.path):
            raise ValueError("a SQL output table name is letters, digits and '_' (max 63)")
        return self


class ScoreJob(_Strict):
    """A batch scoring job (``kind: score``)."""

    kind: Literal["score"] = "score"
    name: str | None = None
    """Names the job in ``flowship runs``; default: the output's last path part."""
    model: str
    """A model ref resolved when the job starts: models:/Name@alias, models:/Name/Stage,
    models:/Name/3, runs:/..., or a local model directory."""
    input: SourceSpec
    output: SinkSpec
    id: str
    """The column that identifies a row (one prediction per id per version and date)."""
    features: list[str] | None = None
    """The model's input columns; default: the names in the model signature."""
    output_mode: Literal["predict", "proba", "both"] = "predict"
    """Labels, probabilities, or both."""
    incremental: bool = False
    """Score only ids without a prediction from the same model version on the same date."""
    engine: Literal["local", "spark"] = "local"
    master: str | None = None
    """Spark master URL for the spark engine (default local[*])."""
    batch_size: int = Field(default=131_072, ge=1, le=4_000_000)
    """Rows per Arrow record batch read from the input."""
    max_reject_fraction: float = Field(default=0.01, ge=0.0, le=1.0)
    """The job fails if more than this share of the input rows is rejected."""
    prediction_date: dt.date | None = None
    """The date stamped on predictions; default: today in UTC at job start."""
    schedule: str | None = None
    """A cron expression used by ``flowship schedule`` when --cron is not given."""

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError("use letters, digits, '_', '-' or '.', at most 100 characters")
        return value

    @field_validator("model", "id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("features")
    @classmethod
    def _features_ok(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("list at least one column, or leave it out to use the signature")
        duplicated = sorted({f for f in value if value.count(f) > 1})
        if duplicated:
            raise ValueError(f"columns listed twice: {', '.join(duplicated)}")
        return value

    @model_validator(mode="after")
    def _id_not_a_feature(self) -> ScoreJob:
        if self.features and self.id in self.features:
            raise ValueError(f"the id column {self.id!r} cannot also be a feature")
        return self

    @property
    def job_name(self) -> str:
        return self.name or Path(self.output.path.rstrip("/")).name or "score"


def parse_job(data: Any, *, source: object = "job") -> ScoreJob:
    """Validate a mapping as a scoring job; every problem is listed in one ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(source, f"expected a mapping of fields, got {type(data).__name__}")
    if isinstance(data.get("input"), str):
        data = {**data, "input": {"path": data["input"]}}
    if isinstance(data.get("output"), str):
        data = {**data, "output": {"path": data["output"]}}
    try:
        return ScoreJob.model_validate(data)
    except ValidationError as exc:
        raise config_error(
            source, exc, "See docs/batch.md for every field of a scoring job."
        ) from None


def read_job_file(path: str | Path) -> dict[str, Any]:
    """Read a job file as a mapping, with a clear error for a missing or non-YAML file."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(file, "no such job file", "Check the path.")
    if file.stat().st_size > MAX_JOB_FILE_BYTES:
        raise ConfigError(file, "the job file is larger than 1 MB", "A job file is a few lines.")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(file, f"not valid YAML: {first}", "Fix the syntax.") from None
    if not isinstance(data, dict):
        raise ConfigError(file, "expected a mapping of fields (key: value lines)")
    return data


def load_job(path: str | Path, **overrides: Any) -> ScoreJob:
    """Load ``path`` as a scoring job, with ``overrides`` (CLI flags) taking precedence."""
    data = read_job_file(path)
    kind = data.get("kind", "score")
    if kind != "score":
        raise ConfigError(
            path, f"kind is {kind!r}, expected 'score'", "Run it with: flowship schedule"
        )
    data.update({k: v for k, v in overrides.items() if v is not None})
    return parse_job(data, source=path)
