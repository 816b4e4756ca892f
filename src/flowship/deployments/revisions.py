"""Recorded deployments: apply a file, change traffic, undo, read the history.

Every change is a new revision written in one transaction under the deployment's lock,
after every check passed, so a refused change leaves nothing behind. Servers follow the
newest revision (``current``); nothing else changes a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowship.deployments.spec import DeploymentSpec, weights_text
from flowship.errors import ConcurrentChange, NotFound, UsageError
from flowship.store import db
from flowship.store import deployments as rows
from flowship.store.tables import utcnow


@dataclass(frozen=True)
class Revision:
    """One revision of a deployment, with what changed since the one before."""

    spec: DeploymentSpec
    revision: int
    action: str
    actor: str
    at: datetime
    reason: str | None
    changes: list[str]

    @property
    def name(self) -> str:
        return self.spec.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "revision": self.revision,
            "action": self.action,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "reason": self.reason,
            "changes": self.changes,
            "spec": self.spec.to_dict(),
        }


DELETED = "delete"  # the action of the revision that retires a deployment


class DeploymentNotFound(NotFound):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"No deployment named {name!r} is recorded.",
            "List them with: flowship deployment list; create one with: "
            "flowship deployment apply FILE",
        )


def apply(
    spec: DeploymentSpec, *, expect_revision: int | None = None, reason: str | None = None
) -> Revision:
    """Record ``spec`` as the newest revision of its deployment (unchanged: no new one)."""
    check_refs(spec)
    with db.transaction() as session:
        db.lock(session, f"deployment:{spec.name}")
        current = rows.latest(session, spec.name)
        _expect(spec.name, current, expect_revision)
        if current is not None and current.action != DELETED:
            old = DeploymentSpec.model_validate(current.spec)
            if old == spec:
                return _revision(current, current.spec)  # no changes: nothing recorded
            _check_drained(old, spec)
        return _record(session, spec, current, "apply", reason)


def set_traffic(
    name: str,
    weights: dict[str, float],
    *,
    reason: str | None = None,
    expect_revision: int | None = None,
    session: Any = None,
) -> Revision:
    """A new revision with ``weights`` (variants not named keep theirs). ``session``:
    record it in the caller's transaction (a rollout writes the revision and its own
    record together, or neither)."""
    if not weights:
        raise UsageError(
            "No weights given.", f"Example: flowship traffic {name} champion=50 challenger=50"
        )
    if session is not None:
        return _set_traffic(session, name, weights, reason, expect_revision)
    with db.transaction() as own:
        return _set_traffic(own, name, weights, reason, expect_revision)


def _set_traffic(
    session: Any,
    name: str,
    weights: dict[str, float],
    reason: str | None,
    expect_revision: int | None,
) -> Revision:
    db.lock(session, f"deployment:{name}")
    current = _latest(session, name)
    _expect(name, current, expect_revision)
    spec = DeploymentSpec.model_validate(current.spec)
    for variant, weight in weights.items():
        if variant not in spec.variants:
            raise UsageError(
                f"Deployment {name!r} has no variant {variant!r}.",
                f"Its variants: {', '.join(spec.variants)}. Add one with flowship "
                "deployment apply FILE.",
            )
        if spec.variants[variant].shadow and weight > 0:
            raise UsageError(
                f"Variant {variant!r} of {name!r} is a shadow: it never answers, so it "
                "cannot take traffic.",
                "Make it a primary variant in the deployment file (drop shadow: true).",
            )
    new_weights = {**spec.weights, **weights}
    total = sum(new_weights.values())
    if abs(total - 100) > 1e-6:
        raise UsageError(
            f"The weights of {name!r} would sum to {total:g}, not 100 "
            f"({weights_text(new_weights)}).",
            "Give weights that add up to 100.",
        )
    variants = {
        n: v.model_copy(update={"weight": new_weights[n]}) if n in new_weights else v
        for n, v in spec.variants.items()
    }
    new = DeploymentSpec.model_validate({**spec.to_dict(), "variants": variants})
    if new == spec:
        return _revision(current, current.spec)  # no changes: nothing recorded
    return _record(session, new, current, "traffic", reason)


def undo(name: str, *, reason: str | None = None) -> Revision:
    """A new revision equal to the one before the newest: undoing twice redoes."""
    with db.transaction() as session:
        db.lock(session, f"deployment:{name}")
        current = _latest(session, name)
        previous = [r for r in rows.history(session, name) if r.revision < current.revision]
        if not previous:
            raise UsageError(
                f"Deployment {name!r} has only revision {current.revision}: nothing to undo.",
                f"See its history with: flowship deployment history {name}",
            )
        spec = DeploymentSpec.model_validate(previous[-1].spec)
        text = reason or f"undo revision {current.revision}"
        return _record(session, spec, current, "undo", text)


def delete(name: str, *, reason: str | None = None) -> Revision:
    """Retire ``name``: a last revision (its spec unchanged, action ``delete``) after
    which it is not found (servers following it keep their last state); its history
    stays, and applying the name again starts it anew."""
    with db.transaction() as session:
        db.lock(session, f"deployment:{name}")
        current = _latest(session, name)
        spec = DeploymentSpec.model_validate(current.spec)
        return _record(session, spec, current, DELETED, reason)


def current(name: str) -> Revision:
    """The newest revision of ``name``."""
    with db.transaction() as session:
        return _revision(_latest(session, name), None)


def current_number(name: str) -> int | None:
    """The newest revision number of ``name`` (None if none): one cheap query."""
    with db.transaction() as session:
        return rows.latest_number(session, name)


def list_deployments() -> list[Revision]:
    """The newest revision of every deployment, by name."""
    with db.transaction() as session:
        newest = rows.newest_of_each(session)
    return [_revision(r, None) for r in newest if r.action != DELETED]


def history(name: str) -> list[Revision]:
    """Every revision of ``name``, oldest first, each with its changes."""
    with db.transaction() as session:
        found = rows.history(session, name)
    if not found:
        raise DeploymentNotFound(name)
    revisions, before = [], None
    for row in found:
        revisions.append(_revision(row, before))
        before = row.spec
    return revisions


def check_refs(spec: DeploymentSpec) -> None:
    """Every variant's ref resolves now (a one-line error naming the variant if not)."""
    from flowship.errors import FlowshipError
    from flowship.predict import resolve_ref

    for variant in spec.variants:
        uri = spec.uri_of(variant)
        try:
            resolve_ref(uri)
        except FlowshipError as exc:
            kind = NotFound if isinstance(exc, NotFound) else UsageError
            raise kind(
                f"Variant {variant!r} of {spec.name!r} ({uri}) does not resolve: {exc.message}",
                exc.hint,
            ) from exc


