"""Deliver alerts to schedule webhooks through a Celery task, never in the beat's tick.

``after_success(audit_id)`` is called by the worker once a scheduled audit's
results are stored: it raises the alerts (``audit.storage.alerts``) and
enqueues their first delivery. ``enqueue_due()`` runs on every beat tick: it
only *enqueues* ``biasaudit.deliver_alert(alert_id, attempt)`` (by name, on
the ``cpu`` queue) for each pending delivery whose back-off has passed, so
unreachable hooks never slow a tick. A worker runs :func:`deliver_alert`:

- enqueueing moves ``next_attempt_at`` forward first (a conditional UPDATE),
  so two ticks never enqueue the same attempt; if the message is lost, the
  attempt is enqueued again once that hold has passed;
- the worker claims the alert (``claimed_until``, a conditional UPDATE that
  also requires the attempt number to be the next one), so two workers never
  post one alert at once and a redelivered message never posts it twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime

from audit.monitoring.webhooks import post
from audit.queue import QUEUE_CPU
from audit.settings import Settings, get_settings
from audit.storage import session_scope
from audit.storage.alert_models import Alert
from audit.storage.alerts import (
    alert_payload,
    claim_delivery,
    due_deliveries,
    raise_alerts,
    record_attempt,
    reserve_delivery,
    webhook_secret,
)
from audit.storage.models import Schedule, utcnow
from audit.storage.schedules import log_schedule

log = logging.getLogger("biasaudit.alerts")

TASK_DELIVER_ALERT = "biasaudit.deliver_alert"
DELIVERY_QUEUE = QUEUE_CPU
REQUEUE_MIN_SECONDS = 60.0
Send = Callable[[str, int], None]


def send_delivery(alert_id: str, attempt: int) -> None:
    """Enqueue ``biasaudit.deliver_alert(alert_id, attempt)`` by name (raises if the broker
    is down)."""
    from audit.queue import client

    client().send_task(
        TASK_DELIVER_ALERT,
        args=[alert_id, attempt],
        queue=DELIVERY_QUEUE,
        routing_key=DELIVERY_QUEUE,
        serializer="json",
        retry=True,
        retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
        ignore_result=True,
    )


def after_success(audit_id: str, *, send: Send | None = None) -> list[str]:
    """Raise the alerts of a succeeded audit and enqueue their delivery; their ids."""
    from audit.monitoring.late_rows import check_late_rows

    with session_scope() as session:
        alerts = raise_alerts(session=session, audit_id=audit_id)
        late = check_late_rows(session=session, audit_id=audit_id)
        if late is not None:
            alerts.append(late)
        ids = [a.id for a in alerts]
        for alert in alerts:
            schedule = session.get(Schedule, alert.schedule_id)
            if schedule is not None and alert.attempts == 0:
                log_schedule(
                    session, schedule, "alert.raised", "scheduler",
                    audit_id=audit_id, kind=alert.kind, against=alert.details.get("against"),
                )  # fmt: skip
    enqueue_due(send=send, alert_ids=ids)
    return ids


def enqueue_due(
    *, send: Send | None = None, now: datetime | None = None, alert_ids: list[str] | None = None
) -> list[str]:
    """Enqueue every pending delivery whose back-off has passed (no HTTP here); their ids."""
    settings = get_settings()
    send = send or send_delivery
    now = now or utcnow()
    hold = max(REQUEUE_MIN_SECONDS, settings.webhook_timeout * 3)
    with session_scope() as session:
        due = due_deliveries(session=session, now=now)
    if alert_ids is not None:
        due = [a for a in due if a in alert_ids]
    sent = []
    for alert_id in due:
        with session_scope() as session:
            attempt = reserve_delivery(session=session, alert_id=alert_id, hold=hold, now=now)
        if attempt is None:
            continue  # another tick enqueued it
        try:
            send(alert_id, attempt)
        except Exception as exc:  # noqa: BLE001 - enqueued again once the hold has passed
            log.warning("alert %s: delivery not enqueued: %s", alert_id, type(exc).__name__)
            continue
        sent.append(alert_id)
    return sent


def deliver_alert(
    alert_id: str, attempt: int | None = None, settings: Settings | None = None
) -> str | None:
    """Attempt ``attempt`` (default: the next one) once: ``delivered``, ``pending``, ``failed``.

    None when the alert is not ours to post: delivered or failed already, that
    attempt already made, or another worker holds it.
    """
    settings = settings or get_settings()
    now = utcnow()
    with session_scope() as session:
        hold = settings.webhook_timeout * 3
        if not claim_delivery(
            session=session, alert_id=alert_id, attempt=attempt, hold=hold, now=now
        ):
            return None
        alert = session.get(Alert, alert_id)
        schedule = session.get(Schedule, alert.schedule_id) if alert else None
        if alert is None or schedule is None:
            return None
        url = (schedule.alert or {}).get("webhook", "")
        server_secret = settings.secret_key.get_secret_value()
        secret = (
            webhook_secret(schedule.webhook_salt, server_secret)
            if schedule.webhook_salt
            else server_secret
        )
        body = json.dumps(alert_payload(alert, schedule), sort_keys=True).encode()
    status, error = post(
        url, body, secret, allowlist=settings.webhook_allowlist, timeout=settings.webhook_timeout
    )
    with session_scope() as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            return None
        record_attempt(
            session=session,
            alert=alert,
            status_code=status,
            error=error,
            max_attempts=settings.webhook_max_attempts,
            backoff=settings.webhook_backoff,
        )
        outcome = alert.delivery
    if error:
        log.warning("alert %s webhook attempt failed: %s", alert_id, error)
    return outcome
