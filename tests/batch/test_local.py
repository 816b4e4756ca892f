from __future__ import annotations

import numpy as np
import pyarrow.dataset as pds
import pytest
from deltalake import DeltaTable

from flowship.batch import parse_job, run_job
from flowship.batch.sinks import _delta  # noqa: F401  (the pyarrow-filesystem reader)
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
        "customer_id", "prediction", "model_name", "model_version", "run_id", "prediction_date"
    }
    assert sorted(table.column("customer_id").to_pylist()) == list(range(1000))
    assert set(table.column("run_id").to_pylist()) == {record.run_id}
    assert [r.run_id for r in list_runs()] == [record.run_id]
