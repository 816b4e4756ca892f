from __future__ import annotations

import numpy as np
import pyarrow.dataset as pds
import pytest
from deltalake import DeltaTable

from flowship.batch import parse_job, run_job
from flowship.store.runs import list_runs


def read_delta(uri: str):
    from flowship.batch import _delta

    table = DeltaTable(uri)
    return _delta.dataset(table, uri).to_table()


def job(**fields):
    base = {"model": "models:/Churn@production", "id": "customer_id"}
    return parse_job({**base, **fields})


def test_scores_every_row_into_delta(churn, small_input, tmp_path):
    out = str(tmp_path / "predictions")
    record = run_job(job(input=str(small_input), output=out))
    assert record.status == "succeeded"
    assert (record.rows_in, record.rows_out, record.rows_rejected) == (1000, 1000, 0)
    assert record.model_name == "Churn" and record.model_version == "1"
    table = read_delta(out)
    assert table.num_rows == 1000
    assert set(table.column_names) >= {
        "customer_id",
        "prediction",
        "model_name",
        "model_version",
        "run_id",
        "prediction_date",
    }
    assert sorted(table.column("customer_id").to_pylist()) == list(range(1000))
    assert set(table.column("run_id").to_pylist()) == {record.run_id}
    assert [r.run_id for r in list_runs()] == [record.run_id]


def test_incremental_rerun_scores_nothing_new(churn, small_input, tmp_path):
    out = str(tmp_path / "predictions")
    first = run_job(job(input=str(small_input), output=out, incremental=True))
    again = run_job(job(input=str(small_input), output=out, incremental=True))
    assert (first.rows_out, again.rows_out, again.rows_skipped) == (1000, 0, 1000)
    assert read_delta(out).num_rows == 1000


def test_incremental_scores_only_new_ids(churn, tmp_path):
    from tests.batch.conftest import customers, write_parquet

    out = str(tmp_path / "predictions")
    run_job(job(input=str(write_parquet(tmp_path / "a.parquet", customers(500))), output=out,
                incremental=True))  # fmt: skip
    more = write_parquet(tmp_path / "b.parquet", customers(800))  # ids 0..799
    record = run_job(job(input=str(more), output=out, incremental=True))
    assert (record.rows_out, record.rows_skipped) == (300, 500)
    ids = read_delta(out).column("customer_id").to_pylist()
    assert sorted(ids) == list(range(800))


def test_new_model_version_makes_every_id_eligible(churn, small_input, tmp_path):
    out = str(tmp_path / "predictions")
    run_job(job(input=str(small_input), output=out, incremental=True))
    record = run_job(
        job(model="models:/Churn/2", input=str(small_input), output=out, incremental=True)
    )
    assert (record.model_version, record.rows_out, record.rows_skipped) == ("2", 1000, 0)
    table = read_delta(out)
    assert sorted(set(table.column("model_version").to_pylist())) == ["1", "2"]
    assert table.num_rows == 2000


def test_full_rerun_same_date_replaces_its_output(churn, small_input, tmp_path):
    out = str(tmp_path / "predictions")
    first = run_job(job(input=str(small_input), output=out))
    second = run_job(job(input=str(small_input), output=out))
    table = read_delta(out)
    assert table.num_rows == 1000
    assert set(table.column("run_id").to_pylist()) == {second.run_id} != {first.run_id}
    assert DeltaTable(out).version() == 1


def test_other_dates_are_kept_on_a_full_rerun(churn, small_input, tmp_path):
    out = str(tmp_path / "predictions")
    run_job(job(input=str(small_input), output=out, prediction_date="2026-01-01"))
    run_job(job(input=str(small_input), output=out, prediction_date="2026-01-02"))
    run_job(job(input=str(small_input), output=out, prediction_date="2026-01-02"))
    dates = read_delta(out).column("prediction_date").to_pylist()
    assert len(dates) == 2000 and len(set(dates)) == 2


def test_predictions_match_the_predictor(churn, small_input, tmp_path):
    import pyarrow.parquet as pq

    from flowship.predict import Predictor

    out = str(tmp_path / "predictions")
    run_job(job(input=str(small_input), output=out, output_mode="both"))
    table = read_delta(out).sort_by("customer_id")
    source = pq.read_table(small_input).to_pandas()
    expected = Predictor.load("models:/Churn/1", output="proba").predict(source)
    np.testing.assert_allclose(table.column("probability").to_numpy(), expected, rtol=1e-6)
    assert set(table.column("prediction").to_pylist()) <= {0, 1}


def test_parquet_output_commits_one_folder_per_run(churn, small_input, tmp_path):
    out = tmp_path / "predictions"
    run_job(job(input=str(small_input), output={"path": str(out), "format": "parquet"}))
    second = run_job(job(input=str(small_input), output={"path": str(out), "format": "parquet"}))
    data = pds.dataset(out, format="parquet", partitioning="hive").to_table()
    assert data.num_rows == 1000
    assert set(data.column("run_id").to_pylist()) == {second.run_id}
    assert not any((out / "_staging").iterdir())


