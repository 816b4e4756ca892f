"""Faults between runs: stale runs on other hosts, one output under several spellings,
two runs committing to one Delta table, compacted and foreign-written tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from flowship.batch import run_job
from flowship.batch.lease import Lease
from flowship.batch.local import score_local
from flowship.batch.plan import make_plan, output_key
from flowship.errors import ConcurrentChange, InvalidInput
from flowship.store import runs
from flowship.store.tables import utcnow
from tests.batch.conftest import customers, write_parquet
from tests.batch.test_local import job, read_delta

FLOWSHIP = str(Path(sys.executable).with_name("flowship"))
DAY = date(2026, 3, 1)


def _ids(uri: Path) -> np.ndarray:
    return read_delta(str(uri)).column("customer_id").to_numpy()


def _pretend_running(spec, *, host: str, lease_s: float) -> str:
    """A run recorded as running by a process on ``host`` (e.g. a pod since OOM-killed)."""
    run_id = uuid.uuid4().hex
    runs.start_run(run_id=run_id, job="nightly", kind="score", engine_name="local",
                   mode="full", model_ref=spec.model, input_desc="x",
                   output=output_key(spec))  # fmt: skip
    runs.update_run(run_id, host=host, pid=1, lease_until=utcnow() + timedelta(seconds=lease_s))
    return run_id


# ------------------------------------------------------------------ one lock per output


def test_every_spelling_of_an_output_is_one_lock(churn, small_input, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "out", tmp_path / "link")
    spellings = ["out/p", "./out/p/", str(tmp_path / "out" / "p"), "out//p/.", "link/p"]
    keys = {output_key(job(input=str(small_input), output={"path": s})) for s in spellings}
    assert keys == {str(tmp_path / "out" / "p")}
    first = job(input=str(small_input), output={"path": "out/p"})
    _pretend_running(first, host="pod-1", lease_s=600)
    for spelling in spellings[1:]:
        with pytest.raises(ConcurrentChange, match="is still writing to"):
            run_job(job(input=str(small_input), output={"path": spelling}))


def test_a_sql_output_lock_names_its_database(tmp_path):
    def key(url: str, table: str = "preds") -> str:
        spec = {"path": table, "format": "sql", "url": url}
        return output_key(job(input="x.parquet", output=spec))

    one = key(f"sqlite:///{tmp_path}/a.db")
    assert one != key(f"sqlite:///{tmp_path}/b.db")  # same table name, another database
    assert one != key(f"sqlite:///{tmp_path}/a.db", "other")
    os.chdir(tmp_path)
    assert key("sqlite:///a.db") == one  # a relative spelling of the same file
    pg = key("postgresql+psycopg://scorer:s3cret@db.internal:5432/crm")
    assert pg == key("postgresql://scorer:other@db.internal:5432/crm")
    assert "s3cret" not in pg and "***" in pg and pg.endswith("table preds")
    token = key("postgresql://db.internal/crm?sslmode=require&password=hunter2")
    assert "hunter2" not in token and "password=***" in token


@pytest.mark.slow
def test_two_incremental_runs_on_two_spellings_score_each_id_once(churn, tmp_path):
    """The issue's reproduction: `flowship score --incremental` on out/p and on ./out/p/,
    started together (this left every id scored twice)."""
    rows = 300_000
    data = write_parquet(tmp_path / "in.parquet", customers(rows))
    env = {**os.environ, "FLOWSHIP_HOME": str(tmp_path / "home")}
    env["MLFLOW_TRACKING_URI"] = churn.tracking_uri

    def score(output: str) -> subprocess.Popen:
        return subprocess.Popen(
            [FLOWSHIP, "score", "--model", "models:/Churn@production", "--id", "customer_id",
             "--input", str(data), "--output", output, "--incremental"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    procs = [score("out/p"), score("./out/p/")]
    done = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    for code, stderr in done:
        assert code == 0 or ("is still writing to" in stderr or "Another run" in stderr), stderr
    assert any(code == 0 for code, _ in done)
    ids = _ids(tmp_path / "out" / "p")
    assert len(ids) == rows and len(np.unique(ids)) == rows


# ------------------------------------------------------------------------- leases


def test_a_dead_run_on_another_host_stops_blocking_when_its_lease_ends(
    churn, small_input, tmp_path
):
    spec = job(input=str(small_input), output={"path": str(tmp_path / "p")})
    stale = _pretend_running(spec, host="pod-oom-killed", lease_s=600)
    with pytest.raises(ConcurrentChange, match=f"flowship runs --mark-failed {stale}"):
        run_job(spec)
    runs.update_run(stale, lease_until=utcnow() - timedelta(seconds=1))  # no heartbeat since
    record = run_job(spec)
    assert record.status == runs.SUCCEEDED and record.rows_out == 1000
    assert runs.get_run(stale).status == runs.FAILED
    assert "lease expired" in runs.get_run(stale).error


def test_a_live_run_keeps_renewing_its_lease(churn, tmp_path, monkeypatch):
    """A run that outlives its first lease still holds its output: its heartbeat renews
    it (a lease of 6 s renewed every 2 s, another run tried after 13 s)."""
    from tests._caches import reset_caches

    monkeypatch.setenv("FLOWSHIP_RUN_LEASE_SECONDS", "6")
    reset_caches()
    data = write_parquet(tmp_path / "in.parquet", customers(3000))
    out = {"path": str(tmp_path / "p")}
    spec = job(input=str(data), output=out, batch_size=1000)
    refused: list[str] = []

    def slow(progress) -> None:
        if progress.rows_in == 1000:
            time.sleep(13)
            try:
                run_job(job(input=str(data), output=out))
            except ConcurrentChange as exc:
                refused.append(exc.message)

    record = run_job(spec, on_progress=slow)
    assert record.status == runs.SUCCEEDED
    assert refused and "is still writing to" in refused[0]
    assert len(np.unique(_ids(tmp_path / "p"))) == 3000


def test_a_run_marked_failed_does_not_commit(churn, small_input, tmp_path):
    spec = job(input=str(small_input), output={"path": str(tmp_path / "p")})
    run_id = _pretend_running(spec, host="here", lease_s=600)
    lease = Lease(run_id)
    lease.check()  # holds
    runs.mark_failed(run_id[:8], actor="ops")
    with pytest.raises(ConcurrentChange, match="it was marked failed while it ran"):
        lease.check()


def test_mark_failed_from_the_cli(churn, small_input, tmp_path, cli):
    spec = job(input=str(small_input), output={"path": str(tmp_path / "p")})
    stale = _pretend_running(spec, host="pod-7", lease_s=3600)
    done = cli("runs", "--mark-failed", stale[:8])
    assert done.exit_code == 0, done.stderr
    assert f"Run {stale} (nightly, pid 1 on pod-7) is marked failed" in done.stderr
    (record,) = json.loads(cli("runs", "--json").stdout)
    assert record["status"] == "failed"
    assert record["error"] == "marked failed by tester (flowship runs --mark-failed)"
    assert run_job(spec).status == runs.SUCCEEDED  # the output is free
    again = cli("runs", "--mark-failed", stale)
    assert again.exit_code == 2 and f"Run {stale} is failed, not running" in again.stderr


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("0123abcd", "No run 0123abcd."),
        ("not-a-run", "'not-a-run' is not a run id."),
        ("", "'' is not a run id."),
        ("a" * 5000, "is not a run id."),
        ("'; drop table batch_runs; --", "is not a run id."),
    ],
)
def test_mark_failed_refuses_what_is_not_one_running_run(churn, cli, given, message):
    done = cli("runs", "--mark-failed", given)
    assert done.exit_code == 2 and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 3


# --------------------------------------------------------- two runs, one Delta table


def _nested(outer_spec, inner_spec, tmp_path):
    """Run ``outer_spec``; after its first batch, run ``inner_spec`` to its commit, as a
    second process (another host, another state database) would."""

    def meanwhile(progress) -> None:
        if not meanwhile.done:
            meanwhile.done = True
            score_local(make_plan(inner_spec, run_id=uuid.uuid4().hex))

    meanwhile.done = False
    return run_job(outer_spec, on_progress=meanwhile)


@pytest.mark.parametrize("seeded", [False, True], ids=["new table", "existing table"])
@pytest.mark.parametrize("inner_incremental", [True, False], ids=["then incremental", "then full"])
def test_a_run_that_read_the_table_before_another_committed_is_refused(
    churn, tmp_path, seeded, inner_incremental
):
    out = tmp_path / "p"
    data = write_parquet(tmp_path / "in.parquet", customers(5000))
    common = {"input": str(data), "output": {"path": str(out)}, "prediction_date": DAY}
    if seeded:
        run_job(job(**common, incremental=True))  # every id scored once already...
        data = write_parquet(tmp_path / "in.parquet", customers(5000, start=5000))
        common["input"] = str(data)  # ...and 5,000 new ones arrive
    outer = job(**common, incremental=True, batch_size=1000)
    inner = job(**common, incremental=inner_incremental)
    with pytest.raises(ConcurrentChange, match="Another run changed"):
        _nested(outer, inner, tmp_path)
    ids = _ids(out)
    # The inner full run replaced the model's rows for the date with its own input.
    assert len(ids) == len(np.unique(ids)) == (10_000 if seeded and inner_incremental else 5000)
    rerun = run_job(outer)  # an incremental rerun scores what is left: nothing
    assert rerun.rows_out == 0 and len(_ids(out)) == len(ids)


def test_a_full_run_after_an_incremental_one_committed_meanwhile(churn, tmp_path):
    out = tmp_path / "p"
    first = write_parquet(tmp_path / "first.parquet", customers(2500))
    data = write_parquet(tmp_path / "in.parquet", customers(5000))
    common = {"input": str(data), "output": {"path": str(out)}, "prediction_date": DAY}
    run_job(job(**{**common, "input": str(first)}))
    with pytest.raises(ConcurrentChange):  # the incremental run added 2,500 ids meanwhile
        _nested(job(**common, batch_size=1000), job(**common, incremental=True), tmp_path)
    ids = _ids(out)
    assert len(ids) == len(np.unique(ids)) == 5000


def _other_model_rows(n: int) -> pa.Table:
    """Rows of another model for the same date, as another engine would write them."""
    return pa.table(
        {
            "customer_id": pa.array(np.arange(n, dtype=np.int64)),
            "prediction": pa.array(np.ones(n, dtype=np.int64)),
            "model_name": pa.array(["Other"] * n),
            "model_version": pa.array(["4"] * n),
            "run_id": pa.array(["spark-job"] * n),
            "prediction_date": pa.array([DAY] * n, pa.date32()),
        }
    )


@pytest.mark.parametrize("between", ["compact", "other engine, no statistics"])
def test_a_full_rerun_replaces_the_models_rows_in_mixed_files(churn, tmp_path, between):
    out = tmp_path / "p"
    data = write_parquet(tmp_path / "in.parquet", customers(3000))
    spec = job(input=str(data), output={"path": str(out)}, prediction_date=DAY)
    run_job(spec)
    schema = DeltaTable(str(out)).schema().to_arrow()
    other = _other_model_rows(500).cast(pa.schema(schema))
    if between == "compact":
        write_deltalake(str(out), other, mode="append")
        DeltaTable(str(out)).optimize.compact()  # one file now mixes Churn and Other
    else:  # the other engine wrote Churn's rows and Other's together, without statistics
        churn_rows = read_delta(str(out)).select(other.column_names)
        mixed = pa.concat_tables([churn_rows.cast(other.schema), other])
        write_deltalake(str(out), mixed, mode="overwrite",
                        configuration={"delta.dataSkippingNumIndexedCols": "0"})  # fmt: skip
    run_job(spec)
    table = read_delta(str(out))
    names = table.column("model_name").to_numpy(zero_copy_only=False)
    churn_ids = table.column("customer_id").to_numpy()[names == "Churn"]
    assert len(churn_ids) == len(np.unique(churn_ids)) == 3000
    assert int((names == "Other").sum()) == 500  # the other model's rows are kept


# ------------------------------------------------------------------------ SQL input


def test_a_sql_value_unlike_the_first_rows_is_a_rejected_row(churn, tmp_path):
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    frame = customers(3000)
    frame.to_sql("customers", sqlalchemy.create_engine(url), index=False)
    with sqlalchemy.create_engine(url).begin() as conn:  # SQLite keeps any value anywhere
        conn.execute(
            sqlalchemy.text("update customers set age = 'unknown' where customer_id = 2500")
        )
        conn.execute(
            sqlalchemy.text("update customers set frequency = x'00ff' where customer_id = 2900")
        )
    out = tmp_path / "p"
    spec = job(input={"format": "sql", "url": url, "query": "select * from customers"},
               output={"path": str(out)}, batch_size=500)  # fmt: skip
    record = run_job(spec)
    assert (record.rows_out, record.rows_rejected) == (2998, 2)
    rejects = read_delta(str(out) + "_rejects").to_pylist()
    reasons = {r["id"]: r["reason"] for r in rejects}
    assert reasons["2500"] == "age is 'unknown' (str), not int64 as in the query's first rows"
    assert reasons["2900"].startswith("frequency is b'\\x00\\xff' (bytes), not double")
    assert "__flowship" not in rejects[0]["row"]


@pytest.mark.postgres
def test_a_sql_input_is_probed_without_running_the_whole_query(churn, tmp_path, pg_url):
    """The row that fails (a division by zero) lies past the probe's first rows: a probe
    that buffered the whole result would fail on it before scoring started."""
    from flowship.batch.sources import open_source
    from flowship.batch.spec import parse_job

    query = (
        "select g as customer_id, g % 80 as age, 1.0 * g as tenure_months, "
        "100.0 / (g - 150000) as recency_days, 1.0 as frequency, 2.0 as monetary_total "
        "from generate_series(1, 200000) as g"
    )
    url = pg_url
    spec = parse_job({"model": "m", "id": "customer_id", "output": {"path": str(tmp_path / "p")},
                      "input": {"format": "sql", "url": url, "query": query}})  # fmt: skip
    started = time.monotonic()
    source = open_source(spec.input)
    assert source.schema.names[0] == "customer_id"
    assert time.monotonic() - started < 60
    with pytest.raises(InvalidInput, match="Reading the input query on .* division by zero"):
        for _ in source.batches(["customer_id", "age"], 20_000):
            pass


def test_an_append_through_a_stale_handle_lands_after_another_writer_changed_the_schema(
    tmp_path,
):
    """Two prediction-log writers: one merges a new column into the table while the other
    holds an open handle. Delta refuses the second commit ("metadata changed") and does
    not retry it; append_delta must, from the table as it is now, or the rows are lost."""
    import pyarrow as pa
    from deltalake import DeltaTable

    from flowship.batch.sinks import append_delta

    uri = str(tmp_path / "log")
    append_delta(uri, pa.table({"date": ["2026-11-29"], "a": [1]}), partition_by=["date"])
    stale = DeltaTable(uri)
    wider = pa.table({"date": ["2026-11-29"], "a": [2], "b": ["new"]})
    append_delta(uri, wider, partition_by=["date"])
    append_delta(stale, pa.table({"date": ["2026-11-29"], "a": [3]}), partition_by=["date"])
    rows = DeltaTable(uri).to_pyarrow_table()
    assert sorted(rows.column("a").to_pylist()) == [1, 2, 3]
