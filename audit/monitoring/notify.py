"""Deliver alerts to schedule webhooks: right after a run, and retried by the beat.

``after_success(audit_id)`` is called by the worker once a scheduled audit's
results are stored: it raises the alerts (``audit.storage.alerts``) and tries
each delivery once. ``deliver_due()`` runs on every beat tick and retries the
pending deliveries whose back-off has passed. Each attempt is claimed first
(a conditional UPDATE of ``next_attempt_at``), so two beats, or a beat and a
worker, never post the same attempt twice.
"""

from __future__ import annotations

import json
import logging

from audit.monitoring.webhooks import post
from audit.settings import Settings, get_settings
from audit.storage import session_scope
from audit.storage.alert_models import Alert
from audit.storage.alerts import (
    alert_payload,
    claim_delivery,
    due_deliveries,
    raise_alerts,
    record_attempt,
    webhook_secret,
)
from audit.storage.models import Schedule, utcnow
from audit.storage.schedules import log_schedule

log = logging.getLogger("biasaudit.alerts")


def after_success(audit_id: str) -> list[str]:
    """Raise the alerts of a succeeded audit and try their webhook once; their ids."""
    with session_scope() as session:
        alerts = raise_alerts(session=session, audit_id=audit_id)
        ids = [a.id for a in alerts]
        for alert in alerts:
            schedule = session.get(Schedule, alert.schedule_id)
            if schedule is not None and alert.attempts == 0:
                log_schedule(
                    session, schedule, "alert.raised", "scheduler",
                    audit_id=audit_id, kind=alert.kind, against=alert.details.get("against"),
                )  # fmt: skip
    for alert_id in ids:
        deliver_alert(alert_id)
    return ids


def deliver_alert(alert_id: str, settings: Settings | None = None) -> str | None:
    """One attempt if it is due: ``delivered``, ``pending`` (retry later), ``failed``."""
    settings = settings or get_settings()
    now = utcnow()
    with session_scope() as session:
        hold = settings.webhook_timeout * 3
        if not claim_delivery(session=session, alert_id=alert_id, hold=hold, now=now):
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


def deliver_due() -> list[str]:
    """Retry every pending delivery whose back-off has passed; the alert ids tried."""
    with session_scope() as session:
        due = due_deliveries(session=session)
    tried = []
    for alert_id in due:
        if deliver_alert(alert_id) is not None:
            tried.append(alert_id)
    return tried
