"""registry_db.lookup: the same answers as MLflow's client on real stores, None otherwise."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowship.errors import FlowshipError
from flowship.predict import refs
from flowship.predict.registry_db import SCHEMA_REVISIONS, lookup
from tests._caches import reset_caches
from tests.conftest import PG_ADMIN_URL

QUOTED = ["it's", 'say "hi"', "sp ace ünï 模型", "both ' and \"", "back\\slash %_"]
NAMES = ["churn", "empty", "only-deleted", "a-prompt", "nope", *QUOTED]
SELECTORS = [
    *(f"/{n}" for n in range(1, 8)),
    "/latest",
    "/LATEST",
    "/Production",
    "/production",
    "/STAGING",
    "/Archived",
    "/None",
    "/none",
    "@latest",
    "@Latest",
    "@champion",
    "@challenger",
    "@old",
    "@prod",
    "@nope",
]


@pytest.fixture(autouse=True)
def _registry_uri_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # mlflow.set_registry_uri (called when flowship builds its client) exports the URI of
    # whichever store an earlier test used; lookup rightly refuses a differing one.
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


def _populate() -> None:
    """Every case the rules distinguish, through MLflow's own client."""
    from flowship._mlflow import client

    c = client()
    run_id = c.create_run(c.get_experiment_by_name("flowship").experiment_id).info.run_id
    c.create_registered_model("churn")
    for n in range(1, 7):
        c.create_model_version("churn", f"/models/churn/{n}", run_id if n % 2 else None)
    for n, stage in [(1, "Production"), (2, "Staging"), (3, "Production"), (4, "Archived")]:
        c.transition_model_version_stage("churn", str(n), stage)
    c.transition_model_version_stage("churn", "5", "Staging")
    c.set_registered_model_alias("churn", "champion", "1")
    c.set_registered_model_alias("churn", "champion", "3")  # re-pointed
    c.set_registered_model_alias("churn", "challenger", "2")
    c.delete_registered_model_alias("churn", "challenger")
    c.set_registered_model_alias("churn", "old", "4")
    c.delete_model_version("churn", "4")  # the only Archived one, and aliased
    c.delete_model_version("churn", "5")  # the highest in Staging
    c.delete_model_version("churn", "6")  # the latest, and the only one in stage None
    c.create_registered_model("empty")
    c.create_registered_model("only-deleted")
    c.create_model_version("only-deleted", "/models/only-deleted/1")
    c.delete_model_version("only-deleted", "1")
    c.create_registered_model("a-prompt")
    c.create_model_version("a-prompt", "/models/a-prompt/1")
    c.set_model_version_tag("a-prompt", "1", "mlflow.prompt.is_prompt", "true")
    for name in QUOTED:
        c.create_registered_model(name)
        c.create_model_version(name, f"/models/{name}/1", run_id)
        c.create_model_version(name, f"/models/{name}/2")
        c.transition_model_version_stage(name, "1", "Production")
        c.set_registered_model_alias(name, "prod", "1")


def _mlflow_answer(ref: str) -> refs.ResolvedRef | None:
    try:
        return refs._resolve_registry(ref)
    except FlowshipError:
        return None


@pytest.fixture
def sqlite_store() -> str:
    _populate()
    from flowship._mlflow import tracking_uri

    return tracking_uri()


@pytest.fixture
def pg_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLflow's tracking and registry store in a fresh PostgreSQL database."""
    psycopg = pytest.importorskip("psycopg")
    name = f"flowship_mlflow_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://127.0.0.1:5432/{name}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    reset_caches()
    try:
        _populate()
        yield url
    finally:
        reset_caches()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _assert_parity() -> None:
    answered = 0
    for name in NAMES:
        for selector in SELECTORS:
            ref = f"models:/{name}{selector}"
            want = _mlflow_answer(ref)
            assert lookup(ref) == want, ref
            answered += want is not None
    # churn 11 (/1-3, latest x2, Production x2, STAGING, @latest x2, @champion); each
    # quoted name 11 (/1-2, latest x2, Production x2, None x2, @latest x2, @prod) except
    # "both ' and \"", which MLflow cannot search by name (5).
    assert answered == 11 + 4 * 11 + 5


def test_same_answers_as_mlflow_on_sqlite(sqlite_store):
    expected = {
        "models:/churn/latest": "3",
        "models:/churn/Production": "3",
        "models:/churn/STAGING": "2",
        "models:/churn@latest": "3",
        "models:/churn@champion": "3",
    }
    for ref, version in expected.items():
        assert lookup(ref).model_version == version, ref
    for ref in ("models:/churn/Archived", "models:/churn/None", "models:/churn@old"):
        assert lookup(ref) is None
    _assert_parity()


@pytest.mark.postgres
def test_same_answers_as_mlflow_on_postgresql(pg_store):
    assert lookup("models:/churn@champion").model_version == "3"
    _assert_parity()


