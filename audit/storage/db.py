"""Engines, sessions and migrations for SQLite (embedded default) and PostgreSQL.

- ``make_engine(url)``: one engine per URL per process. SQLite gets WAL,
  foreign keys and a busy timeout so the API, a worker and the CLI can share
  one file; ``postgresql://`` URLs are rewritten to the psycopg 3 driver.
- ``session_scope(url)``: a unit of work that commits or rolls back.
- ``upgrade(url)``: applies the Alembic migrations shipped in
  ``audit/migrations`` (idempotent, safe to run from several processes at once).
- ``ping(url)``: readiness check.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any constant: serialises concurrent `upgrade()` calls on one PostgreSQL database.
_PG_MIGRATION_LOCK_ID = 0x62696173

_engines: dict[str, Engine] = {}
_sessionmakers: dict[str, sessionmaker[Session]] = {}
_lock = threading.Lock()


def normalize_url(url: str | URL) -> str:
    """The URL with its driver made explicit: ``postgresql://`` -> ``postgresql+psycopg://``.

    Only SQLite and PostgreSQL (psycopg 3) are supported; anything else is a
    ``ValueError`` naming the variable to fix.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise ValueError(
                f"BIASAUDIT_DATABASE_URL: driver {parsed.drivername!r} is not supported; "
                "use postgresql:// or postgresql+psycopg:// (psycopg 3)"
            )
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise ValueError(
                f"BIASAUDIT_DATABASE_URL: driver {parsed.drivername!r} is not supported; "
                "use sqlite:///PATH"
            )
    else:
        raise ValueError(
            f"BIASAUDIT_DATABASE_URL: unsupported database {backend!r}; "
            "use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        )
    return parsed.render_as_string(hide_password=False)


def _default_url() -> str:
    from audit.settings import get_settings

    return get_settings().db_url


def _json_serializer(value: Any) -> str:
    # Strict JSON: PostgreSQL rejects NaN/Infinity, so SQLite must not accept them either.
    return json.dumps(value, allow_nan=False)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _build_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            json_serializer=_json_serializer,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    return create_engine(
        url,
        json_serializer=_json_serializer,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 10},
    )


def make_engine(url: str | None = None) -> Engine:
    """The engine for ``url`` (default: ``Settings.database_url``), created once per process."""
    key = normalize_url(url or _default_url())
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _build_engine(key)
        return engine


def get_sessionmaker(url: str | None = None) -> sessionmaker[Session]:
    """A session factory bound to ``make_engine(url)``; objects stay usable after commit."""
    key = normalize_url(url or _default_url())
    engine = make_engine(key)
    with _lock:
        factory = _sessionmakers.get(key)
        if factory is None:
            factory = _sessionmakers[key] = sessionmaker(bind=engine, expire_on_commit=False)
        return factory


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises.

    >>> with session_scope("sqlite:///:memory:") as session:  # doctest: +SKIP
    ...     session.execute(text("SELECT 1")).scalar_one()
    """
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_engines() -> None:
    """Close every pooled connection and forget the cached engines (tests, forked workers)."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
        _sessionmakers.clear()
    for engine in engines:
        engine.dispose()


def _alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % (e.g. in a password) must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, *, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (idempotent).

    Runs in one transaction holding a lock (``BEGIN IMMEDIATE`` on SQLite, an
    advisory lock on PostgreSQL), so processes starting together migrate once.
    """
    from alembic import command

    engine = make_engine(url)
    cfg = _alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # pysqlite does not open a transaction before DDL; take the write lock ourselves.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK_ID}
            )
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
        connection.commit()
    log.info("database at %s is at revision %s", engine.url.render_as_string(), revision)


def current_revision(url: str | None = None) -> str | None:
    """The Alembic revision the database is at (None before the first upgrade)."""
    from alembic.runtime.migration import MigrationContext

    with make_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ping(url: str | None = None) -> bool:
    """True when the database answers ``SELECT 1`` (for ``/readyz``); never raises."""
    try:
        with make_engine(url).connect() as connection:
            connection.execute(text("SELECT 1")).scalar_one()
        return True
    except Exception as exc:  # readiness reports, it does not crash
        log.warning("database ping failed: %s", exc)
        return False
