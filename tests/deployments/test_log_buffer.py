"""The prediction log's column buffer: rows of several models, multi-row requests,
failed requests and numpy columns line up in one table. (The buffer reads only a model's
name, version, run id, signature columns and the columns of the matrix it scores, given
here as plain records.)"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pyarrow as pa

from flowship.serving.prediction_log import LogEntry, _Buffer


def model(version: str, *columns: tuple[str, str]) -> SimpleNamespace:
    inputs = [SimpleNamespace(name=name, type=kind) for name, kind in columns]
    return SimpleNamespace(model_name="churn", model_version=version, run_id=f"run{version}",
                           input_columns=inputs, matrix_columns=None)  # fmt: skip


def entry(request_id, predictor, columns, n_rows, output, *, keys=None, status="ok",
          inputs=None):  # fmt: skip
    return LogEntry(request_id, None, 1_800_000_000.0, 3, f"v{predictor.model_version}",
                    "primary", predictor, keys, columns, n_rows, output, 1.5, status=status,
                    error="boom" if status == "error" else None, inputs=inputs)  # fmt: skip


def test_the_scored_matrix_rows_are_kept_in_the_order_the_model_took_them():
    """An all-double model's features come from the matrix it scored (one copy), whatever
    its column order (the estimator's own); otherwise (an integer feature, whose doubles
    may have lost digits; rows of another shape) from the request, as sent."""
    same = model("1", ("age", "double"), ("tenure", "double"))
    same.matrix_columns = ["age", "tenure"]
    reordered = model("2", ("age", "double"), ("tenure", "double"))
    reordered.matrix_columns = ["tenure", "age"]  # e.g. the estimator's own order
    counted = model("3", ("age", "long"), ("tenure", "double"))
    counted.matrix_columns = ["age", "tenure"]
    scored = np.array([[30.0, 2.0], [31.0, 3.0], [32.0, 4.0]])
    buffer = _Buffer()
    buffer.add(entry("a", same, {"age": [99.0], "tenure": [99.0]}, 1, np.array([1.0]),
                     inputs=scored[0:1]))  # fmt: skip
    buffer.add(entry("b", same, {"age": [40.0], "tenure": [5.0]}, 1, np.array([0.0])))
    buffer.add(entry("c", reordered, {"age": [99.0], "tenure": [99.0]}, 1, np.array([1.0]),
                     inputs=np.array([[6.0, 50.0]])))  # fmt: skip
    buffer.add(entry("d", same, {"age": [60.0, 61.0], "tenure": [7.0, 8.0]}, 2,
                     np.array([0.0, 1.0]), inputs=scored[1:3]))  # fmt: skip
    buffer.add(entry("e", same, {"age": [70.0], "tenure": [9.0]}, 1, np.array([1.0]),
                     inputs=scored[0:2]))  # another shape: the request's values  # fmt: skip
    buffer.add(entry("f", counted, {"age": [41], "tenure": [1.5]}, 1, np.array([1.0]),
                     inputs=np.array([[99.0, 99.0]])))  # an integer model: as sent  # fmt: skip
    rows = buffer.to_arrow("churn").to_pylist()

    assert [r["request_id"] for r in rows] == ["a", "b", "c", "d", "d", "e", "f"]
    # "a", "c" and "d" from the matrix (so the request's 99s and 60s are not what is kept)
    assert [r["age"] for r in rows] == [30.0, 40.0, 50.0, 31.0, 32.0, 70.0, 41.0]
    assert [r["tenure"] for r in rows] == [2.0, 5.0, 6.0, 3.0, 4.0, 9.0, 1.5]
    alone = _Buffer()  # the integer model's rows alone: its feature as sent, every digit
    alone.add(entry("g", counted, {"age": [2**53 + 1], "tenure": [2.5]}, 1, np.array([1.0]),
                    inputs=np.array([[2.0**53 + 1, 2.5]])))  # fmt: skip
    table = alone.to_arrow("churn")
    assert table.schema.field("age").type == pa.int64()
    assert table.to_pylist()[0]["age"] == 2**53 + 1


def test_each_row_names_the_model_that_scored_it_even_a_reloaded_one():
    # The buffer keeps each model's name, version and run once; rows refer to it.
    first, unversioned = model("1", ("age", "double")), model(None, ("age", "double"))
    unversioned.model_name = unversioned.run_id = None
    reloaded = model("1", ("age", "double"))
    reloaded.run_id = "run1-reloaded"
    buffer = _Buffer()
    for request_id, predictor in (("a", first), ("b", unversioned), ("c", reloaded), ("d", first)):
        buffer.add(entry(request_id, predictor, {"age": [1.0]}, 1, np.array([0.0])))
    rows = buffer.to_arrow("churn").to_pylist()

    assert [(r["model_name"], r["model_version"], r["run_id"]) for r in rows] == [
        ("churn", "1", "run1"), (None, "", None), ("churn", "1", "run1-reloaded"),
        ("churn", "1", "run1"),
    ]  # fmt: skip


def test_rows_of_several_models_line_up_column_by_column():
    v1 = model("1", ("age", "double"), ("plan", "string"))
    v2 = model("2", ("age", "double"), ("tenure", "long"), ("ts", "double"))
    buffer = _Buffer()
    buffer.add(entry("a", v1, {"age": [30.0], "plan": ["pro"]}, 1, np.array([1.0]), keys=["k1"]))
    buffer.add(entry("b", v2, {"age": np.array([40.0, 41.0]), "tenure": np.array([2, 3]),
                               "ts": [0.5, 0.25]}, 2, np.array([0, 1])))  # fmt: skip
    buffer.add(entry("c", v1, {}, 2, None, keys=["k2", "k3"], status="error"))
    buffer.add(entry("d", v1, {"age": [50.0], "plan": ["basic"], "extra": [1]}, 1,
                     np.array([0.0])))  # fmt: skip
    table = buffer.to_arrow("churn")

    assert table.num_rows == buffer.rows == 6
    rows = table.to_pylist()
    assert [r["request_id"] for r in rows] == ["a", "b", "b", "c", "c", "d"]
    assert [r["model_version"] for r in rows] == ["1", "2", "2", "1", "1", "1"]
    assert [r["run_id"] for r in rows] == ["run1", "run2", "run2", "run1", "run1", "run1"]
    assert [r["key"] for r in rows] == ["k1", None, None, "k2", "k3", None]
    assert [r["age"] for r in rows] == [30.0, 40.0, 41.0, None, None, 50.0]
    assert [r["plan"] for r in rows] == ["pro", None, None, None, None, "basic"]
    assert [r["tenure"] for r in rows] == [None, 2, 3, None, None, None]
    assert [r["input_ts"] for r in rows] == [None, 0.5, 0.25, None, None, None]  # reserved name
    assert [r["output"] for r in rows] == [1.0, 0.0, 1.0, None, None, 0.0]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "error", "error", "ok"]
    assert [r["error"] for r in rows] == [None, None, None, "boom", "boom", None]
    assert {r["deployment"] for r in rows} == {"churn"} and {r["revision"] for r in rows} == {3}
    assert table.schema.field("tenure").type == pa.int64()
    assert table.schema.field("date").type == pa.date32()
    assert "extra" not in table.column_names  # only what a signature names


def test_values_a_column_type_cannot_hold_are_kept_as_text():
    v1 = model("1", ("age", "long"))
    buffer = _Buffer()
    buffer.add(entry("a", v1, {"age": [1, "n/a"]}, 2, np.array([[0.1, 0.9], [0.8, 0.2]])))
    rows = buffer.to_arrow("churn").to_pylist()
    assert [r["age"] for r in rows] == ["1", "n/a"]
    assert [r["output"] for r in rows] == [[0.1, 0.9], [0.8, 0.2]]


def test_buffered_rows_leave_nothing_for_the_garbage_collector():
    """Each request's rows wait up to a flush interval: anything the collector tracks per
    request makes it run every few hundred requests and promote the requests in flight
    (a full collection paused the event loop for ~80 ms every few seconds)."""
    import gc

    v1 = model("1", ("age", "double"), ("plan", "string"))
    v2 = model("2", ("age", "double"))
    v2.matrix_columns = ["age"]
    buffer = _Buffer()
    buffer.add(entry("warm", v1, {"age": [1.0], "plan": ["pro"]}, 1, np.array([1.0])))
    buffer.add(entry("warm2", v2, {"age": [1.0]}, 1, np.array([1.0]), inputs=np.ones((1, 1))))
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for i in range(2000):
            columns = {"age": [float(i)], "plan": ["pro"]}
            buffer.add(entry(f"r{i}", v1, columns, 1, np.array([1.0]), keys=[str(i)]))
            del columns
        for i in range(2000):  # rows kept from the scored matrix (views)
            scored = np.array([[float(i)]])
            buffer.add(entry(f"s{i}", v2, {"age": [0.0]}, 1, np.array([1.0]), inputs=scored))
            del scored
        grown = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert grown < 50, f"{grown} objects tracked by the collector after 4,000 buffered rows"
    rows = buffer.to_arrow("churn").to_pylist()
    assert len(rows) == 4002 and rows[-1]["age"] == 1999.0


def test_only_repeating_text_is_dictionary_encoded_in_the_files(tmp_path):
    """Dictionaries built for ids and numbers are given up page by page: they cost a
    third of the writer's CPU per commit and made the files larger."""
    import pyarrow.parquet as pq

    from flowship.serving.prediction_log import _append

    v1 = model("1", ("age", "double"), ("plan", "string"))
    buffer = _Buffer()
    for i in range(500):
        columns = {"age": [float(i)], "plan": ["pro" if i % 2 else "basic"]}
        buffer.add(entry(f"request-{i}", v1, columns, 1, np.array([i / 500]), keys=[str(i)]))
    assert _append(str(tmp_path / "log"), buffer.to_arrow("churn")) is None

    (path,) = (tmp_path / "log").rglob("*.parquet")
    meta = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {
        meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)
    }
    dictionary = {name for name, used in encodings.items() if any("DICT" in e for e in used)}
    assert {"variant", "model_version", "status", "plan"} <= dictionary
    assert not dictionary & {"request_id", "key", "age", "output", "latency_ms"}
    assert {meta.column(i).compression for i in range(meta.num_columns)} == {"SNAPPY"}