def test_reads_without_writing(sqlite_store):
    path = Path(sqlite_store.removeprefix("sqlite:///"))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    assert lookup("models:/churn/latest") is not None
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_unknown_model_version_alias_and_stage(sqlite_store):
    for ref in (
        "models:/nope/1",
        "models:/churn/99",
        "models:/churn@canary",
        "models:/churn/Archived",
        "models:/empty/latest",
        "models:/only-deleted@latest",
    ):
        assert lookup(ref) is None, ref


@pytest.mark.parametrize(
    "ref",
    ["models:/churn", "models:/churn/Prod", "models:/churn@a b", "models:/chu:rn/1", "runs:/x/m"],
)
def test_malformed_refs_are_left_to_mlflow(sqlite_store, ref):
    assert lookup(ref) is None


def test_resolve_ref_answers_from_the_tables_without_mlflow(sqlite_store):
    code = (
        "import sys\n"
        "from flowship.predict import resolve_ref\n"
        "r = resolve_ref('models:/churn@champion')\n"
        "assert (r.model_version, r.source) == ('3', '/models/churn/3'), r\n"
        "assert 'mlflow' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_REGISTRY_URI"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_importing_does_not_import_mlflow():
    code = (
        "import sys\n"
        "import flowship.predict.registry_db\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "uri",
    ["file:///tmp/flowship-no-such/mlruns", "/tmp/flowship-no-such/mlruns", "http://127.0.0.1:9"],
)
def test_stores_that_are_not_sql_databases(sqlite_store, monkeypatch, uri):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    reset_caches()
    assert lookup("models:/churn/1") is None


def test_a_different_registry_uri(sqlite_store, monkeypatch):
    assert lookup("models:/churn/1") is not None
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:////tmp/flowship-other-registry.db")
    assert lookup("models:/churn/1") is None
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", sqlite_store)
    assert lookup("models:/churn/1") is not None


def test_missing_sqlite_file_is_not_created(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    reset_caches()
    assert lookup("models:/churn/1") is None
    assert not missing.exists()
    assert not missing.parent.exists()


def test_database_without_mlflow_tables(tmp_path, monkeypatch):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE registered_models (name TEXT)")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{path}")
    reset_caches()
    assert lookup("models:/churn/1") is None


def _execute(uri: str, sql: str, *params: object) -> None:
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as conn:
        conn.execute(sql, params)


def test_another_schema_revision(sqlite_store, caplog):
    from flowship.predict import registry_db

    registry_db._warn_schema.cache_clear()
    _execute(sqlite_store, "UPDATE alembic_version SET version_num = 'a1b2c3d4e5f6'")
    with caplog.at_level("WARNING", logger="flowship.predict.registry_db"):
        assert lookup("models:/churn/1") is None
        assert lookup("models:/churn/1") is None
    said = [r for r in caplog.records if r.name == "flowship.predict.registry_db"]
    assert len(said) == 1 and said[0].levelname == "WARNING"  # once, not per ref
    assert "a1b2c3d4e5f6" in said[0].getMessage()
    assert all(revision in said[0].getMessage() for revision in SCHEMA_REVISIONS)


def test_pinned_revision_is_the_installed_mlflow_head():
    from mlflow.store.db.utils import _get_latest_schema_revision

    # A new MLflow schema: re-read its SqlAlchemyStore against registry_db's rules, then
    # add its head to SCHEMA_REVISIONS. Until then every look-up goes through MLflow.
    assert _get_latest_schema_revision() in SCHEMA_REVISIONS


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("MLFLOW_ENABLE_WORKSPACES", "true"),
        ("MLFLOW_ENABLE_WORKSPACES", "1"),
        ("MLFLOW_WORKSPACE", "team"),
    ],
)
def test_workspaces_in_use(sqlite_store, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    assert lookup("models:/churn/1") is None
    monkeypatch.setenv(var, {"MLFLOW_ENABLE_WORKSPACES": "false"}.get(var, "default"))
    assert lookup("models:/churn/1") is not None


@pytest.mark.parametrize("table", ["registered_models", "experiments"])
def test_rows_outside_the_default_workspace(sqlite_store, table):
    if table == "registered_models":
        sql = "INSERT INTO registered_models (workspace, name) VALUES ('team', 'theirs')"
    else:
        sql = "UPDATE experiments SET workspace = 'team' WHERE name = 'flowship'"
    _execute(sqlite_store, sql)
    assert lookup("models:/churn/1") is None


def test_more_versions_than_one_search_page(sqlite_store):
    _execute(sqlite_store, "INSERT INTO registered_models (name) VALUES ('big')")
    with sqlite3.connect(sqlite_store.removeprefix("sqlite:///")) as conn:
        conn.executemany(
            "INSERT INTO model_versions (name, version, current_stage, source, status) "
            "VALUES ('big', ?, 'None', 'src', 'READY')",
            [(n,) for n in range(1, 10_002)],
        )
    assert lookup("models:/big/10001").model_version == "10001"
    assert lookup("models:/big@latest").model_version == "10001"
    assert lookup("models:/big/latest") is None
    assert lookup("models:/big/None") is None
