"""The reconciler against real PostgreSQL and real Redis (db 13): what it publishes, and not."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

import pytest

from audit.queue import publish
from audit.storage import repo, session_scope
from audit.storage.models import utcnow
from tests.factories import spec_for
from tests.workers.conftest import REDIS_URL, add_audit, add_dataset, audit_row
from workers import reconcile as rec

pytestmark = pytest.mark.postgres


def _queued_ids(conn: Any, queue: str = "cpu") -> list[str | None]:
    return [rec._message_audit_id(raw) for raw in conn.lrange(queue, 0, -1)]


def _later(seconds: float = 120) -> Any:
    return utcnow() + timedelta(seconds=seconds)


def test_queued_audit_missing_from_redis_is_published_once(service_env: dict[str, Any]) -> None:
    conn = service_env["redis"]
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    fresh = rec.reconcile(requeue_after=60)
    assert fresh.republished == []  # not old enough: the API's own publish may be in flight
    first = rec.reconcile(now=_later(), requeue_after=60)
    assert first.republished == [audit_id]
    assert _queued_ids(conn) == [audit_id]
    second = rec.reconcile(now=_later(), requeue_after=60)
    assert second.republished == [] and second.already_queued == [audit_id]
    assert _queued_ids(conn) == [audit_id]  # a backlog does not multiply


def test_model_audits_go_back_to_the_gpu_queue(service_env: dict[str, Any]) -> None:
    spec = spec_for(add_dataset(service_env["data"]))
    spec["model"] = {"kind": "sklearn", "path": "model.skops", "features": ["sex"]}
    audit_id = add_audit(spec)
    assert rec.reconcile(now=_later(), requeue_after=60).republished == [audit_id]
    assert _queued_ids(service_env["redis"], "gpu") == [audit_id]


def test_running_past_its_lease_is_published(service_env: dict[str, Any]) -> None:
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    with session_scope() as session:
        repo.claim_audit(session=session, audit_id=audit_id, worker="dead", lease_seconds=30)
    live = rec.reconcile(requeue_after=0)
    assert audit_id not in live.republished  # the lease is still running
    report = rec.reconcile(now=_later(60), requeue_after=0)
    assert report.republished == [audit_id]
    assert _queued_ids(service_env["redis"]) == [audit_id]


def test_out_of_attempts_is_failed_not_published(service_env: dict[str, Any]) -> None:
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    for i in range(3):
        with session_scope() as session:
            repo.claim_audit(
                session=session,
                audit_id=audit_id,
                worker=f"dead{i}",
                lease_seconds=1,
                now=utcnow() - timedelta(minutes=10 - i),
            )
    report = rec.reconcile()
    assert report.failed == [audit_id] and report.republished == []
    row = audit_row(audit_id)
    assert row.status == "failed" and "worker lost" in row.error
    assert service_env["redis"].llen("cpu") == 0


def test_cancel_requested_with_a_dead_worker_is_cancelled(service_env: dict[str, Any]) -> None:
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    with session_scope() as session:
        repo.claim_audit(session=session, audit_id=audit_id, worker="dead", lease_seconds=1)
        repo.request_cancel(session=session, project="acme", audit_id=audit_id)
    report = rec.reconcile(now=_later(), requeue_after=60)
    assert report.cancelled == [audit_id] and report.republished == []
    assert audit_row(audit_id).status == "cancelled"


def test_finished_audits_are_left_alone(service_env: dict[str, Any]) -> None:
    from workers.runner import execute_audit

    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    assert execute_audit(audit_id, worker="w") == "succeeded"
    report = rec.reconcile(now=_later(3600), requeue_after=0)
    assert report.as_dict() == {
        "failed": [],
        "cancelled": [],
        "republished": [],
        "already_queued": [],
        "publish_errors": [],
    }


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_broker_down_is_reported_and_retried_later(service_env: dict[str, Any]) -> None:
    audit_id = add_audit(spec_for(add_dataset(service_env["data"])))
    down = f"redis://127.0.0.1:{_closed_port()}/0"

    def publish_down(aid: str, *, queue: str) -> None:
        publish(aid, queue=queue, broker_url=down)

    report = rec.reconcile(now=_later(), requeue_after=60, publish=publish_down, broker_url=down)
    assert report.publish_errors == [audit_id] and report.republished == []
    assert audit_row(audit_id).status == "queued"
    assert rec.reconcile(now=_later(), requeue_after=60).republished == [audit_id]


def test_messages_of_other_tasks_are_not_mistaken_for_audits(service_env: dict[str, Any]) -> None:
    conn = service_env["redis"]
    publish("not-an-audit", queue="cpu", broker_url=REDIS_URL)
    assert _queued_ids(conn) == ["not-an-audit"]
    assert rec._message_audit_id(b'{"headers": {"task": "other"}, "body": "W10="}') is None
    assert rec._message_audit_id(b"not json") is None
    assert rec.waiting_audit_ids(REDIS_URL) == {"not-an-audit"}
