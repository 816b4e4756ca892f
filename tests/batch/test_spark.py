"""The Spark engine (pyspark local mode, one session for the whole test session)."""

from __future__ import annotations

import numpy as np
import pyarrow.dataset as pds
import pytest

from flowship.batch import parse_job, run_job
from tests.batch.conftest import customers, write_parquet
from tests.batch.test_local import job, read_delta

pytestmark = pytest.mark.spark


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark")
    from flowship.batch.spark import spark_session

    session = spark_session("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "2")
    yield session
    session.stop()


def test_local_and_spark_give_the_same_predictions(churn, spark, tmp_path):
    frame = customers(3000)
    frame.loc[5, "tenure_months"] = np.nan  # rejected by both engines
    frame.loc[6, "customer_id"] = 7  # a duplicate for both
    source = write_parquet(tmp_path / "c.parquet", frame)
    fields = {"input": str(source), "output_mode": "both", "max_reject_fraction": 0.01}
    local = run_job(job(output=str(tmp_path / "local"), **fields))
    remote = run_job(job(output=str(tmp_path / "spark"), engine="spark", **fields))
    assert (remote.rows_in, remote.rows_out, remote.rows_rejected) == (3000, 2998, 2)
    assert (local.rows_out, local.rows_rejected) == (2998, 2)
    a = read_delta(str(tmp_path / "local")).sort_by("customer_id")
    b = read_delta(str(tmp_path / "spark")).sort_by("customer_id")
    assert a.column("customer_id").equals(b.column("customer_id"))
    np.testing.assert_array_equal(a.column("prediction"), b.column("prediction"))
    np.testing.assert_allclose(a.column("probability"), b.column("probability"), rtol=1e-12)
    assert set(b.column("run_id").to_pylist()) == {remote.run_id}
    assert read_delta(str(tmp_path / "spark_rejects")).num_rows == 2


def test_spark_incremental_and_parquet_output(churn, spark, tmp_path):
    out = tmp_path / "out"
    first = write_parquet(tmp_path / "a.parquet", customers(400))
    spec = {"output": {"path": str(out), "format": "parquet"}, "engine": "spark",
            "incremental": True}  # fmt: skip
    run_job(job(input=str(first), **spec))
    more = write_parquet(tmp_path / "b.parquet", customers(600))
    again = run_job(job(input=str(more), **spec))
    assert (again.rows_out, again.rows_skipped) == (200, 400)
    data = pds.dataset(out, format="parquet", partitioning="hive").to_table()
    ids = data.column("customer_id").to_pylist()
    assert sorted(ids) == list(range(600))


def test_spark_refuses_sql_input(churn, spark, tmp_path):
    import sqlalchemy

    from flowship.errors import UsageError

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    customers(10).to_sql("customers", sqlalchemy.create_engine(url), index=False)
    spec = parse_job({"model": "models:/Churn/1", "id": "customer_id", "engine": "spark",
                      "input": {"query": "select * from customers", "url": url},
                      "output": str(tmp_path / "o")})  # fmt: skip
    with pytest.raises(UsageError, match="The spark engine reads files and tables"):
        run_job(spec)
