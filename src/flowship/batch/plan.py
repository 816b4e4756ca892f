"""Everything a run settles before it scores a row, shared by both engines.

The model ref is resolved to a concrete version once (``models:/Name/3``) and loaded
from that pinned URI, so a promotion during the run cannot mix two versions. The input
is checked against the signature here: every missing or mistyped column is listed in
one ``SchemaMismatch`` before anything is read or written.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from flowship.batch.rows import Feature
from flowship.batch.sinks import CONSTANT_COLUMNS, PARTITION
from flowship.batch.sources import Source, open_source
from flowship.batch.spec import ScoreJob
from flowship.config import get_settings
from flowship.errors import InvalidInput, SchemaMismatch
from flowship.predict.types import accepts_arrow

log = logging.getLogger(__name__)

META_COLUMNS = CONSTANT_COLUMNS  # model name, version and run id, the same on every row


@dataclass
class Plan:
    job: ScoreJob
    run_id: str
    day: date
    predictors: list[Any]  # one per output mode (two for "both")
    model_name: str
    model_version: str
    model_uri: str
    source: Source
    features: list[Feature]
    output_uri: str
    rejects_uri: str
    before_commit: Callable[[], None] = field(default=lambda: None)
    """Called right before each commit of predictions; raises if the run must not commit
    (it lost its lease)."""

    @property
    def read_columns(self) -> list[str]:
        return [self.job.id, *(f.name for f in self.features)]

    @property
    def prediction_columns(self) -> list[str]:
        names: list[str] = []
        for p in self.predictors:
            names.extend(c for c in p.output_columns if c not in names)
        return names


def table_location(path: str) -> str:
    """A bare name (``predictions``) is a flowship table under FLOWSHIP_HOME/tables."""
    if "://" in path or "/" in path or path.startswith(".") or Path(path).is_absolute():
        return path
    return get_settings().table_uri(path)


def output_location(job: ScoreJob) -> str:
    """The output's location: a table name for SQL, else a path or URI."""
    return job.output.path if job.output.format == "sql" else table_location(job.output.path)


def output_key(job: ScoreJob) -> str:
    """One name per output whatever its spelling, for the per-output lock and the run
    record: ``out/p``, ``./out/p/`` and the absolute path (through symlinks too) are one
    output; a SQL table is named with its database (password hidden)."""
    if job.output.format == "sql":
        assert job.output.url is not None
        return f"{_database_key(job.output.url)} table {job.output.path}"
    return location_key(output_location(job))


def location_key(location: str) -> str:
    """A path or URI in one spelling: an absolute path with symlinks resolved; a URI
    with its path normalised (no ``.`` parts, doubled or trailing slashes)."""
    if location.startswith("file://"):
        location = location[len("file://") :]
    if "://" in location:
        scheme, _, rest = location.partition("://")
        bucket, _, path = rest.partition("/")
        path = posixpath.normpath("/" + path).rstrip("/")
        return f"{scheme.lower()}://{bucket}{path}"
    return os.path.realpath(os.path.expanduser(location))


def _database_key(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    parsed = parsed.set(drivername=parsed.get_backend_name())  # postgresql+psycopg: postgresql
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=os.path.realpath(parsed.database))
    from flowship.redact import redact  # secret query parameters too

    return redact(parsed.render_as_string(hide_password=True))


def load_models(job: ScoreJob) -> tuple[list[Any], str, str, str]:
    """Resolve the ref once and load the pinned version: (predictors, name, version, uri)."""
    from flowship.predict import Predictor, resolve_ref

    resolved = resolve_ref(job.model)
    modes = ["predict", "proba"] if job.output_mode == "both" else [job.output_mode]
    predictors = [Predictor.load(resolved.uri, output=mode) for mode in modes]
    name = resolved.model_name or Path(resolved.uri.rstrip("/")).name
    version = resolved.model_version or (resolved.run_id or "local")
    log.info("Scoring with %s version %s (%s)", name, version, predictors[0].backend)
    return predictors, name, version, resolved.uri


def check_columns(source: Source, job: ScoreJob, predictor: Any) -> list[Feature]:
    """The features to read, after checking every one against the input and the model."""
    signature = {c.name: c for c in predictor.input_columns}
    if job.features:
        unknown = [f for f in job.features if signature and f not in signature]
        if unknown:
            raise SchemaMismatch(
                f"features names column(s) the model does not take: {', '.join(unknown)}.",
                f"The model takes: {', '.join(signature)}.",
            )
        names = job.features
    else:
        names = list(signature)
    if not names:
        raise InvalidInput(
            "The model has no column signature, so the features to score are unknown.",
            "List them with --features (or features: in the job file).",
        )
    missing_required = [c for c in signature.values() if c.required and c.name not in names]
    have = {f.name: f.type for f in source.schema}
    problems = [f"{c.name} is required by the model but not in features" for c in missing_required]
    if job.id not in have:
        problems.append(f"{job.id} (the id column) is missing")
    elif not source.text_columns and not _id_type_ok(have[job.id]):
        problems.append(f"{job.id} (the id column) is {_shown(have[job.id])}; use integers or text")
    features = []
    for name in names:
        column = signature.get(name)
        kind, required = (column.type, column.required) if column else ("double", True)
        if name not in have:
            problems.append(f"{name} is missing")
        elif not source.text_columns and not accepts_arrow(kind, have[name]):
            problems.append(f"{name} is {_shown(have[name])} but the model expects {kind}")
        features.append(Feature(name, kind, required))
    if problems:
        raise SchemaMismatch(
            f"The input {source.spec.describe()!r} does not match the model: "
            f"{'; '.join(problems)}.",
            "Fix the input (or pick the features with --features); nothing was scored.",
        )
    return features


def _shown(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return "string"
    return str(kind)


def _id_type_ok(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)


def make_plan(job: ScoreJob, *, run_id: str) -> Plan:
    predictors, name, version, uri = load_models(job)
    source = open_source(job.input)
    if source.row_count == 0:
        raise InvalidInput(
            f"The input {source.spec.describe()!r} has no rows.", "Point the job at the data."
        )
    features = check_columns(source, job, predictors[0])
    output = output_location(job)
    if job.output.format == "sql":  # table names in the output database
        rejects = job.output.rejects or f"{output}_rejects"
    else:
        rejects = table_location(job.output.rejects) if job.output.rejects else f"{output}_rejects"
    day = job.prediction_date or datetime.now(UTC).date()
    return Plan(job, run_id, day, predictors, name, version, uri, source, features, output, rejects)


def output_schema(
    id_column: str, id_type: pa.DataType, predictions: dict[str, pa.DataType]
) -> pa.Schema:
    """The full output table schema: id, predictions, metadata, partition column last."""
    if pa.types.is_dictionary(id_type):
        id_type = id_type.value_type
    if pa.types.is_large_string(id_type):
        id_type = pa.string()
    return pa.schema(
        [
            pa.field(id_column, id_type),
            *(pa.field(name, kind) for name, kind in predictions.items()),
            *(pa.field(c, pa.string()) for c in META_COLUMNS),
            pa.field(PARTITION, pa.date32()),
        ]
    )


REJECTS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("reason", pa.string()),
        ("row", pa.string()),
        *((c, pa.string()) for c in META_COLUMNS),
        (PARTITION, pa.date32()),
    ]
)
