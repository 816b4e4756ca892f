"""The SQL side of performance monitoring: the join, and the statistics metrics need.

``open_engine("local")`` runs it in DuckDB, in a database file under a temporary folder:
the joined rows are written there once (columns ``id, y, s, yhat, t_epoch, g``), and
joins, groupings and sorts beyond ``sources.DUCKDB_MEMORY`` spill to that folder, so
memory stays bounded whatever the input size. ``open_engine("spark")`` runs the same
statements on Spark (``flowship.monitoring.spark``). Only small results come back
(sums per group, a confusion table), except the AUC's score histogram, which is
streamed in score order.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from flowship.errors import InvalidInput
from flowship.monitoring.drift.columns import value_type

EPSILON = 1e-15
"""Probabilities are clipped to [EPSILON, 1 - EPSILON] for log loss, as the seed does."""


@dataclass
class Joined:
    n_predictions: int
    n: int
    duplicated: int
    readable_times: int
    label_type: str

    @property
    def label_is_float(self) -> bool:
        return self.label_type == "float"


@contextlib.contextmanager
def open_engine(engine: str) -> Iterator[Any]:
    if engine == "spark":
        from flowship.monitoring.spark import SparkSQL

        with SparkSQL.open() as sql:
            yield sql
        return
    with tempfile.TemporaryDirectory(prefix="flowship-perf-") as workdir:
        sql = DuckSQL(workdir)
        try:
            yield sql
        finally:
            sql.close()


class MetricsSQL:
    """The statements; subclasses say how to quote, parse times and run them."""

    def __init__(self) -> None:
        self.keys: dict[str, str] = {"g": "g"}
        self.label_type = "text"

    # -- dialect and execution (subclasses) ------------------------------------
    def q(self, name: str) -> str:
        raise NotImplementedError

    def epoch(self, column: str) -> str:
        """Seconds since 1970 (double) of a timestamp, date or ISO text; NULL if not one."""
        raise NotImplementedError

    def view(self, name: str, source: Any, columns: list[str]) -> pa.Schema:
        """Make ``source`` (only ``columns``) queryable as ``name``; returns its schema."""
        raise NotImplementedError

    def materialize(self, name: str, query: str) -> None:
        """Keep ``query``'s rows as ``name`` for the statements that follow."""
        raise NotImplementedError

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def stream(self, query: str) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------
    def scalar(self, query: str) -> Any:
        return self.rows(query)[0][0]

    def column(self, query: str) -> list[Any]:
        return [row[0] for row in self.rows(query)]

    def join(
        self,
        predictions: Any,
        actuals: Any,
        *,
        id_column: str,
        label_column: str,
        columns: dict[str, str | None],
        since: Any = None,
    ) -> Joined:
        q = self.q
        wanted = [id_column, *(c for c in columns.values() if c)]
        left = self.view("p", predictions, list(dict.fromkeys(wanted)))
        schema = self.view("a", actuals, list(dict.fromkeys([id_column, label_column])))
        kinds = [value_type(side.field(id_column).type) for side in (left, schema)]
        if kinds[0] != kinds[1]:  # a silent cast would match "007" with 7
            raise InvalidInput(
                f"The id column {id_column!r} holds {kinds[0]} values in the predictions but "
                f"{kinds[1]} values in the actuals.",
                "Store the ids with one type on both sides.",
            )
        label = schema.field(label_column).type
        self.label_type = "float" if pa.types.is_floating(label) else value_type(label)
        time = columns.get("t")
        epoch = self.epoch(f"p.{q(time)}") if time else "CAST(NULL AS DOUBLE)"
        keep = f"({epoch}) >= {since.timestamp()!r}" if since is not None else "TRUE"
        n_predictions = self.scalar(f"SELECT count(*) FROM p WHERE {keep}")
        readable = self.scalar(f"SELECT count({epoch}) FROM p") if time else 0
        duplicated = self.scalar(f"SELECT count(*) - count(DISTINCT {q(id_column)}) FROM a")
        present = f"a.{q(label_column)} IS NOT NULL"
        if self.label_type == "float":
            present += f" AND NOT isnan(a.{q(label_column)})"
        picked = ", ".join(
            f"p.{q(column)} AS {alias}" if column else f"NULL AS {alias}"
            for alias, column in columns.items()
            if alias != "t"
        )
        self.materialize(
            "j",
            f"SELECT a.{q(label_column)} AS y, {picked}, "
            f"{epoch} AS t_epoch FROM p JOIN a ON p.{q(id_column)} = a.{q(id_column)} "
            f"WHERE {present} AND {keep}",
        )
        n = self.scalar("SELECT count(*) FROM j")
        return Joined(n_predictions, n, duplicated, readable, self.label_type)

    def add_window(self, origin: float, seconds: float) -> None:
        self.keys["w"] = f"CAST(floor((t_epoch - {origin!r}) / {seconds!r}) AS BIGINT)"

    def _key(self, key: str | None) -> str:
        return "0" if key is None else self.keys[key]

    def truth(self, positive: Any) -> str:
        """1 when the actual is the positive label (a label of another type never is)."""
        from flowship.monitoring.sources import sql_literal

        numeric = isinstance(positive, int | float)
        if numeric != (self.label_type in ("float", "number", "bool")):
            return "0"
        return f"CASE WHEN y = {sql_literal(positive)} THEN 1 ELSE 0 END"

    def regression_stats(self, key: str | None, predicted: str) -> list[tuple[Any, ...]]:
        pair = f"CAST(y AS DOUBLE) - CAST({predicted} AS DOUBLE)"
        ok = f"({pair}) IS NOT NULL AND NOT isnan({pair})"
        y = f"CASE WHEN {ok} THEN CAST(y AS DOUBLE) END"
        return self.rows(
            f"SELECT {self._key(key)} AS k, count(*), count({y}), "
            f"coalesce(sum(CASE WHEN {ok} THEN ({pair}) * ({pair}) END), 0), "
            f"coalesce(sum(CASE WHEN {ok} THEN abs({pair}) END), 0), "
            f"coalesce(var_pop({y}), 0) FROM j GROUP BY 1 ORDER BY 1"
        )

    def score_stats(self, key: str | None, positive: Any) -> list[tuple[Any, ...]]:
        truth = self.truth(positive)
        p = "CAST(s AS DOUBLE)"
        clipped = f"greatest(least({p}, {1 - EPSILON!r}), {EPSILON!r})"
        return self.rows(
            f"SELECT {self._key(key)} AS k, count(*), sum({truth}), "
            f"sum(CASE WHEN {p} IS NULL OR isnan({p}) OR {p} < 0 OR {p} > 1 THEN 1 ELSE 0 END), "
            f"avg(({p} - {truth}) * ({p} - {truth})), "
            f"-avg({truth} * ln({clipped}) + (1 - {truth}) * ln(1 - {clipped})) "
            f"FROM j GROUP BY 1 ORDER BY 1"
        )

    def auc(self, key: str | None, positive: Any) -> dict[Any, float]:
        """ROC AUC per group: the Mann-Whitney count of (positive, negative) pairs ranked
        right, ties counting half (what scikit-learn's trapezoidal ROC gives), from the
        number of positives and negatives at each distinct score, in score order."""
        truth = self.truth(positive)
        query = (
            f"SELECT {self._key(key)} AS k, CAST(s AS DOUBLE) AS s, "
            f"CAST(sum({truth}) AS DOUBLE) AS pos, CAST(count(*) AS DOUBLE) AS n "
            f"FROM j GROUP BY 1, 2 ORDER BY 1, 2"
        )
        state: dict[Any, list[float]] = {}  # group -> [negatives below, pairs, P, N]
        for batch in self.stream(query):
            keys = batch.column(0).to_pylist()
            pos = batch.column(2).to_numpy(zero_copy_only=False)
            neg = batch.column(3).to_numpy(zero_copy_only=False) - pos
            start = 0
            while start < len(keys):
                group = keys[start]
                end = start
                while end < len(keys) and keys[end] == group:
                    end += 1
                p, n = pos[start:end], neg[start:end]
                acc = state.setdefault(group, [0.0, 0.0, 0.0, 0.0])
                below = acc[0] + n.cumsum() - n  # negatives with a lower score
                acc[1] += float((p * (below + n / 2)).sum())
                acc[0] += float(n.sum())
                acc[2] += float(p.sum())
                acc[3] += float(n.sum())
                start = end
        return {
            group: acc[1] / (acc[2] * acc[3])
            for group, acc in state.items()
            if acc[2] > 0 and acc[3] > 0
        }

    def confusion(
        self, key: str | None, *, positive: Any, by_score: bool
    ) -> dict[Any, dict[tuple[Any, Any], int]]:
        """(actual, predicted label) counts per group: 0/1 for binary tasks (labels from
        the score at 0.5, or the prediction column), raw labels otherwise."""
        from flowship.monitoring.sources import sql_literal

        if positive is None:
            actual, predicted = "y", "yhat"
        else:
            actual = self.truth(positive)
            if by_score:
                predicted = "CASE WHEN CAST(s AS DOUBLE) >= 0.5 THEN 1 ELSE 0 END"
            else:
                predicted = f"CASE WHEN yhat = {sql_literal(positive)} THEN 1 ELSE 0 END"
        out: dict[Any, dict[tuple[Any, Any], int]] = {}
        for group, a, b, n in self.rows(
            f"SELECT {self._key(key)} AS k, {actual} AS a, {predicted} AS b, count(*) "
            f"FROM j GROUP BY 1, 2, 3"
        ):
            out.setdefault(group, {})[(a, b)] = int(n)
        return out


