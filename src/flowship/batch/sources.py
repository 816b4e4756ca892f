"""Inputs of a scoring job, read as a stream of Arrow record batches.

Parquet and Delta go through ``pyarrow.dataset`` (only the needed columns, one batch at
a time), CSV through ``pyarrow.csv.open_csv`` with every column read as text so that a
bad cell becomes one rejected row instead of a failed job, and SQL through a
server-side cursor. None of them ever holds the whole input in memory.
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
            # The first rows fix the schema; later batches are cast to it.
            result = conn.execute(text(spec.query))
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
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(
                text(spec.query)
            )
            for rows in result.partitions(batch_size):
                yield _rows_to_batch(keys, rows, schema).select(columns)
        engine.dispose()

    return Source(spec, schema, None, snapshot, _open=read)


def _rows_to_batch(keys: list[str], rows: list[Any], schema: pa.Schema | None) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in keys]
    if schema is None:
        arrays = [pa.array(list(values)) for values in columns]
        return pa.RecordBatch.from_arrays(arrays, names=keys)
    arrays = [
        pa.array(list(values), type=schema.field(i).type, from_pandas=True)
        for i, values in enumerate(columns)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


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
