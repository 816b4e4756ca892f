"""The A/B report as a promotion gate: ``flowship promote NAME V --to production
--gate ab:auc`` passes only when the live experiment says the candidate variant, serving
version V, is significantly better than the champion on ``auc``.

Where the experiment's data lives is read from ``flowship.toml``:

```toml
[ab.ChurnPredictor]
deployment = "churn"
actuals = "table:churn_actuals"   # any source; a relative path is relative to this file
id = "customer_id"
label = "churned"
window = "30d"                      # optional, as are log, weights, fill_missing,
weights = { champion = 90, challenger = 10 }   # champion, candidate, alpha, effect
```

The gate object follows ``flowship.registry.gates.Gate`` and is handed to ``promote``
by the CLI, so the registry never imports monitoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowship._validation import describe
from flowship.errors import ConfigError, FlowshipError, UsageError
from flowship.registry.gate_config import find_config, load_config
from flowship.registry.gates import GateResult, Subject

PREFIX = "ab:"


class ABSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: str
    """The deployment whose variants are compared."""
    actuals: str
    """Outcomes: a path, table:NAME or sql:SELECT ..."""
    id: str
    """Outcome column holding the log's key."""
    label: str
    """Outcome column."""
    log: str = "table:prediction_log"
    window: str = "30d"
    weights: dict[str, float] | None = None
    fill_missing: float | None = None
    champion: str | None = None
    candidate: str | None = None
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    effect: float | None = Field(default=None, gt=0)


def is_ab_gate(text: str) -> bool:
    return str(text).strip().lower().startswith(PREFIX)


@dataclass(frozen=True)
class ABGate:
    """Passes when the experiment decided "better" for the variant serving the version."""

    metric: str
    spec: ABSpec

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.metric}"

    def evaluate(self, candidate: Subject, baseline: Subject | None) -> GateResult:
        from flowship.monitoring.experiments.ab import ab_report

        s = self.spec
        try:
            report = ab_report(
                s.deployment,
                actuals=s.actuals,
                id_column=s.id,
                label=s.label,
                log=s.log,
                window=s.window,
                metric=self.metric,
                weights=s.weights,
                champion=s.champion,
                candidate=s.candidate,
                alpha=s.alpha,
                effect=s.effect,
                fill_missing=s.fill_missing,
            )
        except FlowshipError as exc:  # no data is a failed gate, with the reason
            return GateResult(self.name, False, "error", "better", exc.message)
        served = next(
            (v["model_versions"] for v in report.variants if v["variant"] == report.candidate),
            None,
        )
        if served is not None and candidate.version not in served:
            detail = (
                f"variant {report.candidate} served version(s) {', '.join(served)}, "
                f"not {candidate.version}"
            )
            return GateResult(self.name, False, report.decision, "better", detail)
        diff = report.comparison["difference"] if report.comparison else None
        value = report.decision if diff is None else f"{report.decision} ({diff:+.4f})"
        return GateResult(self.name, report.decision == "better", value, "better", report.summary)


def ab_gates(model: str, texts: list[str], *, config: str | Path | None = None) -> list[ABGate]:
    """The ``ab:METRIC`` gates among ``texts``, with the experiment read from
    ``[ab.MODEL]`` in flowship.toml."""
    from flowship.monitoring.experiments.ab import METRICS

    wanted = [t for t in texts if is_ab_gate(t)]
    if not wanted:
        return []
    metrics = []
    for text in wanted:
        metric = text.strip()[len(PREFIX) :].strip().lower()
        if metric not in METRICS:
            raise UsageError(
                f"Cannot read gate {text!r}: unknown A/B metric {metric!r}.",
                f"Write ab:METRIC with METRIC one of {', '.join(METRICS)}, e.g. ab:auc.",
            )
        metrics.append(metric)
    path = find_config(config)
    hint = (
        f"Add [ab.{model}] with deployment, actuals, id and label to flowship.toml "
        "(see docs/ab.md)."
    )
    raw: Any = None
    if path is not None:
        table = (load_config(path).model_extra or {}).get("ab", {})
        raw = table.get(model) if isinstance(table, dict) else None
    if raw is None:
        raise UsageError(f"The A/B gate for {model} needs to know where the experiment is.", hint)
    try:
        spec = ABSpec.model_validate(raw)
    except ValidationError as exc:
        problems = describe(exc, name=lambda where: f"field 'ab.{model}.{where}'")
        raise ConfigError(path, problems, hint) from None
    spec = _relative_to(spec, path.parent)
    return [ABGate(metric, spec) for metric in metrics]


def _relative_to(spec: ABSpec, base: Path) -> ABSpec:
    """Relative file paths in the file are relative to the file, as evaluation_data is."""
    changes = {}
    for name in ("actuals", "log"):
        value = getattr(spec, name)
        if ":" not in value.split("/")[0] and not Path(value).is_absolute():
            changes[name] = str((base / value).resolve())
    return spec.model_copy(update=changes)
