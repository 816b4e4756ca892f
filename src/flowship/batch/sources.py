"""Inputs of a scoring job, read as a stream of Arrow record batches.

Parquet and Delta go through ``pyarrow.dataset`` (only the needed columns, one batch at
a time), CSV through ``pyarrow.csv.open_csv`` with every column read as text so that a
bad cell becomes one rejected row instead of a failed job, and SQL through a
server-side cursor. None of them ever holds the whole input in memory.

A SQL result has no schema until rows arrive: its first rows fix the column types (read
through the same streaming cursor, so probing a billion-row query costs its first
thousand rows). A later value that does not fit its column's type (SQLite keeps any
value in any column) is not an error for the job: the row arrives with a reason in the
``SOURCE_REASON`` column and becomes a rejected row.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from flowship.batch import _delta
from flowship.batch.rows import SOURCE_REASON
from flowship.batch.spec import SourceSpec
from flowship.errors import InvalidInput, NotFound, Unavailable


@dataclass
class Source:
    """An opened input: its Arrow schema, a snapshot to record, and a batch stream."""

    spec: SourceSpec
    schema: pa.Schema
    row_count: int | None
    snapshot: dict[str, Any]
    text_columns: bool = False
    """True when every column arrives as text (CSV) and must be cast per row."""
    _open: Any = field(default=None, repr=False)

    def batches(self, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        yield from self._open(columns, batch_size)


def open_source(spec: SourceSpec) -> Source:
    kind = spec.kind
    if kind == "sql":
        return _open_sql(spec)
    location = spec.location
    if "://" not in location and not Path(location).exists():
        raise NotFound(
            f"The input {location!r} does not exist.",
            "Check the path, or give the format explicitly (input.format).",
        )
    opener = {"parquet": _open_parquet, "csv": _open_csv, "delta": _open_delta}[kind]
    return opener(spec)


def _file_snapshot(paths: list[str]) -> dict[str, Any]:
    """Name, size and modification time of every input file, plus a digest of them all."""
    entries = []
    for path in sorted(paths):
        try:
            stat = os.stat(path)
            entries.append([path, stat.st_size, int(stat.st_mtime)])
        except OSError:
            entries.append([path, None, None])
    digest = hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]
    shown = entries if len(entries) <= 20 else entries[:20]
    return {"files": len(entries), "digest": digest, "sample": shown}


def _open_parquet(spec: SourceSpec) -> Source:
    import pyarrow.dataset as pds

    location = spec.location
    try:
        data = pds.dataset(location, format="parquet", partitioning="hive")
        files = list(data.files)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(
            f"The input {location!r} is not readable as Parquet: {_first_line(exc)}",
            "Give a Parquet file or a directory of Parquet files, or set input.format.",
        ) from None
    if not files:
        raise InvalidInput(
            f"The input {location!r} holds no Parquet files.", "Point it at the data to score."
        )
    rows = data.count_rows()

    def read(columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        yield from _guard(location, _read_fragments(data, columns, batch_size))

    return Source(spec, data.schema, rows, _file_snapshot(files), _open=read)


def _open_csv(spec: SourceSpec) -> Source:
    import pyarrow.csv as csv

    location = spec.location

    def reader(columns: list[str] | None, batch_size: int):
        convert = csv.ConvertOptions(
            include_columns=columns,
            column_types=dict.fromkeys(columns or [], pa.string()),
            strings_can_be_null=True,
        )
        # ~100 bytes a row: a block close to the requested batch size.
        read = csv.ReadOptions(block_size=max(1 << 16, min(batch_size * 100, 1 << 28)))
        return csv.open_csv(location, read_options=read, convert_options=convert)

    try:
        with reader(None, 1024) as probe:
            names = probe.schema.names
    except (pa.ArrowInvalid, OSError) as exc:
        message = _first_line(exc)
        if "Empty CSV file" in message:
            raise InvalidInput(
                f"The input {location!r} is empty.", "Give a CSV with a header."
            ) from None
        raise InvalidInput(f"The input {location!r} is not readable as CSV: {message}") from None
    schema = pa.schema([(name, pa.string()) for name in names])

    def read(columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        with reader(columns, batch_size) as stream:
            for batch in _guard(location, stream):
                yield from _split(batch, batch_size)

    return Source(spec, schema, None, _file_snapshot([location]), text_columns=True, _open=read)


def _open_delta(spec: SourceSpec) -> Source:
    location = spec.location
    table = _delta.open_table(location)
    if table is None:
        raise InvalidInput(
            f"The input {location!r} is not a Delta table (no _delta_log).",
            "Give a Delta table, or set input.format to parquet or csv.",
        )
    data = _delta.dataset(table, location)
    snapshot = {"delta_version": table.version(), "files": len(data.files)}

    def read(columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        yield from _guard(location, _read_fragments(data, columns, batch_size))

    return Source(spec, data.schema, data.count_rows(), snapshot, _open=read)


def _open_sql(spec: SourceSpec) -> Source:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    assert spec.query is not None and spec.url is not None
    try:
        engine = create_engine(spec.url)
        with engine.connect() as conn:
            # The first rows fix the schema; later batches are cast to it. A streaming
            # (server-side) cursor, so that the probe never buffers the whole result.
            result = conn.execution_options(stream_results=True, yield_per=1000).execute(
                text(spec.query)
            )
            keys = list(result.keys())
            first = result.fetchmany(1000)
            result.close()
    except (SQLAlchemyError, ModuleNotFoundError, ValueError) as exc:
        raise Unavailable(
            f"The input query on {spec.url_redacted} failed: {_first_line(exc)}",
            "Check input.url and input.query.",
        ) from None
    schema = _rows_to_batch(keys, first, None).schema
    snapshot = {"query_sha256": hashlib.sha256(spec.query.encode()).hexdigest()[:16]}

    def read(columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        try:
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(
                    text(spec.query)
                )
                for rows in result.partitions(batch_size):
                    batch = _rows_to_batch(keys, rows, schema)
                    extra = [SOURCE_REASON] if SOURCE_REASON in batch.schema.names else []
                    yield batch.select([*columns, *extra])
        except SQLAlchemyError as exc:  # e.g. a row the server cannot compute, mid-way
            raise InvalidInput(
                f"Reading the input query on {spec.url_redacted} failed: {_first_line(exc)}",
                "Fix the query; nothing was committed.",
            ) from None
        finally:
            engine.dispose()

    return Source(spec, schema, None, snapshot, _open=read)


def _rows_to_batch(keys: list[str], rows: list[Any], schema: pa.Schema | None) -> pa.RecordBatch:
    """Rows as a batch: with ``schema`` None, the types are inferred (the probe); else
    each column is cast to ``schema``, and a row with a value that does not fit is kept
    with that value null and its reason in ``SOURCE_REASON``."""
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in keys]
    if schema is None:
        return pa.RecordBatch.from_arrays(
            [_inferred(list(values)) for values in columns], names=keys
        )
    reasons: list[str | None] = [None] * len(rows)
    arrays = []
    for i, values in enumerate(columns):
        field = schema.field(i)
        try:
            arrays.append(pa.array(list(values), type=field.type, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            arrays.append(_one_by_one(field, values, reasons))
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    if any(r is not None for r in reasons):
        batch = batch.append_column(SOURCE_REASON, pa.array(reasons, pa.string()))
    return batch


def _inferred(values: list[Any]) -> pa.Array:
    """A probed column: its values' type, or, when they disagree already, the type of
    the first value (the others become rejected rows when read)."""
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        first = next((v for v in values if v is not None), None)
        alike = [v if type(v) is type(first) else None for v in values]
        return pa.array(alike, from_pandas=True)


def _one_by_one(field: pa.Field, values: Any, reasons: list[str | None]) -> pa.Array:
    """A column with some value that does not fit ``field``'s type: each value alone,
    the misfits null and their rows given a reason (the first reason of a row wins)."""
    fitted = []
    for row, value in enumerate(values):
        try:
            fitted.append(pa.array([value], type=field.type, from_pandas=True)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            fitted.append(None)
            if reasons[row] is None:
                shown = repr(value)
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                reasons[row] = (
                    f"{field.name} is {shown} ({type(value).__name__}), not "
                    f"{field.type} as in the query's first rows"
                )
    return pa.array(fitted, type=field.type)


def _read_fragments(data: Any, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Each file in turn with ``ParquetFile.iter_batches``: synchronous, so memory holds
    one row group. (``Dataset.to_batches`` decodes row groups ahead on a thread pool
    whenever scoring is slower than reading, until the whole file sits in memory.)
    Partition values (hive folders, Delta partitions) become constant columns."""
    import pyarrow.dataset as pds
    import pyarrow.parquet as pq

    schema = data.schema
    for fragment in data.get_fragments():
        keys = pds.get_partition_keys(fragment.partition_expression)
        in_file = [c for c in columns if c not in keys]
        # pre_buffer (on by default) keeps every row group read so far until the file closes.
        with pq.ParquetFile(
            fragment.path, filesystem=fragment.filesystem, pre_buffer=False
        ) as file:
            for batch in file.iter_batches(batch_size=batch_size, columns=in_file):
                if not keys:
                    yield batch
                    continue
                arrays = [
                    batch.column(c)
                    if c not in keys
                    else pa.array([keys[c]] * batch.num_rows, type=schema.field(c).type)
                    for c in columns
                ]
                yield pa.RecordBatch.from_arrays(arrays, names=columns)


def _split(batch: pa.RecordBatch, size: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, batch.num_rows, size):
        yield batch.slice(start, size)


def _guard(location: str, batches: Any) -> Iterator[pa.RecordBatch]:
    """Turn a read failure half-way through into an InvalidInput naming the input."""
    try:
        yield from batches
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"Reading the input {location!r} failed: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
