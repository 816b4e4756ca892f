"""From the prediction log and late outcomes to one row per unit (the sticky key).

DuckDB reads both sources (``sources.open_source``: only the named columns, streamed)
and aggregates per key, so memory follows the number of keys, not of logged rows, and
spills to disk past ``MEMORY_LIMIT``. What leaves DuckDB is small: sufficient statistics
per variant and day, or, for AUC, one (score, label) pair per matured key.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from flowship.errors import InvalidInput
from flowship.monitoring.sources import Source, open_source

log = logging.getLogger(__name__)
MEMORY_LIMIT = "512MB"
OK_STATUSES = ("ok", "success", "200")


def quote(name: str) -> str:
    """A column name as a DuckDB identifier, whatever characters it holds."""
    return '"' + str(name).replace('"', '""') + '"'


@contextmanager
def duckdb_session() -> Iterator[Any]:
    import duckdb

    with tempfile.TemporaryDirectory(prefix="flowship-duckdb-") as spill:
        con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": spill})
        try:
            con.execute("SET preserve_insertion_order = false")
            yield con
        finally:
            con.close()


def attach(con: Any, name: str, source: Source) -> None:
    """Make ``source`` the view ``name``. Files (a Delta table's active files included)
    are read by DuckDB's own readers, streamed again by every query within the memory
    limit; a SQL query's rows arrive once, so they are kept in a DuckDB table (which
    spills to disk past the limit)."""
    relation = source.relation(con)
    if source.kind == "sql":
        relation.create(name)
    else:
        relation.create_view(name)


@dataclass
class LogColumns:
    """Where the log keeps what the report needs; ``deployment``, ``role`` and ``status``
    are used when present (the prediction log has them; another table may not)."""

    key: str = "key"
    variant: str = "variant"
    time: str = "ts"
    score: str | None = None
    prediction: str | None = None


def schema_of(data: Any) -> pa.Schema:
    return data.schema


def require(schema: pa.Schema, columns: list[str | None], what: str, source: str) -> None:
    absent = [c for c in columns if c and c not in schema.names]
    if absent:
        raise InvalidInput(
            f"The {what} ({source}) has no column(s) {', '.join(map(repr, absent))}.",
            f"Its columns are: {', '.join(schema.names[:20])}.",
        )


@dataclass(frozen=True)
class Outputs:
    """The model's output in the log: a score (probability of the positive class) and/or a
    predicted label, as SQL over the log's columns."""

    score: str | None = None
    prediction: str | None = None
    score_is_list: bool = False
    """A row of class probabilities (``list<double>``): the last one is the positive
    class's."""

    def score_sql(self, prefix: str = "") -> str | None:
        if self.score is None:
            return None
        col = prefix + quote(self.score)
        if self.score_is_list:
            return f"CAST(list_extract({col}, len({col})) AS DOUBLE)"
        return f"CAST({col} AS DOUBLE)"

    def label_sql(self, prefix: str = "", threshold: float = 0.5) -> str | None:
        """The predicted label as text: the prediction column, else the score's side of
        ``threshold`` (a 0/1 label stored as a number is its own side)."""
        if self.prediction is not None:
            return f"CAST({prefix}{quote(self.prediction)} AS VARCHAR)"
        score = self.score_sql(prefix)
        if score is None:
            return None
        return f"CAST(CAST({score} >= {float(threshold)!r} AS INTEGER) AS VARCHAR)"


def output_columns(schema: pa.Schema, score: str | None, prediction: str | None) -> Outputs:
    """The model-output columns: as named, else the prediction log's ``output`` (a number,
    or a row of class probabilities), else flowship's batch columns (``probability``,
    ``probability_1``, ``prediction``)."""
    names = schema.names
    if score is None and prediction is None:
        if "output" in names:
            kind = schema.field("output").type
            if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                prediction = "output"
            else:
                score = "output"
        else:
            score = next((c for c in ("probability", "probability_1") if c in names), None)
            prediction = "prediction" if "prediction" in names else None
    is_list = bool(
        score in names
        and (
            pa.types.is_list(schema.field(score).type)
            or pa.types.is_large_list(schema.field(score).type)
        )
    )
    return Outputs(score, prediction, is_list)


