"""Reviewing promotion requests: list, approve, reject.

Each runs as the verified user (``identity.verified``) inside the model's lock, so two
approvals arriving at once are counted one after the other. The approval that reaches
the required number moves the version, as the approving user and through the same
compare-and-swap as ``promote``: if the stage's holder (or the version's own stage)
changed since the request, the request is closed as stale and nothing moves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flowship.errors import ConcurrentChange, FlowshipError, IllegalTransition, UsageError
from flowship.registry import identity
from flowship.registry._state import check_name
from flowship.registry.promote import Transition, apply_transition, check_reason
from flowship.registry.requests import (
    APPROVE,
    REJECT,
    STALE,
    RequestNotFound,
    announce_event,
    check_request_id,
    check_signer,
    expire_due,
    record,
    request_event,
    signed_gates,
    staleness,
    still_pending,
    write_tag,
)
from flowship.registry.sync import locked
from flowship.store import db
from flowship.store import requests as store
from flowship.store.requests import PENDING, STATES, PromotionRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """What an approval or rejection did: the request as it is now, and the
    promotion when this approval was the last one needed."""

    request: PromotionRequest
    transition: Transition | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": self.request.to_dict(),
            "promoted": self.transition is not None,
            "transition": self.transition.to_dict() if self.transition else None,
        }


def list_requests(name: str | None = None, *, state: str = PENDING) -> list[PromotionRequest]:
    """Requests in ``state`` (``pending``, ``approved``, ..., or ``all``), oldest
    first; requests whose time ran out are closed as expired first."""
    if name is not None:
        check_name(name)
    wanted = STATES if state == "all" else (state,)
    if state != "all" and state not in STATES:
        raise UsageError(
            f"Unknown request state {state!r}.", "Use one of: all, " + ", ".join(STATES)
        )
    with db.transaction() as session:
        waiting = {r.model for r in store.find(session, model=name)}
    for model in sorted(waiting):  # each model's history is written under its lock
        with db.transaction() as session:
            db.lock(session, f"model:{model}")
            expire_due(session, model)
    with db.transaction() as session:
        return store.find(session, model=name, states=wanted)


def approve(request_id: int | str, *, comment: str | None = None) -> Decision:
    """Approve a pending request as the verified user; the last approval needed moves
    the version (as this user: MLflow's permissions apply)."""
    return _sign(request_id, comment, approving=True)


def reject(request_id: int | str, *, comment: str) -> Decision:
    """Reject a pending request (its requester may withdraw it the same way)."""
    if not comment or not comment.strip():
        raise UsageError("A rejection needs a comment.", "Add --comment 'what must change'.")
    return _sign(request_id, comment, approving=False)


def _sign(request_id: int | str, comment: str | None, *, approving: bool) -> Decision:
    rid = check_request_id(request_id)
    comment = check_reason(comment, force=False)
    who = identity.verified()
    with db.transaction() as session:
        found = store.get(session, rid)
    if found is None:
        raise RequestNotFound(rid)
    refusal: FlowshipError | None = None
    transition = None
    with locked(found.model) as state:
        completes = False
        with db.transaction() as session:
            req = store.get(session, rid)
            assert req is not None  # requests are never deleted
            why_not = still_pending(session, req)
            if why_not is not None:
                refusal = IllegalTransition(why_not, f"See it with: flowship requests {req.model}")
            else:
                check_signer(req, who, rejecting=not approving)
                stale = None
                if approving:  # a rejection closes the request whatever moved meanwhile
                    holder, stage_now = state.holder(req.to_stage), state.stages.get(req.version)
                    stale = staleness(req, holder, stage_now)
                if stale is not None:
                    store.close(session, rid, store.STALE, who.name, stale)
                    record(session, req, STALE, who.name, stale)
                    refusal = ConcurrentChange(
                        f"Request #{rid} is stale: {stale}. Nothing was changed.",
                        f"Request it again: flowship promote {req.model} {req.version} "
                        f"--to {req.to_stage.lower()}",
                    )
                elif approving:
                    completes = _approve(session, req, who.name, comment)
                else:
                    _reject(session, req, who.name, comment)
        if completes:
            # The move writes its own history first (no transaction may be open).
            transition = _complete(state, req, who.name, comment)
        with db.transaction() as session:
            updated = store.get(session, rid)
    if refusal is not None:
        raise refusal
    assert updated is not None
    return Decision(updated, transition)


def _note(req: PromotionRequest, who: str, comment: str | None) -> tuple[list[str], str, str]:
    approvers = [a.approver for a in req.approvals] + [who]
    count = f"{len(approvers)} of {int(req.policy['required'])}"
    return approvers, count, f"approved ({count})" + (f": {comment}" if comment else "")


def _approve(session, req: PromotionRequest, who: str, comment: str | None) -> bool:
    """Record this approval; True when it is the last one needed: ``_complete`` then
    records it with the change it makes, so a change that fails leaves no approval."""
    approvers, count, note = _note(req, who, comment)
    if len(approvers) >= int(req.policy["required"]):
        return True
    # Not the last one: the MLflow tag is this user's write, so MLflow's permissions
    # decide whether they may sign off at all.
    write_tag(req, f"pending: approved by {', '.join(approvers)} ({count})")
    store.add_approval(session, req.id, who, comment)
    record(session, req, APPROVE, who, note)
    return False


def _complete(state, req: PromotionRequest, who: str, comment: str | None) -> Transition:
    approvers, _count, note = _note(req, who, comment)
    text = f"approved request #{req.id} (asked by {req.requester}; approved by "
    text += ", ".join(approvers) + ")" + (f": {req.reason}" if req.reason else "")
    stage = state.stages.get(req.version, req.from_stage)
    transition = apply_transition(
        state,
        req.version,
        req.to_stage,
        action="promote",
        reason=text,
        forced=False,
        results=signed_gates(req, approvers),
        archive_previous=bool(req.policy.get("archive_previous", True)),
        actor_name=who,
        preface=[request_event(req, stage, APPROVE, who, note)],
    )
    try:
        write_tag(req, f"approved by {', '.join(approvers)}")
    except FlowshipError as exc:  # the promotion is done; the tag only repeats it
        log.warning("Could not tag %s version %s: %s", req.model, req.version, exc)
    with db.transaction() as session:
        store.add_approval(session, req.id, who, comment)
        announce_event(session, req, APPROVE, who, note)
        store.close(session, req.id, store.APPROVED, who, comment)
        # Other requests for this stage were made against the holder that just left.
        for other in store.find(session, model=req.model):
            if other.to_stage == req.to_stage and other.id != req.id:
                why = f"{req.to_stage} changed to version {req.version} by request #{req.id}"
                store.close(session, other.id, STALE, who, why)
                record(session, other, STALE, who, why)
    return transition


def _reject(session, req: PromotionRequest, who: str, comment: str | None) -> None:
    if who != req.requester:
        write_tag(req, f"rejected by {who}")
    store.close(session, req.id, store.REJECTED, who, comment)
    verb = "withdrawn by the requester" if who == req.requester else "rejected"
    record(session, req, REJECT, who, f"{verb}: {comment}")
