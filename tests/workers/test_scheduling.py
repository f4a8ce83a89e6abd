"""Due schedules become queued, published audits — once, even with two schedulers."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from audit.storage import repo, session_scope
from audit.storage.events import verify_log
from audit.storage.models import Event, Schedule, utcnow
from tests.factories import spec_for
from tests.workers.conftest import add_dataset, audit_row
from workers import reconcile as rec
from workers.scheduling import fire_due_schedules

pytestmark = pytest.mark.postgres


def _schedule(spec: dict[str, Any], *, name: str = "weekly") -> str:
    with session_scope() as session:
        schedule = repo.create_schedule(
            session=session,
            project="acme",
            name=name,
            cron="0 3 * * 1",
            spec=spec,
            now=utcnow() - timedelta(days=8),
        )
        return schedule.id


def test_due_schedule_creates_and_publishes_one_audit(service_env: dict[str, Any]) -> None:
    schedule_id = _schedule(spec_for(add_dataset(service_env["data"])))
    created = fire_due_schedules()
    assert len(created) == 1
    row = audit_row(created[0])
    assert (row.status, row.project, row.schedule_id) == ("queued", "acme", schedule_id)
    with session_scope() as session:
        schedule = session.get(Schedule, schedule_id)
        assert schedule is not None
        assert schedule.last_audit_id == created[0]
        assert schedule.next_run_at is not None and schedule.next_run_at > utcnow()
    queued = [rec._message_audit_id(m) for m in service_env["redis"].lrange("cpu", 0, -1)]
    assert queued == created
    assert fire_due_schedules() == []  # not due any more
    with session_scope() as session:  # the log: created, then the run and its firing
        logged = [(e.action, e.actor, e.audit_id) for e in
                  session.scalars(select(Event).order_by(Event.seq))]  # fmt: skip
        assert logged == [
            ("schedule.created", "system", None),
            ("audit.submitted", "scheduler", created[0]),
            ("schedule.fired", "scheduler", created[0]),
        ]
        assert verify_log(session=session).intact


def test_two_schedulers_at_once_fire_once(service_env: dict[str, Any]) -> None:
    _schedule(spec_for(add_dataset(service_env["data"])))
    results: list[list[str]] = []
    barrier = threading.Barrier(3)

    def fire() -> None:
        barrier.wait()
        results.append(fire_due_schedules())

    threads = [threading.Thread(target=fire) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(len(r) for r in results) == [0, 0, 1]


def test_publish_failure_leaves_the_audit_for_the_reconciler(service_env: dict[str, Any]) -> None:
    _schedule(spec_for(add_dataset(service_env["data"])))

    def broken(audit_id: str, *, queue: str) -> None:
        raise ConnectionError("redis down")

    created = fire_due_schedules(publish=broken)
    assert len(created) == 1 and audit_row(created[0]).status == "queued"
    later = utcnow() + timedelta(minutes=5)
    assert rec.reconcile(now=later, requeue_after=60).republished == created


def test_invalid_stored_spec_is_skipped_not_fatal(service_env: dict[str, Any]) -> None:
    _schedule({"name": "broken", "dataset": {"protected": []}}, name="broken")
    _schedule(spec_for(add_dataset(service_env["data"])), name="good")
    created = fire_due_schedules()
    assert len(created) == 1 and audit_row(created[0]).name == "test-hiring"
