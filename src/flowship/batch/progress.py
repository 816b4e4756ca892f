"""Counters of a running job, with the rate and ETA a progress bar shows.

The engines update one ``Progress`` and hand it to an optional callback after every
batch; only the CLI turns it into a bar (library code never prints).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Progress:
    total: int | None = None
    """Input rows, when the source knows them up front (Parquet, Delta)."""
    rows_in: int = 0
    rows_out: int = 0
    rows_skipped: int = 0
    rows_rejected: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    @property
    def rows_per_second(self) -> float:
        return self.rows_in / self.elapsed

    @property
    def eta_seconds(self) -> float | None:
        if self.total is None or self.rows_in == 0:
            return None
        return max(self.total - self.rows_in, 0) / self.rows_per_second

    def summary(self) -> str:
        return (
            f"{self.rows_in:,} rows in, {self.rows_out:,} scored, {self.rows_skipped:,} "
            f"already scored, {self.rows_rejected:,} rejected in {self.elapsed:.1f}s "
            f"({self.rows_per_second:,.0f} rows/s)"
        )


ProgressCallback = Callable[[Progress], None]
