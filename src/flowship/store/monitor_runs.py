"""Monitor runs and alert state: every run is a row; an alert is sent once until it clears.

``monitor_runs`` keeps each run's verdict, its alerts with their delivery outcome and
the full JSON report (binned summaries only, so rows stay small). ``monitor_alerts``
holds one row per (monitor, alert key): whether it is active, and whether its webhook
delivery succeeded, which is what deduplication reads.

Delivery has a lease: a run that decides to send an alert records itself as its
claimant until ``claim_expires_at``, and only a successful POST marks it delivered. A
concurrent run leaves a live claim alone; a claim whose process died (same host, pid
gone) or whose lease ran out is taken over, so an alert claimed by a run killed before
its POST is sent by the next run instead of being lost.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    select,
)

from flowship.store.db import lock, transaction
from flowship.store.tables import UTCDateTime, metadata, utcnow

monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("monitor", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("status", String(30), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=False),
    Column("model", String(300)),
    Column("summary", Text, nullable=False, default=""),
    Column("n_alerts", Integer, nullable=False, default=0),
    Column("alerts", JSON, nullable=False),
    Column("report", JSON, nullable=False),
    Column("json_path", Text),
    Column("html_path", Text),
    Index("ix_monitor_runs_monitor_started", "monitor", "started_at"),
)

monitor_alerts = Table(
    "monitor_alerts",
    metadata,
    Column("monitor", String(200), primary_key=True),
    Column("key", String(300), primary_key=True),
    Column("severity", String(20), nullable=False),
    Column("message", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("delivered", Boolean, nullable=False, default=False),
    Column("first_fired_at", UTCDateTime(), nullable=False),
    Column("last_fired_at", UTCDateTime(), nullable=False),
    Column("cleared_at", UTCDateTime()),
    Column("last_sent_at", UTCDateTime()),
    Column("last_error", Text),
    Column("sends", Integer, nullable=False, default=0),
    # The run sending it now ("host:pid") and until when (migration 0007_alert_delivery).
    Column("claimed_by", String(300)),
    Column("claim_expires_at", UTCDateTime()),
)

#: How long a claim to send an alert holds: longer than a webhook POST can take.
DELIVERY_LEASE = timedelta(seconds=60)


@dataclass
class RunRecord:
    id: str
    monitor: str
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime
    summary: str
    alerts: list[dict[str, Any]]
    report: dict[str, Any]
    model: str | None = None
    json_path: str | None = None
    html_path: str | None = None

    @property
    def n_alerts(self) -> int:
        return len(self.alerts)


def record_run(run: RunRecord) -> None:
    with transaction() as session:
        session.execute(
            monitor_runs.insert().values(
                id=run.id,
                monitor=run.monitor,
                kind=run.kind,
                status=run.status,
                started_at=run.started_at,
                finished_at=run.finished_at,
                model=run.model,
                summary=run.summary,
                n_alerts=run.n_alerts,
                alerts=run.alerts,
                report=run.report,
                json_path=run.json_path,
                html_path=run.html_path,
            )
        )


def list_runs(
    *,
    monitor: str | None = None,
    kind: str | None = None,
    limit: int = 20,
    with_report: bool = False,
) -> list[RunRecord]:
    """Newest first."""
    query = select(monitor_runs).order_by(monitor_runs.c.started_at.desc()).limit(limit)
    if monitor:
        query = query.where(monitor_runs.c.monitor == monitor)
    if kind:
        query = query.where(monitor_runs.c.kind == kind)
    with transaction() as session:
        rows = session.execute(query).mappings().all()
    return [
        RunRecord(
            id=r["id"],
            monitor=r["monitor"],
            kind=r["kind"],
            status=r["status"],
            started_at=r["started_at"],
            finished_at=r["finished_at"],
            summary=r["summary"],
            alerts=r["alerts"],
            report=r["report"] if with_report else {},
            model=r["model"],
            json_path=r["json_path"],
            html_path=r["html_path"],
        )
        for r in rows
    ]


def claim_alerts(
    monitor: str,
    firing: dict[str, tuple[str, str]],
    *,
    deliver: bool,
    now: datetime | None = None,
    lease: timedelta = DELIVERY_LEASE,
) -> tuple[list[str], list[str], list[str]]:
    """Update the state for this run's ``firing`` alerts ({key: (severity, message)}).

    Returns ``(to_send, suppressed, cleared)``: keys to deliver (new, or never delivered
    successfully), keys already delivered (or being sent by a live run) and still
    active, and keys that cleared. With ``deliver``, keys to send are claimed by this
    process for ``lease`` in the same transaction, so a concurrent run suppresses
    them; ``record_delivery`` settles the claim.
    """
    now = now or utcnow()
    me = claimant()
    claim = {"claimed_by": me, "claim_expires_at": now + lease} if deliver else {}
    to_send, suppressed, cleared = [], [], []
    with transaction() as session:
        # Two runs of one monitor at once must not both decide to send (PostgreSQL).
        lock(session, f"monitor:{monitor}")
        rows = {
            r["key"]: r
            for r in session.execute(
                select(monitor_alerts).where(monitor_alerts.c.monitor == monitor)
            ).mappings()
        }
        for key, (severity, message) in firing.items():
            row = rows.get(key)
            values = {"severity": severity, "message": message, "last_fired_at": now}
            if row is None:
                session.execute(
                    monitor_alerts.insert().values(
                        monitor=monitor,
                        key=key,
                        active=True,
                        delivered=False,
                        first_fired_at=now,
                        sends=0,
                        **values,
                        **claim,
                    )
                )
                to_send.append(key)
                continue
            if row["active"] and (row["delivered"] or (deliver and _claim_holds(row, now))):
                suppressed.append(key)
            else:
                to_send.append(key)
                values.update(delivered=False, **claim)
                if not row["active"]:
                    values.update(first_fired_at=now, cleared_at=None)
            session.execute(_update(monitor, key).values(active=True, **values))
        for key, row in rows.items():
            if row["active"] and key not in firing:
                session.execute(_update(monitor, key).values(active=False, cleared_at=now))
                cleared.append(key)
    return to_send, suppressed, cleared


def claimant() -> str:
    """This process, as recorded on the alerts it claims."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _claim_holds(row: Any, now: datetime) -> bool:
    """Whether another run is sending this alert right now."""
    holder, expires = row["claimed_by"], row["claim_expires_at"]
    if holder is None or expires is None or expires <= now:
        return False
    host, _, pid = holder.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False  # its process died before it could send
        except PermissionError:
            pass  # alive, under another user
    return True


def record_delivery(
    monitor: str, key: str, *, error: str | None, now: datetime | None = None
) -> None:
    """Settle this run's claim: delivered, or not (and the next run sends it)."""
    now = now or utcnow()
    with transaction() as session:
        row = session.execute(
            select(monitor_alerts.c.sends).where(
                monitor_alerts.c.monitor == monitor, monitor_alerts.c.key == key
            )
        ).first()
        sends = (row[0] if row else 0) + (0 if error else 1)
        session.execute(
            _update(monitor, key).values(
                delivered=error is None,
                last_error=error,
                last_sent_at=now if error is None else None,
                sends=sends,
                claimed_by=None,
                claim_expires_at=None,
            )
        )


def alert_states(monitor: str | None = None) -> list[dict[str, Any]]:
    query = select(monitor_alerts).order_by(monitor_alerts.c.monitor, monitor_alerts.c.key)
    if monitor:
        query = query.where(monitor_alerts.c.monitor == monitor)
    with transaction() as session:
        return [dict(r) for r in session.execute(query).mappings()]


def _update(monitor: str, key: str):
    return monitor_alerts.update().where(
        monitor_alerts.c.monitor == monitor, monitor_alerts.c.key == key
    )
