"""The Spark engine: the same job on pyspark (local mode here, ``--master`` on a cluster).

The only module that imports pyspark. Rows are scored with ``mapInArrow`` and the same
Predictor and row checks as the local engine, so both give the same predictions and
the same rejects. Spark writes Parquet into a staging folder that no reader sees; the
run is then committed like a local run: one folder rename for Parquet output, or, for
Delta output (delta-spark is not needed), the staged files are added to the table in
one Delta transaction by ``deltalake``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from flowship.batch.local import Outcome, _check_rejects
from flowship.batch.plan import META_COLUMNS, REJECTS_SCHEMA, Plan, output_schema
from flowship.batch.progress import Progress, ProgressCallback
from flowship.batch.rows import check_rows
from flowship.batch.sinks import PARTITION, DeltaSink, open_sink
from flowship.errors import CheckFailed, InvalidInput, MissingExtra, UsageError

log = logging.getLogger(__name__)
_REASON, _ROW, _DUP = "__flowship_reason", "__flowship_row", "__flowship_dup"


def spark_session(master: str | None = None):  # -> SparkSession
    """The process's SparkSession (created once; ``master`` defaults to local[*])."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise MissingExtra("pyspark", "spark") from exc
    # Local-mode workers must run this interpreter, the one that has flowship installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName("flowship-score")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
    )
    if master or not os.environ.get("SPARK_HOME"):
        builder = builder.master(master or "local[*]")
    return builder.getOrCreate()


class _Scorer:
    """Runs on the executors: loads the pinned model once per Python worker."""

    _cache: dict[tuple[str, ...], list[Any]] = {}

    def __init__(self, plan: Plan, env: dict[str, str]) -> None:
        self.uri = plan.model_uri
        self.modes = [p.output for p in plan.predictors]
        self.id = plan.job.id
        self.features = plan.features
        self.text = plan.source.text_columns
        self.env = env
        self.names = plan.prediction_columns
        self.meta = (plan.model_name, plan.model_version, plan.run_id)

    def predictors(self) -> list[Any]:
        key = (self.uri, *self.modes, *sorted(self.env.items()))
        if key not in self._cache:
            os.environ.update(self.env)
            from flowship import _mlflow
            from flowship.config import get_settings
            from flowship.predict import Predictor

            get_settings.cache_clear()
            _mlflow._client_for.cache_clear()
            self._cache[key] = [Predictor.load(self.uri, output=m) for m in self.modes]
        return self._cache[key]

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        predictors = self.predictors()
        for batch in batches:
            yield self.score(batch, predictors)

    def score(self, batch: pa.RecordBatch, predictors: list[Any]) -> pa.RecordBatch:
        checked = check_rows(batch, id_column=self.id, features=self.features, text=self.text)
        reasons = checked.reasons
        duplicate = batch.column(_DUP).to_numpy(zero_copy_only=False) & checked.good
        if duplicate.any():
            reasons = reasons if reasons is not None else np.full(batch.num_rows, None, object)
            reasons[duplicate] = f"{self.id} is a duplicate of an earlier row"
        good = np.ones(batch.num_rows, bool) if reasons is None else reasons == None  # noqa: E711
        rows = np.flatnonzero(good)
        n = batch.num_rows
        columns: dict[str, pa.Array] = {}
        for predictor in predictors:
            if len(rows):
                result = predictor.predict({k: v[rows] for k, v in checked.features.items()})
                result = result.reshape(len(rows), -1)
            for j, name in enumerate(predictor.output_columns):
                if name in columns:
                    continue
                full = np.full(n, np.nan) if not len(rows) else None
                if len(rows):
                    values = result[:, j]
                    full = np.zeros(n, dtype=values.dtype)
                    full[rows] = values
                columns[name] = pa.array(full, mask=~good)
        row_text = [None] * n
        if reasons is not None:
            bad = np.flatnonzero(~good)
            picked = batch.drop_columns([_DUP]).take(pa.array(bad)).to_pylist()
            for i, record in zip(bad, picked, strict=True):
                row_text[i] = json.dumps(record, default=str)
        return pa.RecordBatch.from_arrays(
            [
                batch.column(self.id),
                *(columns[name] for name in self.names),
                pa.array(reasons.tolist() if reasons is not None else [None] * n, pa.string()),
                pa.array(row_text, pa.string()),
            ],
            names=[self.id, *self.names, _REASON, _ROW],
        )


def _read(spark: Any, plan: Plan):  # -> DataFrame
    spec = plan.source.spec
    kind = spec.kind
    if kind == "sql":
        raise UsageError(
            "The spark engine reads files and tables, not a SQL query.",
            "Use --engine local for a SQL input, or export the query's rows to Parquet.",
        )
    if kind == "csv":
        return spark.read.option("header", True).csv(spec.location)
    if kind == "delta":
        from deltalake import DeltaTable

        files = DeltaTable(spec.location).file_uris()
        return spark.read.parquet(*files)
    return spark.read.parquet(spec.location)


def _prediction_types(plan: Plan) -> dict[str, pa.DataType]:
    """Output types from scoring a few real rows on the driver (fails fast, too)."""
    job = plan.job
    for batch in plan.source.batches(plan.read_columns, 256):
        checked = check_rows(batch, id_column=job.id, features=plan.features,
                             text=plan.source.text_columns)  # fmt: skip
        rows = np.flatnonzero(checked.good)
        if not len(rows):
            continue
        sample = {k: v[rows] for k, v in checked.features.items()}
        types: dict[str, pa.DataType] = {}
        for predictor in plan.predictors:
            result = predictor.predict(sample).reshape(len(rows), -1)
            for j, name in enumerate(predictor.output_columns):
                types.setdefault(name, pa.array(result[:, j]).type)
        return types
    raise InvalidInput(
        f"The input {plan.source.spec.describe()!r} has no row that can be scored.",
        "Check the input (every row is null or invalid).",
    )


