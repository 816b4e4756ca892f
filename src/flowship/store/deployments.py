"""Deployment revisions: one row per change of a deployment, only ever appended.

The newest revision of a name is the desired state that servers converge on; older ones
are its history (and what ``flowship traffic --undo`` returns to).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.orm import Session

from flowship.store.tables import UTCDateTime, metadata

deployment_revisions = Table(
    "deployment_revisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, index=True),
    Column("revision", Integer, nullable=False),
    Column("spec", JSON, nullable=False),
    # apply | traffic | undo | delete
    Column("action", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("reason", Text, nullable=True),
    UniqueConstraint("name", "revision", name="uq_deployment_revisions_name_revision"),
)


@dataclass(frozen=True)
class RevisionRow:
    name: str
    revision: int
    spec: dict[str, Any]
    action: str
    actor: str
    at: datetime
    reason: str | None


_COLUMNS = ("name", "revision", "spec", "action", "actor", "at", "reason")


def insert(session: Session, row: RevisionRow) -> None:
    session.execute(deployment_revisions.insert().values(**{c: getattr(row, c) for c in _COLUMNS}))


def latest(session: Session, name: str) -> RevisionRow | None:
    t = deployment_revisions
    query = select(t).where(t.c.name == name).order_by(t.c.revision.desc()).limit(1)
    found = session.execute(query).mappings().first()
    return RevisionRow(**{c: found[c] for c in _COLUMNS}) if found else None


def latest_number(session: Session, name: str) -> int | None:
    """The newest revision number alone: what a server polls."""
    t = deployment_revisions
    return session.execute(select(func.max(t.c.revision)).where(t.c.name == name)).scalar()


def history(session: Session, name: str) -> list[RevisionRow]:
    t = deployment_revisions
    query = select(t).where(t.c.name == name).order_by(t.c.revision)
    return [RevisionRow(**{c: r[c] for c in _COLUMNS}) for r in session.execute(query).mappings()]


def newest_of_each(session: Session) -> list[RevisionRow]:
    t = deployment_revisions
    newest = (
        select(t.c.name, func.max(t.c.revision).label("revision")).group_by(t.c.name).subquery()
    )
    query = (
        select(t)
        .join(newest, (t.c.name == newest.c.name) & (t.c.revision == newest.c.revision))
        .order_by(t.c.name)
    )
    return [RevisionRow(**{c: r[c] for c in _COLUMNS}) for r in session.execute(query).mappings()]