def test_the_delta_log_keeps_file_statistics_only_for_the_columns_readers_filter_by(tmp_path):
    """deltalake builds every commit from the statistics of every file in the table, so
    statistics for ~50 columns made each commit slower as the table grew."""
    import json

    from deltalake import DeltaTable

    from flowship.serving.prediction_log import _append

    v1 = model("1", ("age", "double"))
    buffer = _Buffer()
    for i in range(20):
        buffer.add(entry(f"r{i}", v1, {"age": [float(i)]}, 1, np.array([0.5]), keys=[str(i)]))
    uri = str(tmp_path / "log")
    assert _append(uri, buffer.to_arrow("churn")) is None
    assert _append(uri, buffer.to_arrow("churn")) is None  # an existing table: appended

    table = DeltaTable(uri)
    assert table.version() == 1 and table.to_pyarrow_table().num_rows == 40
    actions = [
        json.loads(line)
        for commit in sorted((tmp_path / "log" / "_delta_log").glob("*.json"))
        for line in commit.read_text().splitlines()
    ]  # the Delta log itself (the protocol's format), each file's statistics in its "add"
    stats = [json.loads(action["add"]["stats"]) for action in actions if "add" in action]
    assert {tuple(sorted(s["minValues"])) for s in stats} == {
        ("deployment", "model_name", "model_version", "revision", "role", "status", "ts",
         "variant")
    }  # fmt: skip


