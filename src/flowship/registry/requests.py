"""Sign-off: a promotion that needs approvals becomes a request.

``promote`` calls ``open_request`` instead of moving the version when flowship.toml
asks for approvals (the gates have passed; their results are kept as evidence).
``review.approve`` / ``review.reject`` close requests; this module holds the rules
they share: who may sign off, when a request has expired or gone stale, the version
tag that records each sign-off in MLflow, and the events and webhook messages.

Every request event is a row of the lifecycle history whose ``from_stage`` and
``to_stage`` are both the version's stage at that moment, so reading the history for
stages (``stage_at``, rollback) passes over them.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from flowship._mlflow import client as mlflow_client
from flowship._mlflow import mlflow_errors
from flowship.errors import IllegalTransition, NotFound, PermissionDenied, UsageError
from flowship.registry.gate_config import Approval
from flowship.registry.gates import SIGNOFF_ITEM, GateResult
from flowship.registry.identity import Identity
from flowship.store import events
from flowship.store import requests as store
from flowship.store.events import Event
from flowship.store.requests import PENDING, PromotionRequest
from flowship.store.tables import utcnow

log = logging.getLogger(__name__)

#: ``action`` of the history rows a request writes (the promotion itself is ``promote``).
REQUEST, APPROVE, REJECT, EXPIRE, STALE = "request", "approve", "reject", "expire", "stale"
REQUEST_ACTIONS = (REQUEST, APPROVE, REJECT, EXPIRE, STALE)
#: The actor of events nobody caused (a request that ran out of time).
SYSTEM_ACTOR = "flowship"
#: MLflow version tag prefix: each sign-off is also written to MLflow, with the
#: signer's credentials, so MLflow's permissions decide who may sign off.
TAG_PREFIX = "flowship.request."


class RequestNotFound(NotFound):
    def __init__(self, request_id: object) -> None:
        super().__init__(
            f"There is no promotion request #{request_id}.",
            "List pending requests with: flowship requests",
        )


def check_request_id(value: object) -> int:
    text = str(value).strip().lstrip("#")
    if not text.isdigit() or len(text) > 12:
        raise UsageError(
            f"A request id is a number, not {str(value)[:40]!r}.",
            "List pending requests with: flowship requests",
        )
    return int(text)


def check_force(approval: Approval, who: Identity, model: str, stage: str) -> None:
    """With approvals configured, only an admin may bypass them (and the gates)."""
    if who.name not in approval.admins:
        admins = ", ".join(approval.admins) or "nobody (no admins are configured)"
        raise PermissionDenied(
            f"{model} needs {approval.required} approval(s) for {stage}; only its admins "
            f"may force a promotion ({admins}), and {who.name} is not one. Nothing was changed.",
            f"Request it instead: flowship promote {model} VERSION --to {stage.lower()}",
        )


def check_rollback(approval: Approval, model: str, target: str, history: list[Event]) -> None:
    """With approvals for Production, ``rollback --to`` may only put back a version
    that held Production before (it was signed off then); anything else is a request."""
    if not any(ev.version == target and ev.to_stage != ev.from_stage and
               ev.to_stage == "Production" for ev in history):  # fmt: skip
        raise PermissionDenied(
            f"{model} version {target} was never in Production, and {model} needs "
            f"{approval.required} approval(s) for Production: rollback cannot put it there.",
            f"Request it: flowship promote {model} {target} --to production",
        )


def open_request(
    session: Session,
    *,
    model: str,
    version: str,
    from_stage: str,
    to_stage: str,
    holder: str | None,
    results: list[GateResult],
    approval: Approval,
    requester: Identity,
    reason: str | None,
    archive_previous: bool,
) -> PromotionRequest:
    """Record a request (inside the model's lock, after the gates passed)."""
    expire_due(session, model)  # an expired request must not block a new one
    for pending in store.find(session, model=model):
        if pending.version == version and pending.to_stage == to_stage:
            raise IllegalTransition(
                f"{model} version {version} already waits for approval to {to_stage} "
                f"as request #{pending.id}.",
                f"See it with: flowship requests {model}",
            )
    others = [a for a in approval.approvers if a != requester.name]
    if approval.approvers and len(others) < approval.required:
        raise PermissionDenied(
            f"{model} needs {approval.required} approval(s) for {to_stage} from "
            f"{', '.join(approval.approvers)}; without the requester {requester.name} "
            "that cannot be met.",
            "Ask another listed approver to request it, or list more approvers.",
        )
    now = utcnow()
    policy = {**approval.to_dict(), "archive_previous": archive_previous}
    req = store.insert(
        session,
        model=model,
        version=version,
        from_stage=from_stage,
        to_stage=to_stage,
        base_version=holder,
        requester=requester.name,
        requested_at=now,
        expires_at=now + timedelta(days=approval.expiry_days),
        reason=reason,
        gates=[r.to_dict() for r in results] or None,
        policy=policy,
    )
    who = f"from {', '.join(others)}" if approval.approvers else "from anyone but the requester"
    record(
        session,
        req,
        REQUEST,
        requester.name,
        f"asks to move it {from_stage} -> {to_stage}; needs {approval.required} approval(s) "
        f"{who}" + (f": {reason}" if reason else ""),
        gates=req.gates,
    )
    return req


def check_signer(req: PromotionRequest, who: Identity, *, rejecting: bool = False) -> None:
    """Separation of duties: not the requester (who may only withdraw their own
    request), once per person, and only listed approvers when there is a list."""
    approval = Approval.from_dict(req.policy)
    if who.name == req.requester and not rejecting:
        raise PermissionDenied(
            f"{who.name} made request #{req.id} and cannot approve it.",
            "Someone else must approve it: separation of duties.",
        )
    if who.name == req.requester:
        return
    if approval.approvers and who.name not in approval.approvers + approval.admins:
        raise PermissionDenied(
            f"{who.name} is not an approver of {req.model} for {req.to_stage} "
            f"(approvers: {', '.join(approval.approvers)}).",
            "Ask one of them, or have the list in flowship.toml changed.",
        )
    if not rejecting and any(a.approver == who.name for a in req.approvals):
        raise PermissionDenied(
            f"{who.name} has already approved request #{req.id}; one person counts once.",
            f"It needs {approval.required - len(req.approvals)} more approval(s) from others.",
        )


def still_pending(session: Session, req: PromotionRequest) -> str | None:
    """None while ``req`` may still be signed; else why not, after closing it as
    expired when its time ran out."""
    if req.state != PENDING:
        by = f" by {req.closed_by}" if req.closed_by else ""
        return f"Request #{req.id} is already {req.state}{by}; nothing was changed."
    if req.expires_at <= utcnow():
        expire(session, req)
        return f"Request #{req.id} expired at {req.expires_at.isoformat()}; nothing was changed."
    return None


def staleness(req: PromotionRequest, holder: str | None, stage_now: str | None) -> str | None:
    """Why a request can no longer be applied as asked (compare-and-swap), or None."""
    if holder != req.base_version:
        return (
            f"{req.to_stage} of {req.model} is now version {holder or 'none'}, not "
            f"{req.base_version or 'none'} as when request #{req.id} was made"
        )
    if stage_now != req.from_stage:
        return (
            f"{req.model} version {req.version} is now in {stage_now or 'no stage (deleted)'}, "
            f"not {req.from_stage} as when request #{req.id} was made"
        )
    return None


def expire_due(session: Session, model: str | None = None) -> list[PromotionRequest]:
    """Close every pending request whose time ran out (each with its event)."""
    now = utcnow()
    due = [r for r in store.find(session, model=model) if r.expires_at <= now]
    for req in due:
        expire(session, req)
    return due


def expire(session: Session, req: PromotionRequest) -> None:
    if store.close(session, req.id, store.EXPIRED, SYSTEM_ACTOR, "no sign-off in time"):
        days = req.policy.get("expiry_days", 7)
        record(session, req, EXPIRE, SYSTEM_ACTOR, f"not approved within {days:g} day(s)")


def record(
    session: Session,
    req: PromotionRequest,
    action: str,
    actor: str,
    text: str,
    *,
    gates: list[dict] | None = None,
) -> None:
    """One history row for a request event, and its webhook message once committed."""
    stage = events.current_stages(session, req.model).get(req.version, req.from_stage)
    events.record(session, [request_event(req, stage, action, actor, text, gates=gates)])
    announce_event(session, req, action, actor, text)


def request_event(
    req: PromotionRequest,
    stage: str,
    action: str,
    actor: str,
    text: str,
    *,
    gates: list[dict] | None = None,
) -> Event:
    """The history row of a request event (``stage``: the version's stage then)."""
    return Event(
        model=req.model,
        version=req.version,
        from_stage=stage,
        to_stage=stage,
        action=action,
        actor=actor,
        reason=f"request #{req.id}: {text}",
        gates=gates,
    )


def announce_event(
    session: Session, req: PromotionRequest, action: str, actor: str, text: str
) -> None:
    """Send the request event's webhook message once ``session`` commits."""
    message = (
        f"flowship: {req.model} version {req.version} -> {req.to_stage}, request #{req.id} "
        f"({action} by {actor}): {text}"
    )
    announce_after_commit(session, message, req.policy.get("webhook"))


def announce_after_commit(session: Session, message: str, webhook: str | None) -> None:
    """Tell the webhook once the transaction commits (never for a change undone)."""

    def send(_session: Session) -> None:
        from flowship.monitoring.alerts import announce

        announce(message, webhook=webhook)

    sa_event.listen(session, "after_commit", send, once=True)


def write_tag(req: PromotionRequest, text: str) -> None:
    """Record a sign-off on the version in MLflow, with the signer's credentials: a
    user MLflow does not let change the model cannot sign off."""
    with mlflow_errors(model=req.model, version=req.version):
        mlflow_client().set_model_version_tag(
            req.model, req.version, f"{TAG_PREFIX}{req.id}", text[:5000]
        )


def signed_gates(req: PromotionRequest, approvers: list[str]) -> list[GateResult]:
    """The request's gate evidence, with the sign-off item now satisfied."""
    results = []
    for g in req.gates or []:
        result = GateResult(**g)
        if result.name == f"checklist: {SIGNOFF_ITEM}":
            result = GateResult(
                result.name, True, "approved", "done", "approved by " + ", ".join(approvers)
            )
        results.append(result)
    return results
