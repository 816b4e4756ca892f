"""``ab_report``: did the candidate variant beat the champion, on outcomes that arrived
days after the predictions?

The unit is the sticky key. A key counts once its outcome window has matured (its first
logged request is at least ``window`` old); younger keys are reported as pending. The
split is checked against the weights before any result is given, and the comparison is
an always-valid confidence sequence (see ``stats.py``), so reading the report every day
is safe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowship.errors import ExperimentFailed, InvalidInput, UsageError
from flowship.monitoring.experiments import stats
from flowship.monitoring.experiments.units import LogColumns, UnitData, collect_units

METRICS = ("auc", "accuracy", "log_loss", "mean")
#: metric -> greater is better
GREATER = {"auc": True, "accuracy": True, "log_loss": False, "mean": True}
DEFAULT_LOG = "table:prediction_log"
_TRAJECTORY_POINTS = 40


@dataclass
class ABReport:
    deployment: str
    metric: str
    champion: str
    candidate: str
    window: str
    as_of: str
    alpha: float
    variants: list[dict[str, Any]]
    comparison: dict[str, Any] | None
    sample_ratio: dict[str, Any]
    mixed_units: int
    decision: str
    """better, worse, not_yet, no_data or invalid_split."""
    summary: str
    more_units: int | None = None
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kind: str = "ab"

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``"champion=90,challenger=10"``, read by the deployments' own weight parser."""
    from flowship.deployments.spec import parse_weights as parse_items

    if text is None or not text.strip():
        return None
    weights = parse_items([part.strip() for part in text.split(",") if part.strip()])
    if sum(weights.values()) <= 0:
        raise UsageError(f"The weights {text!r} add up to 0.", "Give at least one weight > 0.")
    return weights


def ab_report(
    deployment: str,
    *,
    actuals: str,
    id_column: str,
    label: str,
    log: str = DEFAULT_LOG,
    window: str = "30d",
    metric: str = "auc",
    weights: dict[str, float] | None = None,
    champion: str | None = None,
    candidate: str | None = None,
    alpha: float = 0.05,
    effect: float | None = None,
    fill_missing: float | None = None,
    as_of: datetime | None = None,
    columns: LogColumns | None = None,
    sql_url: str | None = None,
) -> ABReport:
    """Join the log with the outcomes, per key, and compare candidate with champion."""
    from flowship.monitoring.performance import parse_duration

    if metric not in METRICS:
        raise UsageError(f"Unknown metric {metric!r}.", f"Use one of: {', '.join(METRICS)}.")
    if not 0 < alpha < 0.5:
        raise UsageError(f"--alpha {alpha} is out of range.", "Use a level in (0, 0.5), e.g. 0.05.")
    if effect is not None and not (math.isfinite(effect) and effect > 0):
        raise UsageError(f"--effect {effect} is not a positive number.", "Use e.g. 0.01.")
    if fill_missing is not None and not math.isfinite(fill_missing):
        raise UsageError(f"--fill-missing {fill_missing} is not a number.", "Use e.g. 0.")
    window_seconds = parse_duration(window, "--window").total_seconds()
    now = as_of or datetime.now(UTC)
    data = collect_units(
        deployment=deployment,
        log_source=log,
        actuals_source=actuals,
        id_column=id_column,
        label_column=label,
        columns=columns or LogColumns(),
        metric=metric,
        window_seconds=window_seconds,
        as_of=now.timestamp(),
        fill_missing=fill_missing,
        sql_url=sql_url,
    )
    notes: list[str] = []
    split = dict(data.exposed)
    if weights is None:
        weights, split, note = _recorded_split(deployment, data)
        notes += [note] if note else []
    champ, cand = _pair(data, weights, champion, candidate)
    srm = stats.sample_ratio(split, weights)
    estimates = {v: _estimate(data, v, metric) for v in data.exposed}
    variants = [_variant_row(data, v, estimates[v], metric, alpha, effect) for v in data.exposed]
    report = ABReport(
        deployment=deployment,
        metric=metric,
        champion=champ,
        candidate=cand,
        window=window,
        as_of=now.isoformat(),
        alpha=alpha,
        variants=variants,
        comparison=None,
        sample_ratio=srm.to_dict(),
        mixed_units=data.mixed_units,
        decision="no_data",
        summary="",
    )
    report.notes += notes
    if weights is None:
        report.notes.append("No --weights given: the split was not checked (SRM).")
    if data.mixed_units:
        report.notes.append(
            f"{data.mixed_units} key(s) were served by more than one variant and are left out."
        )
    if sum(data.no_outcome.values()):
        report.notes.append(
            f"{sum(data.no_outcome.values())} matured key(s) have no outcome yet and are left "
            "out (--fill-missing VALUE counts them as VALUE)."
        )
    e_champ, e_cand = estimates[champ], estimates[cand]
    if e_champ is not None and e_cand is not None:
        tau = effect or stats.default_tau(metric, e_champ.value)
        comparison = stats.compare(e_cand, e_champ, tau=tau, alpha=alpha)
        report.comparison = {
            "difference": comparison.diff,
            "se": comparison.se,
            "low": comparison.low,
            "high": comparison.high,
            "p_value": comparison.p_value,
            "effect": tau,
            "method": "always-valid confidence sequence (normal-mixture SPRT)",
        }
        report.more_units = stats.units_needed(comparison, e_champ.n + e_cand.n)
        report.decision = _decision(comparison, metric)
        report.trajectory = _trajectory(data, metric, champ, cand, tau, alpha)
    report.decision = "invalid_split" if srm.mismatch else report.decision
    report.summary = _summary(report, data)
    return report


def check(report: ABReport, *, require_better: bool = False) -> None:
    """Raise ``ExperimentFailed`` (exit 1) when the split is broken or the candidate is
    significantly worse; with ``require_better`` (a promotion gate), unless it is better."""
    if report.decision in ("invalid_split", "worse"):
        raise ExperimentFailed(report.summary, report.to_dict())
    if require_better and report.decision != "better":
        raise ExperimentFailed(report.summary, report.to_dict())


def _recorded_split(
    deployment: str, data: UnitData
) -> tuple[dict[str, float] | None, dict[str, int], str | None]:
    """The weights of the recorded deployment, and the keys to check them against: those
    first served by a revision with those same weights (a key assigned under other
    weights belongs to another split). Nothing recorded: no weights."""
    from flowship.deployments import DeploymentNotFound, history

    try:
        revisions = history(deployment)
    except DeploymentNotFound:
        return None, dict(data.exposed), None
    weights = revisions[-1].spec.weights
    if not data.by_revision:  # a log without revisions: every key under these weights
        return weights, dict(data.exposed), None
    same = {r.revision for r in revisions if r.spec.weights == weights}
    split: dict[str, int] = {}
    for (variant, revision), n in data.by_revision.items():
        if revision in same:
            split[variant] = split.get(variant, 0) + n
    shown = ", ".join(f"{k}={v:g}" for k, v in weights.items())
    note = (
        f"Split checked against the recorded weights {shown} (revision(s) "
        f"{', '.join(map(str, sorted(same)))}: {sum(split.values())} key(s))."
    )
    return weights, split, note


def _pair(
    data: UnitData, weights: dict[str, float] | None, champion: str | None, candidate: str | None
) -> tuple[str, str]:
    seen = list(data.exposed)
    for name, option in ((champion, "--champion"), (candidate, "--candidate")):
        if name is not None and name not in seen:
            raise InvalidInput(
                f"{option} {name!r} is not a variant in the log.",
                f"Variants in it: {', '.join(seen)}.",
            )
    if champion is None:
        others = [v for v in seen if v != candidate]
        if "champion" in others:
            champion = "champion"
        elif weights and any(v in weights for v in others):
            champion = max((v for v in others if v in weights), key=lambda v: weights[v])
        elif others:
            champion = max(others, key=lambda v: data.exposed[v])
    if candidate is None:
        rest = [v for v in seen if v != champion]
        if len(rest) > 1:
            raise UsageError(
                f"The log has {len(seen)} variants ({', '.join(seen)}); which is the candidate?",
                "Name it with --candidate VARIANT.",
            )
        candidate = rest[0] if rest else None
    if champion is None or candidate is None or champion == candidate:
        raise InvalidInput(
            f"The log has only one variant ({', '.join(seen)}): nothing to compare.",
            "An A/B report needs a deployment that split traffic between two variants.",
        )
    return champion, candidate


def _sums(data: UnitData, variant: str, upto: int | None = None) -> tuple[int, float, float]:
    rows = data.daily.get(variant, [])
    if upto is not None:
        rows = [r for r in rows if r[0] <= data.days[upto]]
    return sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows)


def _estimate(data: UnitData, variant: str, metric: str, upto: int | None = None):
    if metric == "auc":
        if variant not in data.arrays:
            return None
        days, scores, labels = data.arrays[variant]
        keep = slice(None) if upto is None else days <= upto
        return stats.auc_estimate(scores[keep], labels[keep])
    n, s, ss = _sums(data, variant, upto)
    if n < 2:
        return None
    mean, se = stats.mean_estimate(n, s, ss)
    return stats.Estimate(float(mean), float(se), n)


def _variant_row(data, variant, estimate, metric, alpha, effect) -> dict[str, Any]:
    row: dict[str, Any] = {
        "variant": variant,
        "units": data.exposed[variant],
        "matured": data.matured.get(variant, 0),
        "pending": data.pending.get(variant, 0),
        "no_outcome": data.no_outcome.get(variant, 0),
        "model_versions": data.versions.get(variant),
        metric: None,
        "low": None,
        "high": None,
    }
    if estimate is not None:
        tau = effect or stats.default_tau(metric, estimate.value)
        half = float(stats.half_width(estimate.se**2, tau, alpha))
        row.update({metric: estimate.value, "low": estimate.value - half})
        row["high"] = estimate.value + half
    return row


def _decision(comparison: stats.Comparison, metric: str) -> str:
    if not comparison.significant:
        return "not_yet"
    up = comparison.low > 0
    return "better" if up == GREATER[metric] else "worse"


def _trajectory(data, metric, champ, cand, tau, alpha) -> list[dict[str, Any]]:
    """The difference and its interval as matured units accumulated, day by day (at most
    ``_TRAJECTORY_POINTS`` points), for the report's chart."""
    if not data.days:
        return []
    step = max(1, math.ceil(len(data.days) / _TRAJECTORY_POINTS))
    marks = sorted({*range(step - 1, len(data.days), step), len(data.days) - 1})
    points = []
    for i in marks:
        a, b = _estimate(data, cand, metric, i), _estimate(data, champ, metric, i)
        if a is None or b is None:
            continue
        c = stats.compare(a, b, tau=tau, alpha=alpha)
        points.append(
            {"day": data.days[i], "units": a.n + b.n, "difference": c.diff}
            | {"low": c.low, "high": c.high}
        )
    return points


def _summary(report: ABReport, data: UnitData) -> str:
    pending = sum(data.pending.values())
    matured = sum(data.matured.values())
    head = f"{matured} matured unit(s), {pending} pending"
    cand, champ, metric = report.candidate, report.champion, report.metric
    if report.decision == "invalid_split":
        srm = report.sample_ratio
        shares = ", ".join(f"{k} {v:.1%}" for k, v in srm["observed_share"].items())
        expected = ", ".join(f"{k} {v:.1%}" for k, v in srm["expected_share"].items())
        return (
            f"Sample ratio mismatch: units split {shares}, weights say {expected} "
            f"(p={srm['p_value']:.2g}). The split is broken; no result can be trusted."
        )
    if report.comparison is None:
        return f"Not yet decided: {head}; too few matured units with outcomes to compare."
    c = report.comparison
    diff = f"{metric} {c['difference']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}]"
    if report.decision == "better":
        return f"{cand} is better than {champ}: {diff}, p={c['p_value']:.2g} ({head})."
    if report.decision == "worse":
        return f"{cand} is worse than {champ}: {diff}, p={c['p_value']:.2g} ({head})."
    if report.more_units == 0:
        bound = max(abs(c["low"]), abs(c["high"]))
        return f"No difference found: {diff}; any difference is smaller than {bound:.4f} ({head})."
    more = f"about {report.more_units:,} more matured units" if report.more_units else "more data"
    return f"Not yet decided: {diff}; needs {more} ({head})."
