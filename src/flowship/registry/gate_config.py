"""Which gates guard which stage: ``flowship.toml`` plus command-line additions.

```toml
[models.ChurnPredictor]
evaluation_data = "churn_eval.parquet"   # Parquet or CSV; relative to this file
target = "churned"

[models.ChurnPredictor.staging]
signature = true
metrics = { auc = 0.70 }
checklist = ["input_schema_documented", "output_format_defined"]

[models.ChurnPredictor.production]
metrics = { auc = 0.75, log_loss = 0.55 }
no_regression = { auc = { tolerance = 0.01 } }
checklist = ["model_performance_validated", "rollback_plan_ready"]
approvals = 2                     # a promotion becomes a request that needs 2 approvals
approvers = ["bob", "carol"]      # optional: only these users may approve
admins = ["dana"]                 # optional: who may bypass approvals with --force
```

Other top-level tables in the file belong to other parts of flowship and are ignored.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flowship._validation import config_error
from flowship.config import get_settings
from flowship.errors import ConfigError, UsageError
from flowship.registry._types import PRODUCTION, STAGING
from flowship.registry.gates import (
    METRICS,
    ChecklistItem,
    MetricThreshold,
    NoRegression,
    SignaturePresent,
    checklist_item,
    metric_name,
)

CONFIG_NAME = "flowship.toml"
MAX_CONFIG_BYTES = 1_000_000


class NoRegressionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tolerance: float | None = Field(default=None, ge=0)
    """Largest allowed regression against Production (absolute)."""
    min_absolute_change: float | None = Field(default=None, gt=0)
    """Required improvement over Production (absolute), as in MLflow's MetricThreshold."""
    min_relative_change: float | None = Field(default=None, gt=0, le=1)
    """Required improvement over Production (share of |baseline|), as in MLflow."""


class StageGates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signature: bool = False
    """Require a logged signature."""
    metrics: dict[str, float] = {}
    """metric -> threshold on the evaluation data (direction comes from the metric)."""
    no_regression: dict[str, NoRegressionSpec | float] = {}
    """metric -> comparison with Production; a bare number is a tolerance."""
    checklist: list[str] = []
    """Deployment checklist items that must be done."""
    approvals: int = Field(default=0, ge=0, le=10)
    """Approvals a promotion to this stage needs; 0: it happens at once."""
    approvers: list[str] = Field(default=[], max_length=100)
    """Who may approve (user names); empty: anyone but the requester."""
    admins: list[str] = Field(default=[], max_length=100)
    """Who may bypass approvals (and gates) with --force --reason."""
    request_expiry_days: float = Field(default=7, gt=0, le=365)
    """How long a request waits for its approvals."""

    @field_validator("metrics", "no_regression")
    @classmethod
    def _known_metrics(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {_checked(metric_name, k): v for k, v in value.items()}

    @field_validator("checklist")
    @classmethod
    def _known_items(cls, value: list[str]) -> list[str]:
        return [_checked(checklist_item, item) for item in value]

    @field_validator("approvers", "admins")
    @classmethod
    def _user_names(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_checked(user_name, name) for name in value))

    @model_validator(mode="after")
    def _reachable(self) -> StageGates:
        if self.approvers and not self.approvals:
            raise ValueError("approvers are listed but approvals is 0; set approvals = 1 or more")
        if self.approvers and len(self.approvers) < self.approvals:
            raise ValueError(
                f"approvals = {self.approvals} but only {len(self.approvers)} approver(s) "
                "are listed; list more approvers or lower approvals"
            )
        return self

    def approval(self, webhook: str | None) -> Approval | None:
        if not self.approvals:
            return None
        return Approval(
            required=self.approvals,
            approvers=tuple(self.approvers),
            admins=tuple(self.admins),
            expiry_days=self.request_expiry_days,
            webhook=webhook,
        )


class ModelGates(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evaluation_data: str | None = None
    """Parquet or CSV with the features and the target; relative to the file."""
    target: str | None = None
    """The column holding the true label or value."""
    webhook: str | None = None
    """Slack/Teams incoming webhook told about promotion requests and their outcome."""
    staging: StageGates = StageGates()
    production: StageGates = StageGates()

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        from flowship.monitoring.alerts import check_webhook

        return _checked(check_webhook, value)


class FileConfig(BaseModel):
    model_config = ConfigDict(extra="allow")  # other areas own other tables

    models: dict[str, ModelGates] = {}


def _checked(fn, value):
    try:
        return fn(value)
    except UsageError as exc:  # pydantic shows ValueError messages
        raise ValueError(f"{exc.message} {exc.hint}") from exc


_USER = re.compile(r"^[^\s\x00-\x1f\x7f]{1,128}$")


def user_name(value: str) -> str:
    """A user name as MLflow or the OS knows it: 1-128 characters, no spaces."""
    if not isinstance(value, str) or not _USER.match(value):
        raise UsageError(
            f"Invalid user name {str(value)[:40]!r}.",
            "Use the name the MLflow server (or the OS) knows: no spaces, at most 128 characters.",
        )
    return value


@dataclass(frozen=True)
class Approval:
    """The sign-off rule for one model and stage (kept with each request)."""

    required: int
    approvers: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()
    expiry_days: float = 7.0
    webhook: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "required": self.required,
            "approvers": list(self.approvers),
            "admins": list(self.admins),
            "expiry_days": self.expiry_days,
            "webhook": self.webhook,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Approval:
        return cls(
            required=int(data["required"]),
            approvers=tuple(data.get("approvers") or ()),
            admins=tuple(data.get("admins") or ()),
            expiry_days=float(data.get("expiry_days", 7.0)),
            webhook=data.get("webhook"),
        )


def find_config(path: str | Path | None = None) -> Path | None:
    """``path`` if given (it must exist), else ./flowship.toml, else
    $FLOWSHIP_HOME/flowship.toml, else None."""
    if path is not None:
        found = Path(path)
        if not found.is_file():
            raise ConfigError(found, "no such file.", "Check the --config path.")
        return found
    for candidate in (Path.cwd() / CONFIG_NAME, get_settings().home_dir / CONFIG_NAME):
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path) -> FileConfig:
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(path, "is larger than 1 MB.", "A flowship.toml is a few lines.")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "is not UTF-8 text.", "Save it as UTF-8.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            path, f"is not valid TOML: {exc}.", "See docs/lifecycle.md for an example."
        ) from exc
    try:
        return FileConfig.model_validate(raw)
    except ValidationError as exc:
        raise config_error(path, exc, "See docs/lifecycle.md for the fields.") from None