def log_filter(
    schema: pa.Schema, deployment: str | None, role: str | None, *, prefix: str = ""
) -> tuple[list[str], list]:
    """The conditions for one deployment's answered requests of one role (columns
    prefixed with ``prefix``, e.g. ``"l."`` in a join), and their parameters."""
    clauses, params = [], []
    if deployment is not None and "deployment" in schema.names:
        clauses.append(f"{prefix}deployment = ?")
        params.append(deployment)
    if role is not None and "role" in schema.names:
        clauses.append(f"{prefix}role = ?")
        params.append(role)
    if "status" in schema.names:
        clauses.append(f"lower(CAST({prefix}status AS VARCHAR)) IN {OK_STATUSES!r}")
    return clauses, params


def where(clauses: list[str]) -> str:
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def _is_numeric(dtype: pa.DataType) -> bool:
    return pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype)


def key_casts(log_type: pa.DataType, id_type: pa.DataType) -> tuple[str, str]:
    """Join keys of matching kinds as they are; otherwise both as text (an id written as
    a number in one table and as text in the other still matches)."""
    same = (pa.types.is_integer(log_type) and pa.types.is_integer(id_type)) or (
        (pa.types.is_string(log_type) or pa.types.is_large_string(log_type))
        and (pa.types.is_string(id_type) or pa.types.is_large_string(id_type))
    )
    return ("{}", "{}") if same else ("CAST({} AS VARCHAR)", "CAST({} AS VARCHAR)")


@dataclass
class UnitData:
    """What the statistics need, per variant: unit counts, matured sufficient statistics
    by first-exposure day, and for AUC the per-unit arrays."""

    exposed: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    matured: dict[str, int] = field(default_factory=dict)
    no_outcome: dict[str, int] = field(default_factory=dict)
    mixed_units: int = 0
    #: (variant, revision of the key's first request) -> keys, when the log has revisions
    by_revision: dict[tuple[str, int], int] = field(default_factory=dict)
    #: variant -> the model versions it served (when the log records them)
    versions: dict[str, list[str]] = field(default_factory=dict)
    #: variant -> rows of (day, n, sum, sum of squares), days ascending
    daily: dict[str, list[tuple[str, int, float, float]]] = field(default_factory=dict)
    #: AUC only: variant -> (day index per unit, score, label)
    arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    days: list[str] = field(default_factory=list)


