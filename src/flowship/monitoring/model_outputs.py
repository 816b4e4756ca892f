"""Drift of the model's own outputs: score baseline and current with the same version,
batch by batch as the sources are read."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from flowship.errors import UsageError

log = logging.getLogger(__name__)


def scored_sources(ref: str, *sources: Any) -> tuple[Any, ...]:
    """Each source with the outputs of the version ``ref`` points at as extra columns
    (resolved once, so both sides see the same version), then the output names.
    Classifiers give probabilities (more telling than labels), others values."""
    from flowship.predict import Predictor, resolve_ref

    pinned = resolve_ref(ref).uri
    try:
        predictor = Predictor.load(pinned, output="proba")
    except UsageError:
        predictor = Predictor.load(pinned, output="predict")
    outputs = list(predictor.output_columns)
    scored = tuple(ScoredSource.wrap(source, predictor, outputs) for source in sources)
    return (*scored, outputs)


@dataclasses.dataclass
class ScoredSource:
    """A source whose batches carry the model's outputs (float64) after its own columns;
    an input column named like an output is replaced by the output."""

    source: Any
    predictor: Any
    outputs: list[str]
    schema: pa.Schema

    @classmethod
    def wrap(cls, source: Any, predictor: Any, outputs: list[str]) -> ScoredSource:
        clash = [c for c in outputs if c in source.columns]
        if clash:
            log.info("Replacing column(s) %s with %s's outputs", clash, predictor.uri)
        fields = [f for f in source.schema if f.name not in outputs]
        schema = pa.schema([*fields, *(pa.field(c, pa.float64()) for c in outputs)])
        return cls(source, predictor, outputs, schema)

    def __getattr__(self, name: str) -> Any:  # name, role, where, label(), count_rows()...
        return getattr(self.source, name)

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def narrowed(self, condition: str) -> ScoredSource:
        return dataclasses.replace(self, source=self.source.narrowed(condition))

    def batches(self, columns: Sequence[str], **options: Any) -> Iterator[pa.RecordBatch]:
        inputs = [c.name for c in self.predictor.input_columns if c.name in self.source.columns]
        if not inputs:
            inputs = [c for c in self.source.columns if c not in self.outputs]
        read = list(dict.fromkeys([*(c for c in columns if c not in self.outputs), *inputs]))
        options.pop("encoded", None)  # the model reads plain columns, not codes
        for batch in self.source.batches(read, **options):
            scores = self.predictor.predict(batch.to_pandas()).reshape(batch.num_rows, -1)
            arrays = [
                pa.array(scores[:, self.outputs.index(c)], pa.float64())
                if c in self.outputs
                else batch.column(c)
                for c in columns
            ]
            yield pa.RecordBatch.from_arrays(arrays, names=list(columns))