FIRST_FLUSH = """
import sys
from types import SimpleNamespace

import numpy as np

from flowship.serving.metrics import ServingMetrics
from flowship.serving.prediction_log import LogEntry, PredictionLog

if __name__ == "__main__":
    log = PredictionLog(sys.argv[1], deployment="churn", metrics=ServingMetrics())
    before = set(sys.modules)
    predictor = SimpleNamespace(model_name="churn", model_version="1", run_id="r",
                                input_columns=[SimpleNamespace(name="age", type="double")],
                                matrix_columns=None)
    log.add(LogEntry("a", None, 1.8e9, 1, "v1", "primary", predictor, ["k"], {"age": [1.0]},
                     1, np.array([1.0]), 0.5))
    assert log.flush() == 1
    print(sorted(set(sys.modules) - before))
    log.close()
"""


def test_the_first_flush_imports_nothing(tmp_path):
    """A flush runs beside the event loop and holds the GIL while Python runs: importing
    a module tree there (pyarrow's pandas, 0.3 s) stalled requests. The process starts
    without pandas, as a server whose model was reloaded from its record does."""
    script = tmp_path / "first_flush.py"
    script.write_text(FIRST_FLUSH)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "log")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_a_micro_batch_is_one_entry_and_each_request_keeps_its_own_rows():
    """A batch's requests (PredictionLog.add_scored) share its arrays, columns and answer
    time; each row still carries its own request's id, key, revision, variant and
    latency, between the rows of entries made one request at a time."""
    doubles = model("1", ("age", "double"), ("tenure", "double"))
    doubles.matrix_columns = ["tenure", "age"]
    texts = model("2", ("age", "double"), ("plan", "string"))
    buffer = _Buffer()
    buffer.add(entry("a", doubles, {"age": [20.0], "tenure": [1.0]}, 1, np.array([0.5])))
    # (tag, ...) per request, as the micro-batcher hands them over; each tag is the
    # request's id, client id, key (or keys), rows, revision, variant and start time.
    tagged = [(("b", "client-b", ["k1", "k2"], 2, 3, "champion", 8.75), 2),
              (("c", None, None, 1, 4, "challenger", 7.5), 1)]  # fmt: skip
    scored = np.array([[2.0, 21.0], [3.0, 22.0], [4.0, 23.0], [5.0, 24.0]])
    buffer.scored(doubles, tagged, {"age": [99.0] * 3, "tenure": [99.0] * 3}, 3,
                  np.array([0.1, 0.2, 0.3]), scored[:3], clock=10.0, scale=1.0,
                  ts=1_800_000_001.0)  # a view of a larger matrix: copied  # fmt: skip
    scored[:] = 0.0
    listed = [(("d", None, "k3", 1, 4, "challenger", 9.25),), (("e", None, "k4", 1, 4, "x", 9.0),)]
    buffer.scored(texts, listed, {"age": [30.0, 31.0], "plan": ["pro", "basic"]}, 2,
                  np.array([[0.9, 0.1], [0.4, 0.6]]), None, clock=10.0, scale=1.0,
                  ts=1_800_000_002.0)  # fmt: skip
    header = [(("f", None, "k5", 2, 4, "x", 0.0095),)]  # one key for both rows (a header's)
    buffer.scored(texts, header, {"age": [32.0, 33.0], "plan": ["pro", "pro"]}, 2,
                  np.array([0.0, 1.0]), None, clock=0.0105, ts=1_800_000_003.0)  # fmt: skip
    rows = buffer.to_arrow("churn").to_pylist()

    assert [r["request_id"] for r in rows] == ["a", "b", "b", "c", "d", "e", "f", "f"]
    assert [r["client_request_id"] for r in rows] == [None, "client-b", "client-b"] + [None] * 5
    assert [r["key"] for r in rows] == [None, "k1", "k2", None, "k3", "k4", "k5", "k5"]
    assert [r["revision"] for r in rows] == [3, 3, 3, 4, 4, 4, 4, 4]
    assert [r["variant"] for r in rows] == ["v1", "champion", "champion", "challenger",
                                            "challenger", "x", "x", "x"]  # fmt: skip
    assert [r["latency_ms"] for r in rows][:6] == [1.5, 1.25, 1.25, 2.5, 0.75, 1.0]
    assert [round(r["latency_ms"], 9) for r in rows][6:] == [1.0, 1.0]  # (clock - start) s
    assert [r["ts"].timestamp() for r in rows] == (
        [1.8e9] + [1_800_000_001.0] * 3 + [1.8e9 + 2] * 2 + [1.8e9 + 3] * 2
    )
    assert [r["age"] for r in rows] == [20.0, 21.0, 22.0, 23.0, 30.0, 31.0, 32.0, 33.0]
    assert [r["tenure"] for r in rows] == [1.0, 2.0, 3.0, 4.0, None, None, None, None]
    assert [r["plan"] for r in rows] == [None] * 4 + ["pro", "basic", "pro", "pro"]
    assert [r["model_version"] for r in rows] == ["1"] * 4 + ["2"] * 4
    assert [r["output"] for r in rows] == ["0.5", "0.1", "0.2", "0.3", "[0.9, 0.1]",
                                           "[0.4, 0.6]", "0.0", "1.0"]  # fmt: skip


