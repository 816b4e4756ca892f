"""The deployment file as pydantic models, and the rules a deployment must satisfy.

```yaml
name: churn
model: ChurnPredictor
key: customer_id                 # sticky assignment by this request field
variants:
  champion:   {ref: "@production", weight: 90}
  challenger: {ref: "@staging",    weight: 10}
  candidate:  {ref: "3", shadow: true, sample: 1.0}
log: {table: prediction_log, sample: 1.0}
```

Short refs name versions of ``model``: ``@alias``, a version number, or a stage name;
any full ref (``models:/...``, ``runs:/...``, a directory) is taken as it is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flowship._validation import config_error
from flowship.errors import ConfigError, UsageError

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_STAGES = {"production": "Production", "staging": "Staging", "archived": "Archived"}


class Variant(BaseModel):
    """One model behind the deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: str = Field(min_length=1, max_length=500)
    """``@alias``, a version number, a stage name, or a full model ref."""
    weight: float = Field(0.0, ge=0, le=100)
    """Percent of primary traffic; 0 keeps the variant loaded and warm, answering nothing."""
    shadow: bool = False
    """A shadow gets a copy of requests after the primary answered; it never answers."""
    sample: float = Field(1.0, ge=0, le=1)
    """Shadows only: the fraction of requests copied to it (deterministic by request id)."""


LOG_COLUMNS = (
    "request_id",
    "client_request_id",
    "ts",
    "date",
    "deployment",
    "revision",
    "variant",
    "role",
    "model_name",
    "model_version",
    "run_id",
    "key",
    "latency_ms",
    "status",
    "error",
    "output",
)
"""The prediction log's own columns, before the model's input features (the one list:
the server writes them, monitoring and the reports read them; docs/deployments.md)."""


class LogSpec(BaseModel):
    """The prediction log: every scored row, as a Delta table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field("prediction_log", min_length=1, max_length=1000)
    """A table name under FLOWSHIP_TABLES_URI, or any path or URI deltalake accepts."""
    sample: float = Field(1.0, ge=0, le=1)
    """Fraction of requests logged (deterministic by request id)."""
    flush_interval_s: float = Field(1.0, gt=0, le=300)
    """Rows are committed at least this often; a killed worker loses at most this much."""
    flush_rows: int = Field(10_000, ge=1, le=1_000_000)
    """... or as soon as this many rows wait, whichever comes first."""

    @property
    def uri(self) -> str:
        """Where the log is: ``table`` as given if it is a path or URI, else
        ``$FLOWSHIP_TABLES_URI/<table>``."""
        from flowship.config import get_settings

        table = self.table
        return table if ("/" in table or "://" in table) else get_settings().table_uri(table)


class DeploymentSpec(BaseModel):
    """A named endpoint: weighted variants, shadows, a sticky key and a prediction log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    model: str | None = Field(None, min_length=1, max_length=250)
    """The registered model that short refs (``@production``, ``3``) name."""
    key: str | None = Field(None, min_length=1, max_length=200)
    """Request field (or header X-Flowship-Key) that pins a caller to a variant."""
    salt: str | None = Field(None, max_length=200)
    """Seed of the assignment; default the deployment name. A new salt reshuffles everyone."""
    variants: dict[str, Variant] = Field(min_length=1, max_length=20)
    log: LogSpec | None = None
    """Where scored rows go; no ``log`` section, no prediction log."""

    @model_validator(mode="after")
    def _rules(self) -> DeploymentSpec:
        for name, variant in self.variants.items():
            if not re.match(NAME, name):
                raise ValueError(f"variant name {name!r} must be letters, digits, '_', '.' or '-'")
            if variant.shadow and variant.weight > 0:
                raise ValueError(
                    f"variant {name!r} is a shadow and also has weight {variant.weight:g}: a "
                    "shadow never answers. Drop its weight, or drop 'shadow: true'"
                )
            if not variant.shadow and variant.sample != 1.0:
                raise ValueError(f"variant {name!r}: 'sample' applies to shadow variants only")
            ref_uri(self.model, variant.ref, variant=name)  # a short ref needs 'model'
        total = sum(v.weight for v in self.variants.values() if not v.shadow)
        if not any(not v.shadow for v in self.variants.values()):
            raise ValueError("every variant is a shadow: at least one must answer requests")
        if abs(total - 100.0) > 1e-6:
            raise ValueError(
                f"the weights of the answering variants sum to {total:g}, not 100 "
                f"({weights_text(self.weights)})"
            )
        return self

    @property
    def weights(self) -> dict[str, float]:
        """Primary variant -> weight (shadows excluded)."""
        return {n: v.weight for n, v in self.variants.items() if not v.shadow}

    @property
    def shadows(self) -> dict[str, Variant]:
        return {n: v for n, v in self.variants.items() if v.shadow}

    @property
    def assignment_salt(self) -> str:
        return self.salt if self.salt is not None else self.name

    def uri_of(self, variant: str) -> str:
        return ref_uri(self.model, self.variants[variant].ref, variant=variant)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def parse(cls, values: Any, *, source: object = "deployment") -> DeploymentSpec:
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise config_error(source, exc, _HINT) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> DeploymentSpec:
        import yaml

        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(path, "file not found.", "Pass an existing file.") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problem = str(exc).splitlines()[0]
            raise ConfigError(path, f"not a readable YAML file: {problem}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(
                path, f"expected a mapping with name and variants, got {type(raw).__name__}.", _HINT
            )
        return cls.parse(raw, source=path)


_HINT = (
    "A deployment needs name and variants, e.g. variants: {champion: {ref: '@production', "
    "weight: 90}, challenger: {ref: '@staging', weight: 10}} (see docs/deployments.md)."
)


def weights_text(weights: dict[str, float]) -> str:
    return ", ".join(f"{n}={w:g}" for n, w in weights.items())


def ref_uri(model: str | None, ref: str, *, variant: str = "") -> str:
    """A variant's ref as a full model ref: ``@alias`` / ``3`` / ``Production`` name
    versions of ``model``; anything else is already full."""
    ref = ref.strip()
    short = ref.startswith("@") or ref.isdigit() or ref.lower() in _STAGES
    if not short:
        return ref
    if not model:
        raise ValueError(
            f"variant {variant!r} has the short ref {ref!r} but the deployment names no "
            "'model'. Add model: NAME, or write the ref in full (models:/NAME@alias)"
        )
    if ref.startswith("@"):
        return f"models:/{model}{ref}"
    if ref.isdigit():
        return f"models:/{model}/{ref}"
    return f"models:/{model}/{_STAGES[ref.lower()]}"


def parse_weights(items: list[str]) -> dict[str, float]:
    """``["champion=50", "challenger=50"]`` -> weights; a one-line error otherwise."""
    weights: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            weight = float(value) if sep else None
        except ValueError:
            weight = None
        if not name or weight is None or not 0 <= weight <= 100 or weight != weight:
            raise UsageError(
                f"{item!r} is not VARIANT=WEIGHT with a weight from 0 to 100.",
                "Example: flowship traffic churn champion=50 challenger=50",
            )
        if name in weights:
            raise UsageError(f"Variant {name!r} is given twice.", "Give each variant once.")
        weights[name] = weight
    return weights