def score_spark(plan: Plan, *, on_progress: ProgressCallback | None = None) -> Outcome:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    from pyspark.sql.window import Window

    job = plan.job
    if job.output.format == "sql":
        raise UsageError(
            "The spark engine writes Delta or Parquet, not a database table.",
            "Use --engine local for a SQL output.",
        )
    spark = spark_session(job.master)
    types = _prediction_types(plan)
    id_type = plan.source.schema.field(job.id).type
    schema = output_schema(job.id, id_type, types)
    sink = open_sink(plan.output_uri, format=job.output.format,
                     rows_per_file=job.output.rows_per_file, url=job.output.url)  # fmt: skip
    sink.check_schema(schema)

    frame = _read(spark, plan).select(*plan.read_columns)
    rows_in = frame.count()
    progress = Progress(total=rows_in, rows_in=rows_in)
    if rows_in == 0:
        raise InvalidInput(f"The input {plan.source.spec.describe()!r} has no rows.")
    if job.incremental:
        done = sink.scored_ids(id_column=job.id, model_name=plan.model_name,
                               model_version=plan.model_version, day=plan.day)  # fmt: skip
        if done is not None and len(done):
            scored = spark.createDataFrame(pa.table({job.id: done}).to_pandas())
            frame = frame.join(scored, on=job.id, how="left_anti")
    order = Window.partitionBy(job.id).orderBy(F.monotonically_increasing_id())
    frame = frame.withColumn(_DUP, F.row_number().over(order) > 1)

    arrow_out = pa.schema(
        [schema.field(job.id), *(schema.field(n) for n in types),
         pa.field(_REASON, pa.string()), pa.field(_ROW, pa.string())]
    )  # fmt: skip
    spark_schema = T.StructType(
        [T.StructField(f.name, _spark_type(T, f.type), True) for f in arrow_out]
    )
    env = {k: v for k, v in os.environ.items() if k.startswith(("MLFLOW_", "FLOWSHIP_"))}
    from flowship.config import get_settings

    env["MLFLOW_TRACKING_URI"] = get_settings().resolved_tracking_uri
    scored = frame.mapInArrow(_Scorer(plan, env), spark_schema).persist()
    try:
        counts = scored.select(F.count("*").alias("n"), F.count(_REASON).alias("rejected")).first()
        progress.rows_skipped = rows_in - counts["n"]
        progress.rows_rejected = counts["rejected"]
        progress.rows_out = counts["n"] - counts["rejected"]
        stamp = [F.lit(v).alias(c) for c, v in zip(META_COLUMNS, _meta(plan), strict=True)]
        good = scored.where(F.col(_REASON).isNull()).select(job.id, *types, *stamp)
        bad = scored.where(F.col(_REASON).isNotNull()).select(
            F.col(job.id).cast("string").alias("id"), F.col(_REASON).alias("reason"),
            F.col(_ROW).alias("row"), *stamp,
        )  # fmt: skip
        if progress.rows_rejected:
            _commit(spark, bad, plan, plan.rejects_uri, REJECTS_SCHEMA)
        _check_rejects(progress, job.max_reject_fraction, plan)
        plan.before_commit()
        version = _commit(spark, good, plan, plan.output_uri, schema, sink=sink)
    except CheckFailed:
        raise
    finally:
        scored.unpersist()
    if on_progress is not None:
        on_progress(progress)
    return Outcome(progress, version)


def _meta(plan: Plan) -> tuple[str, str, str]:
    return (plan.model_name, plan.model_version, plan.run_id)


def _spark_type(T: Any, kind: pa.DataType) -> Any:
    if pa.types.is_integer(kind):
        return T.LongType() if kind.bit_width == 64 else T.IntegerType()
    if pa.types.is_float32(kind):
        return T.FloatType()
    if pa.types.is_floating(kind):
        return T.DoubleType()
    if pa.types.is_boolean(kind):
        return T.BooleanType()
    return T.StringType()


def _commit(
    spark: Any, frame: Any, plan: Plan, uri: str, schema: pa.Schema, *, sink: Any = None
) -> int | None:
    """Write ``frame`` to a staging folder with Spark, then commit it like a local run
    (through ``sink`` when it is the one the run read the output with)."""
    job = plan.job
    if sink is None:
        sink = open_sink(
            uri,
            format=job.output.format,
            rows_per_file=job.output.rows_per_file,
            url=job.output.url,
        )
    run = sink.open(run_id=plan.run_id, day=plan.day, schema=schema)
    staging = Path(sink.root, "_staging", f"spark-{plan.run_id}")
    columns = [f.name for f in schema if f.name != PARTITION]
    if isinstance(sink, DeltaSink):
        frame.select(*columns).write.mode("overwrite").parquet(str(staging))
    else:
        frame.select(*(c for c in columns if c != "run_id")).write.mode("overwrite").parquet(
            str(staging)
        )
    try:
        files = sorted(staging.glob("part-*.parquet"))
        if isinstance(sink, DeltaSink):
            for file in files:
                run.adopt(file)
        else:
            run.adopt_folder(staging, rows=sum(_rows(f) for f in files))
        return run.commit(model=plan.model_name, replace=not job.incremental)
    except BaseException:
        run.abort()
        raise
    finally:
        if staging.exists():
            import shutil

            shutil.rmtree(staging, ignore_errors=True)


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows
