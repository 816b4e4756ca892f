"""Output helpers: data to stdout (rich tables or JSON), messages to stderr.

A table goes to a person as a rich table, shortened to fit the terminal. When stdout
is not a terminal (a pipe, a file) it goes to a program instead, the way ``gh`` and
``kubectl`` do it: a header line, then one row per line, cells separated by tabs and
never shortened, so ``flowship history NAME | grep Production`` finds what it looks
for and ``cut -f`` picks a column.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def print_json(data: Any) -> None:
    """Machine-readable output for ``--json``: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, default=_default, indent=2) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    if not out.is_terminal:
        _print_plain(columns, rows)
        return
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    out.print(table)


def _print_plain(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    lines = ["\t".join(_cell(c) for c in columns)]
    lines += ["\t".join(_cell(cell) for cell in row) for row in rows]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _cell(value: Any) -> str:
    """A full value on one line: tabs and line breaks would split its row."""
    if value is None:
        return ""
    return " ".join(str(value).replace("\t", " ").splitlines())


def say(message: str) -> None:
    """A progress or status message for a person: stderr, so stdout stays data."""
    err.print(message)