def test_floating_point_models_rows_line_up_with_every_other_kind_of_row():
    """Features of an all-double model are kept as raw doubles (no object per value);
    rows such a model cannot keep that way (missing inputs, a null, text) and rows of
    other models are listed. Whatever the mix, each row's values land in its own row."""
    v1 = model("1", ("age", "double"), ("score", "float"))
    v2 = model("2", ("age", "double"), ("plan", "string"))
    v3 = model("3", ("score", "double"), ("tenure", "double"))
    buffer = _Buffer()
    out = np.array([1.0])
    buffer.add(entry("a", v1, {"age": [30.0], "score": [0.5]}, 1, out))
    buffer.add(entry("b", v2, {"age": [31.0], "plan": ["pro"]}, 1, out))
    buffer.add(entry("c", v1, {"age": [32.0, 33], "score": [0.25, 0.75]}, 2, np.ones(2)))
    buffer.add(entry("d", v1, {}, 1, None, status="error"))
    buffer.add(entry("e", v1, {"age": [None], "score": [0.125]}, 1, out))
    buffer.add(entry("f", v3, {"score": np.array([1.5, 2.5]), "tenure": np.array([4, 5])},
                     2, np.ones(2)))  # fmt: skip
    buffer.add(entry("g", v1, {"age": [float("nan")], "score": [True]}, 1, out))
    buffer.add(entry("h", v1, {"age": [34.0]}, 1, out))  # a column short: listed
    buffer.add(entry("i", v3, {"score": np.array([3.5]), "tenure": np.array([6])}, 1, out))
    rows = buffer.to_arrow("churn").to_pylist()

    ids = ["a", "b", "c", "c", "d", "e", "f", "f", "g", "h", "i"]
    assert [r["request_id"] for r in rows] == ids
    ages = [r["age"] for r in rows]
    assert ages[:8] == [30.0, 31.0, 32.0, 33.0, None, None, None, None]
    assert np.isnan(ages[8]) and ages[9] == 34.0 and ages[10] is None  # NaN is not null
    scores = [0.5, None, 0.25, 0.75, None, 0.125, 1.5, 2.5, 1.0, None, 3.5]
    assert [r["score"] for r in rows] == scores
    assert [r["tenure"] for r in rows] == [None] * 6 + [4.0, 5.0, None, None, 6.0]
    assert [r["plan"] for r in rows] == [None, "pro"] + [None] * 9
    assert buffer.listed == 4  # b, d, e, h