@dataclass
class GatePlan:
    """The gates for one transition and where their evaluation data comes from."""

    gates: list[Any] = field(default_factory=list)
    evaluation_data: Path | None = None
    target: str | None = None
    config_path: Path | None = None
    approval: Approval | None = None  # None: the change needs no sign-off

    @property
    def needs_data(self) -> bool:
        return any(isinstance(g, MetricThreshold | NoRegression) for g in self.gates)


def plan_for(
    model: str,
    stage: str,
    *,
    config: str | Path | None = None,
    gates: list[str] | None = None,
    no_regression: list[str] | None = None,
    require_signature: bool = False,
    checklist: list[str] | None = None,
    evaluation_data: str | Path | None = None,
    target: str | None = None,
) -> GatePlan:
    """The gates that guard moving ``model`` to ``stage``: the file's, then the
    command line's (``gates`` like ``"auc>=0.75"``, ``no_regression`` like
    ``"auc:0.01"``)."""
    path = find_config(config)
    plan = GatePlan(config_path=path)
    if path is not None:
        spec = load_config(path).models.get(model)
        if spec is not None:
            if spec.evaluation_data:
                plan.evaluation_data = (path.parent / spec.evaluation_data).resolve()
            plan.target = spec.target
            if stage in (STAGING, PRODUCTION):
                stage_spec = spec.staging if stage == STAGING else spec.production
                plan.gates += _gates_of(stage_spec)
                plan.approval = stage_spec.approval(spec.webhook)
    plan.gates += [parse_threshold(text) for text in gates or []]
    plan.gates += [parse_no_regression(text) for text in no_regression or []]
    if require_signature:
        plan.gates.append(SignaturePresent())
    plan.gates += [ChecklistItem(checklist_item(item)) for item in checklist or []]
    if evaluation_data is not None:
        plan.evaluation_data = Path(evaluation_data)
    if target is not None:
        plan.target = target
    if plan.needs_data and (plan.evaluation_data is None or not plan.target):
        raise UsageError(
            f"Metric gates for {model} need evaluation data and a target column.",
            f"Set evaluation_data and target under [models.{model}] in flowship.toml, "
            "or pass --eval-data PATH --target COLUMN.",
        )
    return plan


def approval_for(model: str, stage: str, *, config: str | Path | None = None) -> Approval | None:
    """The sign-off rule for moving ``model`` to ``stage`` (None: no approvals)."""
    path = find_config(config)
    spec = load_config(path).models.get(model) if path is not None else None
    if spec is None or stage not in (STAGING, PRODUCTION):
        return None
    return (spec.staging if stage == STAGING else spec.production).approval(spec.webhook)


def _gates_of(spec: StageGates) -> list[Any]:
    gates: list[Any] = []
    if spec.signature:
        gates.append(SignaturePresent())
    gates += [MetricThreshold(m, float(t)) for m, t in spec.metrics.items()]
    for metric, rule in spec.no_regression.items():
        if not isinstance(rule, NoRegressionSpec):
            rule = NoRegressionSpec(tolerance=float(rule))
        gates.append(NoRegression(metric, **rule.model_dump()))
    gates += [ChecklistItem(item) for item in spec.checklist]
    return gates


_THRESHOLD = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")


def parse_threshold(text: str) -> MetricThreshold:
    """``"auc>=0.75"`` or ``"log_loss<=0.5"``."""
    match = _THRESHOLD.match(str(text))
    if not match:
        raise UsageError(
            f"Cannot read gate {text!r}.", "Write METRIC>=VALUE or METRIC<=VALUE, e.g. auc>=0.75."
        )
    metric, op, number = match.groups()
    metric = metric_name(metric)
    value = _number(number, text)
    greater = METRICS[metric][0]
    if (op == ">=") != greater:
        right = ">=" if greater else "<="
        raise UsageError(
            f"Gate {text!r} points the wrong way: "
            f"{'higher' if greater else 'lower'} {metric} is better.",
            f"Write {metric}{right}{number}.",
        )
    return MetricThreshold(metric, value)


def parse_no_regression(text: str) -> NoRegression:
    """``"auc"`` (no regression at all) or ``"auc:0.01"`` (tolerance 0.01)."""
    metric, _, tolerance = str(text).partition(":")
    value = _number(tolerance, text) if tolerance.strip() else None
    if value is not None and value < 0:
        raise UsageError(f"Tolerance in {text!r} is negative.", "Use a tolerance >= 0.")
    return NoRegression(metric_name(metric), tolerance=value)


def _number(text: str, whole: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(f"{text!r} in {whole!r} is not a number.", "Use a finite number.")
    return value
