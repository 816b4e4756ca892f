"""Progressive rollout: the desired progression is a row in the database; a controller
(``tick``, once or in a loop) reads the prediction log and acts.

Each action is a new deployment revision (``deployments.set_traffic``, with the guardrail
values that allowed it in its reason) and its rollout record, written in one transaction
and only if neither the rollout row (its ``version``) nor the deployment changed since
the evaluation read them: an abort or a pause that lands while an evaluation is in
flight wins, and the evaluation writes nothing (``_act``). A deployment changed by hand,
or one step ahead of the record (written by an older controller), is reconciled on the
next evaluation (``_reconcile``), so no step is skipped or repeated. Two controllers on
one deployment: a lease in the database (one compare-and-swap UPDATE) lets one act while
the other waits.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flowship.errors import (
    ConcurrentChange,
    FlowshipError,
    GateFailed,
    IllegalTransition,
    UsageError,
)
from flowship.rollout.plan import Guardrail, guardrails, parse_bake, parse_steps
from flowship.store import db
from flowship.store import rollouts as store

log = logging.getLogger(__name__)
LEASE_SECONDS = 60.0


def owner_id() -> str:
    """Who holds a lease: host, process and a random part (two controllers in one process
    are still two)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def start(
    deployment: str,
    *,
    candidate: str,
    steps: str,
    bake: str,
    guardrail: list[str] | None = None,
    min_requests: int = 100,
    champion: str | None = None,
    webhook: str | None = None,
    reason: str | None = None,
    metrics_url: list[str] | None = None,
) -> dict[str, Any]:
    """Record a rollout and send the first step's traffic to ``candidate``.
    ``metrics_url``: the deployment's servers' /metrics, read by the ``server_*``
    guardrails."""
    from flowship.deployments import current, set_traffic
    from flowship.monitoring.alerts import check_webhook
    from flowship.rollout.servers import check_urls

    plan_steps = parse_steps(steps)
    bake_seconds = parse_bake(bake)
    urls = check_urls(metrics_url)
    rails = guardrails(guardrail, servers=bool(urls))
    webhook = check_webhook(webhook)
    if not 1 <= min_requests <= 10_000_000:
        raise UsageError(f"--min-requests {min_requests} is out of range.", "Use 1 to 10000000.")
    revision = current(deployment)
    spec = revision.spec
    primaries = spec.weights
    if candidate not in spec.variants:
        raise UsageError(
            f"Deployment {deployment!r} has no variant {candidate!r}.",
            f"Its variants: {', '.join(spec.variants)}.",
        )
    if candidate not in primaries:
        raise UsageError(
            f"Variant {candidate!r} of {deployment!r} is a shadow: it never answers.",
            "Roll out a primary variant (drop shadow: true in the deployment file).",
        )
    others = [v for v in primaries if v != candidate]
    champion = champion or (max(others, key=lambda v: primaries[v]) if others else None)
    if champion is None or champion not in primaries or champion == candidate:
        raise UsageError(
            f"Deployment {deployment!r} needs a champion variant besides {candidate!r}.",
            "Add one to the deployment file, or name it with --champion VARIANT.",
        )
    busy = [v for v in others if v != champion and primaries[v] > 0]
    if busy:
        raise UsageError(
            f"Variant(s) {', '.join(busy)} of {deployment!r} still take traffic.",
            f"Set them to 0 first: flowship traffic {deployment} {busy[0]}=0 ...",
        )
    first = plan_steps[0]
    text = reason or f"rollout of {candidate}: step 1/{len(plan_steps)}, {first:g}%"
    baseline = _baseline(urls, deployment, None, champion)
    now = _now()
    with db.transaction() as session:
        db.lock(session, f"rollout:{deployment}")
        running = store.active(session, deployment)
        if running is not None:
            raise UsageError(
                f"Deployment {deployment!r} already has a {running.state} rollout of "
                f"{running.candidate}.",
                f"See it with: flowship rollout status {deployment}; end it with "
                f"flowship rollout abort {deployment}.",
            )
        changed = set_traffic(
            deployment,
            {candidate: first, champion: 100 - first},
            reason=text,
            expect_revision=revision.revision,
            session=session,
        )
        rollout_id = store.insert(
            session,
            {
                "deployment": deployment,
                "candidate": candidate,
                "champion": champion,
                "steps": plan_steps,
                "step": 0,
                "state": "running",
                "bake_seconds": bake_seconds,
                "min_requests": min_requests,
                "guardrails": [g.to_dict() for g in rails],
                "webhook": webhook,
                "revision": changed.revision,
                "step_started_at": now,
                "reason": text,
                "metrics_urls": urls or None,
                "metrics_baseline": baseline,
            },
        )
        _event(session, rollout_id, "start", 0, first, changed.revision, None, text, now)
    return status(deployment)