def test_a_feature_another_model_types_as_text_keeps_every_value_as_text():
    v1 = model("1", ("age", "string"))
    v2 = model("2", ("age", "double"))
    buffer = _Buffer()
    buffer.add(entry("a", v1, {"age": ["unknown"]}, 1, np.array([1.0])))
    buffer.add(entry("b", v2, {"age": [30.5]}, 1, np.array([1.0])))
    buffer.add(entry("c", v2, {"age": [7.0]}, 1, np.array([1.0])))
    assert [r["age"] for r in buffer.to_arrow("churn").to_pylist()] == ["unknown", "30.5", "7.0"]


def test_a_buffer_of_floating_point_rows_only_builds_its_columns_without_lists():
    v1 = model("1", ("age", "double"), ("score", "double"))
    buffer = _Buffer()
    for i in range(1000):
        buffer.add(entry(f"r{i}", v1, {"age": [float(i)], "score": [i / 2]}, 1, np.ones(1)))
    table = buffer.to_arrow("churn")
    assert buffer.listed == 0 and buffer.features == {"age": [], "score": []}
    assert table.column("age").to_pylist() == [float(i) for i in range(1000)]
    assert table.column("score").null_count == 0
    assert table.schema.field("age").type == pa.float64()


def test_doubles_join_another_models_integer_feature_when_they_are_whole():
    counted = model("1", ("visits", "long"))
    measured = model("2", ("visits", "double"))
    for value, expected in ((4.0, [2, 4]), (4.5, ["2", "4.5"])):
        buffer = _Buffer()
        buffer.add(entry("a", counted, {"visits": [2]}, 1, np.array([1.0])))
        buffer.add(entry("b", measured, {"visits": [value]}, 1, np.array([1.0])))
        assert [r["visits"] for r in buffer.to_arrow("churn").to_pylist()] == expected


