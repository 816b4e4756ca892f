"""Stage changes: ``promote`` (behind gates) and ``rollback`` (by the history).

Gates run first, outside the model's lock: they load models and read data, and may
take minutes. Then, inside the lock (``sync.locked``, external changes already
recorded), the transition is checked again and compared with what the gates saw; if
Production or the candidate moved meanwhile, the gates run again on what is there.

History first: the change is committed as pending (with what MLflow showed before),
then MLflow is written (aliases, tag, native stage), then the change is marked done.
If an MLflow write fails, everything the change wrote is put back to exactly what it
was and the change is marked undone; a process that dies half-way leaves a pending
change that the next look at the model settles (``sync.settle_pending``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowship._mlflow import fluent, mlflow_errors
from flowship.errors import (
    ChangeFailed,
    ConcurrentChange,
    FlowshipError,
    GateFailed,
    IllegalTransition,
    UsageError,
    VersionNotFound,
)
from flowship.registry import identity
from flowship.registry._state import check_name, check_version, restore, signals, write_stage
from flowship.registry._types import ALIASES, ARCHIVED, NONE, PRODUCTION, STAGING, parse_stage
from flowship.registry.gate_config import GatePlan, approval_for, plan_for
from flowship.registry.gates import (
    Gate,
    GateResult,
    Subject,
    confirmable_item,
    confirmed_from_tags,
    run_gates,
)
from flowship.registry.requests import check_force, check_rollback, open_request
from flowship.registry.sync import ModelState, actor, locked
from flowship.store import db, events
from flowship.store.events import DELETED, Event
from flowship.store.requests import PromotionRequest

log = logging.getLogger(__name__)

#: Which stage a version may move to from each stage with ``promote``. Putting an
#: archived version back in Production is what ``rollback`` is for.
ALLOWED = {
    NONE: (STAGING, PRODUCTION, ARCHIVED),
    STAGING: (PRODUCTION, ARCHIVED, NONE),
    PRODUCTION: (ARCHIVED,),
    ARCHIVED: (STAGING, NONE),
}
MAX_REASON = 2000
#: How often gates are run again because Production moved while they ran.
GATE_ATTEMPTS = 3


@dataclass(frozen=True)
class Transition:
    """What a promotion or rollback did."""

    name: str
    version: str
    from_stage: str
    to_stage: str
    previous: str | None  # the version that left ``to_stage`` to make room, if any
    forced: bool = False
    gates: list[GateResult] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "from_stage": self.from_stage,
            "to_stage": self.to_stage,
            "previous": self.previous,
            "forced": self.forced,
            "gates": [g.to_dict() for g in self.gates],
            "events": [e.to_dict() for e in self.events],
        }


def promote(
    name: str,
    version: str | int,
    to: str,
    *,
    expect_current: str | int | None = None,
    force: bool = False,
    reason: str | None = None,
    archive_previous: bool = True,
    confirm: Iterable[str] = (),
    config: str | None = None,
    gates: list[str] | None = None,
    no_regression: list[str] | None = None,
    require_signature: bool = False,
    checklist: list[str] | None = None,
    evaluation_data: str | None = None,
    target: str | None = None,
    extra_gates: Sequence[Gate] = (),
) -> Transition | PromotionRequest:
    """Move ``version`` of ``name`` to stage ``to`` (none/staging/production/archived).

    Gates from flowship.toml (and the ``gates``/``no_regression``/... arguments, and
    ``extra_gates``: gate objects built elsewhere, such as the A/B gate) must
    pass before Staging and Production, else ``GateFailed`` and nothing changes;
    ``force=True`` with a ``reason`` bypasses them and is recorded. The version that
    held the stage before is archived (``archive_previous=False``: back to None).
    ``expect_current`` makes it compare-and-swap on the Production version
    (``"none"``: there must be none); ``ConcurrentChange`` if it has moved.

    When flowship.toml asks for approvals for the stage, a version that passes the
    gates is not moved: a ``PromotionRequest`` is recorded and returned instead (see
    ``review.approve``); ``force`` is then for the stage's admins only.
    """
    check_name(name)
    version = check_version(name, version)
    stage = parse_stage(to)
    reason = check_reason(reason, force=force)
    expected = _check_expected(name, expect_current)
    confirmed = {confirmable_item(item) for item in confirm}
    plan = GatePlan()
    if stage in (STAGING, PRODUCTION):
        plan = plan_for(
            name,
            stage,
            config=config,
            gates=gates,
            no_regression=no_regression,
            require_signature=require_signature,
            checklist=checklist,
            evaluation_data=evaluation_data,
            target=target,
        )
        plan.gates += list(extra_gates)
    elif gates or no_regression or require_signature or checklist or extra_gates:
        raise UsageError(
            f"Gates guard only staging and production, not {stage.lower()}.",
            "Drop the gate options, or promote to staging or production.",
        )

    approval = plan.approval
    # Where sign-off rules decide, only a verified name counts (not FLOWSHIP_ACTOR).
    who = identity.verified() if approval else identity.current()
    if approval and force:
        check_force(approval, who, name, stage)
    signoff = approval is not None and not force

    for _attempt in range(GATE_ATTEMPTS):
        results: list[GateResult] = []
        gated = None
        if plan.gates:
            with locked(name) as state:  # a settled snapshot; the gates run unlocked
                pass
            _check(state, version, stage, expected)
            current = state.holder(PRODUCTION)
            results = _evaluate(state, version, current, plan, confirmed, signoff)
            failed = [r for r in results if not r.passed]
            if failed and not force:
                names = ", ".join(r.name for r in failed)
                raise GateFailed(
                    f"{name} version {version} failed {len(failed)} of {len(results)} "
                    f"gate(s) for {stage}: {names}. Nothing was changed.",
                    results,
                    "Fix the model or the data, or bypass with --force --reason '...'.",
                )
            gated = (state.stages[version], current)
        with locked(name) as state:
            _check(state, version, stage, expected)
            if gated is not None and gated != (state.stages[version], state.holder(PRODUCTION)):
                continue  # moved while the gates ran: judge the candidate against what is there
            if signoff:
                assert approval is not None
                with db.transaction() as session:
                    return open_request(
                        session,
                        model=name,
                        version=version,
                        from_stage=state.stages[version],
                        to_stage=stage,
                        holder=state.holder(stage),
                        results=results,
                        approval=approval,
                        requester=who,
                        reason=reason,
                        archive_previous=archive_previous,
                    )
            return apply_transition(
                state,
                version,
                stage,
                action="promote",
                reason=reason
                if approval is None
                else f"approvals bypassed by admin {who.name}: {reason}",
                forced=force,
                results=results,
                archive_previous=archive_previous,
                actor_name=who.name,
            )
    raise ConcurrentChange(
        f"Production of {name} changed each of the {GATE_ATTEMPTS} times the gates ran for "
        f"version {version}; nothing was changed.",
        f"Retry when other promotions of {name} have finished.",
    )


def _check(state: ModelState, version: str, stage: str, expected: str | None) -> None:
    _check_transition(state, version, stage)
    current = state.holder(PRODUCTION)
    if expected is not None and (current or "none") != expected:
        raise ConcurrentChange(
            f"Production of {state.name} is version {current or 'none'}, not {expected} as "
            "--expect-current said; nothing was changed.",
            f"Check with: flowship versions {state.name}, then retry with "
            f"--expect-current {current or 'none'}.",
        )


def rollback(name: str, *, to: str | int | None = None, reason: str | None = None) -> Transition:
    """Put back the version that was in Production before the current one (by the
    history, not "the newest archived version") and archive the current one;
    ``to`` names the version explicitly."""
    check_name(name)
    reason = check_reason(reason, force=False)
    target = check_version(name, to) if to is not None else None
    approval = approval_for(name, PRODUCTION) if target is not None else None
    with locked(name) as state:
        current = state.holder(PRODUCTION)
        if current is None:
            raise IllegalTransition(
                f"Model {name!r} has no version in Production, so there is nothing to roll back.",
                f"Promote one instead: flowship promote {name} VERSION --to production",
            )
        if target is None:
            target = previous_production(state.history, current, state)
            if target is None:
                raise IllegalTransition(
                    f"No other version of {name!r} was in Production before version {current}; "
                    "there is nothing to roll back to.",
                    f"Name a version explicitly: flowship rollback {name} --to VERSION",
                )
        elif target not in state.stages:
            raise VersionNotFound(name, target)
        elif target == current:
            raise IllegalTransition(
                f"{name} version {target} is already in Production.",
                f"Pick another version: flowship versions {name}",
            )
        elif approval is not None:
            check_rollback(approval, name, target, state.history)
        return apply_transition(
            state,
            target,
            PRODUCTION,
            action="rollback",
            reason=reason or f"rollback from version {current}",
            forced=False,
            results=[],
            archive_previous=True,
        )


def previous_production(history: list[Event], current: str, state: ModelState) -> str | None:
    """The version that held Production just before ``current``'s present tenure."""
    holders = [ev.version for ev in history if ev.to_stage == PRODUCTION]
    if current not in holders:
        return None
    start = len(holders) - 1 - holders[::-1].index(current)
    for version in reversed(holders[:start]):
        if version != current and state.stages.get(version, DELETED) != DELETED:
            return version
    return None


