"""Promotion gates: small objects with one method, ``evaluate(candidate, baseline)``.

``candidate`` is the version being promoted and ``baseline`` the version in Production
now (``None`` when there is none), both as ``Subject``; every gate returns a
``GateResult`` that is stored on the promotion's event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from flowship.errors import UsageError

#: metric -> (greater is better, what the model must output: "proba" or "predict")
METRICS: dict[str, tuple[bool, str]] = {
    "auc": (True, "proba"),
    "log_loss": (False, "proba"),
    "accuracy": (True, "predict"),
    "f1": (True, "predict"),
    "precision": (True, "predict"),
    "recall": (True, "predict"),
    "rmse": (False, "predict"),
    "mae": (False, "predict"),
    "r2": (True, "predict"),
}

#: The seed's deployment checklist. Some items flowship can check itself; the others
#: pass once someone confirms them (``--confirm ITEM`` or a ``checklist.ITEM`` tag).
CHECKLIST: dict[str, str] = {
    "model_performance_validated": "passes when this promotion's metric gates all pass",
    "input_schema_documented": "passes when the version's signature names its inputs",
    "output_format_defined": "passes when the version's signature defines its outputs",
    "error_handling_tested": "needs confirmation",
    "monitoring_configured": "needs confirmation",
    "rollback_plan_ready": "passes when a Production version exists to roll back to",
    "stakeholders_notified": "needs confirmation",
    "dependencies_documented": "needs confirmation",
    "stakeholder_signoff": "passes when the promotion is approved (flowship approve)",
}
#: The seed's "stakeholder sign-off": satisfied by the approvals of a promotion
#: request, never by ``--confirm`` or a tag (the promoter cannot sign off alone).
SIGNOFF_ITEM = "stakeholder_signoff"
_CONFIRMED_TAG_VALUES = {"done", "true", "yes", "1", "ok"}


def metric_name(value: str) -> str:
    name = str(value).strip().lower().replace("-", "_")
    name = {"roc_auc": "auc", "logloss": "log_loss", "f1_score": "f1", "r_squared": "r2"}.get(
        name, name
    )
    if name not in METRICS:
        raise UsageError(f"Unknown metric {value!r}.", "Use one of: " + ", ".join(sorted(METRICS)))
    return name


def confirmable_item(value: str) -> str:
    """A checklist item given to ``--confirm``: any but the sign-off."""
    name = checklist_item(value)
    if name == SIGNOFF_ITEM:
        raise UsageError(
            f"{SIGNOFF_ITEM} cannot be confirmed by the promoter: it is satisfied by approvals.",
            "Set approvals for the stage in flowship.toml; the promotion becomes a request "
            "that others approve with: flowship approve REQUEST",
        )
    return name


def checklist_item(value: str) -> str:
    name = str(value).strip().lower().replace(" ", "_").replace("-", "_")
    if name not in CHECKLIST:
        raise UsageError(
            f"Unknown checklist item {value!r}.", "Use one of: " + ", ".join(CHECKLIST)
        )
    return name


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    value: Any = None
    limit: Any = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "value": self.value,
            "limit": self.limit,
            "detail": self.detail,
        }


@dataclass
class Subject:
    """A version as the gates see it: its signature, confirmed checklist items, and its
    metrics on the evaluation data (computed on first use by ``score``)."""

    name: str
    version: str
    has_inputs: bool
    has_outputs: bool
    confirmed: frozenset[str] = frozenset()
    score: Callable[[str], float] | None = None
    performance_validated: bool = False
    #: The change waits for approvals (a request), which is what signs it off.
    signoff_by_approval: bool = False
    _cache: dict[str, float] = field(default_factory=dict)

    def metric(self, metric: str) -> float:
        if metric not in self._cache:
            if self.score is None:
                raise UsageError(
                    f"The {metric} gate needs evaluation data.",
                    "Set evaluation_data and target for the model in flowship.toml, "
                    "or pass --eval-data PATH --target COLUMN.",
                )
            self._cache[metric] = float(self.score(metric))
        return self._cache[metric]


class Gate(Protocol):
    name: str

    def evaluate(self, candidate: Subject, baseline: Subject | None) -> GateResult: ...


def _fmt(value: float) -> float:
    return round(float(value), 6)


@dataclass(frozen=True)
class MetricThreshold:
    """The candidate's metric must reach ``threshold`` (>= if greater is better)."""

    metric: str
    threshold: float

    @property
    def name(self) -> str:
        op = ">=" if METRICS[self.metric][0] else "<="
        return f"{self.metric} {op} {self.threshold:g}"

    def evaluate(self, candidate: Subject, baseline: Subject | None) -> GateResult:
        value = candidate.metric(self.metric)
        greater = METRICS[self.metric][0]
        passed = value >= self.threshold if greater else value <= self.threshold
        return GateResult(self.name, passed, _fmt(value), self.threshold, "on the evaluation data")