def test_every_compact_every_commits_the_small_files_are_merged_and_no_row_is_lost(tmp_path):
    """One file a flush would make every commit of a long-running server slower than the
    last (deltalake reads every file's statistics to build a commit)."""
    from deltalake import DeltaTable

    from flowship.serving.prediction_log import _append

    v1 = model("1", ("age", "double"))
    uri = str(tmp_path / "log")
    for flush in range(7):
        buffer = _Buffer()
        for i in range(50):
            row = flush * 50 + i
            buffer.add(entry(f"r{row}", v1, {"age": [float(row)]}, 1, np.array([0.5])))
        assert _append(uri, buffer.to_arrow("churn"), compact_every=3) is None

    table = DeltaTable(uri)
    operations = [commit["operation"] for commit in reversed(table.history())]
    assert operations.count("OPTIMIZE") == 2  # after the 3rd and the 6th append
    assert len(table.file_uris()) == 2  # the merged file and the 7th append's
    ages = sorted(table.to_pyarrow_table().column("age").to_pylist())
    assert ages == [float(row) for row in range(350)]


WRITER = """
import sys
from types import SimpleNamespace

import numpy as np

from flowship.serving.prediction_log import LogEntry, _append, _Buffer

uri, worker = sys.argv[1], sys.argv[2]
predictor = SimpleNamespace(model_name="churn", model_version="1", run_id="r",
                            input_columns=[SimpleNamespace(name="age", type="double")],
                            matrix_columns=None)
for flush in range(30):
    buffer = _Buffer()
    for i in range(50):
        buffer.add(LogEntry(f"{worker}-{flush}-{i}", None, 1.8e9, 1, "v1", "primary",
                            predictor, None, {"age": [float(i)]}, 1, np.array([1.0]), 0.5))
    assert _append(uri, buffer.to_arrow("churn"), compact_every=2) is None
"""


