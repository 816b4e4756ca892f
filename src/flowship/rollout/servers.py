"""The guardrails' second source: the servers' Prometheus ``/metrics``.

A deployment's server counts every request per variant (``flowship_variant_requests_total``
by outcome, and ``flowship_variant_request_duration_seconds`` for answered ones), not a
sample of them as a prediction log may. Counters are cumulative, so a step's numbers are
the difference between a scrape now and the scrape taken when the step began (recorded
with the rollout); several servers add up. A counter that went down means its server
restarted: what it counted since is the step's share (as Prometheus' ``rate`` does).
A server that cannot be scraped gives no numbers, never a pass; nor does one whose
answer is larger than ``MAX_BYTES`` or takes longer than ``TIMEOUT_S`` in all (a scrape
is never read without bound, however slowly the bytes come).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from flowship.errors import UsageError

REQUESTS = "flowship_variant_requests"
DURATION = "flowship_variant_request_duration_seconds"
TIMEOUT_S = 5.0  # a whole scrape, not each read
MAX_BYTES = 32 * 2**20  # a busy server's /metrics is a few hundred kB

#: one server's counters for one deployment: variant -> {"ok", "error", "le:<bound>"...}
Counters = dict[str, dict[str, float]]


@dataclass
class Scrape:
    """Counters per server URL, and why the others could not be read."""

    counters: dict[str, Counters] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class Window:
    """Per variant over a window, all servers together: requests, failed, and the
    latency histogram of answered requests (upper bound -> cumulative count)."""

    requests: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)

    def answered(self, variant: str) -> float:
        return self.requests.get(variant, 0.0) - self.errors.get(variant, 0.0)

    def p99(self, variant: str) -> float | None:
        """The 0.99 quantile in ms, interpolated within its bucket as Prometheus'
        ``histogram_quantile`` does."""
        return quantile(self.buckets.get(variant, {}), 0.99)


def check_urls(urls: list[str] | None) -> list[str]:
    from urllib.parse import urlparse

    checked = []
    for url in urls or []:
        parts = urlparse(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                f"--metrics-url {url!r} is not an http(s) URL.",
                "Give each server's metrics, e.g. --metrics-url http://10.0.0.5:8080/metrics",
            )
        checked.append(url)
    if len(set(checked)) != len(checked):
        raise UsageError("A --metrics-url is given twice.", "Name each server once.")
    return checked


def scrape(urls: list[str], deployment: str) -> Scrape:
    """Read every server's counters for ``deployment`` (a failure is recorded, not
    raised: the guardrails then say which server could not be read)."""
    import httpx

    got = Scrape()
    with httpx.Client(timeout=TIMEOUT_S) as client:
        for url in urls:
            try:
                got.counters[url] = parse(_read(client, url), deployment)
            except (httpx.HTTPError, ValueError) as exc:
                got.failed[url] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return got


def _read(client: Any, url: str) -> str:
    """The answer's text, within ``MAX_BYTES`` and ``TIMEOUT_S``; ValueError beyond."""
    deadline = time.monotonic() + TIMEOUT_S
    body = bytearray()
    with client.stream("GET", url) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_BYTES:
                raise ValueError(f"the answer is larger than {MAX_BYTES // 2**20} MB")
            if time.monotonic() > deadline:
                raise ValueError(f"the answer took longer than {TIMEOUT_S:g} s")
        return body.decode(response.encoding or "utf-8", "replace")


def parse(text: str, deployment: str) -> Counters:
    """The per-variant counters of ``deployment`` in a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    counters: Counters = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (REQUESTS, DURATION):
            continue
        for sample in family.samples:
            labels = sample.labels
            if labels.get("deployment") != deployment or "variant" not in labels:
                continue
            into = counters.setdefault(labels["variant"], {})
            if sample.name == REQUESTS + "_total":
                key = labels.get("outcome", "ok")
            elif sample.name == DURATION + "_bucket":
                key = "le:" + labels["le"]
            else:
                continue
            into[key] = into.get(key, 0.0) + float(sample.value)
    return counters


def deltas(start: dict[str, Counters], end: dict[str, Counters]) -> Counters:
    """The counts between two scrapes (per URL), summed over servers."""
    out: Counters = {}
    for url, variants in end.items():
        before = start.get(url, {})
        for variant, now in variants.items():
            then = before.get(variant, {})
            into = out.setdefault(variant, {})
            for key, value in now.items():
                delta = value - then.get(key, 0.0)
                if delta < 0:  # the server restarted: its counters began again at 0
                    delta = value
                into[key] = into.get(key, 0.0) + delta
    return out


def to_window(counts: Counters) -> Window:
    out = Window()
    for variant, numbers in counts.items():
        out.requests[variant] = numbers.get("ok", 0.0) + numbers.get("error", 0.0)
        out.errors[variant] = numbers.get("error", 0.0)
        out.buckets[variant] = {
            float(key[3:]): value for key, value in numbers.items() if key.startswith("le:")
        }
    return out


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """From cumulative bucket counts (upper bound in seconds -> count) to ms."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):  # beyond the last finite bucket: that bound is all we know
                return lower * 1000
            share = (rank - below) / (count - below) if count > below else 1.0
            return (lower + (bound - lower) * share) * 1000
        lower, below = bound, count
    return lower * 1000
