"""Notice stage changes made outside flowship and record them as external events.

Someone may move an alias in the MLflow UI, or run the seed's
``client.transition_model_version_stage(...)``. Every time flowship looks at a model
(listing, history, promotion, rollback) it compares each version's signals in MLflow
with the stage the history says it has. A signal that differs from the history is a
change made outside: it is recorded as an ``external`` event and the other signals are
brought in line, so that ``@production``, ``/Production`` and the tag agree again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from flowship.registry import identity
from flowship.registry._state import (
    Observed,
    applied,
    has_native_stages,
    mirror_agrees,
    read_model,
    restore,
    write_stage,
)
from flowship.registry._types import ALIASES, ARCHIVED, NONE, PRODUCTION, STAGING
from flowship.store import db, events, locks
from flowship.store.events import DELETED, Event

log = logging.getLogger(__name__)
EXTERNAL_ACTOR = "external"


def actor() -> str:
    """Who is recorded as making a change (see ``identity.current``)."""
    return identity.current().name


@dataclass
class ModelState:
    """A model as seen inside its lock, after external changes were recorded."""

    name: str
    observed: dict[str, Observed]
    stages: dict[str, str]  # version -> stage, for every version that exists
    history: list[Event]  # the recorded changes, oldest first

    def holder(self, stage: str) -> str | None:
        return next((v for v, s in self.stages.items() if s == stage), None)


@contextmanager
def locked(name: str) -> Iterator[ModelState]:
    """Hold the model's lock for the block, with external changes already recorded.

    The lock is taken before MLflow is read, so two flowship processes never act on
    the same snapshot. It is not a database transaction: what the block records goes
    through short transactions of its own (``promote.py``: the intent, then the
    outcome), so slow work never holds SQLite's write lock. A change left pending by
    a process that died is settled first.
    """
    with locks.held(f"model:{name}"):
        with db.transaction() as session:
            observed = read_model(name)
            if settle_pending(session, name, observed):
                observed = read_model(name)
            stages, repaired = reconcile(session, name, observed)
            if repaired:
                observed = read_model(name)
            history = events.list_events(session, name)
        yield ModelState(name=name, observed=observed, stages=stages, history=history)


def settle_pending(session: Session, name: str, observed: dict[str, Observed]) -> bool:
    """Settle a change whose process died between recording it and marking it done.

    If MLflow shows all of it, it happened: it is marked done and stays flowship's
    change, with its actor, reason and gate results. Otherwise whatever part of it
    reached MLflow is put back and it is marked undone. Returns whether MLflow was
    written.
    """
    found = events.pending(session, name)
    if not found:
        return False
    changes = [ev for ev, _ in found]
    intended = {ev.version: ev.to_stage for ev in changes}
    if applied(observed, intended):
        events.settle(session, changes, events.DONE)
        log.warning(
            "Model %s: a %s by %s was interrupted after writing MLflow; recorded as done.",
            name, changes[0].action, changes[0].actor,
        )  # fmt: skip
        return False
    before = {ev.version: undo for ev, undo in found if undo is not None}
    restore(name, before, {v: intended[v] for v in before})
    events.settle(session, changes, events.UNDONE)
    log.warning(
        "Model %s: a %s by %s was interrupted half-way; what it wrote was put back.",
        name, changes[0].action, changes[0].actor,
    )  # fmt: skip
    return True


def reconcile(
    session: Session, name: str, observed: dict[str, Observed]
) -> tuple[dict[str, str], bool]:
    """Record what changed outside flowship; returns every version's stage now, and
    whether MLflow was written to bring its signals in line."""
    recorded = events.current_stages(session, name)
    first_look = not recorded
    native = has_native_stages()
    found: dict[str, tuple[str, str | None]] = {}
    for version, seen in observed.items():
        before = recorded.get(version, NONE)
        if before == DELETED:  # a version number MLflow reused after a deletion
            before = NONE
        found[version] = _stage_of(seen, before, first_look=first_look, native=native)
    _one_holder_per_stage(found, recorded)

    new_events = []
    # New holders first, as a promotion records them.
    ordered = sorted(found.items(), key=lambda item: item[1][0] not in ALIASES)
    for version, (stage, why) in ordered:
        before = recorded.get(version, NONE)
        if stage != before:
            new_events.append(_external(name, version, before, stage, why))
    for version, before in recorded.items():
        if version not in observed and before != DELETED:
            why = "version deleted in MLflow"
            new_events.append(_external(name, version, before, DELETED, why))
    if new_events:
        events.record(session, new_events)
        for ev in new_events:
            log.warning(
                "Model %s version %s: %s -> %s (%s); recorded.",
                name, ev.version, ev.from_stage, ev.to_stage, ev.reason,
            )  # fmt: skip
    stages = {v: stage for v, (stage, _) in found.items()}
    repaired = False
    for version, stage in stages.items():
        if not mirror_agrees(observed[version], stage) and (version in recorded or stage != NONE):
            write_stage(name, version, stage, observed)
            repaired = True
    return stages, repaired


def _stage_of(
    seen: Observed, recorded: str, *, first_look: bool, native: bool
) -> tuple[str, str | None]:
    """The stage MLflow shows for one version, and why it differs from ``recorded``.
    Without native stages (a future MLflow) that signal is ignored, not read as None."""
    stage, why = recorded, None
    if seen.alias_stage and seen.alias_stage != recorded:
        stage, why = seen.alias_stage, f"alias '{ALIASES[seen.alias_stage]}' set on it in MLflow"
    elif native and seen.native != recorded:
        stage, why = seen.native, f"MLflow stage set to {seen.native}"
    elif seen.tag and seen.tag != recorded:
        stage, why = seen.tag, f"tag flowship.stage set to {seen.tag}"
    elif recorded in ALIASES and seen.alias_stage != recorded:
        stage, why = ARCHIVED, f"alias '{ALIASES[recorded]}' moved or removed in MLflow"
    if first_look and why:
        why = f"found in {stage} when flowship first looked"
    return stage, why


def _one_holder_per_stage(
    found: dict[str, tuple[str, str | None]], recorded: dict[str, str]
) -> None:
    """Staging and Production hold one version each: when MLflow shows several, the
    one that changed outside flowship (else the newest) keeps it, the others are
    archived, as MLflow's ``archive_existing_versions`` would have done."""
    for stage in (PRODUCTION, STAGING):
        holders = [v for v, (s, _) in found.items() if s == stage]
        if len(holders) < 2:
            continue
        changed = [v for v in holders if recorded.get(v) != stage]
        keep = max(changed or holders, key=int)
        for version in holders:
            if version != keep:
                found[version] = (ARCHIVED, f"replaced in {stage} by version {keep} in MLflow")


def _external(name: str, version: str, before: str, after: str, why: str | None) -> Event:
    return Event(
        model=name,
        version=version,
        from_stage=before,
        to_stage=after,
        action="external",
        actor=EXTERNAL_ACTOR,
        reason=f"changed outside flowship: {why}" if why else "changed outside flowship",
    )
