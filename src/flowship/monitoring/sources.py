"""Where a monitor's data comes from, read into a pandas DataFrame.

A source is a string:

- a Parquet, CSV or TSV file, a directory of Parquet files, or a Delta table (a path
  or any URI deltalake reads, e.g. ``s3://bucket/table``);
- ``table:NAME``: one of flowship's own Delta tables (batch predictions, the live
  prediction log), at ``get_settings().table_uri(NAME)``;
- ``sql:SELECT ...``: a query, run on ``sql_url`` (default: flowship's own database);
- ``models:/NAME@alias`` (baselines only): the sample attached to that model version
  with ``flowship monitor attach-baseline``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from flowship.config import get_settings
from flowship.errors import InvalidInput, NotFound, Unavailable

log = logging.getLogger(__name__)
FORMS = "a Parquet/CSV/Delta path, table:NAME, sql:SELECT ... or models:/NAME@alias"


def load_frame(
    source: str,
    *,
    role: str = "data",
    columns: Sequence[str] | None = None,
    sql_url: str | None = None,
) -> pd.DataFrame:
    """Read ``source`` whole. ``role`` names it in messages ("baseline", "current")."""
    source = (source or "").strip()
    if not source:
        raise InvalidInput(f"No {role} source given.", f"Give {FORMS}.")
    if source.startswith("sql:"):
        frame = _read_sql(source[4:].strip(), sql_url, role)
    elif source.startswith("models:/"):
        frame = _read_attached(source, role)
    elif source.startswith("table:"):
        frame = _read_delta(get_settings().table_uri(source[6:].strip()), role)
    else:
        frame = _read_path(source, role)
    if columns:
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise InvalidInput(
                f"The {role} data ({source}) has no column(s) {', '.join(map(repr, absent))}.",
                f"Its columns are: {', '.join(map(str, frame.columns[:20]))}.",
            )
        frame = frame[list(columns)]
    if frame.shape[0] == 0:
        raise InvalidInput(
            f"The {role} data ({source}) has no rows.", "Point it at a non-empty sample."
        )
    log.info("Read %d rows x %d columns of %s data from %s", *frame.shape, role, source)
    return frame


def _read_path(location: str, role: str) -> pd.DataFrame:
    if "://" not in location:
        path = Path(location)
        if not path.exists():
            raise NotFound(f"The {role} file {location!r} does not exist.", f"Give {FORMS}.")
        if path.is_file() and path.stat().st_size == 0:
            raise InvalidInput(f"The {role} file {location!r} is empty.", "Point it at a sample.")
        if path.is_dir() and not (path / "_delta_log").is_dir():
            return _read_parquet(location, role)
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv", ".txt"):
            return _read_csv(location, role, sep="\t" if suffix == ".tsv" else ",")
        if path.is_file():
            return _read_parquet(location, role)
    return _read_delta(location, role)


def _read_csv(location: str, role: str, *, sep: str) -> pd.DataFrame:
    try:
        return pd.read_csv(location, sep=sep)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InvalidInput(
            f"The {role} file {location!r} is not readable as CSV: {_first_line(exc)}",
            "Check the file: one header row, comma-separated, UTF-8.",
        ) from exc


def _read_parquet(location: str, role: str) -> pd.DataFrame:
    import pyarrow.dataset as pds

    try:
        return pds.dataset(location, format="parquet", partitioning="hive").to_table().to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(
            f"The {role} data {location!r} is not readable as Parquet: {_first_line(exc)}",
            f"Give {FORMS}; CSV files need a .csv suffix.",
        ) from exc


def scan(source: str, *, role: str = "data", sql_url: str | None = None) -> Any:
    """``source`` as a lazy pyarrow dataset (files, Delta, ``table:NAME``), so a reader such
    as DuckDB streams only the columns and rows it needs; ``sql:`` sources come whole, as
    a pyarrow table."""
    import pyarrow.dataset as pds

    source = (source or "").strip()
    if not source:
        raise InvalidInput(f"No {role} source given.", f"Give {FORMS}.")
    if source.startswith("sql:"):
        return pa.Table.from_pandas(_read_sql(source[4:].strip(), sql_url, role))
    if source.startswith("models:/"):
        raise InvalidInput(
            f"The {role} source {source!r} is a baseline, not a table.", f"Give {FORMS}."
        )
    if source.startswith("table:"):
        return _delta_dataset(get_settings().table_uri(source[6:].strip()), role)
    path = Path(source)
    if "://" not in source:
        if not path.exists():
            raise NotFound(f"The {role} file {source!r} does not exist.", f"Give {FORMS}.")
        if path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".txt"):
            return pa.Table.from_pandas(_read_path(source, role), preserve_index=False)
        if path.is_file() or not (path / "_delta_log").is_dir():
            try:
                return pds.dataset(source, format="parquet", partitioning="hive")
            except (pa.ArrowInvalid, OSError) as exc:
                raise InvalidInput(
                    f"The {role} data {source!r} is not readable as Parquet: {_first_line(exc)}",
                    f"Give {FORMS}; CSV files need a .csv suffix.",
                ) from exc
    return _delta_dataset(source, role)


def _read_delta(uri: str, role: str) -> pd.DataFrame:
    try:
        return _delta_dataset(uri, role).to_table().to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise Unavailable(
            f"Cannot read the Delta table {uri!r}: {_first_line(exc)}", "Check the table."
        ) from exc


def _delta_dataset(uri: str, role: str) -> Any:
    import pyarrow.fs as pafs
    from deltalake import DeltaTable

    try:
        is_table = DeltaTable.is_deltatable(uri)
    except Exception:  # an unreachable or malformed location is simply "not a table"
        is_table = False
    if not is_table:
        raise NotFound(f"The {role} source {uri!r} is not a Delta table.", f"Give {FORMS}.")
    try:
        table = DeltaTable(uri)
        # Read through pyarrow's own filesystem: deltalake's default one leaves a Rust
        # thread that aborts the interpreter at exit.
        local = uri if "://" in uri else str(Path(uri).resolve())
        fs, root = pafs.FileSystem.from_uri(local if "://" in local else f"file://{local}")
        return table.to_pyarrow_dataset(filesystem=pafs.SubTreeFileSystem(root, fs))
    except (pa.ArrowInvalid, OSError) as exc:
        raise Unavailable(
            f"Cannot read the Delta table {uri!r}: {_first_line(exc)}", "Check the table."
        ) from exc


def _read_sql(query: str, sql_url: str | None, role: str) -> pd.DataFrame:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    from flowship.redact import redact

    if not query:
        raise InvalidInput(f"The {role} SQL query is empty.", "Write it as sql:SELECT ...")
    url = sql_url or get_settings().resolved_database_url
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql(text(query), conn)
    except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
        raise InvalidInput(
            f"The {role} query failed on {redact(url)}: {_first_line(exc)}",
            "Check the SQL and the database URL (--sql-url).",
        ) from exc
    finally:
        engine.dispose()


def _read_attached(ref: str, role: str) -> pd.DataFrame:
    from flowship.monitoring.baseline import download_baseline

    return _read_parquet(str(download_baseline(ref)), role)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
