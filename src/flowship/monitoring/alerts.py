"""Alerts: logged, sent to a webhook once, and not sent again until they clear.

The webhook body is ``{"text": "..."}``, which Slack incoming webhooks and Microsoft
Teams incoming webhooks both accept. A failed delivery is recorded (and retried on the
next run, since the alert was never seen); it never stops the monitor run. An alert is
marked delivered only after its POST succeeded: a run killed between claiming an
alert and posting it leaves a claim that the next run takes over (``monitor_runs``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from urllib.parse import urlparse

from flowship.errors import UsageError
from flowship.store import monitor_runs

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Alert:
    """``key`` identifies the alert across runs (e.g. ``drift:column:age``)."""

    key: str
    message: str
    severity: str = "alert"


def check_webhook(url: str | None) -> str | None:
    if url is None or url == "":
        return None
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(
            f"The webhook {url!r} is not an http(s) URL.",
            "Pass the Slack or Teams incoming-webhook URL, e.g. https://hooks.slack.com/...",
        )
    return url


def dispatch(monitor: str, alerts: list[Alert], *, webhook: str | None) -> list[dict]:
    """Log every alert, deliver the ones not delivered yet, clear the ones gone.

    Returns one dict per alert: its fields plus ``delivery`` (``sent``, ``suppressed``
    (already sent, still active), ``failed`` or ``no_webhook``) and ``error``.
    """
    webhook = check_webhook(webhook)
    firing = {a.key: (a.severity, a.message) for a in alerts}
    to_send, suppressed, cleared = monitor_runs.claim_alerts(
        monitor, firing, deliver=webhook is not None
    )
    for key in cleared:
        log.info("Monitor %s: alert %s cleared", monitor, key)
    outcome = {a.key: {**asdict(a), "delivery": "no_webhook", "error": None} for a in alerts}
    for alert in alerts:
        log.warning("Monitor %s alert [%s]: %s", monitor, alert.key, alert.message)
    for key in suppressed:
        outcome[key]["delivery"] = "suppressed"
    sending = [a for a in alerts if a.key in to_send]
    if webhook and sending:
        error = _post(webhook, _text(monitor, sending))
        for alert in sending:
            monitor_runs.record_delivery(monitor, alert.key, error=error)
            outcome[alert.key].update(delivery="failed" if error else "sent", error=error)
    return list(outcome.values())


def announce(text: str, *, webhook: str | None) -> str | None:
    """Log ``text`` and post it once to ``webhook`` (a promotion request, approval,
    rejection or expiry: each event is told once, so nothing is deduplicated).
    Returns why the delivery failed, or None."""
    log.info("%s", text)
    return _post(webhook, text) if webhook else None


def _text(monitor: str, alerts: list[Alert]) -> str:
    lines = [f"flowship monitor '{monitor}': {len(alerts)} alert(s)"]
    lines += [f"- [{a.severity}] {a.message}" for a in alerts]
    return "\n".join(lines)


def _post(url: str, text: str) -> str | None:
    """POST the message; returns None on success, else why it failed."""
    import httpx

    try:
        response = httpx.post(url, json={"text": text}, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        log.error("Webhook delivery to %s failed: %s", _host(url), reason)
        return reason
    if response.status_code >= 300:
        reason = f"HTTP {response.status_code}: {response.text[:200]}"
        log.error("Webhook delivery to %s failed: %s", _host(url), reason)
        return reason
    return None


def _host(url: str) -> str:
    """Webhook URLs carry secrets in their path: log the host only."""
    return urlparse(url).netloc
