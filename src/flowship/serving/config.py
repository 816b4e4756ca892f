"""What one ``flowship serve`` process serves and how: a pydantic model that the CLI
builds from its options or from ``deployment.yaml``.

A deployment file holds the same fields as the command's options::

    ref: models:/ChurnPredictor@production
    output: proba
    port: 5000
    workers: 2
    max_batch_size: 64
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flowship._validation import config_error, describe
from flowship.errors import ConfigError, UsageError


class ServeConfig(BaseModel):
    """One served model ref and the server's limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: str = Field(min_length=1)
    """Model to serve: models:/NAME@alias, models:/NAME/Stage, models:/NAME/3, runs:/..., a dir."""
    deployment: str | None = Field(None, min_length=1, max_length=100)
    """Serve this recorded deployment (``flowship deployment apply``) instead of one ref;
    ``ref`` is then ``deployment:NAME``, for display."""
    name: str | None = None
    """Model name in V2 paths (/v2/models/NAME); default: the registered model's name."""
    output: Literal["predict", "proba"] = "predict"
    """predict: labels/values as MLflow does; proba: class probabilities."""
    extra_columns: Literal["reject", "ignore"] = "reject"
    """Columns the signature does not name: a 400 that names them (reject), or dropped
    silently as MLflow does (ignore). Rejecting is the default because a silently dropped
    column is usually a client's typo."""
    host: str = "127.0.0.1"
    port: int = Field(5000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    """Processes; each loads the model and follows the ref on its own."""
    max_batch_size: int = Field(64, ge=1, le=100_000)
    """Most rows handed to one predict call when requests arrive together."""
    max_batch_wait_ms: float = Field(0.0, ge=0, le=1000)
    """Extra time to wait for a batch to fill; 0 batches only requests already waiting."""
    max_queue: int = Field(256, ge=1, le=1_000_000)
    """Requests waiting for a predict call before new ones get 503 + Retry-After."""
    max_shadow_queue: int = Field(1000, ge=1, le=1_000_000)
    """Deployments: request copies waiting for shadow variants; more are dropped (counted)."""
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    """Larger request bodies get 413 without being read."""
    max_extra_columns: int = Field(64, ge=0, le=1_000_000)
    """Columns beyond the signature's a request may name; a body naming more gets 400
    before anything is built from it."""
    max_cells: int = Field(10_000_000, ge=1_000)
    """Most values (rows x columns) one request may declare; more gets 413 before decoding
    (a small Parquet file can declare two billion rows)."""
    max_requests_in_flight: int = Field(1024, ge=1, le=1_000_000)
    """Prediction requests being received, decoded or scored at once; more get 503 +
    Retry-After. GET endpoints (health, metrics) are never refused."""
    max_inflight_bytes: int = Field(80 * 1024 * 1024, ge=1024)
    """Request body bytes held at once (reserved from Content-Length before reading); a
    request that would go over gets 503 + Retry-After."""
    max_connections: int = Field(2048, ge=1, le=1_000_000)
    """Open connections (uvicorn's limit); beyond it uvicorn answers a plain 503."""
    allowed_hosts: tuple[str, ...] | None = None
    """Host header names to answer (any port). Default: when bound to loopback only
    localhost, 127.0.0.1 and ::1 (a DNS-rebinding guard); otherwise any. ``*`` allows all."""
    request_timeout_s: float = Field(30.0, gt=0, le=3600)
    """A request not answered within this gets 504."""
    poll_interval_s: float = Field(5.0, ge=0, le=3600)
    """How often to re-resolve an alias or stage ref; 0 disables following."""
    graceful_timeout_s: float = Field(30.0, ge=0, le=3600)
    """On SIGTERM, how long in-flight requests may take to finish."""
    untrusted_after_s: float = Field(300.0, gt=0, le=86400)
    """When the ref has not resolved for this long, readiness turns off (503 on /ping):
    the served version may no longer be the one the registry names."""

    @model_validator(mode="after")
    def _budget_holds_a_body(self) -> ServeConfig:
        if self.max_inflight_bytes < self.max_body_bytes:
            raise ValueError(
                f"max_inflight_bytes ({self.max_inflight_bytes}) must be at least "
                f"max_body_bytes ({self.max_body_bytes}), or no large body is ever accepted"
            )
        return self

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: object) -> ServeConfig:
        """Read a deployment file; ``overrides`` (CLI options given explicitly) win."""
        import yaml

        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                path, "file not found.", "Pass an existing file to --config."
            ) from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problem = str(exc).splitlines()[0]
            raise ConfigError(path, f"not a readable YAML file: {problem}") from exc
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(
                path, f"expected a mapping of settings, got {type(raw).__name__}.", _FIELDS_HINT
            )
        return cls.parse(
            {**raw, **{k: v for k, v in overrides.items() if v is not None}}, source=path
        )

    @classmethod
    def parse(cls, values: dict[str, object], *, source: object = "options") -> ServeConfig:
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            if source == "options":  # command-line options: name the flag
                problems = describe(exc, name=lambda field: f"option {_flag(field)!r}")
                raise UsageError(f"{problems}.", "See: flowship serve --help") from None
            raise config_error(source, exc, _FIELDS_HINT) from None


def _flag(field: str) -> str:
    special = {"request_timeout_s": "--timeout", "allowed_hosts": "--allowed-host"}
    return special.get(field.split(".")[0]) or "--" + field.replace("_", "-").removesuffix("-s")


_FIELDS_HINT = "Known settings: " + ", ".join(ServeConfig.model_fields) + "."