@dataclass(frozen=True)
class NoRegression:
    """Compared with the Production version on the same data, with MLflow's
    ``MetricThreshold`` semantics for ``min_absolute_change``/``min_relative_change``
    (required improvement) plus ``tolerance`` (largest allowed regression)."""

    metric: str
    tolerance: float | None = None
    min_absolute_change: float | None = None
    min_relative_change: float | None = None

    @property
    def name(self) -> str:
        return f"{self.metric} no regression"

    def limit(self, base: float) -> float:
        greater = METRICS[self.metric][0]
        sign = 1.0 if greater else -1.0
        bounds = []
        if self.tolerance is not None:
            bounds.append(base - sign * self.tolerance)
        if self.min_absolute_change is not None:
            bounds.append(base + sign * self.min_absolute_change)
        if self.min_relative_change is not None:
            step = self.min_relative_change * abs(base) if base != 0 else 1e-10
            bounds.append(base + sign * step)
        if not bounds:
            bounds.append(base)
        # Every condition must hold: the strictest bound decides.
        return max(bounds) if greater else min(bounds)

    def evaluate(self, candidate: Subject, baseline: Subject | None) -> GateResult:
        if baseline is None:
            return GateResult(self.name, True, None, None, "no version in Production to compare")
        value = candidate.metric(self.metric)
        base = baseline.metric(self.metric)
        limit = self.limit(base)
        greater = METRICS[self.metric][0]
        passed = value >= limit if greater else value <= limit
        detail = f"Production is version {baseline.version} with {self.metric} {_fmt(base)}"
        return GateResult(self.name, passed, _fmt(value), _fmt(limit), detail)


@dataclass(frozen=True)
class SignaturePresent:
    """The version was logged with a signature (inputs and outputs)."""

    name: str = "signature present"

    def evaluate(self, candidate: Subject, baseline: Subject | None) -> GateResult:
        passed = candidate.has_inputs and candidate.has_outputs
        value = "inputs+outputs" if passed else ("inputs only" if candidate.has_inputs else "none")
        detail = "" if passed else "log the model with signature=infer_signature(X, y)"
        return GateResult(self.name, passed, value, "inputs+outputs", detail)


@dataclass(frozen=True)
class ChecklistItem:
    """One item of the deployment checklist."""

    item: str

    @property
    def name(self) -> str:
        return f"checklist: {self.item}"

    def evaluate(self, candidate: Subject, baseline: Subject | None) -> GateResult:
        if self.item == SIGNOFF_ITEM:
            if candidate.signoff_by_approval:
                detail = "satisfied by the approvals this request needs"
                return GateResult(self.name, True, "pending", "approved", detail)
            detail = "needs approvals: set approvals for this stage in flowship.toml"
            return GateResult(self.name, False, "open", "approved", detail)
        auto = {
            "input_schema_documented": candidate.has_inputs,
            "output_format_defined": candidate.has_outputs,
            "rollback_plan_ready": baseline is not None,
            "model_performance_validated": candidate.performance_validated,
        }.get(self.item, False)
        if auto:
            return GateResult(self.name, True, "checked", "done", CHECKLIST[self.item])
        if self.item in candidate.confirmed:
            return GateResult(self.name, True, "confirmed", "done", "confirmed by the promoter")
        how = f"--confirm {self.item}, or tag checklist.{self.item}=done"
        return GateResult(self.name, False, "open", "done", f"{CHECKLIST[self.item]}; or {how}")


def confirmed_from_tags(tags: dict[str, str]) -> set[str]:
    done = set()
    for key, value in tags.items():
        if key.startswith("checklist.") and str(value).strip().lower() in _CONFIRMED_TAG_VALUES:
            item = key.removeprefix("checklist.")
            if item in CHECKLIST and item != SIGNOFF_ITEM:
                done.add(item)
    return done


def run_gates(gates: list[Any], candidate: Subject, baseline: Subject | None) -> list[GateResult]:
    """Evaluate every gate (none is skipped after a failure, so the table is complete).
    Checklist items run last: ``model_performance_validated`` reads the metric gates."""
    plain = [g for g in gates if not isinstance(g, ChecklistItem)]
    results = [g.evaluate(candidate, baseline) for g in plain]
    measured = [
        r
        for g, r in zip(plain, results, strict=True)
        if isinstance(g, MetricThreshold | NoRegression)
    ]
    candidate.performance_validated = bool(measured) and all(r.passed for r in measured)
    results += [g.evaluate(candidate, baseline) for g in gates if isinstance(g, ChecklistItem)]
    return results
