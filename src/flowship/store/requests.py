"""Promotion requests waiting for sign-off, and the approvals they collect.

A request row is written once and then closed once (``state`` leaves ``pending``);
approvals are only appended, one per person and request (a unique key, so two racing
approvals of one person cannot both count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.orm import Session

from flowship.store.tables import UTCDateTime, metadata, utcnow

PENDING, APPROVED, REJECTED, EXPIRED, STALE = "pending", "approved", "rejected", "expired", "stale"
STATES = (PENDING, APPROVED, REJECTED, EXPIRED, STALE)

promotion_requests = Table(
    "promotion_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(256), nullable=False, index=True),
    Column("version", String(32), nullable=False),
    Column("from_stage", String(16), nullable=False),
    Column("to_stage", String(16), nullable=False),
    # Who held ``to_stage`` when the request was made: the compare-and-swap expectation.
    Column("base_version", String(32), nullable=True),
    Column("requester", String(128), nullable=False),
    Column("requested_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("reason", Text, nullable=True),
    Column("gates", JSON, nullable=True),
    Column("policy", JSON, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("closed_at", UTCDateTime(), nullable=True),
    Column("closed_by", String(128), nullable=True),
    Column("close_reason", Text, nullable=True),
)

promotion_approvals = Table(
    "promotion_approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Integer, ForeignKey("promotion_requests.id"), nullable=False),
    Column("approver", String(128), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("comment", Text, nullable=True),
    UniqueConstraint("request_id", "approver"),
)


@dataclass(frozen=True)
class ApprovalRecord:
    approver: str
    at: datetime
    comment: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"approver": self.approver, "at": self.at.isoformat(), "comment": self.comment}


@dataclass(frozen=True)
class PromotionRequest:
    id: int
    model: str
    version: str
    from_stage: str
    to_stage: str
    base_version: str | None
    requester: str
    requested_at: datetime
    expires_at: datetime
    reason: str | None
    gates: list[dict[str, Any]] | None
    policy: dict[str, Any]
    state: str
    closed_at: datetime | None = None
    closed_by: str | None = None
    close_reason: str | None = None
    approvals: list[ApprovalRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        policy = {k: v for k, v in self.policy.items() if k != "webhook"}  # holds a secret
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "from_stage": self.from_stage,
            "to_stage": self.to_stage,
            "base_version": self.base_version,
            "requester": self.requester,
            "requested_at": self.requested_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "reason": self.reason,
            "gates": self.gates or [],
            "policy": policy,
            "state": self.state,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "closed_by": self.closed_by,
            "close_reason": self.close_reason,
            "approvals": [a.to_dict() for a in self.approvals],
        }


_COLUMNS = [c.name for c in promotion_requests.columns]


def insert(session: Session, **values: Any) -> PromotionRequest:
    values = {**values, "state": PENDING}
    new_id = session.execute(promotion_requests.insert().values(**values)).inserted_primary_key[0]
    return get(session, int(new_id))  # type: ignore[return-value]


def get(session: Session, request_id: int) -> PromotionRequest | None:
    row = (
        session.execute(select(promotion_requests).where(promotion_requests.c.id == request_id))
        .mappings()
        .first()
    )
    return _request(session, row) if row is not None else None


def find(
    session: Session,
    *,
    model: str | None = None,
    states: tuple[str, ...] = (PENDING,),
    limit: int = 500,
) -> list[PromotionRequest]:
    """Requests in ``states``, the newest ``limit`` of them, oldest first."""
    t = promotion_requests
    query = select(t).where(t.c.state.in_(states)).order_by(t.c.id.desc()).limit(limit)
    if model is not None:
        query = query.where(t.c.model == model)
    return [_request(session, row) for row in session.execute(query).mappings()][::-1]


def add_approval(session: Session, request_id: int, approver: str, comment: str | None) -> None:
    session.execute(
        promotion_approvals.insert().values(
            request_id=request_id, approver=approver, at=utcnow(), comment=comment
        )
    )


def close(session: Session, request_id: int, state: str, by: str, reason: str | None) -> bool:
    """Move a pending request to ``state``; False if it was no longer pending."""
    t = promotion_requests
    done = session.execute(
        update(t)
        .where(t.c.id == request_id, t.c.state == PENDING)
        .values(state=state, closed_at=utcnow(), closed_by=by, close_reason=reason)
    )
    return done.rowcount == 1


def _request(session: Session, row) -> PromotionRequest:
    a = promotion_approvals
    approvals = [
        ApprovalRecord(r.approver, r.at, r.comment)
        for r in session.execute(select(a).where(a.c.request_id == row["id"]).order_by(a.c.id))
    ]
    return PromotionRequest(**{k: row[k] for k in _COLUMNS}, approvals=approvals)
