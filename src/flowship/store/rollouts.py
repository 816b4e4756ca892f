"""Rollouts: one row per rollout (its desired progression, state and controller lease)
and an append-only table of what the controller did and why."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Column, Float, Integer, String, Table, Text, or_, select, update
from sqlalchemy.orm import Session

from flowship.store.tables import UTCDateTime, metadata, utcnow

#: states in which a rollout still owns its deployment's traffic
ACTIVE = ("running", "paused")

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment", String(100), nullable=False, index=True),
    Column("candidate", String(100), nullable=False),
    Column("champion", String(100), nullable=False),
    Column("steps", JSON, nullable=False),
    Column("step", Integer, nullable=False),
    # running | paused | rolled_back | aborted | completed
    Column("state", String(16), nullable=False),
    Column("bake_seconds", Float, nullable=False),
    Column("min_requests", Integer, nullable=False),
    Column("guardrails", JSON, nullable=False),
    Column("webhook", Text, nullable=True),
    Column("revision", Integer, nullable=True),
    Column("step_started_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("reason", Text, nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    # bumped by every change of the row (not by the lease): the controller's
    # compare-and-set, so an abort that lands mid-evaluation is never overwritten
    Column("version", Integer, nullable=False, server_default="1"),
    # the servers' Prometheus /metrics the guardrails also read, and their counters
    # when the current step began (counters are cumulative: the step's share is a delta)
    Column("metrics_urls", JSON, nullable=True),
    Column("metrics_baseline", JSON, nullable=True),
)

rollout_events = Table(
    "rollout_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rollout_id", Integer, nullable=False, index=True),
    Column("at", UTCDateTime(), nullable=False),
    # start | step | rollback | promote | complete | pause | resume | abort
    Column("action", String(16), nullable=False),
    Column("step", Integer, nullable=False),
    Column("weight", Float, nullable=True),
    Column("revision", Integer, nullable=True),
    Column("guardrails", JSON, nullable=True),
    Column("reason", Text, nullable=True),
)


@dataclass(frozen=True)
class RolloutRow:
    id: int
    deployment: str
    candidate: str
    champion: str
    steps: list[float]
    step: int
    state: str
    bake_seconds: float
    min_requests: int
    guardrails: list[dict[str, Any]]
    webhook: str | None
    revision: int | None
    step_started_at: datetime
    created_at: datetime
    updated_at: datetime
    reason: str | None
    lease_owner: str | None
    lease_until: datetime | None
    version: int
    metrics_urls: list[str] | None
    metrics_baseline: dict[str, Any] | None


@dataclass(frozen=True)
class EventRow:
    rollout_id: int
    at: datetime
    action: str
    step: int
    weight: float | None
    revision: int | None
    guardrails: list[dict[str, Any]] | None
    reason: str | None


_ROLLOUT = tuple(f.name for f in fields(RolloutRow))
_EVENT = tuple(f.name for f in fields(EventRow))


def insert(session: Session, values: dict[str, Any]) -> int:
    now = utcnow()
    result = session.execute(rollouts.insert().values(**values, created_at=now, updated_at=now))
    return int(result.inserted_primary_key[0])


def active(session: Session, deployment: str) -> RolloutRow | None:
    t = rollouts
    query = (
        select(t)
        .where(t.c.deployment == deployment, t.c.state.in_(ACTIVE))
        .order_by(t.c.id.desc())
        .limit(1)
    )
    found = session.execute(query).mappings().first()
    return RolloutRow(**{c: found[c] for c in _ROLLOUT}) if found else None


def by_id(session: Session, rollout_id: int) -> RolloutRow:
    found = session.execute(select(rollouts).where(rollouts.c.id == rollout_id)).mappings().one()
    return RolloutRow(**{c: found[c] for c in _ROLLOUT})


def latest(session: Session, deployment: str) -> RolloutRow | None:
    t = rollouts
    query = select(t).where(t.c.deployment == deployment).order_by(t.c.id.desc()).limit(1)
    found = session.execute(query).mappings().first()
    return RolloutRow(**{c: found[c] for c in _ROLLOUT}) if found else None


def change(
    session: Session, rollout_id: int, *, expect_version: int | None = None, **values: Any
) -> bool:
    """Change the row and bump its version; with ``expect_version``, only if the row is
    still at that version (one UPDATE: a compare-and-set). True if it was changed."""
    t = rollouts
    query = update(t).where(t.c.id == rollout_id)
    if expect_version is not None:
        query = query.where(t.c.version == expect_version)
    result = session.execute(query.values(**values, version=t.c.version + 1, updated_at=utcnow()))
    return result.rowcount == 1


def record(session: Session, event: EventRow) -> None:
    session.execute(rollout_events.insert().values(**{c: getattr(event, c) for c in _EVENT}))


def events(session: Session, rollout_id: int) -> list[EventRow]:
    t = rollout_events
    query = select(t).where(t.c.rollout_id == rollout_id).order_by(t.c.id)
    return [EventRow(**{c: r[c] for c in _EVENT}) for r in session.execute(query).mappings()]


def take_lease(session: Session, rollout_id: int, owner: str, seconds: float) -> bool:
    """Compare-and-swap: ``owner`` holds the lease if it was free, expired or its own.
    One UPDATE, so two controllers cannot both win, on SQLite and PostgreSQL alike."""
    now = utcnow()
    t = rollouts
    result = session.execute(
        update(t)
        .where(
            t.c.id == rollout_id,
            or_(t.c.lease_owner.is_(None), t.c.lease_owner == owner, t.c.lease_until < now),
        )
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds))
    )
    return result.rowcount == 1


def release_lease(session: Session, rollout_id: int, owner: str) -> None:
    t = rollouts
    session.execute(
        update(t)
        .where(t.c.id == rollout_id, t.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )
