"""No job lost, none run twice: real workers killed, Redis restarted, messages duplicated.

Each test is bounded (leases of 3 s, reconciler every second) and asserts on
the database record: status, attempts, exactly one result row.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from audit.queue import publish
from audit.settings import get_settings
from audit.storage import db
from tests.factories import spec_for
from tests.integration.conftest import (
    Stack,
    add_dataset,
    audit_state,
    free_port,
    messages_for,
    private_database,
    redis_server,
    service_env,
    wait_for,
    wait_status,
)
from tests.workers.conftest import add_audit, result_count

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]


def _submit(data: Path, *, description: str | None = None, publish_it: bool = True) -> str:
    spec = spec_for(add_dataset(data))
    if description:
        spec["description"] = description
    audit_id = add_audit(spec)  # committed first ...
    if publish_it:
        publish(audit_id, queue="cpu")  # ... then published, as the API does
    return audit_id


def test_worker_sigkilled_mid_audit_is_finished_by_another(local: Stack) -> None:
    data = Path(local.env["BIASAUDIT_DATA_DIR"])
    first = local.worker("doomed")
    audit_id = _submit(data, description="biasaudit-test:sleep=4")
    row = wait_status(audit_id, {"running"}, timeout=30)
    assert row.worker.startswith("doomed@test/")
    first.kill(signal.SIGKILL)  # the whole worker: main process and pool
    local.worker("rescuer")
    row = wait_status(audit_id, {"succeeded", "failed"}, timeout=60)
    assert row.status == "succeeded", row.error
    assert row.attempts == 2 and row.worker.startswith("rescuer@test/")
    assert result_count(audit_id) == 1


def test_job_that_kills_its_worker_every_time_fails_after_three_attempts(local: Stack) -> None:
    data = Path(local.env["BIASAUDIT_DATA_DIR"])
    worker = local.worker("victim")
    audit_id = _submit(data, description="biasaudit-test:crash")
    row = wait_status(audit_id, {"failed", "succeeded"}, timeout=90)
    state = (row.status, row.attempts, row.error)
    assert row.status == "failed" and row.attempts == 3, state
    assert "worker lost" in row.error and "3" in row.error, state
    assert result_count(audit_id) == 0
    conn = redis.Redis.from_url(local.env["BIASAUDIT_BROKER_URL"])
    wait_for(lambda: messages_for(conn, audit_id) == 0, timeout=20, what="the queue to drain")
    # the worker survived its pool processes' deaths and still serves the queue
    healthy = _submit(data)
    assert wait_status(healthy, {"succeeded", "failed"}, timeout=30).status == "succeeded"
    assert worker.proc.poll() is None, worker.log_text()[-4000:]
    kills = sum("test hook: killing" in line["message"] for line in worker.log_lines())
    assert kills == 3, worker.log_text()[-4000:]


def test_commit_without_publish_is_published_by_the_reconciler(local: Stack) -> None:
    data = Path(local.env["BIASAUDIT_DATA_DIR"])
    local.worker("patient")
    audit_id = _submit(data, publish_it=False)  # "Redis died between commit and publish"
    time.sleep(1)
    assert audit_state(audit_id).status == "queued"
    row = wait_status(audit_id, {"succeeded", "failed"}, timeout=30)
    assert row.status == "succeeded" and row.attempts == 1
    assert result_count(audit_id) == 1


def test_two_deliveries_of_one_message_give_one_result(local: Stack) -> None:
    data = Path(local.env["BIASAUDIT_DATA_DIR"])
    twin = local.worker("twin-a", wait=False)  # the two start side by side
    local.worker("twin-b")
    twin.wait_ready()
    audit_id = _submit(data, description="biasaudit-test:sleep=1")
    publish(audit_id, queue="cpu")  # the same message, delivered again
    publish(audit_id, queue="cpu")
    row = wait_status(audit_id, {"succeeded", "failed"}, timeout=30)
    assert row.status == "succeeded" and row.attempts == 1
    conn = redis.Redis.from_url(local.env["BIASAUDIT_BROKER_URL"])
    wait_for(lambda: messages_for(conn, audit_id) == 0, timeout=20, what="duplicates acked")
    assert result_count(audit_id) == 1


@pytest.fixture
def own_database() -> Iterator[str]:
    """A database of this test's own: the shared beat must not see its audits."""
    with private_database() as url:
        yield url


def test_redis_restart_loses_no_queued_audit(
    own_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    env = service_env(database_url=own_database, broker_url=broker, base=tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    own = Stack(env, tmp_path / "logs")
    server = redis_server(port, tmp_path)
    try:
        data = Path(env["BIASAUDIT_DATA_DIR"])
        ids = [_submit(data) for _ in range(3)]  # queued in Redis, no worker yet
        conn = redis.Redis(port=port)
        assert conn.llen("cpu") == 3
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        server = redis_server(port, tmp_path)  # back, empty: no persistence
        assert conn.llen("cpu") == 0
        beat = own.beat("own-beat", wait=False)  # starts beside the worker
        own.worker("survivor")
        beat.wait_ready()
        for audit_id in ids:
            row = wait_status(audit_id, {"succeeded", "failed"}, timeout=60)
            assert row.status == "succeeded" and result_count(audit_id) == 1
        conn.close()
    finally:
        own.stop_all()
        server.kill()
        server.wait(timeout=10)
        get_settings.cache_clear()
        db.dispose_engines()


def test_sigterm_lets_the_running_audit_finish(local: Stack) -> None:
    data = Path(local.env["BIASAUDIT_DATA_DIR"])
    worker = local.worker("draining")
    audit_id = _submit(data, description="biasaudit-test:sleep=3")
    wait_status(audit_id, {"running"}, timeout=30)
    worker.proc.send_signal(signal.SIGTERM)  # what `docker stop` sends to PID 1
    assert worker.proc.wait(timeout=30) == 0  # warm shutdown: waited for the task
    row = audit_state(audit_id)
    assert row.status == "succeeded" and row.attempts == 1
    assert result_count(audit_id) == 1
