"""One delivery of one alert at a time, each attempt once (PostgreSQL, conditional UPDATEs).

Enqueueing reserves the next attempt (two ticks: one message); the worker's
claim requires that attempt to be the next one and no live claim (two
workers, or a redelivered message: one post). A claim that runs out (a
worker died) can be taken again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from audit.storage import repo, session_scope
from audit.storage.alert_models import Alert
from audit.storage.alerts import claim_delivery, record_attempt, reserve_delivery
from audit.storage.models import new_id, utcnow
from tests.factories import spec_for

pytestmark = pytest.mark.postgres


def _pending_alert() -> str:
    with session_scope() as session:
        schedule = repo.create_schedule(
            session=session, project="acme", name="weekly", cron="0 3 * * 1", spec=spec_for("x")
        )
        alert = Alert(
            project="acme", schedule_id=schedule.id, audit_id=new_id(), kind="verdict_changed",
            details={}, delivery="pending", attempts=0, next_attempt_at=utcnow(),
        )  # fmt: skip
        session.add(alert)
        session.flush()
        return alert.id


def test_each_attempt_is_enqueued_claimed_and_posted_once(service_env: dict[str, Any]) -> None:
    alert_id = _pending_alert()
    now = utcnow()
    with session_scope() as session:  # two beats tick at once: one enqueues attempt 1
        first = reserve_delivery(session=session, alert_id=alert_id, hold=60, now=now)
    with session_scope() as session:
        second = reserve_delivery(session=session, alert_id=alert_id, hold=60, now=now)
    assert (first, second) == (1, None)

    def claim(attempt: int, at: Any) -> bool:
        with session_scope() as session:
            return claim_delivery(
                session=session, alert_id=alert_id, attempt=attempt, hold=5, now=at
            )

    assert claim(1, now) is True
    assert claim(1, now) is False  # a second worker (or the message twice): no second post
    assert claim(2, now) is False  # not the next attempt
    assert claim(1, now + timedelta(seconds=6)) is True  # the first worker died: claim ran out
    with session_scope() as session:
        row = session.get(Alert, alert_id)
        assert row is not None and row.claimed_until is not None
        record_attempt(
            session=session, alert=row, status_code=500, error="HTTP 500", max_attempts=3, backoff=1
        )
        assert (row.attempts, row.claimed_until, row.delivery) == (1, None, "pending")
    later = now + timedelta(seconds=10)
    assert claim(1, later) is False  # attempt 1 is made: a redelivered message posts nothing
    with session_scope() as session:
        assert reserve_delivery(session=session, alert_id=alert_id, hold=60, now=later) == 2
    assert claim(2, later) is True
