"""Reading the lifecycle history: every event, and who held a stage at a time."""

from __future__ import annotations

from datetime import UTC, datetime

from flowship.errors import ModelNotFound, UsageError
from flowship.registry._state import check_name
from flowship.registry._types import PRODUCTION, parse_stage
from flowship.registry.sync import locked
from flowship.store import db, events
from flowship.store.events import Event


def history(name: str, *, until: datetime | None = None) -> list[Event]:
    """Every recorded stage change of ``name``, oldest first (external changes made in
    MLflow since flowship last looked are recorded first). The history outlives the
    model: it is still answered after the model was deleted from MLflow."""
    try:
        with locked(check_name(name)) as state:
            return [ev for ev in state.history if until is None or ev.at <= until]
    except ModelNotFound:
        with db.transaction() as session:
            if not events.list_events(session, name):
                raise
            return events.list_events(session, name, until=until)


def stage_at(name: str, at: datetime | str, *, stage: str = PRODUCTION) -> str | None:
    """The version of ``name`` that was in ``stage`` at time ``at`` (None if none)."""
    when = parse_time(at)
    stage = parse_stage(stage)
    holder = None
    for ev in history(name, until=when):
        if ev.to_stage == stage:
            holder = ev.version
        elif ev.version == holder:
            holder = None
    return holder


def parse_time(value: datetime | str) -> datetime:
    """An ISO 8601 time; one without a zone is taken as UTC."""
    if isinstance(value, datetime):
        when = value
    else:
        text = str(value).strip()
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"Cannot read the time {value!r}.",
                "Use ISO 8601, e.g. 2026-01-31T09:30:00Z or 2026-01-31 (UTC if no zone).",
            ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