def status(deployment: str) -> dict[str, Any]:
    """The newest rollout of ``deployment`` with its events."""
    with db.transaction() as session:
        row = store.latest(session, deployment)
        if row is None:
            raise UsageError(
                f"Deployment {deployment!r} has no rollout.",
                f"Start one: flowship rollout start {deployment} --candidate VARIANT "
                "--steps 10,25,50,100 --bake 30m",
            )
        events = store.events(session, row.id)
    return _view(row, events)


def pause(deployment: str, *, reason: str | None = None) -> dict[str, Any]:
    return _set_state(deployment, "pause", "running", "paused", reason)


def resume(deployment: str, *, reason: str | None = None) -> dict[str, Any]:
    """Running again; the current step's bake starts over (a paused step proved nothing)."""
    return _set_state(deployment, "resume", "paused", "running", reason)


def abort(deployment: str, *, reason: str | None = None) -> dict[str, Any]:
    """Stop the rollout and send all traffic back to the champion (in one transaction,
    so an evaluation in flight cannot undo it: it finds the row changed)."""
    from flowship.deployments import set_traffic

    text = reason or "aborted by the operator"
    with db.transaction() as session:
        db.lock(session, f"rollout:{deployment}")
        row = _active(session, deployment)
        revision = set_traffic(
            deployment,
            {row.candidate: 0.0, row.champion: 100.0},
            reason=f"rollout of {row.candidate} aborted: {text}"[:2000],
            session=session,
        ).revision
        store.change(session, row.id, state="aborted", revision=revision, reason=text)
        _event(session, row.id, "abort", row.step, 0.0, revision, None, text, _now())
    return status(deployment)


def tick(
    deployment: str,
    *,
    owner: str,
    now: datetime | None = None,
    lease_seconds: float = LEASE_SECONDS,
) -> dict[str, Any]:
    """Evaluate once and act: wait, take the next step, roll back, or promote. Returns
    what was done (``action``) and why."""
    now = now or _now()
    with db.transaction() as session:
        row = store.active(session, deployment)
        if row is None:
            return {"action": "none", "reason": f"no active rollout of {deployment!r}"}
        if not store.take_lease(session, row.id, owner, lease_seconds):
            return {"action": "standby", "reason": f"another controller ({row.lease_owner}) acts"}
    if row.state == "paused":
        return {"action": "paused", "reason": row.reason}
    row = _reconcile(row, now)
    if row.state != "running":
        return {"action": row.state, "reason": row.reason}
    return _evaluate(row, now)


def run(
    deployment: str,
    *,
    interval: float = 30.0,
    once: bool = False,
    owner: str | None = None,
    lease_seconds: float | None = None,
    on_tick: Any = None,
) -> dict[str, Any]:
    """``tick`` every ``interval`` seconds until the rollout ends (or once). Holds the
    lease (default: the longer of a minute and three intervals) while alive; a controller
    killed is replaced by the next one once its lease expires."""
    owner = owner or owner_id()
    lease = lease_seconds or max(LEASE_SECONDS, 3 * interval)
    while True:
        result = tick(deployment, owner=owner, lease_seconds=lease)
        if on_tick is not None:
            on_tick(result)
        if once or result["action"] in ("none", "completed", "rolled_back", "aborted"):
            if result["action"] != "standby":
                _release(deployment, owner)
            return result
        time.sleep(interval)