@pytest.mark.parametrize("kind", ["csv", "delta"])
def test_csv_and_delta_inputs(churn, tmp_path, kind):
    from deltalake import write_deltalake

    from tests.batch.conftest import customers

    frame = customers(300)
    if kind == "csv":
        source = tmp_path / "customers.csv"
        frame.to_csv(source, index=False)
    else:
        source = tmp_path / "customers_delta"
        write_deltalake(str(source), frame)
    out = str(tmp_path / "predictions")
    record = run_job(job(input=str(source), output=out))
    assert (record.rows_in, record.rows_out) == (300, 300)
    assert record.input_snapshot


def test_sql_input(churn, tmp_path):
    import sqlalchemy

    from tests.batch.conftest import customers

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    customers(400).to_sql("customers", sqlalchemy.create_engine(url), index=False)
    out = str(tmp_path / "predictions")
    spec = job(input={"query": "SELECT * FROM customers WHERE customer_id < 250", "url": url},
               output=out, batch_size=100)  # fmt: skip
    record = run_job(spec)
    assert record.rows_out == 250
    assert read_delta(out).num_rows == 250


def test_partitioned_delta_input_and_progress(churn, tmp_path):
    from deltalake import write_deltalake

    from tests.batch.conftest import customers

    source = str(tmp_path / "customers_delta")
    frame = customers(500)
    frame["age"] = frame["age"] % 3 + 30  # three partitions; age is a model feature
    write_deltalake(source, frame, partition_by=["age"])
    seen = []
    record = run_job(
        job(input=source, output=str(tmp_path / "o"), batch_size=64), on_progress=seen.append
    )
    assert record.rows_out == 500
    assert record.input_snapshot["delta_version"] == 0
    last = seen[-1]
    assert (last.total, last.rows_in, last.rows_out) == (500, 500, 500)
    assert last.eta_seconds == 0 and last.rows_per_second > 0
    assert "500 rows in, 500 scored" in last.summary()


@pytest.mark.postgres
def test_runs_recorded_in_postgres(churn, pg_url, small_input, tmp_path):
    record = run_job(job(input=str(small_input), output=str(tmp_path / "o")))
    [listed] = list_runs()
    assert listed.run_id == record.run_id and listed.status == "succeeded"
    assert listed.started_at.tzinfo is not None and listed.duration_s > 0


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_database_table_output(churn, small_input, tmp_path, database, request):
    import sqlalchemy

    if database == "postgres":
        request.applymarker(pytest.mark.postgres)
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'out.db'}"
    spec = {"input": str(small_input), "incremental": True,
            "output": {"path": "churn_predictions", "format": "sql", "url": url}}  # fmt: skip
    first = run_job(job(**spec))
    again = run_job(job(**spec))
    assert (first.rows_out, again.rows_out, again.rows_skipped) == (1000, 0, 1000)
    full = run_job(job(**{**spec, "incremental": False}))
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sqlalchemy.text("select run_id, count(*) from churn_predictions group by run_id")
        ).all()
    engine.dispose()
    assert rows == [(full.run_id, 1000)]  # the full rerun replaced the earlier rows


def test_large_batches_score_in_parallel_slices_like_the_predictor(churn, tmp_path):
    """A batch above PARALLEL_ROWS is split across threads; the rows, their order and the
    duplicate check must come out exactly as one call over the whole input gives them."""
    from flowship.batch.local import PARALLEL_ROWS, _Pool, _predict
    from flowship.predict import Predictor

    from .conftest import FEATURES, customers, write_parquet

    n = PARALLEL_ROWS * 2 + 123
    frame = customers(n, seed=5).sample(frac=1.0, random_state=1).reset_index(drop=True)
    frame.loc[n - 1, "customer_id"] = frame.loc[7, "customer_id"]  # a late duplicate
    source = write_parquet(tmp_path / "big.parquet", frame)
    out = str(tmp_path / "predictions")
    record = run_job(job(input=str(source), output=out, output_mode="proba"))
    assert (record.rows_out, record.rows_rejected) == (n - 1, 1)
    predictor = Predictor.load("models:/Churn/1", output="proba")
    expected = predictor.predict(frame.iloc[: n - 1])
    table = read_delta(out).to_pandas().set_index("customer_id")
    got = table.loc[frame.customer_id.iloc[: n - 1], "probability"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9)

    features = {c: frame[c].to_numpy(dtype=np.float64) for c in FEATURES}
    with _Pool(3) as pool:
        sliced = _predict(predictor, features, pool)
    np.testing.assert_array_equal(sliced, predictor.predict(features))