class DuckSQL(MetricsSQL):
    def __init__(self, workdir: str) -> None:
        super().__init__()
        from flowship.monitoring.sources import connect_duckdb

        self.con = connect_duckdb(workdir)
        self.con.execute("SET TimeZone = 'UTC'")

    def close(self) -> None:
        self.con.close()

    def q(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def epoch(self, column: str) -> str:
        return f"epoch_us(TRY_CAST({column} AS TIMESTAMPTZ)) / 1e6"

    def view(self, name: str, source: Any, columns: list[str]) -> pa.Schema:
        relation = source.relation(self.con, columns)
        if getattr(source, "kind", "") in ("sql", "memory"):
            relation.create(name)  # a query's rows can be read once: keep them on disk
        else:
            relation.create_view(name)
        return relation.limit(0).arrow().schema

    def materialize(self, name: str, query: str) -> None:
        self._guard(lambda: self.con.execute(f"CREATE TABLE {name} AS {query}"))

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        return self._guard(lambda: self.con.execute(query).fetchall())

    def stream(self, query: str) -> Iterator[pa.RecordBatch]:
        from flowship.monitoring.sources import BATCH_ROWS

        relation = self._guard(lambda: self.con.sql(query))
        to_reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
        yield from self._guard(lambda: to_reader(BATCH_ROWS))

    @staticmethod
    def _guard(call: Any) -> Any:
        import duckdb

        try:
            return call()
        except duckdb.Error as exc:
            message = str(exc).strip().splitlines()[0]
            raise InvalidInput(
                f"Joining predictions with actuals failed: {message}",
                "Check that the id columns have the same type on both sides, and the "
                "--where conditions.",
            ) from None
