"""Answer ``models:/`` refs straight from MLflow's registry tables, without importing MLflow.

On a warm ``flowship score`` run the ref is all MLflow is needed for, yet importing it,
building its client and its exit teardown cost ~1.7 s of a ~1.5 s budget. This reads the
tables with SQLAlchemy Core and answers only when the answer is certainly what MLflow's
SqlAlchemyStore would give; ``None`` sends the caller to MLflow, which owns every error.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import sqlite3
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from flowship._mlflow import tracking_uri
from flowship.errors import UsageError
from flowship.predict.ref_syntax import STAGES, ResolvedRef, parse_registry_ref

_log = logging.getLogger(__name__)

# The Alembic heads of the MLflow releases whose SqlAlchemyStore the rules below were read
# from: 3.17 and 3.18 (whose one migration changes only MCP server tables, on MySQL and
# MSSQL). Any other schema (older, or migrated by a newer MLflow) is left to MLflow,
# which also refuses a database whose schema differs from its own head.
SCHEMA_REVISIONS = frozenset({"dc11669786a5", "f4a9b2c7d1e6"})
_DEFAULT_WORKSPACE = "default"
_DELETED = "Deleted_Internal"  # MLflow's soft delete: the row stays, the version is gone
_PROMPT_TAG = "mlflow.prompt.is_prompt"
# refs._versions reads one page of MlflowClient.search_model_versions, this many versions.
_SEARCH_PAGE = 10_000
# MLflow's alias rule, applied to the whole alias as 3.18 does (3.17's re.match let a
# trailing newline through); it refuses other aliases up front.
_ALIAS = re.compile(r"[\w\-]*")
_MAX_ALIAS = 255

_alembic = sa.table("alembic_version", sa.column("version_num"))
_models = sa.table("registered_models", sa.column("workspace"), sa.column("name"))
_model_tags = sa.table("registered_model_tags", sa.column("name"), sa.column("key"))
_version_tags = sa.table("model_version_tags", sa.column("name"), sa.column("key"))
_aliases = sa.table(
    "registered_model_aliases",
    sa.column("workspace"),
    sa.column("name"),
    sa.column("alias"),
    sa.column("version"),
)
_versions = sa.table(
    "model_versions",
    sa.column("workspace"),
    sa.column("name"),
    sa.column("version"),
    sa.column("current_stage"),
    sa.column("source"),
    sa.column("run_id"),
)
# MLflow's stores refuse to start in single-tenant mode while any of these has a row
# outside the default workspace.
_WORKSPACED = [
    sa.table(table, sa.column("workspace"))
    for table in ("experiments", "registered_models", "webhooks")
]


def lookup(ref: str) -> ResolvedRef | None:
    """What ``resolve_ref(ref)`` returns for a registry ref, or ``None`` when only MLflow
    can say (not a SQL store, another schema, workspaces, nothing found, any error)."""
    parsed = _parse(ref)
    uri = tracking_uri()
    registry_uri = os.environ.get("MLFLOW_REGISTRY_URI")
    if parsed is None or (registry_uri and registry_uri != uri) or not _workspaces_off():
        return None
    name, kind, value = parsed
    try:
        engine = _engine(uri)
        if engine is None:
            return None
        with engine.connect() as conn:
            row = _find(conn, name, kind, value)
    except (sa.exc.SQLAlchemyError, sqlite3.Error, ImportError, OSError, OverflowError) as exc:
        _log.debug("Registry look-up of %r left to MLflow: %s", ref, exc)
        return None
    if row is None:
        return None
    return ResolvedRef.registry_version(ref, row.name, row.version, row.run_id, row.source)


def _parse(ref: str) -> tuple[str, str, str] | None:
    """(name, kind, value) as ``parse_registry_ref`` reads ``ref``; None if it is
    malformed or names what MLflow would refuse."""
    try:
        parsed = parse_registry_ref(ref)
    except UsageError:
        return None
    name, kind, value = parsed.name, parsed.kind, parsed.value
    if kind == "alias":
        if not _ALIAS.fullmatch(value) or len(value) > _MAX_ALIAS:
            return None
        if value.lower() == "latest":
            kind, value = "latest_alias", ""
    elif kind != "version" and "'" in name and '"' in name:
        return None  # refs._versions cannot quote it in a search filter: MLflow refuses
    return (name, kind, value) if _valid_name(name) else None


def _valid_name(name: str) -> bool:
    # MLflow's _validate_model_name, which rejects these before reading the database.
    norm = posixpath.normpath(name)
    return (
        name.strip() != ""
        and "/" not in name
        and ":" not in name
        and norm == name
        and norm != "."
        and not norm.startswith(("..", "/"))
    )


@lru_cache(maxsize=8)
def _warn_schema(uri: str, found: tuple[str, ...]) -> None:
    """Say once per store, not per ref, that every look-up now goes through MLflow."""
    _log.warning(
        "The fast registry look-up is off: the MLflow store's schema is %s, not one of %s "
        "(those it was checked against); model refs are resolved through MLflow, which is "
        "slower. Upgrade flowship to match the installed MLflow to get it back.",
        ", ".join(found) or "unknown", ", ".join(sorted(SCHEMA_REVISIONS)),
    )  # fmt: skip


def _workspaces_off() -> bool:
    enabled = os.environ.get("MLFLOW_ENABLE_WORKSPACES", "false").lower()
    workspace = (os.environ.get("MLFLOW_WORKSPACE") or "").strip()
    return enabled in ("false", "0") and workspace in ("", _DEFAULT_WORKSPACE)


@lru_cache(maxsize=8)
def _engine(uri: str) -> sa.Engine | None:
    url = sa.make_url(uri)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            return None
        # Read-only, so that a missing file is an error rather than a new empty database.
        target = f"{Path(url.database).absolute().as_uri()}?mode=ro"
        return sa.create_engine(
            "sqlite://", creator=lambda: sqlite3.connect(target, uri=True), poolclass=NullPool
        )
    if backend == "postgresql":
        # MySQL and MSSQL compare names case-insensitively unless MLflow says otherwise per
        # query, which this module has not been checked against: those stay with MLflow.
        return sa.create_engine(url, poolclass=NullPool)
    return None


def _find(conn: sa.Connection, name: str, kind: str, value: str) -> sa.Row | None:
    found = conn.execute(sa.select(_alembic.c.version_num)).scalars().all()
    if len(found) != 1 or found[0] not in SCHEMA_REVISIONS:
        _warn_schema(tracking_uri(), tuple(found))
        return None
    elsewhere = sa.or_(
        *(sa.exists().where(t.c.workspace != _DEFAULT_WORKSPACE) for t in _WORKSPACED)
    )
    if conn.execute(sa.select(elsewhere)).scalar():
        return None
    model = sa.select(_models.c.name).where(
        _models.c.workspace == _DEFAULT_WORKSPACE, _models.c.name == name
    )
    if conn.execute(model).first() is None:
        return None
    # MLflow hides prompts from model look-ups in several ways; a prompt is left to it.
    prompt = sa.or_(
        sa.exists().where(_model_tags.c.name == name, _model_tags.c.key == _PROMPT_TAG),
        sa.exists().where(_version_tags.c.name == name, _version_tags.c.key == _PROMPT_TAG),
    )
    if conn.execute(sa.select(prompt)).scalar():
        return None

    v = _versions.c
    live = sa.select(v.name, v.version, v.run_id, v.source).where(
        v.workspace == _DEFAULT_WORKSPACE, v.name == name, v.current_stage != _DELETED
    )
    if kind == "version":
        return conn.execute(live.where(v.version == int(value))).first()
    if kind == "alias":
        a = _aliases.c
        pointed = sa.select(a.version).where(
            a.workspace == _DEFAULT_WORKSPACE, a.name == name, a.alias == value
        )
        version = conn.execute(pointed).scalar()
        return None if version is None else conn.execute(live.where(v.version == version)).first()
    if kind == "latest_alias":
        # get_model_version_by_alias(name, "latest"): the highest of get_latest_versions,
        # which only knows MLflow's four stages.
        in_stages = live.where(v.current_stage.in_(list(STAGES.values())))
        return conn.execute(in_stages.order_by(v.version.desc()).limit(1)).first()
    # Stage and latest refs take the highest version from one search page; past a page
    # that would be an arbitrary subset, so MLflow answers.
    counted = sa.select(sa.func.count()).select_from(live.subquery())
    if conn.execute(counted).scalar_one() > _SEARCH_PAGE:
        return None
    if kind == "stage":
        live = live.where(v.current_stage == value)
    return conn.execute(live.order_by(v.version.desc()).limit(1)).first()