def test_two_workers_compacting_one_table_never_duplicate_a_row(tmp_path):
    """Two compactions at once both committed, each with its own copy of the same rows
    (deltalake 1.6 missed the conflict): 8,300 rows for 6,000 appended, before the lock;
    without it this test failed three runs in three."""
    import collections

    from deltalake import DeltaTable

    script, uri = tmp_path / "writer.py", str(tmp_path / "log")
    script.write_text(WRITER)
    workers = [
        subprocess.Popen([sys.executable, str(script), uri, str(w)], stderr=subprocess.PIPE)
        for w in range(2)
    ]
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stderr.read().decode()[-2000:]

    table = DeltaTable(uri)
    ids = collections.Counter(table.to_pyarrow_table().column("request_id").to_pylist())
    assert len(ids) == 2 * 30 * 50 and set(ids.values()) == {1}
    assert [c["operation"] for c in table.history()].count("OPTIMIZE") >= 5


def test_only_a_table_on_a_local_path_is_compacted_by_the_writer():
    """No lock file can be taken on an object store: such a table is left to one
    scheduled compaction job (docs/deployments.md)."""
    from pathlib import Path

    from flowship.serving.prediction_log import _local_path

    assert _local_path("/srv/flowship/tables/prediction_log") == Path(
        "/srv/flowship/tables/prediction_log"
    )
    assert _local_path("file:///srv/log") == Path("/srv/log")
    assert _local_path("s3://bucket/prediction_log") is None
    assert _local_path("abfss://container@account.dfs.core.windows.net/log") is None


COMPACTOR = """
import sys

from deltalake import DeltaTable

from flowship.serving import prediction_log

uri = sys.argv[1]
schema = DeltaTable(uri).to_pyarrow_dataset().schema
print("compacting", flush=True)
prediction_log._compact(uri, schema)
"""


def test_a_writer_killed_while_compacting_leaves_every_row_once_and_no_lock(tmp_path):
    """The compaction is not shielded from its server's death: a SIGKILL halfway must
    leave the table as it was (its new files are never committed) and the lock free."""
    import collections
    import signal
    import time

    from deltalake import DeltaTable

    from flowship.serving.prediction_log import _append, _compact

    v1 = model("1", ("age", "double"), ("score", "double"))
    buffer = _Buffer()
    for i in range(20_000):
        buffer.add(entry("r", v1, {"age": [float(i)], "score": [i / 3]}, 1, np.array([0.5])))
    rows = buffer.to_arrow("churn")
    uri = str(tmp_path / "log")
    for flush in range(40):
        ids = pa.array([f"{flush}-{i}" for i in range(rows.num_rows)])
        assert _append(uri, rows.set_column(0, "request_id", ids), compact_every=10**9) is None

    script = tmp_path / "compactor.py"
    script.write_text(COMPACTOR)
    compactor = subprocess.Popen([sys.executable, str(script), uri], stdout=subprocess.PIPE)
    assert compactor.stdout.readline().strip() == b"compacting"
    time.sleep(0.15)  # into the merge of 800,000 rows (about a second of work)
    still_running = compactor.poll() is None
    compactor.send_signal(signal.SIGKILL)
    compactor.wait(timeout=60)
    assert still_running, "the compaction ended before the kill: give it more rows"

    def unique_rows() -> int:
        ids = DeltaTable(uri).to_pyarrow_table().column("request_id").to_pylist()
        ids = collections.Counter(ids)
        assert set(ids.values()) == {1}
        return len(ids)

    def compactions() -> int:
        return [c["operation"] for c in DeltaTable(uri).history()].count("OPTIMIZE")

    assert unique_rows() == 40 * 20_000
    before = compactions()
    _compact(uri, rows.schema)  # the dead writer's lock went with it
    assert compactions() == before + 1
    assert unique_rows() == 40 * 20_000