# ---------------------------------------------------------------- the steps


def _evaluate(row: store.RolloutRow, now: datetime) -> dict[str, Any]:
    from flowship.deployments import current
    from flowship.rollout.measure import log_uri, measure

    spec = current(row.deployment).spec
    uri = log_uri(spec)
    rails = [Guardrail(**g) for g in row.guardrails]
    if uri is None:
        return _wait(row, "the deployment writes no prediction log: add log: to its file", [])
    row, servers = _servers(row)
    m = measure(
        uri,
        row.deployment,
        candidate=row.candidate,
        champion=row.champion,
        since=row.step_started_at,
        until=now,
        guardrails=rails,
        min_requests=row.min_requests,
        champion_window=_champion_window(row),
        shadows=_shadows_of(spec, row.candidate),
        servers=servers,
    )
    values = m.results
    if m.breached:
        return _rollback(row, values, now)
    baked = (now - row.step_started_at).total_seconds() >= row.bake_seconds
    if m.waiting:
        whys = list(dict.fromkeys(r["why"] for r in m.waiting))
        return _wait(row, "not enough data yet: " + "; ".join(whys), values)
    if not baked:
        left = row.bake_seconds - (now - row.step_started_at).total_seconds()
        return _wait(row, f"guardrails pass; baking {left:.0f}s more", values)
    if row.step + 1 < len(row.steps):
        return _advance(row, values, now)
    return _finish(row, values, now)


def _shadows_of(spec: Any, candidate: str) -> list[str]:
    """Shadow variants that run the candidate's model: their answers, paired with the
    champion's, are the ``shadow_agreement`` guardrail."""
    model = spec.uri_of(candidate)
    return [name for name in spec.shadows if spec.uri_of(name) == model]


def _servers(row: store.RolloutRow) -> tuple[store.RolloutRow, Any]:
    """The servers' counts since the step began (a ``servers.Window``), or why there are
    none; None when the rollout names no servers. A server not read when the step began
    is read now, and counted from now on."""
    from flowship.rollout import servers as srv

    if not row.metrics_urls:
        return row, None
    got = srv.scrape(row.metrics_urls, row.deployment)
    base = dict(row.metrics_baseline or {})
    counters = dict(base.get("counters") or {})
    late = [u for u in got.counters if u not in counters]
    if late:
        counters.update({u: got.counters[u] for u in late})
        base["counters"] = counters
        with db.transaction() as session:
            if store.change(session, row.id, expect_version=row.version, metrics_baseline=base):
                row = dataclasses.replace(row, version=row.version + 1, metrics_baseline=base)
    problems = [f"cannot read {u} ({why})" for u, why in got.failed.items()]
    problems += [f"{u} was not read when the step began (counted from now on)" for u in late]
    if problems:
        return row, "; ".join(problems)
    totals = srv.deltas(counters, got.counters)
    if row.steps[row.step] >= 100:  # the champion answers nothing now: its last window
        before = base.get("champion_before")
        if not before:
            return row, "the servers' /metrics hold no window of the champion before 100%"
        totals[row.champion] = before
    return row, srv.to_window(totals)


def _baseline(
    urls: list[str] | None, deployment: str, old: dict[str, Any] | None, champion: str
) -> dict[str, Any] | None:
    """The servers' counters as a step begins; the champion's counts over the step that
    ends (the baseline of a 100% step, where the champion answers nothing)."""
    from flowship.rollout import servers as srv

    if not urls:
        return None
    got = srv.scrape(urls, deployment)
    before = None
    if old and old.get("counters"):
        before = srv.deltas(old["counters"], got.counters).get(champion)
    return {"counters": got.counters, "champion_before": before}


