"""``flowship score`` and ``flowship runs``: batch scoring jobs and their history."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from flowship.cli._app import app
from flowship.cli._render import err, print_json, print_table, say


def _features(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    names = [name.strip() for value in values for name in value.split(",")]
    return [name for name in names if name]


@app.command()
def score(
    job_file: Annotated[
        Path | None, typer.Argument(help="A job file (YAML); flags override its fields.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model ref, e.g. models:/ChurnPredictor@production.")
    ] = None,
    input: Annotated[
        str | None, typer.Option("--input", help="Parquet file or folder, CSV file or Delta table.")
    ] = None,
    id: Annotated[str | None, typer.Option("--id", help="The id column.")] = None,
    output: Annotated[
        str | None, typer.Option(help="Output Delta table (path, URI, or a bare table name).")
    ] = None,
    features: Annotated[
        list[str] | None, typer.Option(help="Feature columns (comma-separated or repeated).")
    ] = None,
    incremental: Annotated[
        bool | None,
        typer.Option(
            "--incremental/--full", help="Score only ids not yet scored by this version today."
        ),
    ] = None,
    engine: Annotated[str | None, typer.Option(help="local or spark.")] = None,
    output_mode: Annotated[str | None, typer.Option(help="predict, proba or both.")] = None,
    output_format: Annotated[
        str | None, typer.Option(help="delta (default), parquet, or sql (with --output-url).")
    ] = None,
    output_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL of the output database (format sql).")
    ] = None,
    prediction_date: Annotated[
        str | None, typer.Option("--date", help="Prediction date (YYYY-MM-DD); default today UTC.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Rows per batch.")] = None,
    max_reject_fraction: Annotated[
        float | None, typer.Option(help="Fail above this share of rejected rows (default 0.01).")
    ] = None,
    master: Annotated[str | None, typer.Option(help="Spark master URL (spark engine).")] = None,
    query: Annotated[str | None, typer.Option(help="SQL query to score (with --db-url).")] = None,
    db_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL for --query.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")] = False,
) -> None:
    """Score a table of rows with a registered model; output is committed once, at the end."""
    from flowship.batch import run_job
    from flowship.batch.spec import load_job, parse_job

    fields: dict[str, Any] = {
        "model": model,
        "id": id,
        "features": _features(features),
        "incremental": incremental,
        "engine": engine,
        "output_mode": output_mode,
        "prediction_date": prediction_date,
        "batch_size": batch_size,
        "max_reject_fraction": max_reject_fraction,
        "master": master,
    }
    if query is not None or db_url is not None:
        fields["input"] = {"query": query, "url": db_url}
    elif input is not None:
        fields["input"] = {"path": input}
    if output is not None or output_format is not None or output_url is not None:
        fields["output"] = _output(job_file, output, output_format, output_url)
    if job_file is not None:
        job = load_job(job_file, **fields)
    else:
        job = parse_job(
            {k: v for k, v in fields.items() if v is not None}, source="command line flags"
        )
    with _progress_bar() as on_progress:
        record = run_job(job, on_progress=on_progress)
    if as_json:
        print_json(record.to_dict())
    say(
        f"Scored {record.rows_out:,} of {record.rows_in:,} rows with {record.model_name} "
        f"version {record.model_version} into {record.output} in {record.duration_s or 0:.1f}s "
        f"({record.rows_skipped:,} already scored, {record.rows_rejected:,} rejected; "
        f"run {record.run_id})."
    )


def _output(
    job_file: Path | None, path: str | None, fmt: str | None, url: str | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if job_file is not None:
        from flowship.batch.spec import read_job_file

        existing = read_job_file(job_file).get("output")
        out = {"path": existing} if isinstance(existing, str) else dict(existing or {})
    if path is not None:
        out["path"] = path
    if fmt is not None:
        out["format"] = fmt
    if url is not None:
        out["url"] = url
    return out


class _progress_bar:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise."""

    def __enter__(self):
        if not sys.stderr.isatty():
            return None
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("scoring"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.completed:,.0f} rows  {task.fields[rate]} rows/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self.bar.__enter__()
        self.task = self.bar.add_task("score", total=None, rate="-")

        def update(progress) -> None:
            self.bar.update(
                self.task,
                completed=progress.rows_in,
                total=progress.total,
                rate=f"{progress.rows_per_second:,.0f}",
            )

        return update

    def __exit__(self, *exc: object) -> None:
        if hasattr(self, "bar"):
            self.bar.__exit__(*exc)


