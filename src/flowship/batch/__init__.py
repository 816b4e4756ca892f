"""Batch scoring: one job definition, a streaming local engine and a Spark engine,
exactly-once Delta output. See docs/batch.md.

    from flowship.batch import load_job, run_job
    record = run_job(load_job("churn.yaml"))
"""

from flowship.batch.progress import Progress
from flowship.batch.runner import run_job
from flowship.batch.spec import ScoreJob, load_job, parse_job

__all__ = ["Progress", "ScoreJob", "load_job", "parse_job", "run_job"]
