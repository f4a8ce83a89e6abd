"""Shared fixtures.

``database_url`` runs a test against both backends: a fresh SQLite file, and
a PostgreSQL database created for this test session (``biasaudit_test_<hex>``
on the server at ``BIASAUDIT_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``) and dropped at the end.
Both are migrated to head; PostgreSQL tables are emptied after each test.
If the server is not reachable the PostgreSQL cases FAIL (they never skip):
``make test`` starts it.

Markers: every test that needs the PostgreSQL server (``postgres``) or Redis is
also marked ``services``; ``make test-fast`` deselects them (``-m "not slow and
not services"``), so it runs with neither server. Folders whose every test
needs them mark their items in their conftest's ``pytest_itemcollected`` (a
conftest's ``pytestmark`` applies to no test).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import make_url

from audit.settings import get_settings
from audit.storage import db
from audit.storage.models import Base

POSTGRES_ADMIN_URL = os.environ.get(
    "BIASAUDIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# The Redis server the tests use (each suite flushes only its own db index). Two test runs
# at once (two checkouts) need two servers: set BIASAUDIT_TEST_REDIS_PORT for the second;
# when nothing listens on that port, the session starts a redis-server there and stops it.
TEST_REDIS_PORT = int(os.environ.get("BIASAUDIT_TEST_REDIS_PORT", "6379"))
_OWN_REDIS: list[subprocess.Popen[bytes]] = []


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def pytest_sessionstart(session: pytest.Session) -> None:
    """A redis-server of its own on BIASAUDIT_TEST_REDIS_PORT when one was asked for and
    none runs there (the shared server on 6379 is make test's, never started here)."""
    if "BIASAUDIT_TEST_REDIS_PORT" not in os.environ or _listening(TEST_REDIS_PORT):
        return
    server = shutil.which("redis-server")
    if server is None:
        return  # the Redis tests then fail naming the URL they could not reach
    _OWN_REDIS.append(
        subprocess.Popen(
            [server, "--port", str(TEST_REDIS_PORT), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    deadline = time.monotonic() + 10
    while not _listening(TEST_REDIS_PORT) and time.monotonic() < deadline:
        time.sleep(0.05)


def pytest_sessionfinish(session: pytest.Session) -> None:
    for proc in _OWN_REDIS:
        proc.terminate()
        proc.wait(timeout=10)


def pytest_itemcollected(item: pytest.Item) -> None:
    """A test that needs the PostgreSQL server is a service test."""
    if item.get_closest_marker("postgres") or "postgres_url" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.services)


def redis_test_url(db_index: int) -> str:
    """``redis://127.0.0.1:<BIASAUDIT_TEST_REDIS_PORT>/<db_index>``."""
    return f"redis://127.0.0.1:{TEST_REDIS_PORT}/{db_index}"


def _admin_connect() -> psycopg.Connection:
    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({exc}). The postgresql "
            "test cases need it: start the server (make test does), or point "
            "BIASAUDIT_TEST_POSTGRES_URL at one (trust auth, a user allowed to CREATE DATABASE).",
            pytrace=False,
        )


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database ``<prefix>_<8 hex>`` on the test server: its
    psycopg URL; dropped afterwards (``WITH (FORCE)``: connections left open end too)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with _admin_connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with _admin_connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def sqlalchemy_url(url: str) -> str:
    """A psycopg URL as SQLAlchemy names it (driver ``postgresql+psycopg``)."""
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database of its own for this test session, dropped afterwards."""
    with scratch_database("biasaudit_test") as url:
        sa_url = sqlalchemy_url(url)
        try:
            db.upgrade(sa_url)
            yield sa_url
        finally:
            db.dispose_engines()


# Append-only tables (a trigger refuses DELETE): emptied with TRUNCATE, when they hold rows.
_APPEND_ONLY = frozenset({"events"})


def _truncate_all(url: str) -> None:
    """Empty every table and restart the id sequences (as ``TRUNCATE ... RESTART IDENTITY``).

    A ``TRUNCATE`` of all the tables costs ~0.35 s (new files for each table and index),
    after every PostgreSQL test; ``DELETE`` of the few rows a test leaves costs
    milliseconds. Children go before parents (reverse dependency order).
    """
    tables = [t.name for t in Base.metadata.sorted_tables]
    with db.make_engine(url).begin() as conn:
        conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
        used = [
            t
            for t in _APPEND_ONLY & set(tables)
            if conn.exec_driver_sql(f'SELECT EXISTS (SELECT 1 FROM "{t}")').scalar()
        ]
        if used:
            conn.exec_driver_sql("TRUNCATE " + ", ".join(f'"{t}"' for t in used))
        conn.exec_driver_sql(
            "; ".join(f'DELETE FROM "{t}"' for t in reversed(tables) if t not in _APPEND_ONLY)
        )
        sequences = conn.exec_driver_sql(
            "SELECT sequence_name FROM information_schema.sequences "
            "WHERE sequence_schema = current_schema()"
        ).scalars()
        for name in list(sequences):
            conn.exec_driver_sql(f'ALTER SEQUENCE "{name}" RESTART')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, then the session's PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "biasaudit.db"
        url = f"sqlite:///{path}"
        db.upgrade(url)
        try:
            yield url
        finally:
            db.dispose_engines()
        return
    url = request.getfixturevalue("postgres_url")
    try:
        yield url
    finally:
        _truncate_all(url)


@pytest.fixture
def clean_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No ``BIASAUDIT_*`` variables from the outer environment; settings cache cleared.

    Set variables with the yielded monkeypatch, then call ``get_settings()``.
    """
    for key in list(os.environ):
        if key.startswith("BIASAUDIT_") and key != "BIASAUDIT_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()
