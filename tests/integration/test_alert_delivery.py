"""Alert deliveries by a real worker, off the beat's tick (PostgreSQL, Redis, Celery).

- A tick with several unreachable webhooks returns at once: it only enqueues
  ``biasaudit.deliver_alert``; the worker makes every attempt (each waits out
  the webhook timeout), the real beat enqueues the retries after back-off, and
  every attempt is recorded.
- ``significant_change`` end to end: a schedule over a PostgreSQL decisions
  database (``dataset.source``) runs twice through the real beat and worker;
  the impact ratio moves 0.98 -> 0.85 (both pass at 0.8) on 4,000 rows a run,
  and the alert is raised, posted, its HMAC checked by a real HTTP receiver,
  and recorded as delivered.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from audit.settings import get_settings
from audit.storage import repo, session_scope
from audit.storage.alert_models import Alert
from audit.storage.alerts import list_alerts, list_deliveries, new_webhook_salt, webhook_secret
from audit.storage.models import Audit, Schedule, new_id, utcnow
from tests.integration.conftest import Stack, wait_for
from tests.integration.decisions import decisions_database, insert_decisions, source_spec
from tests.workers.test_alerts import Receiver
from workers.scheduling import fire_due_schedules

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

HOOK_TIMEOUT = 3.0
HOOKS = 4


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An allowlisted address that takes connections and never answers (a hung receiver)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)  # the kernel completes the handshakes; nobody ever reads
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


def _schedule(project: str, name: str, *, spec: dict[str, Any], webhook: str) -> tuple[str, str]:
    """A schedule with a webhook (weekly cron, not due): its id and signing secret."""
    with session_scope() as session:
        row = repo.create_schedule(
            session=session, project=project, name=name, cron="0 3 1 1 *", spec=spec
        )
        row.alert = {"webhook": webhook}
        row.webhook_salt = new_webhook_salt()
        secret = webhook_secret(row.webhook_salt, get_settings().secret_key.get_secret_value())
        return row.id, secret


def test_a_tick_with_unreachable_hooks_returns_at_once_and_the_worker_delivers(
    local: Stack, black_hole: str
) -> None:
    env = {
        "BIASAUDIT_WEBHOOK_ALLOWLIST": "127.0.0.1",
        "BIASAUDIT_WEBHOOK_TIMEOUT": str(HOOK_TIMEOUT),
        "BIASAUDIT_WEBHOOK_BACKOFF": "0.5",
        "BIASAUDIT_WEBHOOK_MAX_ATTEMPTS": "2",
    }
    # one pool process per hook: the attempts wait out their timeouts side by side
    local.worker("hook-worker", concurrency=HOOKS, extra=env)
    project = f"hooks-{new_id()[:8]}"
    later = utcnow() + timedelta(minutes=30)  # not due for the running beat: this test ticks
    ids = []
    with session_scope() as session:
        for i in range(HOOKS):
            schedule_id, _ = _schedule(
                project, f"s{i}", spec=source_spec(f"s{i}"), webhook=black_hole
            )
            alert = Alert(
                project=project, schedule_id=schedule_id, audit_id=new_id(),
                kind="verdict_changed", details={"against": "previous"}, delivery="pending",
                attempts=0, next_attempt_at=later,
            )  # fmt: skip
            session.add(alert)
            session.flush()
            ids.append(alert.id)

    fire_due_schedules()  # a first tick (nothing of ours due): connections and imports made
    started = time.monotonic()
    fire_due_schedules(now=later + timedelta(seconds=1))  # the tick, as the beat runs it
    took = time.monotonic() - started
    # posting inline takes HOOKS x HOOK_TIMEOUT (12 s); enqueueing takes milliseconds
    assert took < HOOK_TIMEOUT, f"the tick took {took:.1f} s"

    def all_failed() -> list[Alert]:
        with session_scope() as session:
            rows = [session.get(Alert, i) for i in ids]
            done = [r for r in rows if r is not None and r.delivery == "failed"]
            for row in done:
                session.expunge(row)
            return done if len(done) == HOOKS else []

    # the worker makes the first attempts; the real beat enqueues the retries after back-off
    failed = wait_for(all_failed, timeout=120, what="every delivery to be tried twice", step=0.5)
    assert [a.attempts for a in failed] == [2] * HOOKS
    with session_scope() as session:
        for alert_id in ids:
            tried = list_deliveries(session=session, alert_id=alert_id)
            assert [d.attempt for d in tried] == [1, 2]  # each attempt once: never concurrently
            assert all(d.status_code is None and "timed out" in (d.error or "") for d in tried)
            assert tried[1].at - tried[0].at >= timedelta(seconds=0.5)  # after the back-off
            row = session.get(Alert, alert_id)
            assert row is not None and row.claimed_until is None


def test_significant_change_over_the_source_is_raised_signed_and_delivered(
    local: Stack,
) -> None:
    with decisions_database() as (decisions, source_url):
        receiver = Receiver([])
        try:
            local.worker(
                "source-worker",
                extra={
                    "BIASAUDIT_SOURCE_HIRING_URL": source_url,
                    "BIASAUDIT_WEBHOOK_ALLOWLIST": "127.0.0.1",
                },
            )
            _significant_change(local, decisions, receiver)
        finally:
            receiver.server.shutdown()
            receiver.server.server_close()


def _run(schedule_id: str, *, after: set[str]) -> Audit:
    """Make the schedule due now; the running beat fires it, the worker runs it."""
    with session_scope() as session:
        session.execute(
            update(Schedule).where(Schedule.id == schedule_id).values(next_run_at=utcnow())
        )

    def finished() -> Audit | None:
        with session_scope() as session:
            rows = session.query(Audit).filter(Audit.schedule_id == schedule_id).all()
            new = [r for r in rows if r.id not in after and r.status in ("succeeded", "failed")]
            for row in new:
                session.expunge(row)
            return new[0] if new else None

    audit: Audit = wait_for(finished, timeout=120, what="the scheduled run", step=0.5)
    assert audit.status == "succeeded", audit.error
    return audit


def _significant_change(local: Stack, decisions: str, receiver: Receiver) -> None:
    project = f"sig-{new_id()[:8]}"
    schedule_id, receiver.secret = _schedule(
        project, "weekly", spec=source_spec("hiring-decisions"), webhook=receiver.url
    )
    # first window: women advanced at 0.49, men at 0.50 (impact ratio 0.98)
    insert_decisions(
        decisions, utcnow() - timedelta(minutes=1), {"female": (2000, 980), "male": (2000, 1000)}
    )
    first = _run(schedule_id, after=set())
    assert first.verdict == "pass"
    window_end = first.spec["dataset"]["window_end"]
    # new decisions: women at 0.425 (impact ratio 0.85, still a pass at 0.8)
    from datetime import datetime

    insert_decisions(
        decisions,
        datetime.fromisoformat(window_end) + timedelta(milliseconds=1),
        {"female": (2000, 850), "male": (2000, 1000)},
    )
    time.sleep(0.05)
    second = _run(schedule_id, after={first.id})
    assert second.verdict == "pass"
    assert second.spec["dataset"]["window_start"] == window_end

    def delivered() -> list[Alert]:
        with session_scope() as session:
            rows = list_alerts(session=session, project=project, schedule_id=schedule_id)
            for row in rows:
                session.expunge(row)
            return rows if rows and all(r.delivery == "delivered" for r in rows) else []

    alerts = wait_for(delivered, timeout=60, what="the alert to be delivered", step=0.5)
    assert [(a.kind, a.audit_id, a.details["against"]) for a in alerts] == [
        ("significant_change", second.id, "previous")
    ]
    moved = alerts[0].details["metrics"]
    assert alerts[0].details["verdict"] == {"a": "pass", "b": "pass", "changed": False}
    assert any(m["group"] == "female" and m["metric"] == "selection_rate" for m in moved), moved
    assert [r["valid"] for r in receiver.received] == [True]  # the HMAC checks out
    body = receiver.received[0]["body"]
    assert (body["kind"], body["alert_id"], body["audit_id"]) == (
        "significant_change", alerts[0].id, second.id,
    )  # fmt: skip
    with session_scope() as session:
        attempts = list_deliveries(session=session, alert_id=alerts[0].id)
        assert [(d.attempt, d.status_code, d.error) for d in attempts] == [(1, 200, None)]