def collect_units(
    *,
    deployment: str | None,
    log_source: str,
    actuals_source: str,
    id_column: str,
    label_column: str,
    columns: LogColumns,
    metric: str,
    window_seconds: float,
    as_of: float,
    fill_missing: float | None,
    sql_url: str | None = None,
) -> UnitData:
    log_data = open_source(log_source, role="prediction log", sql_url=sql_url)
    actuals = open_source(actuals_source, role="actuals", sql_url=sql_url)
    log_schema, act_schema = schema_of(log_data), schema_of(actuals)
    require(log_schema, [columns.key, columns.variant, columns.time], "prediction log", log_source)
    require(act_schema, [id_column, label_column], "actuals", actuals_source)
    label_type = act_schema.field(label_column).type
    if not _is_numeric(label_type):
        held = (
            "text"
            if pa.types.is_string(label_type) or pa.types.is_large_string(label_type)
            else label_type
        )
        raise InvalidInput(
            f"The label column {label_column!r} in the actuals holds {held}, not numbers.",
            "Give a 0/1 (or numeric, for --metric mean) label column.",
        )
    require(log_schema, [columns.score, columns.prediction], "prediction log", log_source)
    outputs = output_columns(log_schema, columns.score, columns.prediction)
    score = outputs.score
    if metric in ("auc", "log_loss") and score is None:
        raise InvalidInput(
            f"--metric {metric} needs the model's probability, and the log has no "
            "'probability' column.",
            "Name it with --score COLUMN.",
        )
    if metric == "accuracy" and score is None and outputs.prediction is None:
        raise InvalidInput(
            "--metric accuracy needs the model's output, and the log has neither a "
            "'probability' nor a 'prediction' column.",
            "Name it with --prediction COLUMN or --score COLUMN.",
        )
    clauses, params = log_filter(log_schema, deployment, "primary")
    joined = "".join(
        f" AND {c}" for c in log_filter(log_schema, deployment, "primary", prefix="l.")[0]
    )
    key_expr, id_expr = key_casts(
        log_schema.field(columns.key).type, act_schema.field(id_column).type
    )
    k, v, t = quote(columns.key), quote(columns.variant), quote(columns.time)
    with duckdb_session() as con:
        attach(con, "log_src", log_data)
        attach(con, "actuals_src", actuals)
        _check_deployment(con, log_schema, deployment, log_source)
        has_revision = "revision" in log_schema.names
        first_rev = f", arg_min(revision, {t}) AS first_rev" if has_revision else ""
        con.execute(
            f"""CREATE TEMP TABLE units AS
            SELECT {key_expr.format(k)} AS unit, min(CAST({v} AS VARCHAR)) AS variant,
                   count(DISTINCT {v}) AS nvar, min(epoch({t})) AS first_ts{first_rev}
            FROM log_src{where(clauses)} GROUP BY 1""",
            params,
        )
        cutoff = as_of - window_seconds
        data = UnitData()
        rows = con.execute(
            """SELECT variant, count(*), count(*) FILTER (WHERE first_ts > ?)
            FROM units WHERE nvar = 1 GROUP BY 1 ORDER BY 1""",
            [cutoff],
        ).fetchall()
        if not rows:
            raise InvalidInput(
                f"The prediction log ({log_source}) has no answered primary requests"
                + (f" for deployment {deployment!r}." if deployment else "."),
                "Check the deployment name and the log source (--log).",
            )
        for variant, n, pending in rows:
            data.exposed[variant] = int(n)
            data.pending[variant] = int(pending)
        if has_revision:
            for variant, revision, n in con.execute(
                "SELECT variant, first_rev, count(*) FROM units WHERE nvar = 1 GROUP BY 1, 2"
            ).fetchall():
                data.by_revision[(variant, int(revision))] = int(n)
        if "model_version" in log_schema.names:
            for variant, versions in con.execute(
                f"""SELECT CAST({v} AS VARCHAR), list(DISTINCT CAST(model_version AS VARCHAR))
                FROM log_src{where(clauses)} GROUP BY 1""",
                params,
            ).fetchall():
                data.versions[variant] = sorted(x for x in versions if x is not None)
        data.mixed_units = int(
            con.execute("SELECT count(*) FROM units WHERE nvar > 1").fetchone()[0]
        )
        con.execute(
            f"""CREATE TEMP TABLE outcomes AS
            SELECT {id_expr.format(quote(id_column))} AS unit,
                   max(CAST({quote(label_column)} AS DOUBLE)) AS label
            FROM actuals_src WHERE {quote(label_column)} IS NOT NULL GROUP BY 1"""
        )
        join = "LEFT JOIN" if fill_missing is not None else "JOIN"
        label = (
            f"coalesce(o.label, {float(fill_missing)!r})" if fill_missing is not None else "o.label"
        )
        matured = f"""FROM units u {join} outcomes o ON o.unit = u.unit
            WHERE u.nvar = 1 AND u.first_ts <= ?"""
        for variant, n, with_outcome in con.execute(
            """SELECT u.variant, count(*), count(o.unit) FROM units u
            LEFT JOIN outcomes o ON o.unit = u.unit
            WHERE u.nvar = 1 AND u.first_ts <= ? GROUP BY 1""",
            [cutoff],
        ).fetchall():
            data.matured[variant] = int(n) if fill_missing is not None else int(with_outcome)
            data.no_outcome[variant] = 0 if fill_missing is not None else int(n - with_outcome)
        if sum(data.matured.values()) == 0:
            _explain_empty(data, cutoff, log_source, actuals_source, id_column)
        if metric in ("auc", "accuracy", "log_loss"):
            _check_binary(con, matured, label, cutoff, label_column)
        value = _unit_value(metric, outputs, label)
        per_unit = f"""SELECT u.variant, u.unit, u.first_ts, {value} AS value, {label} AS label,
                   {f"avg({outputs.score_sql('l.')})" if score else "NULL"} AS score
            FROM units u {join} outcomes o ON o.unit = u.unit
            JOIN log_src l ON {key_expr.format("l." + k)} = u.unit
                AND epoch(l.{t}) < u.first_ts + ?
            WHERE u.nvar = 1 AND u.first_ts <= ?{joined}
            GROUP BY u.variant, u.unit, u.first_ts, o.label"""
        unit_params = [window_seconds, cutoff, *params]
        if metric == "mean":  # the outcome alone; no need to read the log again
            per_unit = f"""SELECT u.variant, u.unit, u.first_ts, {label} AS value,
                   {label} AS label, NULL AS score {matured}"""
            unit_params = [cutoff]
        if score is not None and metric in ("auc", "log_loss"):
            _check_scores(con, clauses, params, outputs, log_source)
        con.execute(f"CREATE TEMP TABLE per_unit AS {per_unit}", unit_params)
        day = "strftime(to_timestamp(first_ts), '%Y-%m-%d')"
        for variant, d, n, s, ss in con.execute(
            f"""SELECT variant, {day} AS d, count(value), sum(value), sum(value * value)
            FROM per_unit WHERE value IS NOT NULL GROUP BY 1, 2 ORDER BY 2"""
        ).fetchall():
            data.daily.setdefault(variant, []).append((d, int(n), float(s), float(ss)))
        data.days = sorted({d for rows in data.daily.values() for d, *_ in rows})
        if metric == "auc":
            index = {d: i for i, d in enumerate(data.days)}
            for variant in data.daily:
                got = con.execute(
                    f"""SELECT {day} AS d, score, label FROM per_unit
                    WHERE variant = ? AND score IS NOT NULL""",
                    [variant],
                ).fetchnumpy()
                days = np.array([index[d] for d in got["d"]], dtype=np.int32)
                data.arrays[variant] = (days, np.asarray(got["score"], float), got["label"])
    return data


