"""Where a monitor's data comes from, read as a stream of Arrow record batches.

A source is a string:

- a Parquet file or directory of Parquet files (hive partitions become columns), a
  CSV/TSV file, or a Delta table (a path or any URI deltalake reads);
- ``table:NAME``: one of flowship's own Delta tables (batch predictions, the live
  prediction log), at ``get_settings().table_uri(NAME)``;
- ``sql:SELECT ...``: a query, run on ``sql_url`` (default: flowship's own database)
  with a server-side cursor;
- ``models:/NAME@alias`` (baselines only): the sample attached to that model version
  with ``flowship monitor attach-baseline``.

A Delta table (a path, a URI or ``table:NAME``) is read at its latest version, or as it
was at an earlier one: ``SOURCE@v12`` (version 12) or ``SOURCE@2026-11-01`` /
``SOURCE@2026-11-01T06:00:00Z`` (the version current at that time, UTC unless the time
says otherwise), the suffixes Databricks uses for Delta time travel.

The Python API also takes a pandas DataFrame or an Arrow table.

Local files are read by DuckDB's own Parquet and CSV readers, which decode one row group
at a time and read only the columns asked for; ``where`` (``--where``) is a SQL
condition DuckDB applies while reading (pushed into the Parquet scan, so row groups whose
statistics rule them out are skipped). Drift reads Parquet files that need no SQL (no
``where``, one schema) with pyarrow instead, to keep text dictionary-encoded
(``Source.batches(encoded=True)``). Nothing holds a whole input in memory: a source is
opened again for every pass over it.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from flowship.config import get_settings
from flowship.errors import InvalidInput, NotFound, Unavailable

log = logging.getLogger(__name__)
_NAMES = itertools.count()
FORMS = "a Parquet/CSV/Delta path, table:NAME, sql:SELECT ... or models:/NAME@alias"
BATCH_ROWS = 131_072
"""Rows per record batch: 30 float columns make a 30 MB batch."""
DUCKDB_MEMORY = "768MB"
"""DuckDB's memory cap for a read or a join; beyond it, joins and sorts spill to disk."""
DUCKDB_THREADS = max(1, min(4, os.cpu_count() or 1))


