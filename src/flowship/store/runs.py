"""The job-run table: one row per scoring (or scheduled) job run, and its queries.

A run is inserted as ``running`` when the job starts and finished exactly once as
``succeeded`` or ``failed``. A running run holds a lease (``lease_until``) that it
renews while it works (``batch.lease``): a run whose lease has expired, or whose
process is gone on this host, is no longer running, so a process that died anywhere
(an OOM-killed pod) cannot block its output for ever. ``mark_failed`` is the operator's
way out for a run recorded before leases existed.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Column, Float, Integer, String, Table, Text, select, update

from flowship.config import get_settings
from flowship.errors import ConcurrentChange, NotFound, UsageError
from flowship.store.db import engine, lock, transaction
from flowship.store.tables import UTCDateTime, metadata, utcnow

batch_runs = Table(
    "batch_runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("job", String(100), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("engine", String(20), nullable=False),
    Column("mode", String(20), nullable=False),
    Column("model_ref", String(500), nullable=False),
    Column("model_name", String(250)),
    Column("model_version", String(50)),
    Column("input", Text, nullable=False),
    Column("input_snapshot", JSON),
    Column("output", Text, nullable=False),
    Column("output_version", Integer),
    Column("prediction_date", String(10)),
    Column("rows_in", Integer, nullable=False, default=0),
    Column("rows_out", Integer, nullable=False, default=0),
    Column("rows_skipped", Integer, nullable=False, default=0),
    Column("rows_rejected", Integer, nullable=False, default=0),
    Column("started_at", UTCDateTime, nullable=False, index=True),
    Column("finished_at", UTCDateTime),
    Column("duration_s", Float),
    Column("error", Text),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("lease_until", UTCDateTime),
)

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    job: str
    kind: str
    status: str
    engine: str
    mode: str
    model_ref: str
    model_name: str | None
    model_version: str | None
    input: str
    input_snapshot: dict[str, Any] | None
    output: str
    output_version: int | None
    prediction_date: str | None
    rows_in: int
    rows_out: int
    rows_skipped: int
    rows_rejected: int
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    error: str | None
    host: str
    pid: int
    lease_until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def alive(self) -> bool:
        """Whether a ``running`` run is still at work: its lease has not expired and, on
        this host, its process exists. (A run recorded before leases, on another host,
        counts as alive until ``flowship runs --mark-failed``.)"""
        if self.status != RUNNING:
            return False
        if self.lease_until is not None and self.lease_until <= utcnow():
            return False
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def start_run(
    *,
    run_id: str,
    job: str,
    kind: str,
    engine_name: str,
    mode: str,
    model_ref: str,
    input_desc: str,
    output: str,
) -> None:
    """Record a new run, refusing it while another live run writes to the same output
    (two runs appending at once could each score the same ids)."""
    with transaction() as session:
        lock(session, f"batch-output:{output}")
        query = select(batch_runs).where(
            batch_runs.c.output == output, batch_runs.c.status == RUNNING
        )
        for row in session.execute(query):
            other = RunRecord(**row._mapping)
            if other.alive:
                raise ConcurrentChange(
                    f"Run {other.run_id} (job {other.job!r}, pid {other.pid} on {other.host}) "
                    f"is still writing to {output}.",
                    "Wait for it to finish (flowship runs --status running), then run again; "
                    f"if its process is gone, its lease ends within {lease_seconds():g} s, or "
                    f"mark it: flowship runs --mark-failed {other.run_id}.",
                )
        session.execute(
            batch_runs.insert().values(
                run_id=run_id,
                job=job,
                kind=kind,
                status=RUNNING,
                engine=engine_name,
                mode=mode,
                model_ref=model_ref,
                input=input_desc,
                output=output,
                rows_in=0,
                rows_out=0,
                rows_skipped=0,
                rows_rejected=0,
                started_at=utcnow(),
                host=socket.gethostname(),
                pid=os.getpid(),
                lease_until=utcnow() + timedelta(seconds=lease_seconds()),
            )
        )


def lease_seconds() -> float:
    return get_settings().run_lease_seconds


def renew_lease(run_id: str) -> bool:
    """Extend a running run's lease; False when the run is no longer ``running`` (marked
    failed by an operator, or by another run that found its lease expired)."""
    until = utcnow() + timedelta(seconds=lease_seconds())
    with transaction() as session:
        done = session.execute(
            update(batch_runs)
            .where(batch_runs.c.run_id == run_id, batch_runs.c.status == RUNNING)
            .values(lease_until=until)
        )
    return done.rowcount == 1


def mark_failed(run_id: str, *, actor: str) -> RunRecord:
    """Record a ``running`` run as failed (its process is known to be gone); ``run_id``
    may be a prefix of one run's id, as ``flowship runs`` shows them."""
    if not run_id or len(run_id) > 32 or not all(c in "0123456789abcdef" for c in run_id):
        raise UsageError(
            f"{run_id[:40]!r} is not a run id.", "Copy one from: flowship runs --status running"
        )
    with transaction() as session:
        found = session.execute(
            select(batch_runs).where(batch_runs.c.run_id.startswith(run_id)).limit(2)
        ).all()
        if not found:
            raise NotFound(f"No run {run_id}.", "List them: flowship runs --status running")
        if len(found) > 1:
            raise UsageError(
                f"{run_id} is the start of more than one run id.", "Give more of the run id."
            )
        record = RunRecord(**found[0]._mapping)
        if record.status != RUNNING:
            raise UsageError(
                f"Run {record.run_id} is {record.status}, not running: nothing to mark.",
                "Only a running run can be marked failed.",
            )
        now = utcnow()
        session.execute(
            update(batch_runs)
            .where(batch_runs.c.run_id == record.run_id, batch_runs.c.status == RUNNING)
            .values(
                status=FAILED,
                error=f"marked failed by {actor} (flowship runs --mark-failed)",
                finished_at=now,
                duration_s=(now - record.started_at).total_seconds(),
            )
        )
    return get_run(record.run_id)