def _unit_value(metric: str, outputs: Outputs, label: str) -> str:
    """The per-unit value: the mean over the unit's requests in its window."""
    score = outputs.score_sql("l.")
    if metric == "accuracy":
        guess = (
            f"CAST(l.{quote(outputs.prediction)} AS DOUBLE)"
            if outputs.prediction
            else f"CAST({score} >= 0.5 AS DOUBLE)"
        )
        return f"avg(CAST(({guess}) = {label} AS DOUBLE))"
    if metric == "log_loss":
        p = f"greatest(least({score}, 1 - 1e-15), 1e-15)"
        return f"avg(-({label} * ln({p}) + (1 - {label}) * ln(1 - {p})))"
    return f"avg({score})"  # auc: the unit's mean score


def _check_deployment(con: Any, schema: pa.Schema, deployment: str | None, source: str) -> None:
    if deployment is None or "deployment" not in schema.names:
        return
    found = con.execute(
        "SELECT 1 FROM log_src WHERE deployment = ? LIMIT 1", [deployment]
    ).fetchone()
    if found is None:
        names = [
            r[0] for r in con.execute("SELECT DISTINCT deployment FROM log_src LIMIT 10").fetchall()
        ]
        raise InvalidInput(
            f"The prediction log ({source}) has no rows for deployment {deployment!r}.",
            f"Deployments in it: {', '.join(map(str, names)) or 'none'}.",
        )


def _check_binary(con: Any, matured: str, label: str, cutoff: float, column: str) -> None:
    bad = con.execute(f"SELECT count(*) {matured} AND {label} NOT IN (0, 1)", [cutoff]).fetchone()[
        0
    ]
    if bad:
        raise InvalidInput(
            f"{bad} matured unit(s) have a label in {column!r} other than 0 or 1.",
            "AUC, accuracy and log loss need 0/1 outcomes; use --metric mean for values.",
        )


def _check_scores(
    con: Any, clauses: list[str], params: list, outputs: Outputs, source: str
) -> None:
    s = outputs.score_sql()
    cond = f"({s} IS NULL OR {s} < 0 OR {s} > 1)"
    bad = con.execute(f"SELECT count(*) FROM log_src{where([*clauses, cond])}", params).fetchone()[
        0
    ]
    if bad:
        raise InvalidInput(
            f"{bad} answered request(s) in {source} have a {outputs.score!r} outside [0, 1] "
            "or missing.",
            "Point --score at the probability of the positive class.",
        )


def _explain_empty(
    data: UnitData, cutoff: float, log_source: str, actuals_source: str, id_column: str
) -> None:
    pending = sum(data.pending.values())
    no_outcome = sum(data.no_outcome.values())
    if no_outcome:
        raise InvalidInput(
            f"None of the {no_outcome} matured keys in the prediction log ({log_source}) has an "
            f"outcome in {actuals_source} (joined on {id_column!r}).",
            "Check that --id names the column holding the log's key, or give "
            "--fill-missing VALUE when a missing outcome means a known value (e.g. 0).",
        )
    if pending:
        return  # nothing matured yet is a state, not an error: the report says so
    raise InvalidInput(
        f"The prediction log ({log_source}) has no keys to analyse.", "Check the log."
    )
