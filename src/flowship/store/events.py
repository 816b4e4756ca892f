"""The lifecycle history: one row per stage change of a model version.

Rows are only ever appended. ``id`` orders them (several rows written by one
promotion share a timestamp); ``registry`` reads them back to answer "what is in
Production", "what was in Production at time T" and "what do we roll back to".

History first: a change made by flowship is appended as ``pending`` (with what MLflow
showed before, in ``undo``) and committed before MLflow is written, then marked
``done`` (or ``undone`` when its writes were put back). Only ``done`` rows are the
history; a ``pending`` row found later is a change whose process died half-way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Integer, String, Table, Text, select, update
from sqlalchemy.orm import Session

from flowship.store.tables import UTCDateTime, metadata, utcnow

lifecycle_events = Table(
    "lifecycle_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(256), nullable=False, index=True),
    Column("version", String(32), nullable=False),
    Column("from_stage", String(16), nullable=False),
    Column("to_stage", String(16), nullable=False),
    # promote | rollback | external: who or what caused the change
    Column("action", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("reason", Text, nullable=True),
    Column("forced", Boolean, nullable=False, default=False),
    Column("gates", JSON, nullable=True),
    # pending | done | undone (migration 0006_event_intent)
    Column("state", String(16), nullable=False, default="done", server_default="done"),
    # What MLflow showed for the version before a pending change: how to put it back.
    Column("undo", JSON, nullable=True),
)

PENDING, DONE, UNDONE = "pending", "done", "undone"

#: ``to_stage`` of the event recorded when a version disappears from MLflow.
DELETED = "Deleted"


@dataclass(frozen=True)
class Event:
    model: str
    version: str
    from_stage: str
    to_stage: str
    action: str
    actor: str
    at: datetime = field(default_factory=utcnow)
    reason: str | None = None
    forced: bool = False
    gates: list[dict[str, Any]] | None = None
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "from_stage": self.from_stage,
            "to_stage": self.to_stage,
            "action": self.action,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "reason": self.reason,
            "forced": self.forced,
            "gates": self.gates or [],
        }


_FIELDS = ("model", "version", "from_stage", "to_stage", "action", "actor", "at", "reason")


def record(
    session: Session,
    events: list[Event],
    *,
    state: str = DONE,
    undo: list[dict[str, Any]] | None = None,
) -> list[Event]:
    """Append ``events`` in order; returns them with their ids. A ``pending`` change
    carries, per event, what MLflow showed for its version before (``undo``)."""
    saved = []
    for i, ev in enumerate(events):
        values = {f: getattr(ev, f) for f in _FIELDS}
        values.update(forced=ev.forced, gates=ev.gates)
        row = {**values, "state": state, "undo": undo[i] if undo else None}
        new_id = session.execute(lifecycle_events.insert().values(**row)).inserted_primary_key[0]
        saved.append(Event(**{**values, "id": new_id}))
    return saved


def settle(session: Session, events: list[Event], state: str) -> None:
    """Mark a pending change ``done`` or ``undone``."""
    ids = [ev.id for ev in events]
    t = lifecycle_events
    session.execute(update(t).where(t.c.id.in_(ids), t.c.state == PENDING).values(state=state))


def pending(session: Session, model: str) -> list[tuple[Event, dict[str, Any] | None]]:
    """Changes to ``model`` recorded as pending, oldest first, each with its undo."""
    t = lifecycle_events
    query = select(t).where(t.c.model == model, t.c.state == PENDING).order_by(t.c.id)
    return [
        (Event(**{k: row[k] for k in (*_FIELDS, "forced", "gates", "id")}), row["undo"])
        for row in session.execute(query).mappings()
    ]


def list_events(session: Session, model: str, *, until: datetime | None = None) -> list[Event]:
    """The history of ``model`` (its done changes), oldest first, optionally only up
    to ``until``."""
    t = lifecycle_events
    query = select(t).where(t.c.model == model, t.c.state == DONE).order_by(t.c.id)
    if until is not None:
        query = query.where(t.c.at <= until)
    return [
        Event(**{k: row[k] for k in (*_FIELDS, "forced", "gates", "id")})
        for row in session.execute(query).mappings()
    ]


def current_stages(session: Session, model: str) -> dict[str, str]:
    """Each version's stage according to the history (its newest event)."""
    return {ev.version: ev.to_stage for ev in list_events(session, model)}
