"""Scheduled runs over new data: a verdict change raises an alert, posted to a signed webhook.

Real PostgreSQL and a real HTTP receiver on 127.0.0.1 (allowlisted exactly):
the receiver checks the HMAC of every body with the secret the schedule was
given, answers 500 to the first POST and 200 to the next. Deliveries go
through ``biasaudit.deliver_alert`` messages on Redis (run here as a worker
would); the beat's tick enqueues the retry, and every attempt is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from sqlalchemy import update

from audit.settings import get_settings
from audit.storage import repo, session_scope
from audit.storage.alerts import list_alerts, list_deliveries, new_webhook_salt, webhook_secret
from audit.storage.models import Audit, Event, Schedule, utcnow
from tests.factories import spec_for, write_pool
from tests.workers.conftest import REDIS_URL, run_queued_deliveries
from workers import runner
from workers.scheduling import fire_due_schedules

pytestmark = pytest.mark.postgres


class Receiver:
    """A local webhook endpoint: answers the queued statuses, then 200; checks signatures."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[dict[str, Any]] = []
        self.secret = ""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                signature = self.headers.get("X-Biasaudit-Signature", "")
                receiver.received.append(
                    {
                        "valid": hmac.compare_digest(signature, f"sha256={expected}"),
                        "body": json.loads(body),
                    }
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/bias"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(service_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv("BIASAUDIT_WEBHOOK_ALLOWLIST", "hooks.example.com, 127.0.0.1")
    monkeypatch.setenv("BIASAUDIT_WEBHOOK_BACKOFF", "0.2")
    get_settings.cache_clear()
    server = Receiver([500])
    yield server
    server.server.shutdown()
    server.server.server_close()


def _fair_pool(path: Path, n: int = 6000) -> Path:
    """The pool's columns with one selection rate (0.35) for everyone: passes."""
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(
        {
            "sex": rng.choice(["female", "male"], size=n),
            "race": rng.choice(["Black", "White", "Asian"], size=n),
            "qualified": rng.integers(0, 2, size=n),
            "advanced": (rng.random(n) < 0.35).astype(int),
        }
    )
    frame.to_csv(path, index=False)
    return path


def _scheduled_run(schedule_id: str) -> str:
    with session_scope() as session:  # make it due now (the cron fires weekly)
        session.execute(
            update(Schedule)
            .where(Schedule.id == schedule_id)
            .values(next_run_at=utcnow() - timedelta(seconds=1))
        )
    created = fire_due_schedules(publish=lambda *a, **k: None)
    assert len(created) == 1
    assert runner.execute_audit(created[0], worker="w1") == "succeeded"
    run_queued_deliveries(redis.Redis.from_url(REDIS_URL))  # a worker takes the deliveries
    return created[0]


def test_new_data_changes_the_verdict_alert_signed_webhook_retried(
    service_env: dict[str, Any], receiver: Receiver
) -> None:
    data = service_env["data"] / "acme" / "decisions.csv"
    _fair_pool(data)
    with session_scope() as session:
        schedule = repo.create_schedule(
            session=session, project="acme", name="weekly", cron="0 3 * * 1",
            spec=spec_for(data), now=utcnow() - timedelta(days=8),
        )  # fmt: skip
        schedule.alert = {"webhook": receiver.url}
        schedule.webhook_salt = new_webhook_salt()
        schedule_id, salt = schedule.id, schedule.webhook_salt
    receiver.secret = webhook_secret(salt, get_settings().secret_key.get_secret_value())

    first = _scheduled_run(schedule_id)
    with session_scope() as session:
        assert list_alerts(session=session, project="acme") == []  # nothing to compare yet
    write_pool(data, n=6000, seed=5)  # new decisions with a planted disparity by sex
    second = _scheduled_run(schedule_id)

    with session_scope() as session:
        verdicts = [getattr(session.get(Audit, a), "verdict", None) for a in (first, second)]
        assert verdicts == ["pass", "fail"]
        alerts = list_alerts(session=session, project="acme", schedule_id=schedule_id)
        assert [(a.kind, a.audit_id, a.details["against"]) for a in alerts] == [
            ("verdict_changed", second, "previous")
        ]
        alert_id = alerts[0].id
        assert alerts[0].details["verdict"] == {"a": "pass", "b": "fail", "changed": True}
        assert alerts[0].details["significant"] > 0
        assert alerts[0].delivery == "pending"  # the receiver answered 500
        events = session.query(Event.action).filter(Event.action == "alert.raised").count()
        assert events == 1
    assert len(receiver.received) == 1

    conn = service_env["redis"]
    deadline = utcnow() + timedelta(seconds=10)
    while len(receiver.received) < 2 and utcnow() < deadline:
        time.sleep(0.1)
        fire_due_schedules(publish=lambda *a, **k: None)  # the beat's tick enqueues the retry
        run_queued_deliveries(conn)  # and a worker posts it
    assert [r["valid"] for r in receiver.received] == [True, True]
    assert receiver.received[1]["body"]["alert_id"] == alert_id
    assert receiver.received[1]["body"]["kind"] == "verdict_changed"
    assert receiver.received[1]["body"]["schedule"] == {"id": schedule_id, "name": "weekly"}
    with session_scope() as session:
        attempts = list_deliveries(session=session, alert_id=alert_id)
        assert [(d.attempt, d.status_code, d.error) for d in attempts] == [
            (1, 500, "HTTP 500"),
            (2, 200, None),
        ]
        assert attempts[0].at < attempts[1].at
        alert = list_alerts(session=session, project="acme")[0]
        assert (alert.delivery, alert.attempts, alert.next_attempt_at) == ("delivered", 2, None)
        assert list_alerts(session=session, project="other") == []  # tenants see their own
    fire_due_schedules(publish=lambda *a, **k: None)
    assert run_queued_deliveries(conn) == []  # delivered: never enqueued again
    assert len(receiver.received) == 2


def test_baseline_pinned_and_refused_again_at_delivery(
    service_env: dict[str, Any], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = service_env["data"] / "acme" / "decisions.csv"
    _fair_pool(data)
    with session_scope() as session:
        schedule = repo.create_schedule(
            session=session, project="acme", name="weekly", cron="0 3 * * 1",
            spec=spec_for(data), now=utcnow() - timedelta(days=8),
        )  # fmt: skip
        schedule_id = schedule.id
    first = _scheduled_run(schedule_id)
    write_pool(data, n=6000, seed=5)
    second = _scheduled_run(schedule_id)
    third = _scheduled_run(schedule_id)  # same data as the second: nothing moved vs previous
    with session_scope() as session:
        alerts = list_alerts(session=session, project="acme", audit_id=third)
        # against the default baseline (the first run) the verdict still differs
        assert [(a.kind, a.details["against"], a.details["against_audit_id"]) for a in alerts] == [
            ("verdict_changed", "baseline", first)
        ]
        assert alerts[0].delivery is None  # no webhook on this schedule
        row = session.get(Schedule, schedule_id)
        assert row is not None
        row.baseline_audit_id = second  # pin the baseline (PATCH /v1/schedules/{id} does this)
        row.alert = {"webhook": receiver.url}
        row.webhook_salt = new_webhook_salt()
    fourth = _scheduled_run(schedule_id)
    with session_scope() as session:
        assert list_alerts(session=session, project="acme", audit_id=fourth) == []

    # a webhook host taken off the allowlist after saving is refused at delivery, and recorded
    from audit.monitoring.notify import deliver_alert

    _fair_pool(data)
    monkeypatch.setenv("BIASAUDIT_WEBHOOK_ALLOWLIST", "hooks.example.com")
    monkeypatch.setenv("BIASAUDIT_WEBHOOK_MAX_ATTEMPTS", "1")
    get_settings.cache_clear()
    fifth = _scheduled_run(schedule_id)
    with session_scope() as session:
        alerts = list_alerts(session=session, project="acme", audit_id=fifth)
        assert sorted((a.details["against"], a.details["against_audit_id"]) for a in alerts) == [
            ("baseline", second),
            ("previous", fourth),
        ]
        for alert in alerts:
            assert (alert.kind, alert.delivery, alert.attempts) == ("verdict_changed", "failed", 1)
            (attempt,) = list_deliveries(session=session, alert_id=alert.id)
            assert attempt.status_code is None and attempt.error is not None
            assert "not on the server's webhook allowlist" in attempt.error
        alert_id = alerts[0].id
    assert receiver.received == []
    assert deliver_alert(alert_id) is None  # failed: never tried again