def _champion_window(row: store.RolloutRow) -> tuple[datetime, datetime] | None:
    """At 100% the champion answers nothing: compare with its last window instead (the
    step before; for a one-step rollout, one bake before the start)."""
    if row.steps[row.step] < 100:
        return None
    with db.transaction() as session:
        starts = [e.at for e in store.events(session, row.id) if e.action in ("start", "step")]
    before = [t for t in starts if t < row.step_started_at]
    begin = before[-1] if before else row.step_started_at - timedelta(seconds=row.bake_seconds)
    return begin, row.step_started_at


def _advance(row: store.RolloutRow, values: list, now: datetime) -> dict[str, Any]:
    step = row.step + 1
    weight = row.steps[step]
    text = f"rollout of {row.candidate}: step {step + 1}/{len(row.steps)}, {weight:g}%; " + _shown(
        values
    )
    baseline = _baseline(row.metrics_urls, row.deployment, row.metrics_baseline, row.champion)
    changes: dict[str, Any] = {"step_started_at": now, "reason": text}
    if baseline is not None:
        changes["metrics_baseline"] = baseline
    if not _act(row, "step", weight, values, text, now, step=step, **changes):
        return _changed(row)
    return {
        "action": "step",
        "step": step + 1,
        "weight": weight,
        "reason": text,
        "guardrails": values,
    }


def _rollback(row: store.RolloutRow, values: list, now: datetime) -> dict[str, Any]:
    from flowship.monitoring.alerts import Alert, dispatch

    breached = [v for v in values if v["passed"] is False]
    why = "; ".join(
        f"{b['metric']} {b['value']:.4g} (limit {b['op']} {b['limit']:g})" for b in breached
    )
    text = f"rollback of {row.candidate} at {row.steps[row.step]:g}%: guardrail breached: {why}"
    if not _act(row, "rollback", 0.0, values, text, now, state="rolled_back", reason=text):
        return _changed(row)
    try:
        dispatch(
            f"rollout:{row.deployment}",
            [Alert(f"rollout:{row.deployment}:rollback", text)],
            webhook=row.webhook,
        )
    except FlowshipError as exc:  # the rollback is done; a failed alert must not undo it
        log.error("Rollout alert for %s not sent: %s", row.deployment, exc)
    return {"action": "rolled_back", "reason": text, "guardrails": values}


def _finish(row: store.RolloutRow, values: list, now: datetime) -> dict[str, Any]:
    """The last step baked: promote the candidate's version to Production (through the
    usual gates and history) when the last step was 100%, then the deployment returns to
    its champion alone when the champion follows Production."""
    from flowship.deployments import current

    spec = current(row.deployment).spec
    weight = None
    text = f"rollout of {row.candidate} complete at {row.steps[-1]:g}%"
    if row.steps[-1] >= 100:
        if _version(row) != row.version:  # the promotion cannot be undone: check just before
            return _changed(row)
        promoted = _promote(row, spec, values, now)
        if promoted is not None:
            return promoted
        champion_ref = spec.variants[row.champion].ref.strip().lower()
        if champion_ref in ("@production", "production") or champion_ref.endswith("@production"):
            text = f"rollout of {row.candidate} complete: {row.champion} serves Production again"
            weight = 0.0
    if not _act(row, "complete", weight, values, text, now, state="completed", reason=text):
        return _changed(row)
    return {"action": "completed", "reason": text, "guardrails": values}


