"""Outputs of a scoring job, written so that a run becomes visible all at once or not at all.

Delta (default): the run streams its rows into Parquet files inside the table directory
(``prediction_date=D/part-<run_id>-<n>.parquet``), invisible because no commit names
them, then adds them in ONE Delta transaction at the end. A full (non-incremental) rerun
replaces the model's earlier rows for that date in that same transaction: files holding
only its rows are removed, and files that mix them with other rows (compacted by
``optimize``, or written by another engine, without statistics) are rewritten without
them. Each commit carries the run id in its commit info; files of a run that never
committed and whose process is gone are orphans, deleted by the next run on the table.

Two runs writing one model's rows for one date at once (two incremental runs, or a full
and an incremental one) would each decide from the table as it was before the other's
commit. So a run commits against the snapshot it read (its scored ids, its
replacements) with a Delta transaction identifier (``txn`` action) named after the model
and date: Delta's conflict check refuses the second commit whose snapshot predates the
first one's identifier, and that run fails without committing anything; no id is ever
scored twice.

``append_delta``: one Delta commit per call, for writers that append small batches from
several processes at once (the serving prediction log).

Parquet: the run writes into ``_staging/<run_id>/`` (ignored by readers, as every
``_``-prefixed directory is) and commits with one directory rename to
``prediction_date=D/run_id=<run_id>/``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from flowship.batch import _delta
from flowship.errors import ConcurrentChange, FlowshipError, InvalidInput, SchemaMismatch

log = logging.getLogger(__name__)

PARTITION = "prediction_date"
_PART = re.compile(r"part-([0-9a-f]{32})-\d+\.parquet$")


def _fs(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), _abs(uri))


def _abs(path: str) -> str:
    from pathlib import Path

    return str(Path(path).absolute())


def _unwritable(uri: str, exc: BaseException) -> FlowshipError:
    return InvalidInput(
        f"The output {uri!r} cannot be written: {str(exc).splitlines()[0] if str(exc) else exc}",
        "Choose a location you can write to (check permissions and the parent folder).",
    )


def _same_columns(existing: pa.Schema, wanted: pa.Schema) -> list[str]:
    """Differences between an existing output's columns and the ones this job writes."""
    problems = []
    have = {f.name: f.type for f in existing}
    want = {f.name: f.type for f in wanted}
    for name in want.keys() - have.keys():
        problems.append(f"{name} is new")
    for name in have.keys() - want.keys():
        problems.append(f"{name} is missing from this job's output")
    for name in want.keys() & have.keys():
        if not _compatible(have[name], want[name]):
            problems.append(f"{name} is {have[name]} in the table but {want[name]} here")
    return sorted(problems)


