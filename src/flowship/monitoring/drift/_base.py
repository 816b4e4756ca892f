"""What every drift method shares: parameters, column selection, sources, engines."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flowship.errors import InvalidInput, UsageError
from flowship.monitoring.drift.columns import Selection, select_columns, type_clash
from flowship.monitoring.drift.result import ColumnDrift, DriftReport
from flowship.monitoring.drift.summaries import Presence


class DriftMethod:
    """scikit-learn shaped: ``__init__`` stores parameters, ``fit(reference)`` learns the
    baseline and returns self, ``score(current)`` returns a ``DriftReport``.

    ``reference`` and ``current`` are sources (``flowship.monitoring.sources``), pandas
    DataFrames or Arrow tables; either way they are read in batches by ``engine``
    (``"local"``, ``"spark"``, or an engine object) and only counts are kept.
    ``on_rows`` is called with the rows of every batch read (progress)."""

    name = "base"

    def __init__(
        self,
        *,
        columns: Sequence[str] | None = None,
        column_types: Mapping[str, str] | None = None,
        prediction_columns: Sequence[str] | None = None,
        drift_share: float = 0.5,
        min_rows: int = 50,
        engine: Any = "local",
        on_rows: Callable[[int], None] | None = None,
    ) -> None:
        self.columns = columns
        self.column_types = column_types
        self.prediction_columns = prediction_columns
        self.drift_share = drift_share
        self.min_rows = min_rows
        self.engine = engine
        self.on_rows = on_rows

    def thresholds(self) -> dict[str, Any]:
        return {"drift_share": self.drift_share, "min_rows": self.min_rows}

    def fit(self, reference: Any, current: Any = None) -> DriftMethod:
        """Learn the baseline. ``current``, when given, is only used to check up front
        that both sides have the same columns."""
        ref = as_source(reference, "baseline")
        cur = None if current is None else as_source(current, "current")
        selection = select_columns(
            ref.schema,
            (cur or ref).schema,
            columns=self.columns,
            column_types=dict(self.column_types or {}),
        )
        self.engine_ = resolve_engine(self.engine)
        self.reference_source_ = ref
        self.selection_ = selection
        self.skipped_ = list(selection.skipped)
        self.n_reference_ = self._fit(ref, selection)
        if self.n_reference_ == 0:
            raise no_rows(ref)
        return self

    def score(self, current: Any) -> DriftReport:
        if not hasattr(self, "reference_stats_"):
            raise UsageError(
                f"This {type(self).__name__} has not seen a baseline yet.",
                "Call fit(reference) before score(current).",
            )
        cur = as_source(current, "current")
        absent = [c for c in self.reference_stats_ if c not in cur.columns]
        if absent:
            raise UsageError(
                f"Column(s) {', '.join(map(repr, absent))} missing from the current data.",
                "Compare only the columns both sides have: pass --columns a,b,c.",
            )
        selection = select_columns(
            self.reference_source_.schema,
            cur.schema,
            columns=list(self.reference_stats_),
            column_types={
                k: v for k, v in (self.column_types or {}).items() if k in self.reference_stats_
            },
        )
        self._refuse_type_clashes(cur, selection)
        n_current, results = self._score(cur, selection)
        if n_current == 0:
            raise no_rows(cur)
        return DriftReport(
            method=self.name,
            columns=results,
            thresholds=self.thresholds(),
            n_reference=self.n_reference_,
            n_current=n_current,
            created_at=datetime.now(UTC),
            skipped_columns=self.skipped_,
        )

    def fit_score(self, reference: Any, current: Any) -> DriftReport:
        return self.fit(reference, current).score(current)

    def _refuse_type_clashes(self, current: Any, selection: Selection) -> None:
        """A column typed differently by side is refused when both sides hold values;
        the current side's values are counted (that column only) before the main pass."""
        clashes = [c for c in selection.clashes() if self._reference_has_values(c)]
        if not clashes:
            return
        _, tallies = self.engine_.tally(current, dict.fromkeys(clashes, Presence()))
        for name in clashes:
            if tallies[name].missing < tallies[name].n:
                raise type_clash(
                    name, selection.reference_types[name], selection.current_types[name]
                )

    def _reference_has_values(self, name: str) -> bool:
        raise NotImplementedError

    def _fit(self, reference: Any, selection: Selection) -> int:
        raise NotImplementedError

    def _score(self, current: Any, selection: Selection) -> tuple[int, list[ColumnDrift]]:
        raise NotImplementedError

    def _too_few_rows(self, n_current: int) -> str | None:
        if self.n_reference_ < self.min_rows:
            return f"only {self.n_reference_} baseline rows (need {self.min_rows})"
        if n_current < self.min_rows:
            return f"only {n_current} current rows (need {self.min_rows})"
        return None


def as_source(data: Any, role: str) -> Any:
    from flowship.monitoring.sources import open_source

    opened = hasattr(data, "batches") and hasattr(data, "schema")  # a Source or a wrapper
    return data if opened else open_source(data, role=role)


def resolve_engine(engine: Any) -> Any:
    if engine == "local":
        from flowship.monitoring.drift.local import LocalEngine

        return LocalEngine()
    if engine == "spark":
        from flowship.monitoring.spark import SparkEngine

        return SparkEngine()
    if isinstance(engine, str):
        raise UsageError(f"Unknown engine {engine!r}.", "Use --engine local or --engine spark.")
    return engine


def no_rows(source: Any) -> InvalidInput:
    """An empty side, or a filter that matches nothing: refused before any report."""
    side = "baseline" if source.role == "baseline" else f"{source.role} data"
    if source.where:
        return InvalidInput(
            f"The {side} has no rows matching --where {source.where!r} ({source.name}).",
            "Widen the condition, or check the column it filters on.",
        )
    return InvalidInput(
        f"The {side} has no rows ({source.name}).", "Point it at a non-empty sample."
    )