def _check_transition(state: ModelState, version: str, stage: str) -> None:
    if version not in state.stages:
        raise VersionNotFound(state.name, version)
    before = state.stages[version]
    if before == stage:
        raise IllegalTransition(
            f"{state.name} version {version} is already in {stage}.",
            f"See its stages with: flowship versions {state.name}",
        )
    if stage not in ALLOWED[before]:
        allowed = ", ".join(s.lower() for s in ALLOWED[before])
        hint = f"From {before} it can go to: {allowed}."
        if before == ARCHIVED and stage == PRODUCTION:
            hint = (
                f"Roll back to it with: flowship rollback {state.name} --to {version}, "
                "or promote it to staging first."
            )
        raise IllegalTransition(
            f"{state.name} version {version} cannot move from {before} to {stage}.", hint
        )


def check_reason(reason: str | None, *, force: bool) -> str | None:
    if reason is not None:
        reason = reason.strip()
        if len(reason) > MAX_REASON:
            raise UsageError(
                f"The reason is {len(reason)} characters long; the limit is {MAX_REASON}.",
                "Shorten it, and link to a document for the details.",
            )
        if any(ord(c) < 32 and c not in "\t" for c in reason):
            raise UsageError("The reason contains control characters.", "Use one line of text.")
    if force and not reason:
        raise UsageError(
            "--force needs a reason, which is recorded in the history.",
            "Add --reason 'why the gates are bypassed'.",
        )
    return reason or None