def _compatible(have: pa.DataType, want: pa.DataType) -> bool:
    def norm(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_timestamp(t):
            return pa.timestamp("us", tz="UTC" if t.tz else None)
        return t

    return norm(have) == norm(want)


_UNREAD = object()

# The run's stamp: every row a run writes holds the same model name, version and run id.
CONSTANT_COLUMNS = ("model_name", "model_version", "run_id")


@dataclass
class _FileStats:
    """Delta statistics for one data file, gathered while it is written."""

    rows: int = 0
    mins: dict[str, Any] = field(default_factory=dict)
    maxs: dict[str, Any] = field(default_factory=dict)
    nulls: dict[str, int] = field(default_factory=dict)

    def update(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            self.nulls[name] = self.nulls.get(name, 0) + column.null_count
            if pa.types.is_dictionary(column.type):
                # The constant columns (one entry). Bounds over the entries bound the
                # values in any case, which is all file skipping needs.
                column = column.dictionary
            t = column.type
            if not (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_floating(t)):
                continue
            if name in CONSTANT_COLUMNS and column[0] == column[-1]:
                column = column.slice(0, 1)  # one value per run: min_max of all is waste
            low, high = pc.min_max(column).values()
            low, high = low.as_py(), high.as_py()
            if low is None or (isinstance(low, float) and not np.isfinite([low, high]).all()):
                continue
            if name not in self.mins or low < self.mins[name]:
                self.mins[name] = low
            if name not in self.maxs or high > self.maxs[name]:
                self.maxs[name] = high

    def to_json(self) -> str:
        return json.dumps(
            {
                "numRecords": self.rows,
                "minValues": self.mins,
                "maxValues": self.maxs,
                "nullCount": self.nulls,
            }
        )


class _RollingWriter:
    """Parquet files of at most ``rows_per_file`` rows under ``folder`` of ``root``."""

    def __init__(
        self,
        fs: pafs.FileSystem,
        root: str,
        folder: str,
        prefix: str,
        rows_per_file: int,
        on_close: Callable[[str, _FileStats], None],
    ) -> None:
        self.fs, self.root, self.folder, self.prefix = fs, root, folder, prefix
        self.rows_per_file = rows_per_file
        self.on_close = on_close
        self._writer: pq.ParquetWriter | None = None
        self._path = ""
        self._stats = _FileStats()
        self._count = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._writer is None:
            self._path = f"{self.folder}/{self.prefix}-{self._count:05d}.parquet"
            self._count += 1
            self.fs.create_dir(f"{self.root}/{self.folder}", recursive=True)
            self._writer = pq.ParquetWriter(
                f"{self.root}/{self._path}",
                batch.schema,
                filesystem=self.fs,
                # Snappy: Delta's and Spark's default, and the fastest to write (zstd
                # files are a quarter the size but took half again as long to write).
                compression="snappy",
                # Dictionary-encoding numeric columns held ~100 MB per file in encoder
                # state for no gain on ids and scores; text columns (model name, run id)
                # are near-constant and shrink to almost nothing with it. The constant
                # columns arrive dictionary-encoded already (local.constant_strings).
                use_dictionary=[
                    f.name
                    for f in batch.schema
                    if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)
                ],
                # Readers see the table's types (plain strings), not the Arrow encoding
                # the writer happened to be handed.
                store_schema=False,
                # Footer statistics of the constant columns cost a string comparison a
                # row; the Delta log carries theirs (_FileStats).
                write_statistics=[n for n in batch.schema.names if n not in CONSTANT_COLUMNS],
            )
            self._stats = _FileStats()
        self._writer.write_batch(batch)
        self._stats.update(batch)
        if self._stats.rows >= self.rows_per_file:
            self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self.on_close(self._path, self._stats)


class DeltaSink:
    """A Delta table partitioned by prediction date; one commit per run."""

    format = "delta"

    def __init__(self, uri: str, *, rows_per_file: int = 2_000_000) -> None:
        self.uri = uri
        self.rows_per_file = rows_per_file
        self.fs, self.root = _fs(uri)
        self._read: Any = _UNREAD

    def table(self):  # -> DeltaTable | None
        """The table as this sink first read it: the snapshot a run's incremental ids and
        replacements come from, and against which its commit is checked."""
        if self._read is _UNREAD:
            self._read = _delta.open_table(self.uri)
        return self._read

    def check_writable(self) -> None:
        probe = f"{self.root}/.flowship-probe-{uuid.uuid4().hex}"
        try:
            self.fs.create_dir(self.root, recursive=True)
            with self.fs.open_output_stream(probe) as out:
                out.write(b"ok")
            self.fs.delete_file(probe)
        except (OSError, pa.ArrowException) as exc:
            raise _unwritable(self.uri, exc) from None

    def check_schema(self, schema: pa.Schema) -> None:
        """Refuse to write columns that differ from the existing table's."""
        table = self.table()
        if table is None:
            return
        existing = pa.schema(table.schema().to_arrow())
        problems = _same_columns(existing, schema)
        partitions = table.metadata().partition_columns
        if partitions != [PARTITION]:
            problems.append(f"it is partitioned by {partitions or 'nothing'}, not [{PARTITION}]")
        if problems:
            raise SchemaMismatch(
                f"The output table {self.uri!r} has different columns: {'; '.join(problems)}.",
                "Write to a new output, or drop the old table if its predictions can go.",
            )

    def scored_ids(
        self, *, id_column: str, model_name: str, model_version: str, day: date
    ) -> pa.ChunkedArray | None:
        table = self.table()
        if table is None or id_column not in pa.schema(table.schema().to_arrow()).names:
            return None
        data = _delta.dataset(table, self.uri, predicate=[(PARTITION, "=", day.isoformat())])
        wanted = (pds.field("model_name") == model_name) & (
            pds.field("model_version") == model_version
        )
        return data.to_table(columns=[id_column], filter=wanted).column(id_column)

    def committed_runs(self) -> set[str]:
        table = self.table()
        if table is None:
            return set()
        runs = set()
        for commit in table.history():
            run = commit.get("flowship.run_id")
            if run:
                runs.add(run)
        return runs

    def remove_orphans(self, is_orphan: Callable[[str], bool]) -> int:
        """Delete data files of runs that never committed (``is_orphan(run_id)``)."""
        committed = self.committed_runs()
        table = self.table()
        live = set()
        if table is not None:  # never touch a file the table references, whatever its run
            live = {
                a.rsplit("/", 1)[-1]
                for a in pa.table(table.get_add_actions()).column("path").to_pylist()
            }
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True))
        except (OSError, FileNotFoundError):
            return 0
        removed = 0
        for info in infos:
            match = _PART.search(info.base_name)
            if info.type != pafs.FileType.File or match is None:
                continue
            run = match.group(1)
            if run not in committed and info.base_name not in live and is_orphan(run):
                self.fs.delete_file(info.path)
                removed += 1
        staging = f"{self.root}/_staging"
        for info in self.fs.get_file_info(pafs.FileSelector(staging, allow_not_found=True)):
            if info.type == pafs.FileType.Directory and is_orphan(info.base_name):
                self.fs.delete_dir(info.path)
                removed += 1
        if removed:
            log.info("Removed %d orphaned file(s) of crashed runs from %s", removed, self.uri)
        return removed

    def open(self, *, run_id: str, day: date, schema: pa.Schema) -> DeltaRun:
        return DeltaRun(self, run_id=run_id, day=day, schema=schema)