def update_run(run_id: str, **fields: Any) -> None:
    """Set fields of a run (model version once resolved, counts, snapshot)."""
    if "input_snapshot" in fields:
        fields["input_snapshot"] = json.loads(json.dumps(fields["input_snapshot"], default=str))
    with transaction() as session:
        session.execute(update(batch_runs).where(batch_runs.c.run_id == run_id).values(**fields))


def finish_run(run_id: str, *, status: str, error: str | None = None, **fields: Any) -> RunRecord:
    with transaction() as session:
        started = session.execute(
            select(batch_runs.c.started_at).where(batch_runs.c.run_id == run_id)
        ).scalar_one()
        now = utcnow()
        session.execute(
            update(batch_runs)
            .where(batch_runs.c.run_id == run_id)
            .values(
                status=status,
                error=error,
                finished_at=now,
                duration_s=(now - started).total_seconds(),
                **fields,
            )
        )
    return get_run(run_id)


def get_run(run_id: str) -> RunRecord:
    with engine().connect() as conn:
        row = conn.execute(select(batch_runs).where(batch_runs.c.run_id == run_id)).one()
    return RunRecord(**row._mapping)


def list_runs(
    *, job: str | None = None, status: str | None = None, limit: int = 20
) -> list[RunRecord]:
    """Most recent runs first."""
    query = select(batch_runs).order_by(batch_runs.c.started_at.desc()).limit(limit)
    if job is not None:
        query = query.where(batch_runs.c.job == job)
    if status is not None:
        query = query.where(batch_runs.c.status == status)
    with engine().connect() as conn:
        return [RunRecord(**row._mapping) for row in conn.execute(query)]


def running_for_output(output: str) -> list[RunRecord]:
    """Runs marked running that write to ``output`` (some may have crashed)."""
    query = select(batch_runs).where(batch_runs.c.output == output, batch_runs.c.status == RUNNING)
    with engine().connect() as conn:
        return [RunRecord(**row._mapping) for row in conn.execute(query)]