@dataclass
class Source:
    """An opened source: its schema (after ``where``), and a way to read it again."""

    name: str
    role: str
    schema: pa.Schema
    where: str | None = None
    rows_hint: int | None = None
    """Rows before ``where``, when the files say so without reading them (Parquet)."""
    _from: str | None = field(default=None, repr=False)
    """DuckDB FROM clause reading the data (files, an in-memory table)."""
    _reader: Any = field(default=None, repr=False)
    """For SQL queries: a function returning a fresh RecordBatchReader."""
    _table: pa.Table | None = field(default=None, repr=False)
    kind: str = "files"
    files: list[str] = field(default_factory=list)
    """The Parquet/CSV files read (the Spark engine reads the same)."""
    root: str | None = None
    """The folder hive partitions are relative to (a Parquet folder, a Delta table)."""
    file_schema: pa.Schema | None = field(default=None, repr=False)
    """Parquet files that all share one schema: that schema (see ``batches``)."""

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def label(self) -> str:
        return f"{self.name} where {self.where}" if self.where else self.name

    def batches(
        self, columns: Sequence[str], *, batch_rows: int = BATCH_ROWS, encoded: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """The rows (only ``columns``), filtered by ``where``, in batches.

        ``encoded``: text columns may come dictionary-encoded (values stored once per
        batch, rows as integer codes): counting codes is ten times cheaper than
        hashing strings. Parquet files with no ``where`` and one shared schema holding
        every column asked for are then read by pyarrow, which keeps Parquet's own
        dictionaries and decodes columns on all cores (a third of DuckDB's CPU time
        for text, which DuckDB must turn into strings)."""
        if encoded and self._readable_directly(columns):
            yield from self._parquet_batches(columns, batch_rows)
            return
        con = connect_duckdb()
        try:
            relation = self.relation(con, columns)
            reader = _arrow_reader(relation, batch_rows)
            try:
                for batch in reader:
                    if batch.num_rows:
                        yield batch
            except _duck_errors() as exc:
                raise InvalidInput(
                    f"Reading the {self.role} data ({self.label()}) failed: {_first_line(exc)}",
                    "Check the files, and the --where condition if one is given.",
                ) from None
        finally:
            con.close()

    def _readable_directly(self, columns: Sequence[str]) -> bool:
        schema = self.file_schema
        return (
            self.kind == "parquet"
            and self.where is None
            and schema is not None
            and all(c in schema.names for c in columns)
        )

    def _parquet_batches(self, columns: Sequence[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        assert self.file_schema is not None
        text = [
            c
            for c in columns
            if pa.types.is_string(self.file_schema.field(c).type)
            or pa.types.is_large_string(self.file_schema.field(c).type)
        ]
        try:
            for path in self.files:
                # Buffered page by page, not a whole row group of every column at once:
                # a 1M-row group of 30 columns would be 250 MB, and the page faults of
                # allocating it cost as much CPU as decoding it.
                options = {"pre_buffer": False, "buffer_size": 1 << 20}
                with pq.ParquetFile(path, read_dictionary=text, **options) as parquet:
                    for batch in parquet.iter_batches(batch_rows, columns=list(columns)):
                        if batch.num_rows:
                            yield batch
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(
                f"Reading the {self.role} data ({self.label()}) failed: {_first_line(exc)}",
                "Check the files.",
            ) from None

    def relation(self, con: Any, columns: Sequence[str] | None = None) -> Any:
        """A DuckDB relation over this source on connection ``con``."""
        picked = ", ".join(_quote(c) for c in columns) if columns else "*"
        if self._table is not None or self._reader is not None:
            base = f"_flowship_src_{next(_NAMES)}"
            con.register(base, self._table if self._table is not None else self._reader())
        else:
            base = self._from
        query = f"SELECT {picked} FROM {base}"
        if self.where:
            query += f" WHERE ({self.where})"
        try:
            return con.sql(query)
        except _duck_errors() as exc:
            raise InvalidInput(
                f"Cannot read the {self.role} data ({self.label()}): {_first_line(exc)}",
                "Check the --where condition: a SQL condition on the source's columns, "
                "e.g. \"prediction_date >= '2026-11-01'\".",
            ) from None

    def narrowed(self, condition: str) -> Source:
        """The same source with one more condition (ANDed with ``where``)."""
        import dataclasses

        where = f"({self.where}) AND ({condition})" if self.where else condition
        return dataclasses.replace(self, where=where)

    def distinct(self, column: str, *, limit: int) -> list[Any]:
        """The distinct values of ``column`` (at most ``limit + 1``, to tell "too many")."""
        con = connect_duckdb()
        try:
            relation = self.relation(con, [column]).distinct().order(_quote(column))
            return [row[0] for row in relation.limit(limit + 1).fetchall()]
        except _duck_errors() as exc:
            raise InvalidInput(
                f"Reading the {self.role} data ({self.label()}) failed: {_first_line(exc)}",
                "Check the files, and the --where condition if one is given.",
            ) from None
        finally:
            con.close()

    def to_table(self, columns: Sequence[str] | None = None) -> pa.Table:
        """All of it in memory: for small inputs only (attached baselines, tests)."""
        batches = list(self.batches(columns or self.columns))
        if not batches:
            return self.schema.empty_table()
        return pa.Table.from_batches(batches)

    def count_rows(self) -> int:
        con = connect_duckdb()
        try:
            return int(self.relation(con).aggregate("count(*)").fetchall()[0][0])
        except _duck_errors() as exc:
            raise InvalidInput(
                f"Reading the {self.role} data ({self.label()}) failed: {_first_line(exc)}",
                "Check the files, and the --where condition if one is given.",
            ) from None
        finally:
            con.close()


def open_source(
    source: Any,
    *,
    role: str = "data",
    sql_url: str | None = None,
    where: str | None = None,
) -> Source:
    """Open ``source`` (a string as in the module doc, a DataFrame or an Arrow table)
    without reading its rows. ``role`` names it in messages ("baseline", "current")."""
    where = (where or "").strip() or None
    if where is not None:
        _check_where(where)
    if not isinstance(source, str):
        return _in_memory(source, role, where)
    text = (source or "").strip()
    if not text:
        raise InvalidInput(f"No {role} source given.", f"Give {FORMS}.")
    if text.startswith("sql:"):
        opened = _sql(text, sql_url, role, where)
    elif text.startswith("models:/"):
        from flowship.monitoring.baseline import download_baseline

        opened = _parquet(text, [str(download_baseline(text))], role, where)
    elif text.startswith("table:"):
        location, at = split_version(text[6:].strip(), text)
        opened = _delta(text, get_settings().table_uri(location), role, where, at)
    else:
        opened = _path(text, role, where)
    log.info("Opened %s data %s (%d columns)", role, opened.label(), len(opened.schema))
    return opened


def load_frame(
    source: str,
    *,
    role: str = "data",
    columns: Sequence[str] | None = None,
    sql_url: str | None = None,
):  # -> pd.DataFrame
    """Read a small source whole into pandas (baselines to attach to a model version)."""
    opened = open_source(source, role=role, sql_url=sql_url)
    if columns:
        absent = [c for c in columns if c not in opened.columns]
        if absent:
            raise InvalidInput(
                f"The {role} data ({source}) has no column(s) {', '.join(map(repr, absent))}.",
                f"Its columns are: {', '.join(opened.columns[:20])}.",
            )
    frame = opened.to_table(columns).to_pandas()
    if frame.shape[0] == 0:
        raise InvalidInput(
            f"The {role} data ({source}) has no rows.", "Point it at a non-empty sample."
        )
    return frame


def sql_literal(value: Any) -> str:
    """``value`` as a SQL literal for a condition (text quoted, numbers as they are)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return _literal(str(value))


def quote_name(name: str) -> str:
    return _quote(name)


_AT = re.compile(
    r"^(?P<location>.+)@(?:v(?P<version>\d+)"
    r"|(?P<time>\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
    r"(?:Z|[+-]\d{2}:?\d{2})?))$"
)


def split_version(location: str, shown: str) -> tuple[str, int | datetime | None]:
    """``LOCATION@v12`` -> (LOCATION, 12); ``LOCATION@2026-11-01[T06:00:00Z]`` ->
    (LOCATION, that time, UTC unless it says otherwise); anything else unchanged. A
    local path that exists as written is taken as written, ``@`` and all."""
    found = _AT.match(location)
    if found is None or ("://" not in location and Path(location).exists()):
        return location, None
    if found["version"] is not None:
        return found["location"], int(found["version"])
    try:
        when = datetime.fromisoformat(found["time"].replace(" ", "T"))
    except ValueError:
        raise InvalidInput(
            f"Cannot read the time in {shown!r}.",
            "Write SOURCE@v12 for a version, or SOURCE@2026-11-01T06:00:00Z for a time.",
        ) from None
    return found["location"], when if when.tzinfo else when.replace(tzinfo=UTC)


def _delta_table(uri: str, role: str, at: int | datetime | None) -> Any:
    """The Delta table at ``uri``, at its latest version or at ``at``."""
    from deltalake import DeltaTable

    try:
        table = DeltaTable(uri)
    except Exception as exc:  # deltalake raises its own errors
        raise Unavailable(
            f"Cannot read the Delta table {uri!r}: {_first_line(exc)}", "Check the table."
        ) from None
    latest = table.version()
    if isinstance(at, int) and at != latest:
        if at > latest:
            raise InvalidInput(
                f"The {role} table {uri!r} has no version {at}: its latest is {latest}.",
                f"Give a version from 0 to {latest} (flowship reads SOURCE@vN).",
            )
        try:
            table.load_as_version(at)
        except Exception as exc:  # an old version whose log was cleaned up
            raise InvalidInput(
                f"The {role} table {uri!r} cannot be read at version {at}: {_first_line(exc)}",
                "Give a version the table still keeps (see its history).",
            ) from None
    elif isinstance(at, datetime):
        # The version current at that instant by the commit times the table records (what
        # its history shows): deltalake's own lookup by time goes by the log files'
        # modification times, which can be a few ms later than the recorded time.
        written = {h["version"]: h["timestamp"] for h in table.history() if h.get("timestamp")}
        instant = at.timestamp() * 1000
        first = min(written.values(), default=None)
        if first is not None and instant < first:
            oldest = datetime.fromtimestamp(first / 1000, UTC)
            raise InvalidInput(
                f"The {role} table {uri!r} has no version as old as {at.isoformat()}: "
                f"its oldest kept version was written at {oldest.isoformat(timespec='seconds')}.",
                "Give a later time, or a version as SOURCE@vN.",
            )
        current = max((v for v, ms in written.items() if ms <= instant), default=None)
        try:
            if current is None:  # no recorded commit times: deltalake's lookup
                table.load_as_version(at)
            elif current != latest:
                table.load_as_version(current)
        except Exception as exc:
            raise InvalidInput(
                f"The {role} table {uri!r} cannot be read as of {at.isoformat()}: "
                f"{_first_line(exc)}",
                "Give a later time, or a version as SOURCE@vN.",
            ) from None
    return table


def _is_delta(uri: str) -> bool:
    from deltalake import DeltaTable

    try:
        return DeltaTable.is_deltatable(uri)
    except Exception:  # an unreachable or malformed location is simply "not a table"
        return False


def _in_memory(data: Any, role: str, where: str | None) -> Source:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        table = pa.Table.from_pandas(data, preserve_index=False)
    elif isinstance(data, pa.Table):
        table = data
    else:
        raise InvalidInput(
            f"Cannot read the {role} data from a {type(data).__name__}.",
            f"Give a pandas DataFrame, an Arrow table or {FORMS}.",
        )
    opened = Source(f"<{role} frame>", role, table.schema, where, table.num_rows, _table=table)
    opened.kind = "memory"
    return _settle_schema(opened)


def _path(shown: str, role: str, where: str | None) -> Source:
    location, at = split_version(shown, shown)
    if at is not None:
        if "://" not in location and not Path(location).exists():
            raise NotFound(f"The {role} table {location!r} does not exist.", f"Give {FORMS}.")
        if not _is_delta(location):
            raise InvalidInput(
                f"The {role} source {location!r} is not a Delta table, so it has no "
                f"versions ({shown!r}).",
                "Give @vN or @TIME only on a Delta table; narrow other sources with --where.",
            )
        return _delta(shown, location, role, where, at)
    if "://" in location:
        return _delta(location, location, role, where)
    path = Path(location)
    if not path.exists():
        raise NotFound(f"The {role} file {location!r} does not exist.", f"Give {FORMS}.")
    if path.is_file() and path.stat().st_size == 0:
        raise InvalidInput(f"The {role} file {location!r} is empty.", "Point it at a sample.")
    if path.is_dir() and (path / "_delta_log").is_dir():
        return _delta(location, location, role, where)
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".txt"):
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        opened = Source(location, role, pa.schema([]), where, None, kind="csv", files=[location])
        opened._from = f"read_csv({_literal(location)}, delim={_literal(sep)}, header=true)"
        return _settle_schema(opened, "Check the file: one header row, comma-separated, UTF-8.")
    if path.is_dir():
        return _parquet(location, _parquet_files(location, role), role, where, root=location)
    return _parquet(location, [location], role, where)


def _parquet_files(location: str, role: str) -> list[str]:
    import pyarrow.dataset as pds

    try:
        # pyarrow's discovery skips _staging and .hidden files as Spark and Delta expect.
        files = list(pds.dataset(location, format="parquet", partitioning="hive").files)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(
            f"The {role} data {location!r} is not readable as Parquet: {_first_line(exc)}",
            f"Give {FORMS}; CSV files need a .csv suffix.",
        ) from None
    if not files:
        raise InvalidInput(
            f"The {role} folder {location!r} holds no Parquet files.", "Point it at the data."
        )
    return files


def _parquet(
    name: str, files: list[str], role: str, where: str | None, *, root: str | None = None
) -> Source:
    import pyarrow.parquet as pq

    rows, schemas = None, set()
    if len(files) <= 2000:  # reading footers of more files costs more than the hint is worth
        try:
            footers = [pq.read_metadata(f) for f in files]
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(
                f"The {role} data {name!r} is not readable as Parquet: {_first_line(exc)}",
                f"Give {FORMS}; CSV files need a .csv suffix.",
            ) from None
        rows = sum(footer.num_rows for footer in footers)
        schemas = {footer.schema.to_arrow_schema().remove_metadata() for footer in footers}
    opened = Source(name, role, pa.schema([]), where, rows, kind="parquet", files=files, root=root)
    if len(schemas) == 1:
        opened.file_schema = schemas.pop()
    listed = ", ".join(_literal(f) for f in files)
    opened._from = f"read_parquet([{listed}], hive_partitioning=true, union_by_name=true)"
    if opened.file_schema is not None and root is None and where is None:
        # One file, read as it is by pyarrow (``batches``): its footer is the schema,
        # and DuckDB (a tenth of a second to load and ask) is not needed at all.
        opened.schema = opened.file_schema
        return opened
    return _settle_schema(opened, f"Give {FORMS}; CSV files need a .csv suffix.")


def _delta(
    name: str, uri: str, role: str, where: str | None, at: int | datetime | None = None
) -> Source:
    if not _is_delta(uri):
        raise NotFound(f"The {role} source {uri!r} is not a Delta table.", f"Give {FORMS}.")
    table = _delta_table(uri, role, at)
    try:
        files = [u.removeprefix("file://") for u in table.file_uris()]
    except (pa.ArrowInvalid, OSError, Exception) as exc:  # deltalake raises its own errors
        raise Unavailable(
            f"Cannot read the Delta table {uri!r}: {_first_line(exc)}", "Check the table."
        ) from None
    if not files:
        raise InvalidInput(f"The {role} table {name!r} has no rows.", "Point it at data.")
    if any("://" in f for f in files):
        raise InvalidInput(
            f"The {role} table {name!r} is not on a local disk.",
            "Monitoring reads local Delta tables; use --engine spark for remote storage.",
        )
    return _parquet(name, files, role, where, root=uri)


def _sql(text: str, sql_url: str | None, role: str, where: str | None) -> Source:
    query = text[4:].strip()
    if not query:
        raise InvalidInput(f"The {role} SQL query is empty.", "Write it as sql:SELECT ...")
    from flowship.batch.sources import open_source as open_batch_source
    from flowship.batch.spec import SourceSpec
    from flowship.redact import redact

    url = sql_url or get_settings().resolved_database_url
    try:
        batch_source = open_batch_source(SourceSpec(query=query, url=url))
    except Unavailable as exc:
        raise InvalidInput(
            f"The {role} query failed on {redact(url)}: {exc.message.split(': ', 1)[-1]}",
            "Check the SQL and the database URL (--sql-url).",
        ) from None
    schema = batch_source.schema

    def reader() -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(
            schema, batch_source.batches(schema.names, BATCH_ROWS)
        )

    opened = Source(text, role, schema, where, None, _reader=reader, kind="sql")
    return _settle_schema(opened, "Check the SQL and the database URL (--sql-url).")


def _settle_schema(opened: Source, hint: str = "Check the source.") -> Source:
    """Ask DuckDB for the schema it will produce (types after reading, ``where`` checked)."""
    con = connect_duckdb()
    try:
        relation = opened.relation(con)
        opened.schema = _arrow_reader(relation.limit(0), 1).schema
    except InvalidInput:
        raise
    except _duck_errors() as exc:
        raise InvalidInput(
            f"The {opened.role} data {opened.name!r} is not readable: {_first_line(exc)}", hint
        ) from None
    finally:
        con.close()
    return opened


def _check_where(where: str) -> None:
    """One SQL condition, not a statement list: a ``;`` would end the SELECT it sits in."""
    if ";" in where or "--" in where or "/*" in where or len(where) > 4000:
        raise InvalidInput(
            f"The --where condition {where[:80]!r} must be one SQL condition "
            "(no ';' or comments, at most 4000 characters).",
            "Write it like \"prediction_date >= '2026-11-01' AND variant = 'b'\".",
        )


def connect_duckdb(workdir: str | None = None) -> Any:
    """A DuckDB connection capped at ``DUCKDB_MEMORY``; joins and sorts beyond it spill to
    ``workdir`` (a database file there), or to DuckDB's temporary folder."""
    import duckdb

    config = {"memory_limit": DUCKDB_MEMORY, "threads": DUCKDB_THREADS}
    if workdir is None:
        con = duckdb.connect(config=config)
    else:
        con = duckdb.connect(str(Path(workdir) / "work.duckdb"), config=config)
    con.execute("SET enable_progress_bar = false")  # flowship draws its own, on a terminal
    if workdir is None:
        return con
    con.execute(f"SET temp_directory = {_literal(str(Path(workdir) / 'spill'))}")
    return con


def _arrow_reader(relation: Any, batch_rows: int) -> pa.RecordBatchReader:
    to_reader = getattr(relation, "to_arrow_reader", None)
    if to_reader is not None:
        return to_reader(batch_rows)
    return relation.fetch_record_batch(batch_rows)


def _duck_errors() -> tuple[type[BaseException], ...]:
    import duckdb

    return (duckdb.Error, pa.ArrowInvalid, OSError)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