class DeltaRun:
    """One run's staged files in a Delta table, committed together by ``commit``."""

    def __init__(self, sink: DeltaSink, *, run_id: str, day: date, schema: pa.Schema) -> None:
        from deltalake.transaction import AddAction

        self.sink, self.run_id, self.day = sink, run_id, day
        self.schema = schema  # the table's full schema, with the partition column
        self.adds: list[AddAction] = []
        self.rows = 0
        self._writer = _RollingWriter(
            sink.fs,
            sink.root,
            f"{PARTITION}={day.isoformat()}",
            f"part-{run_id}",
            sink.rows_per_file,
            self._closed,
        )

    def _closed(self, path: str, stats: _FileStats) -> None:
        from deltalake.transaction import AddAction

        size = self.sink.fs.get_file_info(f"{self.sink.root}/{path}").size
        self.adds.append(
            AddAction(
                path,
                size,
                {PARTITION: self.day.isoformat()},
                int(time.time() * 1000),
                True,
                stats.to_json(),
            )
        )

    def write(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        self._writer.write(batch)

    def adopt(self, file: Path) -> None:
        """Stage a Parquet file written by another engine (Spark) as part of this run."""
        folder = f"{PARTITION}={self.day.isoformat()}"
        name = f"{folder}/part-{self.run_id}-{self._writer._count:05d}.parquet"
        self._writer._count += 1
        self.sink.fs.create_dir(f"{self.sink.root}/{folder}")
        self.sink.fs.move(str(file), f"{self.sink.root}/{name}")
        self._closed(name, _stats_of(f"{self.sink.root}/{name}", self.sink.fs))

    def commit(self, *, model: str, replace: bool) -> int | None:
        """Make every staged file visible in one transaction; with ``replace``, the same
        transaction replaces ``model``'s earlier rows for this date. Refused (with
        ``ConcurrentChange``) when another run committed rows of ``model`` for this date
        since this run read the table."""
        from deltalake import DeltaTable
        from deltalake.transaction import Transaction, create_table_with_add_actions

        self._writer.close()
        table = self.sink.table()
        app = f"flowship:{model}:{self.day.isoformat()}"
        try:
            if table is None:
                if not self.adds:
                    return None
                create_table_with_add_actions(
                    self.sink.uri,
                    _delta_schema(self.schema),
                    self.adds,
                    mode="error",  # a table another run created meanwhile: a conflict
                    partition_by=[PARTITION],
                    commit_properties=self._properties(Transaction(app, 1)),
                )
                return DeltaTable(self.sink.uri).version()
            actions = self._replaced(table, model) if replace else []
            if not self.adds and not actions:
                return table.version()
            seen = table.transaction_version(app) or 0
            table.create_write_transaction(
                [*self.adds, *actions],
                "append",
                _delta_schema(self.schema),
                partition_by=[PARTITION],
                commit_properties=self._properties(Transaction(app, seen + 1)),
            )
            return DeltaTable(self.sink.uri).version()
        except Exception as exc:
            if type(exc).__name__ in ("CommitFailedError", "DeltaError") or any(
                word in str(exc).lower() for word in ("conflict", "concurrent", "already exists")
            ):
                raise ConcurrentChange(
                    f"Another run changed {self.sink.uri!r} while this run was scoring: "
                    f"{str(exc).splitlines()[0]}",
                    "Run the job again (an incremental run then scores only what is left); "
                    "nothing from this run was committed.",
                ) from exc
            raise

    def _properties(self, transaction: Any) -> Any:
        from deltalake.transaction import CommitProperties

        return CommitProperties(
            custom_metadata={"flowship.run_id": self.run_id}, app_transactions=[transaction]
        )

    def _replaced(self, table: Any, model: str) -> list[Any]:
        """Actions that take ``model``'s rows for this date out of ``table``: a file of
        its rows only is removed; a file that may also hold other rows (compacted, or
        without statistics) is rewritten without them."""
        from deltalake.transaction import RemoveAction

        day = self.day.isoformat()
        now = int(time.time() * 1000)
        actions: list[Any] = []
        for a in pa.table(table.get_add_actions(flatten=True)).to_pylist():
            if a.get(f"partition.{PARTITION}") not in (self.day, day):
                continue
            low, high = a.get("min.model_name"), a.get("max.model_name")
            if low is not None and high is not None and not low <= model <= high:
                continue  # none of its rows are this model's
            if not low == model == high:
                kept = self._without(a["path"], model)
                if kept is None:
                    continue  # read it: no row of this model after all
                actions.extend(kept)
            actions.append(RemoveAction(a["path"], True, now, a["size_bytes"], {PARTITION: day}))
        return actions

    def _without(self, path: str, model: str) -> list[Any] | None:
        """The file at ``path`` rewritten without ``model``'s rows, as add actions (none
        when no row is left); None when it holds no row of ``model``."""
        fs, root = self.sink.fs, self.sink.root
        data = pq.read_table(f"{root}/{path}", filesystem=fs)
        if PARTITION in data.column_names:
            data = data.drop_columns([PARTITION])
        others = pc.fill_null(pc.not_equal(data.column("model_name"), model), True)
        if pc.all(others).as_py():
            return None
        kept = data.filter(others)
        if kept.num_rows == 0:
            return []
        # Written whole, with footer statistics for every column (the rolling writer
        # assumes one model and run per file, which a kept remainder need not be).
        folder = f"{PARTITION}={self.day.isoformat()}"
        name = f"{folder}/part-{self.run_id}-{self._writer._count:05d}.parquet"
        self._writer._count += 1
        pq.write_table(kept, f"{root}/{name}", filesystem=fs, compression="snappy")
        from deltalake.transaction import AddAction

        size = fs.get_file_info(f"{root}/{name}").size
        stats = _stats_of(f"{root}/{name}", fs)
        day = {PARTITION: self.day.isoformat()}
        return [AddAction(name, size, day, int(time.time() * 1000), True, stats.to_json())]

    def abort(self) -> None:
        """Delete this run's staged files (best effort: a crash leaves them as orphans)."""
        self._writer.on_close = lambda *_: None
        with contextlib.suppress(Exception):  # must not hide the error that stopped the run
            self._writer.close()
        for info in self._files():
            self.sink.fs.delete_file(info.path)

    def _files(self) -> list[pafs.FileInfo]:
        folder = f"{self.sink.root}/{PARTITION}={self.day.isoformat()}"
        try:
            infos = self.sink.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        except OSError:
            return []
        return [i for i in infos if i.base_name.startswith(f"part-{self.run_id}-")]


def _stats_of(path: str, fs: pafs.FileSystem) -> _FileStats:
    """Delta statistics from a Parquet footer (row counts, min/max, nulls)."""
    meta = pq.ParquetFile(path, filesystem=fs).metadata
    stats = _FileStats(rows=meta.num_rows)
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            name, st = column.path_in_schema, column.statistics
            if st is None:
                continue
            stats.nulls[name] = stats.nulls.get(name, 0) + (st.null_count or 0)
            if not st.has_min_max or st.physical_type not in (
                "INT32",
                "INT64",
                "DOUBLE",
                "FLOAT",
                "BYTE_ARRAY",
            ):
                continue
            low, high = st.min, st.max
            if isinstance(low, bytes):
                low, high = low.decode(errors="replace"), high.decode(errors="replace")
            if isinstance(low, float) and not np.isfinite([low, high]).all():
                continue
            if name not in stats.mins or low < stats.mins[name]:
                stats.mins[name] = low
            if name not in stats.maxs or high > stats.maxs[name]:
                stats.maxs[name] = high
    return stats


def _delta_schema(schema: pa.Schema):  # -> deltalake.Schema
    from deltalake import Schema

    return Schema.from_arrow(schema)


class ParquetSink:
    """A directory of Parquet files, hive-partitioned by prediction date and run."""

    format = "parquet"

    def __init__(self, uri: str, *, rows_per_file: int = 2_000_000) -> None:
        self.uri = uri
        self.rows_per_file = rows_per_file
        self.fs, self.root = _fs(uri)

    check_writable = DeltaSink.check_writable

    def _dataset(self) -> pds.Dataset | None:
        part = pds.partitioning(
            pa.schema([(PARTITION, pa.date32()), ("run_id", pa.string())]), flavor="hive"
        )
        try:
            data = pds.dataset(self.root, filesystem=self.fs, format="parquet", partitioning=part)
        except (FileNotFoundError, pa.ArrowInvalid):
            return None
        return data if data.files else None

    def check_schema(self, schema: pa.Schema) -> None:
        data = self._dataset()
        if data is None:
            return
        problems = _same_columns(data.schema, schema)
        if problems:
            raise SchemaMismatch(
                f"The output {self.uri!r} has different columns: {'; '.join(problems)}.",
                "Write to a new output, or remove the old files if their predictions can go.",
            )

    def scored_ids(
        self, *, id_column: str, model_name: str, model_version: str, day: date
    ) -> pa.ChunkedArray | None:
        data = self._dataset()
        if data is None or id_column not in data.schema.names:
            return None
        wanted = (
            (pds.field(PARTITION) == pa.scalar(day, pa.date32()))
            & (pds.field("model_name") == model_name)
            & (pds.field("model_version") == model_version)
        )
        return data.to_table(columns=[id_column], filter=wanted).column(id_column)

    def remove_orphans(self, is_orphan: Callable[[str], bool]) -> int:
        staging = f"{self.root}/_staging"
        infos = self.fs.get_file_info(pafs.FileSelector(staging, allow_not_found=True))
        removed = 0
        for info in infos:
            if info.type == pafs.FileType.Directory and is_orphan(info.base_name):
                self.fs.delete_dir(info.path)
                removed += 1
        return removed

    def open(self, *, run_id: str, day: date, schema: pa.Schema) -> ParquetRun:
        return ParquetRun(self, run_id=run_id, day=day)


class ParquetRun:
    def __init__(self, sink: ParquetSink, *, run_id: str, day: date) -> None:
        self.sink, self.run_id, self.day = sink, run_id, day
        self.rows = 0
        self.staging = f"_staging/{run_id}"
        self._writer = _RollingWriter(
            sink.fs, sink.root, self.staging, "part", sink.rows_per_file, lambda *_: None
        )

    def write(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        self._writer.write(batch.drop_columns(["run_id"]))

    def adopt_folder(self, folder: Path, *, rows: int) -> None:
        """Stage the Parquet files another engine (Spark) wrote in ``folder``."""
        target = f"{self.sink.root}/{self.staging}"
        self.sink.fs.create_dir(target)
        for i, file in enumerate(sorted(folder.glob("part-*.parquet"))):
            self.sink.fs.move(str(file), f"{target}/part-{i:05d}.parquet")
        self.rows += rows

    def commit(self, *, model: str, replace: bool) -> int | None:
        replace_model = model if replace else None
        self._writer.close()
        fs, root = self.sink.fs, self.sink.root
        day_dir = f"{root}/{PARTITION}={self.day.isoformat()}"
        fs.create_dir(day_dir, recursive=True)
        old = []
        if replace_model:
            for info in fs.get_file_info(pafs.FileSelector(day_dir)):
                if info.type == pafs.FileType.Directory and self._model_of(info.path) in (
                    replace_model,
                    None,
                ):
                    old.append(info.path)
        # Old output leaves before the new arrives: a crash in between can leave the date
        # empty (a rerun fills it) but never shows two predictions for one id.
        trash = f"{root}/_staging/trash-{self.run_id}"
        for i, path in enumerate(old):
            fs.create_dir(trash, recursive=True)
            fs.move(path, f"{trash}/{i}")
        if self.rows:
            fs.move(f"{root}/{self.staging}", f"{day_dir}/run_id={self.run_id}")
        else:
            fs.delete_dir_contents(f"{root}/{self.staging}", missing_dir_ok=True)
        if old:
            fs.delete_dir(trash)
        return None

    def _model_of(self, folder: str) -> str | None:
        files = [
            i.path
            for i in self.sink.fs.get_file_info(pafs.FileSelector(folder))
            if i.base_name.endswith(".parquet")
        ]
        if not files:
            return None
        first = pq.ParquetFile(files[0], filesystem=self.sink.fs).read_row_group(
            0, columns=["model_name"]
        )
        return first.column(0)[0].as_py() if first.num_rows else None

    def abort(self) -> None:
        self._writer.on_close = lambda *_: None
        with contextlib.suppress(Exception):  # must not hide the error that stopped the run
            self._writer.close()
        self.sink.fs.delete_dir_contents(f"{self.sink.root}/{self.staging}", missing_dir_ok=True)


def open_sink(uri: str, *, format: str, rows_per_file: int, url: str | None = None) -> Any:
    """The sink for ``format``: delta, parquet, or sql (``uri`` is then a table name)."""
    if format == "sql":
        from flowship.batch.sql_sink import SqlSink

        assert url is not None
        return SqlSink(uri, url=url)
    cls = DeltaSink if format == "delta" else ParquetSink
    return cls(uri, rows_per_file=rows_per_file)


def append_delta(
    uri: Any,
    table: pa.Table,
    *,
    partition_by: list[str],
    metadata: dict[str, str] | None = None,
    writer_properties: Any = None,
    configuration: dict[str, str] | None = None,
    attempts: int = 20,
) -> None:
    """Append ``table`` to the Delta table at ``uri`` (created on first use) in ONE commit.
    ``writer_properties``: deltalake's ``WriterProperties`` for the Parquet files;
    ``configuration``: the table properties of a table this call creates.
    ``uri`` may also be an open ``DeltaTable``, which then reads only the commits made
    since its last write (a path re-reads the log every time).

    For writers that append small batches from many processes at once (the prediction
    log): deltalake retries a commit that lost the race for a version number, and a
    blind append never conflicts with another append, so every commit lands. A race to
    *create* the table, or more losses in a row than deltalake's own retries, is retried
    here with a short random pause. New columns are merged into the table's schema.
    """
    import random

    from deltalake import CommitProperties, DeltaTable, write_deltalake

    properties = CommitProperties(custom_metadata=metadata, max_commit_retries=100)
    for attempt in range(1, attempts + 1):
        try:
            write_deltalake(
                uri,
                table,
                mode="append",
                partition_by=partition_by,
                schema_mode="merge",
                commit_properties=properties,
                writer_properties=writer_properties,
                configuration=configuration,
            )
            return
        except Exception as exc:
            text = str(exc).lower()
            transient = type(exc).__name__ in ("CommitFailedError", "DeltaError") or any(
                word in text for word in ("conflict", "already exists", "version")
            )
            if not transient or attempt == attempts:
                raise
            if isinstance(uri, DeltaTable):
                # Another writer changed the table's metadata (created it, merged a column):
                # deltalake does not retry that, and a stale handle would fail the same way
                # forever, so the retry starts from the table as it is now.
                uri = DeltaTable(uri.table_uri)
            time.sleep(random.uniform(0.01, 0.05) * attempt)