def _check_expected(name: str, value: str | int | None) -> str | None:
    if value is None:
        return None
    if str(value).strip().lower() == "none":
        return "none"
    text = str(value).strip()
    if not text.isdigit() or len(text) > 12:
        raise UsageError(
            f"--expect-current must be a version number or 'none', not {str(value)[:40]!r}.",
            f"See the Production version with: flowship versions {name}",
        )
    return str(int(text))


def _subject(state: ModelState, version: str, confirmed: set[str], data) -> Subject:
    import mlflow

    uri = f"models:/{state.name}/{version}"
    with mlflow_errors(model=state.name, version=version), fluent():
        signature = mlflow.models.get_model_info(uri).signature
    tags = dict(state.observed[version].mv.tags or {})
    label = f"{state.name} version {version}"
    return Subject(
        name=state.name,
        version=version,
        has_inputs=bool(signature is not None and signature.inputs),
        has_outputs=bool(signature is not None and signature.outputs),
        confirmed=frozenset(confirmed | confirmed_from_tags(tags)),
        score=data.scorer(uri, label) if data is not None else None,
    )


def _evaluate(
    state: ModelState,
    version: str,
    current: str | None,
    plan: GatePlan,
    confirmed: set[str],
    signoff: bool,
) -> list[GateResult]:
    from flowship.registry.evaluation import EvaluationData

    data = None
    if plan.needs_data:
        assert plan.evaluation_data is not None and plan.target is not None
        data = EvaluationData(plan.evaluation_data, plan.target)
    candidate = _subject(state, version, confirmed, data)
    candidate.signoff_by_approval = signoff
    baseline = None
    if current is not None and current != version:
        baseline = _subject(state, current, set(), data)
    return run_gates(plan.gates, candidate, baseline)


