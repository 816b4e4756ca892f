"""The tour's batch step: score the new customers incrementally into a Delta table,
then run the same job again to show that nothing is scored twice."""

from __future__ import annotations

from typing import Any

from flowship.quickstart import Tour


def score_step(tour: Tour, *, ref: str | None = None, output: str = "churn_predictions") -> Any:
    """Run the daily churn job twice; returns the second run's record."""
    from flowship.batch import parse_job, run_job
    from flowship.quickstart.data import ID, churn_frame

    customers = tour.customers_path
    if not customers.exists():
        churn_frame(2000, seed=7, first_id=900_000).drop(columns=["churned"]).to_parquet(customers)
    ref = ref or f"models:/{tour.model}@production"
    job = parse_job(
        {
            "name": "daily-churn",
            "model": ref,
            "id": ID,
            "input": str(customers),
            "output": output,
            "incremental": True,
            "output_mode": "proba",
        }
    )
    tour.say(
        f"$ flowship score --model {ref} --input {customers.name} --id {ID} "
        f"--output {output} --incremental --output-mode proba"
    )
    rows = []
    record = None
    for attempt in ("first run", "second run"):
        record = run_job(job)
        rows.append(
            [
                attempt,
                record.model_version,
                record.rows_in,
                record.rows_out,
                record.rows_skipped,
                f"{record.duration_s:.1f}s",
            ]
        )
    tour.show(None, ["run", "version", "rows in", "scored", "already scored", "took"], rows)
    tour.say(
        f"The predictions are one Delta commit per run in {record.output}; the second run "
        "found every customer already scored by this version today and wrote nothing. "
        "List the runs with: flowship runs"
    )
    return record
