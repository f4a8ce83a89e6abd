"""Engines, sessions and migrations for SQLite (embedded default) and PostgreSQL.

- ``make_engine(url)``: one engine per URL per process. SQLite gets WAL,
  foreign keys and a busy timeout so the API, a worker and the CLI can share
  one file; ``postgresql://`` URLs are rewritten to the psycopg 3 driver.
  PostgreSQL connections are pinged on checkout only after sitting idle in
  the pool (``IDLE_PING_S``), not on every checkout (``pool_pre_ping`` cost
  one round trip per request), and recycled after ``POOL_RECYCLE_S``.
- ``session_scope(url)``: a unit of work that commits or rolls back.
- ``upgrade(url)``: applies the Alembic migrations shipped in
  ``audit/migrations`` (idempotent, safe to run from several processes at once).
- ``ping(url)``: readiness check.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any constant: serialises concurrent `upgrade()` calls on one PostgreSQL database.
_PG_MIGRATION_LOCK_ID = 0x62696173
# PostgreSQL pool. A connection idle in the pool longer than IDLE_PING_S is pinged before
# use (a server restart or an idle-timeout firewall drops idle connections; busy ones fail
# on their next statement, which SQLAlchemy detects as a disconnect and answers by
# invalidating the whole pool, so the next request reconnects). Connections older than
# POOL_RECYCLE_S are replaced. POOL_SIZE connections stay open: a request beyond them
# opens an overflow connection, closed again on return (a PostgreSQL backend start costs
# milliseconds), so the size covers the API's concurrent requests on one process.
IDLE_PING_S = 10.0
POOL_RECYCLE_S = 1800
POOL_SIZE = 20
POOL_MAX_OVERFLOW = 10
_IDLE_SINCE = "biasaudit_idle_since"

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
    engine = create_engine(
        url,
        json_serializer=_json_serializer,
        pool_size=POOL_SIZE,
        max_overflow=POOL_MAX_OVERFLOW,
        pool_recycle=POOL_RECYCLE_S,
        connect_args={"connect_timeout": 10},
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection on checkout only if it sat idle longer than ``IDLE_PING_S``.

    A failed ping raises ``DisconnectionError``: the pool discards that connection and
    checks out (or opens) another, as ``pool_pre_ping`` would, so a database restart during
    a quiet period costs no request. Under load connections are never idle that long, so
    the steady state has no ping round trip.
    """

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            log.info("pooled connection failed its idle ping; reconnecting: %s", error)
            raise exc.DisconnectionError() from error


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
    if url is not None:
        factory = _sessionmakers.get(url)  # fast path: the API asks once per request
        if factory is not None:
            return factory
    key = normalize_url(url or _default_url())
    engine = make_engine(key)
    with _lock:
        factory = _sessionmakers.get(key)
        if factory is None:
            factory = _sessionmakers[key] = sessionmaker(bind=engine, expire_on_commit=False)
        if url is not None:
            _sessionmakers[url] = factory
        return factory


def lock_writes(session: Session) -> None:
    """On SQLite, take the database's write lock now, for the rest of the transaction.

    The sqlite3 driver begins a transaction only at the first write, so the reads before
    it see whatever committed meanwhile. A check-then-write that must exclude another one
    (a submission and the erasure of what it names) calls this first: the other waits
    (busy timeout) until this one commits, and its reads then see it. A no-op elsewhere:
    PostgreSQL uses row locks (``FOR SHARE`` / ``FOR UPDATE``)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE projects SET name = name WHERE 0"))


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