def _promote(row, spec, values, now) -> dict[str, Any] | None:
    """None when promoted (or already Production); a paused result when the gates said no."""
    from flowship.predict import resolve_ref
    from flowship.registry import promote

    resolved = resolve_ref(spec.uri_of(row.candidate))
    if resolved.model_name is None or resolved.model_version is None:
        return None  # not a registry version (a run or a directory): nothing to promote
    name, version = resolved.model_name, str(resolved.model_version)
    text = f"rollout of {row.deployment} reached 100% for {row.candidate}; " + _shown(values)
    try:
        promote(name, version, "production", reason=text)
    except GateFailed as failed:
        why = f"promotion of {name} version {version} refused by its gates: {failed.message}"
        if not _act(row, "pause", None, values, why, now, state="paused", reason=why):
            return _changed(row)
        return {"action": "paused", "reason": why}
    except IllegalTransition as exc:  # promoted before a restart: the record catches up
        if "already in production" not in exc.message.lower():
            raise
    with db.transaction() as session:
        _event(session, row.id, "promote", row.step, None, None, values, text, now)
    return None


def _reconcile(row: store.RolloutRow, now: datetime) -> store.RolloutRow:
    """Make the record agree with the deployment after a crash between the two writes
    of an older controller, or a change made by hand: never take a step twice."""
    from flowship.deployments import current

    revision = current(row.deployment)
    if row.revision is None or revision.revision == row.revision:
        return row
    weight = revision.spec.weights.get(row.candidate, 0.0)
    step = row.step + 1
    took_step = step < len(row.steps) and abs(weight - row.steps[step]) < 1e-9
    baseline = None
    if took_step:
        baseline = _baseline(row.metrics_urls, row.deployment, row.metrics_baseline, row.champion)
    with db.transaction() as session:
        db.lock(session, f"rollout:{row.deployment}")
        if store.by_id(session, row.id).version != row.version:
            return store.by_id(session, row.id)  # changed meanwhile: the next tick looks again
        if took_step:
            text = f"step {step + 1} was taken (revision {revision.revision}) before a restart"
            extra = {"metrics_baseline": baseline} if baseline is not None else {}
            store.change(
                session, row.id, step=step, revision=revision.revision, step_started_at=now,
                **extra,
            )  # fmt: skip
            _event(session, row.id, "step", step, weight, revision.revision, None, text, now)
        elif weight == 0:
            text = f"the candidate's weight is 0 (revision {revision.revision}): rolled back"
            store.change(
                session, row.id, state="rolled_back", revision=revision.revision, reason=text
            )
            _event(session, row.id, "rollback", row.step, 0.0, revision.revision, None, text, now)
        else:
            text = (
                f"traffic changed outside the rollout (revision {revision.revision}); paused. "
                f"Resume with: flowship rollout resume {row.deployment}"
            )
            store.change(session, row.id, state="paused", revision=revision.revision, reason=text)
            _event(session, row.id, "pause", row.step, weight, revision.revision, None, text, now)
        return store.by_id(session, row.id)


def _act(
    row: store.RolloutRow,
    action: str,
    weight: float | None,
    values: list | None,
    text: str,
    now: datetime,
    *,
    step: int | None = None,
    **changes: Any,
) -> bool:
    """The candidate at ``weight`` (None: traffic unchanged), the rollout row's
    ``changes`` and the event, in one transaction, and only if the row is at the version
    this evaluation read and the deployment at the revision the rollout recorded
    (compare-and-set). False when either changed meanwhile (an abort, a pause, a hand
    change): nothing was written."""
    from flowship.deployments import set_traffic

    with db.transaction() as session:
        db.lock(session, f"rollout:{row.deployment}")
        if store.by_id(session, row.id).version != row.version:
            return False
        revision = None
        if weight is not None:
            try:
                revision = set_traffic(
                    row.deployment,
                    {row.candidate: weight, row.champion: 100.0 - weight},
                    reason=text[:2000],
                    expect_revision=row.revision,
                    session=session,
                ).revision
            except ConcurrentChange:
                return False
            changes["revision"] = revision
        if step is not None:
            changes["step"] = step
        store.change(session, row.id, expect_version=row.version, **changes)
        at = row.step if step is None else step
        _event(session, row.id, action, at, weight, revision, values, text, now)
    return True