@app.command()
def runs(
    job: Annotated[str | None, typer.Option(help="Only this job's runs.")] = None,
    status: Annotated[str | None, typer.Option(help="running, succeeded or failed.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many runs.")] = 20,
    mark_failed: Annotated[
        str | None,
        typer.Option(
            "--mark-failed",
            metavar="RUN_ID",
            help="Record a running run whose process is gone as failed, freeing its output.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List recent scoring job runs, newest first."""
    from flowship.errors import UsageError
    from flowship.store.runs import FAILED, RUNNING, SUCCEEDED, list_runs

    if mark_failed is not None:
        from flowship.registry.sync import actor
        from flowship.store.runs import mark_failed as mark

        record = mark(mark_failed.strip(), actor=actor())
        if as_json:
            print_json(record.to_dict())
        else:
            say(f"Run {record.run_id} ({record.job}, pid {record.pid} on {record.host}) "
                f"is marked failed; {record.output} is free.")  # fmt: skip
        return

    if status is not None and status not in (RUNNING, SUCCEEDED, FAILED):
        raise UsageError(
            f"Unknown status {status!r}.", "Use --status running, succeeded or failed."
        )
    records = list_runs(job=job, status=status, limit=limit)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    print_table(
        None,
        ["run", "job", "status", "model", "date", "in", "out", "skip", "rej", "s"],
        [
            (
                r.run_id[:8],
                r.job,
                r.status,
                f"{r.model_name or r.model_ref} v{r.model_version or '?'}",
                r.prediction_date,
                r.rows_in,
                r.rows_out,
                r.rows_skipped,
                r.rows_rejected,
                f"{r.duration_s:.0f}" if r.duration_s is not None else "",
            )
            for r in records
        ],
    )
    failed = [r for r in records if r.status == FAILED and r.error]
    for r in failed[:5]:
        say(f"{r.run_id[:8]} failed: {r.error}")


@app.command()
def schedule(
    files: Annotated[list[Path], typer.Argument(help="Job files (kind: score or monitor).")],
    cron: Annotated[
        str | None, typer.Option(help="Cron expression in UTC, e.g. '0 6 * * *' (06:00 daily).")
    ] = None,
    max_runs: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many runs (default: never).")
    ] = None,
    export_cronjob: Annotated[
        bool, typer.Option("--export-cronjob", help="Print Kubernetes CronJob YAML instead.")
    ] = False,
    image: Annotated[str, typer.Option(help="Container image for --export-cronjob.")] = (
        "flowship:latest"
    ),
    name: Annotated[str | None, typer.Option(help="CronJob name (default: file name).")] = None,
    namespace: Annotated[str | None, typer.Option(help="Kubernetes namespace.")] = None,
    env: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE environment for the CronJob (repeat).")
    ] = None,
    secret: Annotated[
        str | None, typer.Option(help="A Secret whose keys become environment variables.")
    ] = None,
) -> None:
    """Run job files on a cron schedule in this process, or export them as CronJobs."""
    from flowship.schedule import cronjob_manifest, plan_entries, run_schedule

    entries = plan_entries(list(files), cron=cron)
    if export_cronjob:
        from flowship.cli._options import env_pairs

        pairs = env_pairs(env)
        sys.stdout.write(
            "---\n".join(
                cronjob_manifest(
                    e,
                    image=image,
                    name=name if len(entries) == 1 else None,
                    namespace=namespace,
                    env=pairs,
                    secret=secret,
                )
                for e in entries
            )
        )
        return
    for e in entries:
        say(f"Scheduled {e.path} ({e.kind}) on '{e.cron}' (UTC).")

    def report(entry, ok: bool, detail: str) -> None:
        say(f"{'ok' if ok else 'FAILED'} {entry.path}: {detail}")

    try:
        run_schedule(entries, max_runs=max_runs, on_result=report)
    except KeyboardInterrupt:
        say("Stopped.")
