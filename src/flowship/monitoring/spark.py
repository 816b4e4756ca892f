"""Monitors on Spark (``--engine spark``): the only module of monitoring importing pyspark.

Spark counts; the verdicts come from the same code as on one machine. For drift,
``SparkEngine`` fills the same ``Profile`` and ``Tally`` summaries the local engine
does: one aggregation for rows, missing values, ranges and moments of every column, a
row sample collected to the driver (all rows of a small input, so bins are then the
same as the local engine's), value counts per categorical column, and bin counts from
one ``Bucketizer`` pass whose (column, bin) pairs are counted by one grouped
aggregation. For performance, ``SparkSQL`` runs ``metrics_sql``'s statements on Spark
SQL, the joined rows persisted in memory and on disk.

Sources are read as Spark reads them: Parquet files and folders, Delta tables (their
current files), CSV; ``--where`` is a Spark SQL condition. SQL queries are refused
(run them with the local engine).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from flowship.errors import InvalidInput, UsageError
from flowship.monitoring.drift.binning import CategoricalBins, NumericBins
from flowship.monitoring.drift.columns import MAX_CODES
from flowship.monitoring.drift.summaries import (
    MAX_DISTINCT,
    SAMPLE,
    Plan,
    Profile,
    Tally,
    ValueSet,
)
from flowship.monitoring.metrics_sql import MetricsSQL

STREAM_ROWS = 65_536


def session() -> Any:
    from flowship.batch.spark import spark_session

    return spark_session()


def read(spark: Any, source: Any, columns: Sequence[str] | None = None) -> Any:
    """A Spark DataFrame over ``source`` (only ``columns``), filtered by its ``where``."""
    from pyspark.errors import PySparkException

    kind = getattr(source, "kind", "")
    try:
        if kind == "parquet":
            reader = spark.read
            if source.root:
                reader = reader.option("basePath", source.root)
            frame = reader.parquet(*source.files)
        elif kind == "csv":
            frame = (
                spark.read.option("header", True).option("inferSchema", True).csv(source.files[0])
            )
        elif kind == "memory":
            frame = spark.createDataFrame(source.to_table().to_pandas())
        else:
            raise UsageError(
                f"The spark engine reads files and tables, not {source.name!r}.",
                "Use --engine local for a SQL query, or export its rows to Parquet.",
            )
        if source.where:
            frame = frame.where(source.where)
        return frame.select(*[_col(c) for c in columns]) if columns else frame
    except PySparkException as exc:
        raise InvalidInput(
            f"Spark cannot read the {source.role} data ({source.label()}): {_first_line(exc)}",
            "Check the source and the --where condition (Spark SQL).",
        ) from None


class SparkEngine:
    """The drift engine on Spark (see the module doc)."""

    name = "spark"

    def __init__(self) -> None:
        self.spark = session()

    def profile(
        self,
        source: Any,
        modes: Mapping[str, str],
        value_types: Mapping[str, str],
        *,
        seed: int,
        on_rows: Callable[[int], None] | None = None,
    ) -> tuple[int, dict[str, Profile]]:
        from pyspark.sql import functions as F

        names = list(modes)
        frame = read(self.spark, source, names or None)
        aggregates = [F.count(F.lit(1)).alias("rows")]
        for i, name in enumerate(names):
            x = _number(name) if modes[name] == "numeric" else F.col(_q(name))
            aggregates += _profile_aggregates(i, x, modes[name] == "numeric", value_types[name])
        totals = frame.agg(*aggregates).collect()[0].asDict()
        rows = int(totals["rows"])
        profiles = {}
        numeric = [n for n in names if modes[n] == "numeric"]
        sample = self._sample(frame, numeric, rows, seed) if numeric and rows else {}
        for i, name in enumerate(names):
            profile = Profile(name, value_types[name], n=rows, missing=int(totals[f"m{i}"]))
            distinct = totals[f"d{i}"]
            if modes[name] == "numeric":
                profile.finite = int(totals[f"f{i}"])
                profile.pos_inf, profile.neg_inf = int(totals[f"pi{i}"]), int(totals[f"ni{i}"])
                if profile.finite:
                    profile.lo, profile.hi = float(totals[f"lo{i}"]), float(totals[f"hi{i}"])
                    profile.mean = float(totals[f"mu{i}"])
                    profile.m2 = float(totals[f"v{i}"]) * profile.finite
                profile.sample = sample.get(name, np.empty(0))
                # HLL is close to exact at a handful of values; confirm with real counts.
                profile.counts = (
                    self._value_counts(frame, name) if distinct <= 2 * MAX_CODES else None
                )
                if profile.counts is not None:
                    finite = [v for v in profile.counts if math.isfinite(float(v))]
                    if len(finite) > MAX_CODES:
                        profile.counts = None
            else:
                too_many = distinct > MAX_DISTINCT * 1.1
                profile.counts = None if too_many else self._value_counts(frame, name)
                if profile.counts is not None and len(profile.counts) > MAX_DISTINCT:
                    profile.counts = None
            profiles[name] = profile
        if on_rows:
            on_rows(rows)
        return rows, profiles

    def tally(
        self,
        source: Any,
        plans: Mapping[str, Plan],
        *,
        sample_seed: int | None = None,
        on_rows: Callable[[int], None] | None = None,
    ) -> tuple[int, dict[str, Tally]]:
        from pyspark.sql import functions as F

        names = list(plans)
        frame = read(self.spark, source, names or None)
        aggregates = [F.count(F.lit(1)).alias("rows")]
        for i, name in enumerate(names):
            x = F.col(_q(name))
            missing = x.isNull()
            if _is_float(frame, name):
                missing = missing | F.isnan(x)
            aggregates.append(F.sum(F.when(missing, 1).otherwise(0)).alias(f"m{i}"))
        totals = frame.agg(*aggregates).collect()[0].asDict()
        rows = int(totals["rows"])
        tallies = {
            name: Tally(n=rows, missing=int(totals[f"m{i}"] or 0)) for i, name in enumerate(names)
        }
        binned = {n: p for n, p in plans.items() if isinstance(p, NumericBins)}
        if binned:
            for name, counts in self._bin_counts(frame, binned).items():
                tallies[name].counts = counts
        for name, plan in plans.items():
            if isinstance(plan, CategoricalBins | ValueSet):
                _count_values(tallies[name], plan, self._value_counts(frame, name, plan))
        if sample_seed is not None and binned and rows:
            for name, values in self._sample(frame, list(binned), rows, sample_seed).items():
                tallies[name].sample = values
                tallies[name].finite = values.size
        if on_rows:
            on_rows(rows)
        return rows, tallies

    def values(self, source: Any, columns: Sequence[str]) -> dict[str, np.ndarray]:
        frame = read(self.spark, source, [*columns])
        table = frame.select(*[_number(c).alias(c) for c in columns]).toArrow()
        return {c: table.column(c).to_numpy().astype(np.float64) for c in columns}

    def _sample(self, frame: Any, names: list[str], rows: int, seed: int) -> dict[str, np.ndarray]:
        """Sorted finite values per column from a uniform row sample: every row when the
        input has at most ``SAMPLE`` of them."""
        fraction = min(1.0, 1.2 * SAMPLE / rows)
        picked = frame.select(*[_number(n).alias(n) for n in names])
        if fraction < 1.0:
            picked = picked.sample(False, fraction, seed)
        table = picked.toArrow()
        rng = np.random.default_rng(seed)
        out = {}
        for name in names:
            values = table.column(name).to_numpy().astype(np.float64)
            values = values[np.isfinite(values)]
            if fraction < 1.0 and values.size > SAMPLE:
                values = values[rng.choice(values.size, SAMPLE, replace=False)]
            out[name] = np.sort(values)
        return out

    def _value_counts(self, frame: Any, name: str, plan: Plan | None = None) -> dict[Any, int]:
        """Non-missing value -> count, most frequent first (NaN counts as missing)."""
        from pyspark.sql import functions as F

        x = F.col(_q(name))
        present = x.isNotNull()
        if _is_float(frame, name):
            present = present & ~F.isnan(x)
        if isinstance(plan, ValueSet) and plan.numeric:
            x = x.cast("double")
        counted = frame.where(present).groupBy(x.alias("v")).count().orderBy(F.desc("count"), "v")
        limit = MAX_DISTINCT + 1
        return {row["v"]: int(row["count"]) for row in counted.limit(limit).collect()}

    def _bin_counts(self, frame: Any, plans: Mapping[str, NumericBins]) -> dict[str, np.ndarray]:
        from pyspark.ml.feature import Bucketizer
        from pyspark.sql import functions as F

        names = list(plans)
        inputs = [f"__x{i}" for i in range(len(names))]
        outputs = [f"__b{i}" for i in range(len(names))]
        numbers = frame.select(
            *[
                F.coalesce(_number(n), F.lit(float("nan"))).alias(i)
                for n, i in zip(names, inputs, strict=True)
            ]
        )
        # Bins [below, [e0, e1), ..., [e_m-2, e_m-1], above]: the last interior edge is
        # nudged up so the maximum stays inside; NaN goes to the extra "keep" bucket.
        splits = [
            [
                -math.inf,
                *plans[n].edges[:-1].tolist(),
                float(np.nextafter(plans[n].edges[-1], math.inf)),
                math.inf,
            ]
            for n in names
        ]
        bucketed = Bucketizer(
            splitsArray=splits, inputCols=inputs, outputCols=outputs, handleInvalid="keep"
        ).transform(numbers)
        pairs = (
            bucketed.select(
                F.explode(
                    F.array(
                        *[
                            F.struct(F.lit(i).alias("c"), F.col(o).cast("int").alias("b"))
                            for i, o in enumerate(outputs)
                        ]
                    )
                ).alias("p")
            )
            .groupBy("p.c", "p.b")
            .count()
        )
        counts = {n: np.zeros(plans[n].n_bins) for n in names}
        for row in pairs.collect():
            counts[names[row["c"]]][row["b"]] += row["count"]
        return counts


class SparkSQL(MetricsSQL):
    """``metrics_sql`` on Spark SQL."""

    def __init__(self) -> None:
        super().__init__()
        self.spark = session()
        self.persisted: list[Any] = []

    @classmethod
    @contextlib.contextmanager
    def open(cls) -> Iterator[SparkSQL]:
        sql = cls()
        try:
            yield sql
        finally:
            for frame in sql.persisted:
                frame.unpersist()

    def q(self, name: str) -> str:
        return _q(name)

    def epoch(self, column: str) -> str:
        return f"unix_micros(try_cast({column} AS TIMESTAMP)) / 1e6"

    def view(self, name: str, source: Any, columns: list[str]) -> pa.Schema:
        frame = read(self.spark, source, columns)
        frame.createOrReplaceTempView(name)
        return frame.limit(0).toArrow().schema

    def materialize(self, name: str, query: str) -> None:
        from pyspark.storagelevel import StorageLevel

        frame = self._guard(lambda: self.spark.sql(query)).persist(StorageLevel.MEMORY_AND_DISK)
        self.persisted.append(frame)
        frame.createOrReplaceTempView(name)

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        return self._guard(lambda: [tuple(r) for r in self.spark.sql(query).collect()])

    def stream(self, query: str) -> Iterator[pa.RecordBatch]:
        frame = self._guard(lambda: self.spark.sql(query))
        names = frame.columns
        chunk: list[tuple[Any, ...]] = []
        for row in frame.toLocalIterator():
            chunk.append(tuple(row))
            if len(chunk) == STREAM_ROWS:
                yield _batch(names, chunk)
                chunk = []
        if chunk:
            yield _batch(names, chunk)

    @staticmethod
    def _guard(call: Any) -> Any:
        from pyspark.errors import PySparkException

        try:
            return call()
        except PySparkException as exc:
            raise InvalidInput(
                f"Joining predictions with actuals on Spark failed: {_first_line(exc)}",
                "Check that the id columns have the same type on both sides, and the "
                "--where conditions.",
            ) from None


def _profile_aggregates(i: int, x: Any, numeric: bool, value_type: str) -> list[Any]:
    from pyspark.sql import functions as F

    if not numeric:
        missing = x.isNull()
        return [
            F.sum(F.when(missing, 1).otherwise(0)).alias(f"m{i}"),
            F.approx_count_distinct(x, 0.01).alias(f"d{i}"),
        ]
    finite = x.isNotNull() & ~F.isnan(x) & (F.abs(x) != F.lit(math.inf))
    fx = F.when(finite, x)
    return [
        F.sum(F.when(x.isNull() | F.isnan(x), 1).otherwise(0)).alias(f"m{i}"),
        F.count(fx).alias(f"f{i}"),
        F.sum(F.when(x == F.lit(math.inf), 1).otherwise(0)).alias(f"pi{i}"),
        F.sum(F.when(x == F.lit(-math.inf), 1).otherwise(0)).alias(f"ni{i}"),
        F.min(fx).alias(f"lo{i}"),
        F.max(fx).alias(f"hi{i}"),
        F.avg(fx).alias(f"mu{i}"),
        F.var_pop(fx).alias(f"v{i}"),
        F.approx_count_distinct(fx, 0.01).alias(f"d{i}"),
    ]


def _count_values(tally: Tally, plan: CategoricalBins | ValueSet, counts: dict[Any, int]) -> None:
    values, numbers = list(counts), list(counts.values())
    if isinstance(plan, CategoricalBins):
        tally.counts = np.zeros(plan.n_bins)
        tally.counts[-1] = tally.missing
        unseen = plan.add(tally.counts, values, numbers)
        tally.unseen = unseen[:10]
        return
    reference = set(plan.reference)
    tally.present = tally.n - tally.missing
    for value, number in counts.items():
        if value not in reference:
            tally.new += number
            if len(tally.new_values) < 10:
                tally.new_values.append(value)


def _number(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.col(_q(name)).cast("double")


def _col(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.col(_q(name))


def _is_float(frame: Any, name: str) -> bool:
    return frame.schema[name].dataType.typeName() in ("double", "float")


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _batch(names: list[str], rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    return pa.RecordBatch.from_arrays([pa.array(list(c)) for c in columns], names=names)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
