"""What a rollout is asked to do: steps, bake time, guardrails, each checked once with a
one-line error that says how to write it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from flowship.errors import UsageError

#: guardrail -> (what it measures, the default a careful user would pick)
GUARDRAILS: dict[str, tuple[str, str]] = {
    "error_rate_increase": (
        "candidate's share of failed requests minus the champion's",
        "error_rate_increase<=0.01",
    ),
    "p99_latency_ratio": ("candidate's p99 latency / the champion's", "p99_latency_ratio<=1.5"),
    "output_psi": (
        "PSI of the candidate's outputs against the champion's (the drift rule's bins)",
        "output_psi<=0.25",
    ),
    "shadow_agreement": (
        "share of requests on which a shadow of the candidate (a shadow variant with the "
        "candidate's model) agreed with the champion's answer, as the shadow report counts it",
        "shadow_agreement>=0.9",
    ),
    "server_error_rate_increase": (
        "error_rate_increase from the servers' /metrics (every request, not a log sample)",
        "server_error_rate_increase<=0.01",
    ),
    "server_p99_latency_ratio": (
        "p99_latency_ratio from the servers' /metrics latency histograms",
        "server_p99_latency_ratio<=1.5",
    ),
    "error_rate": ("candidate's share of failed requests", ""),
    "p99_latency_ms": ("candidate's p99 latency in ms", ""),
}
DEFAULT_GUARDRAILS = tuple(g[1] for g in GUARDRAILS.values() if g[1])
#: guardrails read from the servers' /metrics: they apply when a rollout names servers
SERVER_GUARDRAILS = ("server_error_rate_increase", "server_p99_latency_ratio")
#: guardrails whose value is a share, so a limit above 1 is a typo
SHARES = ("shadow_agreement",)
_OPS = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b}
_EXPR = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Guardrail:
    metric: str
    op: str
    limit: float

    @property
    def text(self) -> str:
        return f"{self.metric}{self.op}{self.limit:g}"

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.limit)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "op": self.op, "limit": self.limit}


def parse_guardrail(text: str) -> Guardrail:
    """``"error_rate_increase<=0.01"``."""
    match = _EXPR.match(str(text).lower())
    if not match:
        raise UsageError(
            f"Cannot read guardrail {text!r}.",
            "Write METRIC<=VALUE, e.g. error_rate_increase<=0.01; metrics: "
            + ", ".join(GUARDRAILS)
            + ".",
        )
    metric, op, number = match.groups()
    if metric not in GUARDRAILS:
        raise UsageError(
            f"Unknown guardrail metric {metric!r} in {text!r}.",
            "Use one of: " + ", ".join(GUARDRAILS) + ".",
        )
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"The limit in guardrail {text!r} is not a number >= 0.", "E.g. 0.01.")
    if metric in SHARES and value > 1:
        raise UsageError(f"The limit in guardrail {text!r} is a share: 0 to 1.", "E.g. 0.9.")
    return Guardrail(metric, op, value)


def guardrails(texts: list[str] | None, *, servers: bool = False) -> list[Guardrail]:
    """The given guardrails replace the default of the same metric; the others stay.
    ``servers``: the rollout reads servers' /metrics, so their guardrails apply."""
    given = [parse_guardrail(t) for t in texts or []]
    if not servers:
        wanted = [g.text for g in given if g.metric in SERVER_GUARDRAILS]
        if wanted:
            raise UsageError(
                f"Guardrail {wanted[0]!r} reads the servers' /metrics, and none are given.",
                "Add --metrics-url http://HOST:PORT/metrics for each server of the deployment.",
            )
    named = {g.metric for g in given}
    defaults = [parse_guardrail(t) for t in DEFAULT_GUARDRAILS]
    defaults = [g for g in defaults if servers or g.metric not in SERVER_GUARDRAILS]
    return [g for g in defaults if g.metric not in named] + given


def parse_steps(text: str) -> list[float]:
    """``"10,25,50,100"``: strictly increasing percentages, each in (0, 100]."""
    parts = [p.strip().rstrip("%") for p in str(text).split(",") if p.strip()]
    try:
        steps = [float(p) for p in parts]
    except ValueError:
        steps = []
    hint = "Write --steps 10,25,50,100: increasing percentages of traffic, up to 100."
    if not steps or not all(math.isfinite(s) for s in steps):
        raise UsageError(f"Cannot read --steps {text!r}.", hint)
    if any(s <= 0 or s > 100 for s in steps):
        raise UsageError(f"--steps {text!r} has a step outside (0, 100].", hint)
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise UsageError(f"--steps {text!r} is not increasing.", hint)
    return steps


def parse_bake(text: str) -> float:
    """``"30m"``, ``"1h"``, ``"7d"``: seconds."""
    from flowship.monitoring.performance import parse_duration

    return parse_duration(text, "--bake").total_seconds()
