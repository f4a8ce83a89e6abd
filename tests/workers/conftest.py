"""Fixtures for worker tests: the session's real PostgreSQL database, real Redis (db 13).

The workers' code runs in-process here (no Celery worker): these tests are
about claiming, leases, sharding, the reconciler and schedules. Real worker
processes are in ``tests/integration``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from audit.settings import get_settings
from audit.storage import db, repo, session_scope
from audit.storage.models import new_id
from tests.conftest import _truncate_all, redis_test_url, scratch_database, sqlalchemy_url
from tests.factories import write_pool

REDIS_URL = redis_test_url(13)


def pytest_itemcollected(item: pytest.Item) -> None:
    """The worker tests run against PostgreSQL and Redis: service tests."""
    item.add_marker(pytest.mark.services)


@pytest.fixture
def service_env(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """Settings pointing at PostgreSQL, Redis db 13 and a private data dir; emptied after."""
    data = tmp_path / "data"
    (data / "acme").mkdir(parents=True)
    env = {
        "BIASAUDIT_DATABASE_URL": postgres_url,
        "BIASAUDIT_BROKER_URL": REDIS_URL,
        "BIASAUDIT_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "BIASAUDIT_DATA_DIR": str(data),
        "BIASAUDIT_LEASE_SECONDS": "2",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    conn = redis.Redis.from_url(REDIS_URL)
    conn.flushdb()
    try:
        yield {"data": data, "redis": conn, "url": postgres_url}
    finally:
        conn.flushdb()
        conn.close()
        _truncate_all(postgres_url)
        db.dispose_engines()
        get_settings.cache_clear()


@pytest.fixture
def fault_hooks() -> Iterator[None]:
    """The tests' fault-injection plug-in (``tests/service_hooks.py``), in this process."""
    from tests import service_hooks

    service_hooks.install()
    try:
        yield
    finally:
        service_hooks.uninstall()


def add_dataset(data: Path, *, project: str = "acme", n: int = 1200, seed: int = 3) -> str:
    """Store a pool under the data dir the way the API does; returns its id."""
    from audit.engine.data import file_sha256

    dataset_id = new_id()
    path = write_pool(data / project / f"{dataset_id}.csv", n=n, seed=seed)
    with session_scope() as session:
        repo.create_dataset(
            session=session,
            project=project,
            dataset_id=dataset_id,
            sha256=file_sha256(path),
            path=str(path),
            rows=n,
            columns=["sex", "race", "qualified", "advanced"],
            size_bytes=path.stat().st_size,
        )
    return dataset_id


def add_audit(spec: dict[str, Any], *, project: str = "acme") -> str:
    from audit.engine.spec import parse_spec

    parsed, _ = parse_spec(spec)
    with session_scope() as session:
        audit = repo.create_audit(
            session=session,
            project=project,
            spec=spec,
            name=parsed.name,
            domain=parsed.domain,
            spec_sha256=parsed.sha256(),
        )
        return audit.id


def audit_row(audit_id: str) -> Any:
    with session_scope() as session:
        return repo.load_audit(session=session, audit_id=audit_id)


def result_count(audit_id: str) -> int:
    from sqlalchemy import func, select

    from audit.storage.models import Result

    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Result).where(Result.audit_id == audit_id)
            )
            or 0
        )


def run_queued_deliveries(conn: redis.Redis) -> list[str | None]:
    """Run the ``biasaudit.deliver_alert`` messages waiting on their queue, oldest first,
    the way a worker would (the registered task, in this process); their outcomes."""
    import base64
    import json

    from audit.monitoring.notify import DELIVERY_QUEUE, TASK_DELIVER_ALERT
    from workers.tasks import deliver_alert

    outcomes: list[str | None] = []
    while (raw := conn.rpop(DELIVERY_QUEUE)) is not None:
        message = json.loads(raw)  # type: ignore[arg-type]
        assert message["headers"]["task"] == TASK_DELIVER_ALERT, message["headers"]
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        outcomes.append(deliver_alert(*args, **kwargs))
    return outcomes


@contextmanager
def source_database(monkeypatch: pytest.MonkeyPatch, source: str) -> Iterator[str]:
    """A fresh PostgreSQL database configured as ``dataset.source: <source>`` on this
    server (``BIASAUDIT_SOURCE_<SOURCE>_URL``); yields its psycopg URL, dropped after."""
    with scratch_database("biasaudit_test_src") as url:
        monkeypatch.setenv(f"BIASAUDIT_SOURCE_{source.upper()}_URL", sqlalchemy_url(url))
        get_settings.cache_clear()
        yield url
