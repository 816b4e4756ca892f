"""deltalake helpers: open a table, read it through pyarrow's own filesystem.

Reading through deltalake's default filesystem wrapper leaves a Rust runtime thread that
aborts the interpreter at exit ("terminate called without an active exception"), so
datasets are always built on a pyarrow filesystem rooted at the table.
"""

from __future__ import annotations

from typing import Any

import pyarrow.dataset as pds
import pyarrow.fs as pafs


def is_delta(uri: str) -> bool:
    from deltalake import DeltaTable

    try:
        return DeltaTable.is_deltatable(uri)
    except Exception:  # an unreachable or malformed location is simply "not a table"
        return False


def open_table(uri: str):  # -> DeltaTable | None
    from deltalake import DeltaTable

    return DeltaTable(uri) if is_delta(uri) else None


def filesystem(uri: str) -> pafs.FileSystem:
    fs, root = pafs.FileSystem.from_uri(uri if "://" in uri else _abs(uri))
    return pafs.SubTreeFileSystem(root, fs)


def _abs(path: str) -> str:
    from pathlib import Path

    return str(Path(path).resolve())


def dataset(table: Any, uri: str, *, predicate: Any = None) -> pds.Dataset:
    """A pyarrow dataset over ``table``'s current files (optionally pruned by partition)."""
    return table.to_pyarrow_dataset(filesystem=filesystem(uri), file_pruning_predicate=predicate)