def apply_transition(
    state: ModelState,
    version: str,
    stage: str,
    *,
    action: str,
    reason: str | None,
    forced: bool,
    results: list[GateResult],
    archive_previous: bool,
    actor_name: str | None = None,
    preface: Sequence[Event] = (),
) -> Transition:
    """Write the change, history first (inside the model's lock, outside any database
    transaction: it commits its intent and its outcome itself). ``preface``: history
    rows that belong to the change and come before it (the approval that completes a
    request): recorded, and done or undone, with it."""
    name = state.name
    before = state.stages[version]
    who = actor_name or actor()
    changes = [
        Event(
            model=name,
            version=version,
            from_stage=before,
            to_stage=stage,
            action=action,
            actor=who,
            reason=reason,
            forced=forced,
            gates=[r.to_dict() for r in results] or None,
        )
    ]
    previous = state.holder(stage) if stage in ALIASES else None
    if previous == version:
        previous = None
    if previous is not None:
        changes.append(
            Event(
                model=name,
                version=previous,
                from_stage=stage,
                to_stage=ARCHIVED if archive_previous else NONE,
                action=action,
                actor=who,
                reason=f"replaced in {stage} by version {version}",
            )
        )
    shown = {c.version: signals(state.observed[c.version]) for c in changes}
    with db.transaction() as session:
        undo = [None] * len(preface) + [shown[c.version] for c in changes]
        recorded = events.record(session, [*preface, *changes], state=events.PENDING, undo=undo)
    saved = recorded[len(preface) :]
    try:
        # The new holder first: the alias moves in one write, so a reader polling
        # @production never sees the stage empty.
        for change in changes:
            write_stage(name, change.version, change.to_stage, state.observed)
    except BaseException as exc:
        what = (
            f"Rolling {name} back to version {version}"
            if action == "rollback"
            else f"Promoting {name} version {version} to {stage}"
        )
        _undo(name, what, recorded, saved, shown, exc)
    try:
        with db.transaction() as session:
            events.settle(session, recorded, events.DONE)
    except FlowshipError as exc:
        raise FlowshipError(
            f"{name} version {version} is now in {stage} in MLflow, but flowship's database "
            f"could not record it: {exc.message}",
            f"The next flowship command on {name} records it (e.g. flowship history {name}).",
        ) from exc
    log.info("%s version %s: %s -> %s (%s by %s)", name, version, before, stage, action, who)
    return Transition(
        name=name,
        version=version,
        from_stage=before,
        to_stage=stage,
        previous=previous,
        forced=forced,
        gates=results,
        events=saved,
    )


def _undo(
    name: str,
    what: str,
    recorded: list[Event],
    saved: list[Event],
    shown: dict[str, dict],
    exc: BaseException,
) -> None:
    """Put back what a failed change wrote, mark it undone, and raise what failed."""
    try:
        restore(name, shown, {ev.version: ev.to_stage for ev in saved})
        with db.transaction() as session:
            events.settle(session, recorded, events.UNDONE)
    except Exception as undo_exc:
        if not isinstance(exc, ChangeFailed):
            raise exc from undo_exc
        raise ChangeFailed(
            f"{what} failed: {exc.message}. Putting back what it had written failed too "
            f"({undo_exc}).",
            f"The next flowship command on {name} finishes putting it back "
            f"(e.g. flowship history {name}); check the MLflow store first.",
            step=exc.step,
        ) from exc
    if not isinstance(exc, ChangeFailed):
        raise exc
    raise ChangeFailed(
        f"{what} failed: {exc.message}. Nothing was changed: what it had written was put back.",
        "Check that the MLflow store accepts writes, then run the command again.",
        step=exc.step,
    ) from exc
