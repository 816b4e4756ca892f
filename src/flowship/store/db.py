"""Open flowship's state database and keep its schema current.

``engine()`` returns one engine per URL, migrated to the newest schema on first use.
``transaction()`` is the only way code writes: one transaction per multi-step change.
On SQLite it starts with ``BEGIN IMMEDIATE`` so that two writers are serialised instead
of failing at commit; on PostgreSQL ``lock(session, key)`` takes a transaction-scoped
advisory lock so two changes to one model never interleave.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from flowship.config import get_settings
from flowship.errors import FlowshipError, Unavailable
from flowship.redact import redact as redact_url

_MIGRATIONS = Path(__file__).with_name("migrations")
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        eng = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(eng, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            # Let SQLAlchemy, not pysqlite, decide when a transaction begins.
            dbapi_conn.isolation_level = None
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA busy_timeout=60000")

        @event.listens_for(eng, "begin")
        def _sqlite_begin(conn) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return eng
    return create_engine(url, pool_pre_ping=True)


# The newest revision of each migration branch. Checked against Alembic's own answer by
# tests/store/test_db.py, so a new migration cannot be forgotten here.
HEADS = frozenset(
    {
        "0006_event_intent",
        "0007_alert_delivery",
        "0008_run_lease",
        "0011_rollout_version",
        "0010_promotion_requests",
    }
)


def _at_heads(eng: Engine) -> bool:
    """Whether the schema is already current, read without importing Alembic (0.1 s of
    every command's start-up)."""
    try:
        with eng.connect() as conn:
            found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return frozenset(found) == HEADS
    except SQLAlchemyError:  # a new database: no version table yet
        return False


def _upgrade(eng: Engine, url: str) -> None:
    if _at_heads(eng):
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    with eng.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two processes migrating one fresh database at once must not race.
            conn.execute(text("SELECT pg_advisory_xact_lock(7426118)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


def engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: the configured database), schema up to date."""
    url = url or get_settings().resolved_database_url
    with _engines_lock:
        if url not in _engines:
            try:
                eng = _make_engine(url)
                _upgrade(eng, url)
            except ModuleNotFoundError as exc:
                raise FlowshipError(
                    f"The database driver for {redact_url(url)} is not installed ({exc.name}).",
                    "For PostgreSQL: pip install 'flowship[postgres]' and use postgresql+psycopg://",
                ) from exc
            except (OperationalError, SQLAlchemyError, OSError) as exc:
                raise Unavailable(
                    f"Cannot open flowship's database {redact_url(url)}: "
                    f"{str(exc).splitlines()[0]}",
                    "Check FLOWSHIP_DATABASE_URL and that the server is running.",
                ) from exc
            _engines[url] = eng
        return _engines[url]


@contextmanager
def transaction(url: str | None = None) -> Iterator[Session]:
    """A session whose work commits together at the end of the block, or not at all."""
    with Session(engine(url), expire_on_commit=False) as session, session.begin():
        yield session


def lock(session: Session, key: str) -> None:
    """Serialise every transaction that locks the same ``key`` (e.g. a model name).

    SQLite already serialises writers (``BEGIN IMMEDIATE``); PostgreSQL needs an
    advisory lock held until the transaction ends.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(key.encode())})


def dispose() -> None:
    """Close every pooled connection (tests switch databases between cases)."""
    with _engines_lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()
