import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, Table, inspect, select, text

from flowship.errors import Unavailable
from flowship.store import db
from flowship.store.tables import UTCDateTime


def test_sqlite_database_is_created_and_migrated(flowship_home):
    eng = db.engine()
    assert (flowship_home / "flowship.db").exists()
    assert "alembic_version" in inspect(eng).get_table_names()


def test_heads_constant_is_alembic_heads():
    """db.HEADS lets a migrated database open without importing Alembic; it must name
    exactly the heads Alembic computes from the migration scripts."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(db._MIGRATIONS))
    assert frozenset(ScriptDirectory.from_config(cfg).get_heads()) == db.HEADS


def test_a_migrated_database_opens_without_alembic(flowship_home):
    db.engine()
    code = "import sys; from flowship.store import db; db.engine(); print('alembic' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_database_behind_the_heads_is_migrated(flowship_home):
    eng = db.engine()
    with eng.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version WHERE version_num = '0007_alert_delivery'"))
        conn.execute(text("DROP TABLE monitor_runs"))
        conn.execute(text("DROP TABLE monitor_alerts"))
    db._engines.clear()
    eng = db.engine()
    assert "monitor_runs" in inspect(eng).get_table_names()


@pytest.mark.postgres
def test_postgres_database_is_migrated(pg_url):
    eng = db.engine()
    assert eng.dialect.name == "postgresql"
    with eng.connect() as conn:
        assert conn.execute(text("select count(*) from alembic_version")).scalar() >= 1


def test_unreachable_database_is_a_clear_error(monkeypatch):
    with pytest.raises(Unavailable, match="Cannot open flowship's database") as info:
        db.engine("postgresql+psycopg://nobody:pw@127.0.0.1:1/nothing")
    assert "pw" not in str(info.value)


def test_transaction_rolls_back_everything_on_error(flowship_home):
    from sqlalchemy import MetaData

    meta = MetaData()
    t = Table("scratch", meta, Column("id", Integer, primary_key=True), Column("at", UTCDateTime))
    meta.create_all(db.engine())
    with pytest.raises(RuntimeError), db.transaction() as s:
        s.execute(t.insert().values(id=1, at=datetime.now(UTC)))
        raise RuntimeError("boom")
    with db.transaction() as s:
        assert s.execute(select(t)).all() == []
        later = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
        s.execute(t.insert().values(id=2, at=later))
    with db.transaction() as s:
        stored = s.execute(select(t.c.at)).scalar_one()
    assert stored == later and stored.tzinfo == UTC
