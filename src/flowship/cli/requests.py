"""Sign-off commands: requests, approve, reject.

Each runs as the user the MLflow server authenticates (locally: the OS user); no
option names another user.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from flowship.cli._app import app
from flowship.cli._render import print_json, print_table, say
from flowship.cli.lifecycle import JsonOption, age, say_transition

CommentOption = Annotated[
    str | None, typer.Option("--comment", "-m", help="Why; recorded in the history.")
]


def _gates(gates: list[dict[str, Any]] | None) -> str:
    if not gates:
        return ""
    return f"{sum(1 for g in gates if g.get('passed'))}/{len(gates)} passed"


def _expires(when: datetime) -> str:
    now = datetime.now(UTC)
    left = when - now
    return "expired" if left.total_seconds() <= 0 else "in " + age(now - left, now)


def say_request(req: Any) -> None:
    """What a promotion request is waiting for, and how to approve it."""
    need = int(req.policy["required"]) - len(req.approvals)
    approvers = req.policy.get("approvers") or []
    by = f" from {', '.join(a for a in approvers if a != req.requester)}" if approvers else ""
    say(
        f"Requested {req.model} version {req.version}: {req.from_stage} -> {req.to_stage} as "
        f"request #{req.id} by {req.requester}; it needs {need} more approval(s){by}."
    )
    say(f"Approve with: flowship approve {req.id}   (or: flowship reject {req.id} --comment ...)")


@app.command("requests")
def requests_(
    name: Annotated[str | None, typer.Argument(help="Only this model's requests.")] = None,
    state: Annotated[
        str, typer.Option(help="pending, approved, rejected, expired, stale or all.")
    ] = "pending",
    as_json: JsonOption = False,
) -> None:
    """List promotion requests waiting for approval (or, with --state, closed ones)."""
    from flowship.registry import list_requests

    found = list_requests(name, state=state)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    if not found:
        say(f"No {state if state != 'all' else ''} promotion requests.".replace("  ", " "))
        return
    print_table(
        None,
        ["#", "model", "version", "change", "requester", "approvals", "gates", "age", "state"],
        [
            (
                r.id,
                r.model,
                r.version,
                f"{r.from_stage} -> {r.to_stage}",
                r.requester,
                f"{len(r.approvals)}/{r.policy['required']}"
                + (f" ({', '.join(a.approver for a in r.approvals)})" if r.approvals else ""),
                _gates(r.gates),
                age(r.requested_at),
                r.state if r.state != "pending" else f"pending, expires {_expires(r.expires_at)}",
            )
            for r in found
        ],
    )


@app.command()
def approve(
    request: Annotated[str, typer.Argument(help="Request number (see: flowship requests).")],
    comment: CommentOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a promotion request; the last approval needed promotes the version."""
    from flowship.registry import approve as approve_request

    done = approve_request(request, comment=comment)
    if as_json:
        print_json(done.to_dict())
        return
    if done.transition is not None:
        say(f"Approved request #{done.request.id}, the last approval it needed.")
        say_transition(done.transition, "Promoted")
        return
    req = done.request
    need = int(req.policy["required"]) - len(req.approvals)
    say(
        f"Approved request #{req.id} ({len(req.approvals)} of {req.policy['required']}); "
        f"it needs {need} more approval(s) from others."
    )


@app.command()
def reject(
    request: Annotated[str, typer.Argument(help="Request number (see: flowship requests).")],
    comment: Annotated[
        str, typer.Option("--comment", "-m", help="What must change; recorded in the history.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Reject a promotion request (its requester may withdraw it the same way)."""
    from flowship.registry import reject as reject_request

    done = reject_request(request, comment=comment)
    if as_json:
        print_json(done.to_dict())
        return
    say(
        f"Rejected request #{done.request.id}: {done.request.model} version "
        f"{done.request.version} stays in {done.request.from_stage}."
    )