def _changed(row: store.RolloutRow) -> dict[str, Any]:
    """What an evaluation reports when its write lost to a change made meanwhile."""
    with db.transaction() as session:
        now = store.by_id(session, row.id)
    why = f"the rollout changed during this evaluation ({now.state}: {now.reason})"
    if now.state == "running":
        return {"action": "wait", "step": now.step + 1, "reason": why + "; the next one decides"}
    return {"action": now.state, "reason": why}


def _version(row: store.RolloutRow) -> int:
    with db.transaction() as session:
        return store.by_id(session, row.id).version


def _wait(row: store.RolloutRow, why: str, values: list) -> dict[str, Any]:
    return {"action": "wait", "step": row.step + 1, "reason": why, "guardrails": values}


def _set_state(deployment: str, action: str, want: str, new: str, reason: str | None) -> dict:
    now = _now()
    text = reason or f"{action}d by the operator"
    values: dict[str, Any] = {"state": new, "reason": text}
    with db.transaction() as session:
        row = _active(session, deployment)
    if new == "running":  # the step bakes again from now: so do the servers' counts
        values["step_started_at"] = now
        baseline = _baseline(row.metrics_urls, deployment, None, row.champion)
        if baseline is not None:
            old = row.metrics_baseline or {}
            values["metrics_baseline"] = {**baseline, "champion_before": old.get("champion_before")}
    with db.transaction() as session:
        db.lock(session, f"rollout:{deployment}")
        row = _active(session, deployment)
        if row.state != want:
            raise UsageError(
                f"The rollout of {deployment!r} is {row.state}, not {want}.",
                f"See it with: flowship rollout status {deployment}",
            )
        store.change(session, row.id, **values)
        _event(session, row.id, action, row.step, None, None, None, text, now)
    return status(deployment)


def _active(session: Any, deployment: str) -> store.RolloutRow:
    row = store.active(session, deployment)
    if row is None:
        raise UsageError(
            f"Deployment {deployment!r} has no active rollout.",
            f"See its last one with: flowship rollout status {deployment}",
        )
    return row


def _release(deployment: str, owner: str) -> None:
    with db.transaction() as session:
        row = store.latest(session, deployment)
        if row is not None:
            store.release_lease(session, row.id, owner)


def _event(session, rollout_id, action, step, weight, revision, values, reason, now) -> None:
    store.record(
        session,
        store.EventRow(rollout_id, now, action, step, weight, revision, values, reason),
    )


def _shown(values: list[dict[str, Any]]) -> str:
    shown = [f"{v['metric']}={v['value']:.4g}" for v in values if v.get("value") is not None]
    return "guardrails: " + (", ".join(shown) if shown else "none measured")


def _view(row: store.RolloutRow, events: list[store.EventRow]) -> dict[str, Any]:
    return {
        "deployment": row.deployment,
        "candidate": row.candidate,
        "champion": row.champion,
        "state": row.state,
        "step": row.step + 1,
        "steps": row.steps,
        "weight": row.steps[row.step],
        "bake_seconds": row.bake_seconds,
        "min_requests": row.min_requests,
        "guardrails": [Guardrail(**g).text for g in row.guardrails],
        "revision": row.revision,
        "step_started_at": row.step_started_at.isoformat(),
        "reason": row.reason,
        "lease_owner": row.lease_owner,
        "metrics_urls": row.metrics_urls or [],
        "events": [
            {
                "at": e.at.isoformat(),
                "action": e.action,
                "step": e.step + 1,
                "weight": e.weight,
                "revision": e.revision,
                "guardrails": e.guardrails,
                "reason": e.reason,
            }
            for e in events
        ],
    }


def _now() -> datetime:
    return datetime.now(UTC)
