"""Fixtures for the HTTP API: a real PostgreSQL database, the real Redis (db 15), TestClient.

``api_settings`` points the service at the session's PostgreSQL test
database and at ``redis://127.0.0.1:6379/15`` (only that index is flushed),
with small upload limits so the limit tests stay fast. ``make_token``
creates tokens straight in the database, as ``biasaudit keys create`` does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from audit.api.app import create_app
from audit.queue import TASK_CONVERT_DATASET
from audit.settings import Settings, get_settings
from audit.storage import db
from audit.storage.repo import create_token
from tests.audit.api.helpers import make_csv, upload
from tests.conftest import _truncate_all, redis_test_url

REDIS_URL = redis_test_url(15)
MAX_UPLOAD_BYTES = 300_000
MAX_UPLOAD_ROWS = 5_000
MAX_DECOMPRESSED_BYTES = 1_000_000


def pytest_itemcollected(item: pytest.Item) -> None:
    """Every API test uses PostgreSQL and Redis (a conftest's ``pytestmark`` would do nothing)."""
    item.add_marker(pytest.mark.postgres)
    item.add_marker(pytest.mark.services)


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    """Redis db 15, empty before and after the test (no other index is touched)."""
    conn = redis.Redis.from_url(REDIS_URL)
    conn.flushdb()
    try:
        yield conn
    finally:
        conn.flushdb()
        conn.close()


@pytest.fixture
def api_settings(
    embedded_home: Path,
    postgres_url: str,
    redis_db: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Settings]:
    """Settings for the service under test; tables emptied afterwards."""
    env = {
        "BIASAUDIT_DATABASE_URL": postgres_url,
        "BIASAUDIT_BROKER_URL": REDIS_URL,
        "BIASAUDIT_ARTIFACT_DIR": str(embedded_home),
        "BIASAUDIT_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
        "BIASAUDIT_MAX_UPLOAD_ROWS": str(MAX_UPLOAD_ROWS),
        "BIASAUDIT_MAX_DECOMPRESSED_BYTES": str(MAX_DECOMPRESSED_BYTES),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        get_settings.cache_clear()
        _truncate_all(postgres_url)


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as c:
        yield c


@pytest.fixture
def make_token(api_settings: Settings) -> Callable[..., str]:
    """``make_token(role, project="acme")`` -> a fresh plaintext bearer token."""

    def make(role: str, project: str = "acme") -> str:
        with db.session_scope(api_settings.db_url) as session:
            token, _ = create_token(session=session, project=project, role=role)
        return token

    return make


@pytest.fixture
def dataset_id(client: TestClient, make_token: Callable[..., str]) -> str:
    """A dataset uploaded to project ``acme``; the columnar copy it asked for
    (``biasaudit.convert_dataset``, no worker here) taken off the ``cpu`` queue, so that
    tests see only what they enqueue."""
    response = upload(client, make_token("submitter"), make_csv())
    assert response.status_code == 201, response.text
    dataset = str(response.json()["id"])
    conn = redis.Redis.from_url(REDIS_URL)
    try:
        asked = [
            raw
            for raw in conn.lrange("cpu", 0, -1)
            if json.loads(raw)["headers"]["task"] == TASK_CONVERT_DATASET
        ]
        assert len(asked) == 1, "the CSV upload asked for its columnar copy"
        args = json.loads(base64.b64decode(json.loads(asked[0])["body"]))[0]
        assert args == ["acme", dataset]  # only ids travel
        conn.lrem("cpu", 0, asked[0])  # type: ignore[arg-type]  # bytes: redis-py accepts them
    finally:
        conn.close()
    return dataset