# ---------------------------------------------------------------- helpers


def _latest(session: Any, name: str) -> rows.RevisionRow:
    found = rows.latest(session, name)
    if found is None or found.action == DELETED:
        raise DeploymentNotFound(name)
    return found


def _expect(name: str, current: rows.RevisionRow | None, expected: int | None) -> None:
    if expected is None:
        return
    have = current.revision if current else 0
    if have != expected:
        raise ConcurrentChange(
            f"Deployment {name!r} is at revision {have}, not {expected} (--expect-revision): "
            "someone changed it since you looked. Nothing was changed.",
            f"Review it with: flowship deployment show {name}, then apply again.",
        )


def _check_drained(old: DeploymentSpec, new: DeploymentSpec) -> None:
    for name, variant in old.variants.items():
        if name not in new.variants and not variant.shadow and variant.weight > 0:
            rest = {n: w for n, w in old.weights.items() if n != name and n in new.variants}
            example = " ".join(f"{n}={w:g}" for n, w in rest.items()) or "OTHER=100"
            raise UsageError(
                f"Variant {name!r} of {old.name!r} still has {variant.weight:g}% of traffic: "
                "it cannot be removed yet. Nothing was changed.",
                f"Drain it first: flowship traffic {old.name} {name}=0 {example} "
                "(adjusting the weights to sum to 100).",
            )


def _record(
    session: Any,
    spec: DeploymentSpec,
    current: rows.RevisionRow | None,
    action: str,
    reason: str | None,
) -> Revision:
    from flowship.registry.sync import actor

    row = rows.RevisionRow(
        name=spec.name,
        revision=(current.revision if current else 0) + 1,
        spec=spec.to_dict(),
        action=action,
        actor=actor(),
        at=utcnow(),
        reason=reason,
    )
    rows.insert(session, row)
    return _revision(row, current.spec if current else None)


def _revision(row: rows.RevisionRow, before: dict[str, Any] | None) -> Revision:
    spec = DeploymentSpec.model_validate(row.spec)
    changes = diff(before, row.spec) if before is not None else ["created"]
    return Revision(spec, row.revision, row.action, row.actor, row.at, row.reason, changes)


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Readable differences between two specs: ``variants.champion.weight: 90 -> 50``."""
    old, new = _flat(before), _flat(after)
    changes = []
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            changes.append(f"- {key}")
        elif key not in old:
            changes.append(f"+ {key}: {_show(new[key])}")
        elif old[key] != new[key]:
            changes.append(f"{key}: {_show(old[key])} -> {_show(new[key])}")
    return changes


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
