"""Every bad input stops the job with one clear message before anything is written,
or becomes a rejects row; never a half-written table."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from flowship.batch import parse_job, run_job
from flowship.errors import (
    CheckFailed,
    ConfigError,
    InvalidInput,
    ModelNotFound,
    NotFound,
    SchemaMismatch,
    VersionNotFound,
)
from flowship.store.runs import list_runs
from tests.batch.conftest import customers, write_parquet
from tests.batch.test_local import job, read_delta


def nothing_written(out: str) -> bool:
    return not DeltaTable.is_deltatable(out)


def test_missing_input_file(churn, tmp_path):
    out = str(tmp_path / "out")
    with pytest.raises(NotFound, match=r"The input '.*nope.parquet' does not exist"):
        run_job(job(input=str(tmp_path / "nope.parquet"), output=out))
    assert nothing_written(out)
    [record] = list_runs()
    assert record.status == "failed" and "does not exist" in record.error


def test_empty_parquet_input(churn, tmp_path):
    out = str(tmp_path / "out")
    empty = write_parquet(tmp_path / "empty.parquet", customers(0))
    with pytest.raises(InvalidInput, match="has no rows"):
        run_job(job(input=str(empty), output=out))
    assert nothing_written(out)


def test_empty_and_header_only_csv(churn, tmp_path):
    out = str(tmp_path / "out")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InvalidInput, match="is empty"):
        run_job(job(input=str(tmp_path / "empty.csv"), output=out))
    (tmp_path / "header.csv").write_text(",".join(customers(1).columns) + "\n")
    with pytest.raises(InvalidInput, match="has no rows"):
        run_job(job(input=str(tmp_path / "header.csv"), output=out))
    assert nothing_written(out)


def test_not_parquet(churn, tmp_path):
    (tmp_path / "junk.parquet").write_bytes(os.urandom(2048))
    with pytest.raises(InvalidInput, match="not readable as Parquet"):
        run_job(job(input=str(tmp_path / "junk.parquet"), output=str(tmp_path / "out")))


def test_wrong_and_missing_columns_are_all_listed(churn, tmp_path):
    frame = customers(50).drop(columns=["frequency"])
    frame["age"] = frame["age"].astype(str)
    frame["recency_days"] = "soon"
    bad = write_parquet(tmp_path / "bad.parquet", frame)
    out = str(tmp_path / "out")
    with pytest.raises(SchemaMismatch) as info:
        run_job(job(input=str(bad), output=out))
    message = info.value.message
    assert "frequency is missing" in message
    assert "age is string but the model expects long" in message
    assert "recency_days is string but the model expects double" in message
    assert nothing_written(out)


def test_missing_id_column_and_float_ids(churn, tmp_path):
    frame = customers(10)
    missing = write_parquet(tmp_path / "a.parquet", frame.drop(columns=["customer_id"]))
    with pytest.raises(SchemaMismatch, match=r"customer_id \(the id column\) is missing"):
        run_job(job(input=str(missing), output=str(tmp_path / "out")))
    frame["customer_id"] = frame["customer_id"] + 0.5
    floats = write_parquet(tmp_path / "b.parquet", frame)
    with pytest.raises(SchemaMismatch, match="use integers or text"):
        run_job(job(input=str(floats), output=str(tmp_path / "out")))


@pytest.mark.parametrize(
    ("ref", "error"),
    [("models:/Nope@production", ModelNotFound), ("models:/Churn/99", VersionNotFound)],
)
def test_model_ref_that_does_not_resolve(churn, small_input, tmp_path, ref, error):
    out = str(tmp_path / "out")
    with pytest.raises(error):
        run_job(job(model=ref, input=str(small_input), output=out))
    assert nothing_written(out)
    assert list_runs()[0].status == "failed"


def test_output_that_cannot_be_written(churn, small_input, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(InvalidInput, match="cannot be written"):
        run_job(job(input=str(small_input), output=str(blocker / "predictions")))
    # /proc refuses new folders even to root.
    with pytest.raises(InvalidInput, match="cannot be written"):
        run_job(job(input=str(small_input), output="/proc/flowship-predictions"))


def test_schema_change_in_existing_output(churn, small_input, tmp_path):
    out = str(tmp_path / "out")
    run_job(job(input=str(small_input), output=out))
    with pytest.raises(
        SchemaMismatch, match="prediction is missing from this job's output; probability is new"
    ):
        run_job(job(input=str(small_input), output=out, output_mode="proba"))
    assert DeltaTable(out).version() == 0
    assert read_delta(out).num_rows == 1000


def test_null_and_duplicate_ids_and_bad_values_are_rejected(churn, tmp_path):
    frame = customers(1000)
    ids = frame["customer_id"].astype("Int64")
    ids[3] = pd.NA
    ids[4] = 10  # a duplicate of row 10 (which comes later: the first seen wins)
    frame["customer_id"] = ids
    frame.loc[5, "tenure_months"] = np.nan
    frame.loc[6, "recency_days"] = np.inf
    source = write_parquet(tmp_path / "c.parquet", frame)
    out = str(tmp_path / "out")
    record = run_job(job(input=str(source), output=out, max_reject_fraction=0.01))
    assert (record.rows_in, record.rows_out, record.rows_rejected) == (1000, 996, 4)
    table = read_delta(out)
    ids_out = table.column("customer_id").to_pylist()
    assert len(ids_out) == len(set(ids_out)) == 996
    rejects = read_delta(out + "_rejects").to_pandas().set_index("reason")
    assert set(rejects.index) == {
        "customer_id (the id) is null",
        "customer_id is a duplicate of an earlier row",
        "tenure_months is missing or infinite",
        "recency_days is missing or infinite",
    }
    assert rejects.loc["customer_id is a duplicate of an earlier row", "id"] == "10"


def test_csv_cells_that_do_not_parse_are_rejected(churn, tmp_path):
    frame = customers(200).astype(str)
    frame.loc[7, "age"] = "forty"
    frame.loc[8, "monetary_total"] = "12,5"
    source = tmp_path / "c.csv"
    frame.to_csv(source, index=False)
    record = run_job(job(input=str(source), output=str(tmp_path / "out"),
                         max_reject_fraction=0.05))  # fmt: skip
    assert (record.rows_out, record.rows_rejected) == (198, 2)
    reasons = set(read_delta(str(tmp_path / "out_rejects")).column("reason").to_pylist())
    assert reasons == {"age is not a valid long", "monetary_total is not a valid double"}


def test_too_many_rejects_fails_and_commits_no_prediction(churn, tmp_path):
    frame = customers(1000)
    frame.loc[:49, "tenure_months"] = np.nan  # 5% rejected, over the 1% default
    source = write_parquet(tmp_path / "c.parquet", frame)
    out = str(tmp_path / "out")
    with pytest.raises(CheckFailed, match=r"50 of 1,000 input rows \(5.0%\) were rejected"):
        run_job(job(input=str(source), output=out))
    assert nothing_written(out)
    assert read_delta(out + "_rejects").num_rows == 50
    assert list_runs()[0].status == "failed"
    assert not [p for p in Path(out).rglob("*.parquet")]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "m", "id": "x", "input": "a", "output": "b", "speed": 3},
         "unknown field 'speed'"),
        ({"model": "m", "input": "a", "output": "b"}, "field 'id' is required"),
        ({"model": "m", "id": "x", "input": "a", "output": "b", "engine": "gpu"},
         "field 'engine': Input should be 'local' or 'spark' (got 'gpu')"),
        ({"model": "m", "id": "x", "input": "a", "output": "b", "batch_size": 0},
         "field 'batch_size'"),
        ({"model": "m", "id": "x", "input": {"query": "select 1"}, "output": "b"},
         "needs both 'query' and 'url'"),
        ({"model": "m", "id": "x", "input": "a", "output": "b", "features": ["x"]},
         "cannot also be a feature"),
        ({"model": "m", "id": "x", "input": "a", "output": "b", "name": "../../etc"},
         "field 'name'"),
        ({"model": " ", "id": "x", "input": "a", "output": "b"}, "must not be empty"),
        ({"model": "m", "id": "x", "input": "a", "output": {"path": "t", "format": "sql"}},
         "format 'sql' and 'url' go together"),
        ({"model": "m", "id": "x", "input": "a",
          "output": {"path": "t; drop table x", "format": "sql", "url": "sqlite://"}},
         "letters, digits and '_'"),
    ],
)  # fmt: skip
def test_job_fields_are_validated(fields, message):
    with pytest.raises(ConfigError) as info:
        parse_job(fields, source="job.yaml")
    assert message in info.value.message
    assert info.value.message.startswith("job.yaml: ")


def test_job_file_problems(tmp_path):
    from flowship.batch import load_job

    with pytest.raises(ConfigError, match="no such job file"):
        load_job(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_job(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_job(tmp_path / "list.yaml")
    (tmp_path / "huge.yaml").write_text("# " + "x" * 2_000_000)
    with pytest.raises(ConfigError, match="larger than 1 MB"):
        load_job(tmp_path / "huge.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError):
        load_job(tmp_path / "bin.yaml")


def test_features_the_model_does_not_take(churn, small_input, tmp_path):
    with pytest.raises(SchemaMismatch, match="does not take: shoe_size"):
        run_job(job(input=str(small_input), output=str(tmp_path / "o"),
                    features=["age", "shoe_size"]))  # fmt: skip


def test_dictionary_and_string_ids(churn, tmp_path):
    frame = customers(100)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    ids = pa.array([f"C{i:04d}" for i in range(100)]).dictionary_encode()
    table = table.set_column(0, "customer_id", ids)
    pq.write_table(table, tmp_path / "d.parquet")
    out = str(tmp_path / "out")
    run_job(job(input=str(tmp_path / "d.parquet"), output=out, incremental=True))
    again = run_job(job(input=str(tmp_path / "d.parquet"), output=out, incremental=True))
    assert again.rows_skipped == 100
    assert read_delta(out).column("customer_id").type == pa.string()


def test_unreadable_bytes_mid_file_commit_nothing(churn, tmp_path):
    good = customers(3000).to_csv(index=False).encode()
    lines = good.splitlines(keepends=True)
    source = tmp_path / "c.csv"
    source.write_bytes(b"".join(lines[:2500]) + b"\xff\xfe,\xff\n" + b"".join(lines[2500:]))
    out = str(tmp_path / "out")
    with pytest.raises(InvalidInput, match="Reading the input .* failed"):
        run_job(job(input=str(source), output=out, batch_size=500))
    assert nothing_written(out)
    assert not list(Path(out).rglob("*.parquet"))


def test_existing_table_with_other_partitioning(churn, small_input, tmp_path):
    from deltalake import write_deltalake

    out = str(tmp_path / "out")
    run_job(job(input=str(small_input), output=out))
    table = read_delta(out)
    other = str(tmp_path / "other")
    write_deltalake(other, table)  # same columns, not partitioned
    with pytest.raises(SchemaMismatch, match=r"partitioned by nothing, not \[prediction_date\]"):
        run_job(job(input=str(small_input), output=other))


def test_unreachable_output_database(churn, small_input, tmp_path):
    out = {"path": "preds", "format": "sql", "url": "postgresql+psycopg://nobody@127.0.0.1:1/x"}
    with pytest.raises(InvalidInput, match="cannot be reached"):
        run_job(job(input=str(small_input), output=out))


def test_first_row_with_an_id_wins_even_when_it_is_rejected(churn, tmp_path):
    frame = customers(300)
    frame.loc[0, "frequency"] = np.nan  # id 0: rejected for the missing value
    frame.loc[200, "customer_id"] = 0  # a later, valid row with id 0: a duplicate
    source = write_parquet(tmp_path / "c.parquet", frame)
    out = str(tmp_path / "out")
    record = run_job(job(input=str(source), output=out, max_reject_fraction=0.05))
    assert (record.rows_out, record.rows_rejected) == (298, 2)
    reasons = read_delta(out + "_rejects").to_pandas().set_index("id")["reason"]
    assert reasons["0"].tolist() == [
        "frequency is missing or infinite",
        "customer_id is a duplicate of an earlier row",
    ]
