"""Rows read and rate on stderr while a monitor reads its sources: on a terminal only,
nothing when piped (library code only calls back with row counts)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flowship.cli._render import err


@contextmanager
def rows_progress(label: str) -> Iterator[Callable[[int], None] | None]:
    """Yields a callback taking the rows of each batch read, or None when stderr is not
    a terminal. Every pass over a source counts (a baseline is read once or twice)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(
        SpinnerColumn(),
        TextColumn(label),
        TextColumn("{task.completed:,.0f} rows read  {task.fields[rate]} rows/s"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    started = time.monotonic()
    with bar:
        task = bar.add_task(label, total=None, rate="-")
        read = 0

        def on_rows(rows: int) -> None:
            nonlocal read
            read += rows
            rate = read / max(time.monotonic() - started, 1e-9)
            bar.update(task, completed=read, rate=f"{rate:,.0f}")

        yield on_rows
