"""A database table as the output (SQLAlchemy): exactly once through one transaction.

A run inserts its rows inside one open transaction and, at the end, deletes the same
model's earlier rows for the date (full mode) and commits: readers see all of the run
or none of it, and a killed run is rolled back by the database itself. Meant for
moderate volumes (the rows travel through ``executemany``); Delta is the default for
large tables.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa

from flowship.errors import InvalidInput, SchemaMismatch

_SQL_TYPES = {
    "int64": "BigInteger",
    "int32": "Integer",
    "double": "Float",
    "float": "Float",
    "bool": "Boolean",
    "string": "Text",
    "date32[day]": "Date",
}


def _column_type(kind: pa.DataType) -> Any:
    import sqlalchemy

    name = _SQL_TYPES.get(str(kind), "Text")
    return getattr(sqlalchemy, name)()


class SqlSink:
    """Table ``name`` in the database at ``url``."""

    format = "sql"

    def __init__(self, name: str, *, url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.name, self.url = name, url
        self.uri = f"{make_url(url).render_as_string(hide_password=True)}#{name}"
        self.engine = create_engine(url)

    def _table(self, schema: pa.Schema | None = None):  # -> sqlalchemy.Table | None
        from sqlalchemy import Column, MetaData, Table, inspect

        if schema is None:
            if not inspect(self.engine).has_table(self.name):
                return None
            return Table(self.name, MetaData(), autoload_with=self.engine)
        columns = [Column(f.name, _column_type(f.type)) for f in schema]
        return Table(self.name, MetaData(), *columns)

    def check_writable(self) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.engine.connect():
                pass
        except (SQLAlchemyError, OSError) as exc:
            raise InvalidInput(
                f"The output database {self.uri!r} cannot be reached: {str(exc).splitlines()[0]}",
                "Check output.url and that the database is running.",
            ) from None

    def check_schema(self, schema: pa.Schema) -> None:
        table = self._table()
        if table is None:
            return
        have = {c.name for c in table.columns}
        want = set(schema.names)
        problems = [f"{n} is new" for n in sorted(want - have)]
        problems += [f"{n} is missing from this job's output" for n in sorted(have - want)]
        if problems:
            raise SchemaMismatch(
                f"The output table {self.uri!r} has different columns: {'; '.join(problems)}.",
                "Write to a new table, or drop the old one if its predictions can go.",
            )

    def scored_ids(
        self, *, id_column: str, model_name: str, model_version: str, day: date
    ) -> pa.ChunkedArray | None:
        from sqlalchemy import select

        table = self._table()
        if table is None or id_column not in table.c:
            return None
        query = select(table.c[id_column]).where(
            table.c.model_name == model_name,
            table.c.model_version == model_version,
            table.c.prediction_date == day,
        )
        with self.engine.connect() as conn:
            ids = conn.execute(query).scalars().all()
        return pa.chunked_array([pa.array(ids)])

    def remove_orphans(self, is_orphan: Any) -> int:
        return 0  # the database rolled back whatever a killed run had inserted

    def open(self, *, run_id: str, day: date, schema: pa.Schema) -> SqlRun:
        return SqlRun(self, run_id=run_id, day=day, schema=schema)


class SqlRun:
    def __init__(self, sink: SqlSink, *, run_id: str, day: date, schema: pa.Schema) -> None:
        self.sink, self.run_id, self.day = sink, run_id, day
        self.table = sink._table(schema)
        self.rows = 0
        self.conn = sink.engine.connect()
        self.txn = self.conn.begin()
        self.table.create(self.conn, checkfirst=True)

    def write(self, batch: pa.RecordBatch) -> None:
        records = batch.to_pylist()
        for record in records:
            record["prediction_date"] = self.day
        self.conn.execute(self.table.insert(), records)
        self.rows += len(records)

    def commit(self, *, model: str, replace: bool) -> int | None:
        replace_model = model if replace else None
        if replace_model:
            t = self.table
            self.conn.execute(
                t.delete().where(
                    t.c.model_name == replace_model,
                    t.c.prediction_date == self.day,
                    t.c.run_id != self.run_id,
                )
            )
        self.txn.commit()
        self.conn.close()
        return None

    def abort(self) -> None:
        self.txn.rollback()
        self.conn.close()
