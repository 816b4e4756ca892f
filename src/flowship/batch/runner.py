"""Run a scoring job end to end and record it: the function behind ``flowship score``.

Order matters for "nothing half-written": the run is recorded, the model is resolved
and loaded, the input is checked against the signature and the outputs are checked
for write access, all before the first row is read; rows become visible only in the
commit at the end.
"""

from __future__ import annotations

import logging
import uuid

from flowship.batch.lease import Lease
from flowship.batch.plan import Plan, make_plan, output_key
from flowship.batch.progress import ProgressCallback
from flowship.batch.sinks import open_sink
from flowship.batch.spec import ScoreJob
from flowship.errors import FlowshipError
from flowship.store import runs

log = logging.getLogger(__name__)


def _is_orphan(run_id: str) -> bool:
    """Staged files of ``run_id`` may go: its run failed, or crashed (process gone)."""
    run_id = run_id.rsplit("-", 1)[-1]  # staging folders: <run>, spark-<run>, trash-<run>
    try:
        record = runs.get_run(run_id)
    except Exception:  # not a run this database knows: leave its files alone
        return False
    if record.status == runs.SUCCEEDED:  # a run succeeds only after its commit
        return False
    return record.status == runs.FAILED or not record.alive


def _clean_up(plan: Plan, output: str) -> None:
    for stale in runs.running_for_output(output):
        if stale.run_id != plan.run_id and not stale.alive:
            runs.finish_run(
                stale.run_id,
                status=runs.FAILED,
                error="the process ended without finishing (its lease expired or its "
                "process is gone)",
            )
    job = plan.job
    for uri in (plan.output_uri, plan.rejects_uri):
        sink = open_sink(
            uri,
            format=job.output.format,
            rows_per_file=job.output.rows_per_file,
            url=job.output.url,
        )
        sink.check_writable()
        sink.remove_orphans(_is_orphan)


def run_job(job: ScoreJob, *, on_progress: ProgressCallback | None = None) -> runs.RunRecord:
    """Score ``job`` with its engine; returns the finished run record.

    Raises the run's ``FlowshipError`` after recording it as failed."""
    run_id = uuid.uuid4().hex
    output = output_key(job)
    runs.start_run(
        run_id=run_id,
        job=job.job_name,
        kind="score",
        engine_name=job.engine,
        mode="incremental" if job.incremental else "full",
        model_ref=job.model,
        input_desc=job.input.describe(),
        output=output,
    )
    progress = None
    try:
        with Lease(run_id) as lease:
            plan = make_plan(job, run_id=run_id)
            plan.before_commit = lease.check
            runs.update_run(
                run_id,
                model_name=plan.model_name,
                model_version=plan.model_version,
                input_snapshot=plan.source.snapshot,
                prediction_date=plan.day.isoformat(),
            )
            _clean_up(plan, output)
            if job.engine == "spark":
                from flowship.batch.spark import score_spark

                outcome = score_spark(plan, on_progress=on_progress)
            else:
                from flowship.batch.local import score_local

                outcome = score_local(plan, on_progress=on_progress)
            progress = outcome.progress
    except BaseException as error:
        message = error.message if isinstance(error, FlowshipError) else repr(error)
        runs.finish_run(run_id, status=runs.FAILED, error=message)
        raise
    log.info("Run %s: %s", run_id, progress.summary())
    return runs.finish_run(
        run_id,
        status=runs.SUCCEEDED,
        output_version=outcome.output_version,
        rows_in=progress.rows_in,
        rows_out=progress.rows_out,
        rows_skipped=progress.rows_skipped,
        rows_rejected=progress.rows_rejected,
    )
