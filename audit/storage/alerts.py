"""Alerts on scheduled audits: compare each run with the previous run and the baseline.

When a scheduled audit succeeds, :func:`raise_alerts` compares its results with
the schedule's previous succeeded run and with its baseline
(``schedules.baseline_audit_id``, by default the schedule's first succeeded
run) using :func:`audit.compare.compare_results`. A verdict change gives an
alert of kind ``verdict_changed``; otherwise any significant metric move gives
``significant_change``. Raising is idempotent per audit (a second delivery of
the same task finds the alerts already there).

If the schedule has ``alert.webhook``, each alert is ``pending`` until a POST
answers 2xx (``delivered``) or ``webhook_max_attempts`` attempts have failed
(``failed``); the n-th retry waits ``webhook_backoff * 2**(n-1)`` seconds.
Every attempt is a row in ``alert_deliveries``.

The webhook secret is never stored: ``schedules.webhook_salt`` is random and
the secret is HMAC-SHA256(``BIASAUDIT_SECRET_KEY``, salt), shown once when the
schedule is saved.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from audit.compare import compare_results
from audit.storage.alert_models import Alert, AlertDelivery
from audit.storage.models import Audit, Result, Schedule, utcnow

MAX_METRICS_IN_ALERT = 20


def new_webhook_salt() -> str:
    """A fresh random salt for a schedule's webhook secret."""
    return secrets.token_hex(32)


def webhook_secret(salt: str, server_secret: str) -> str:
    """The schedule's signing secret, derived from the server secret and its salt."""
    return hmac.new(server_secret.encode(), salt.encode(), hashlib.sha256).hexdigest()


def _document(session: Session, audit_id: str) -> dict[str, Any] | None:
    return session.scalar(select(Result.document).where(Result.audit_id == audit_id))


def _succeeded_runs(session: Session, schedule_id: str) -> list[Audit]:
    return list(
        session.scalars(
            select(Audit)
            .where(Audit.schedule_id == schedule_id, Audit.status == "succeeded")
            .order_by(Audit.created_at, Audit.id)
        )
    )


def _references(session: Session, schedule: Schedule, audit: Audit) -> list[tuple[str, str]]:
    """[(against, audit id)]: the previous succeeded run, then the baseline (if different)."""
    runs = [r for r in _succeeded_runs(session, schedule.id) if r.id != audit.id]
    earlier = [r for r in runs if (r.created_at, r.id) < (audit.created_at, audit.id)]
    refs: list[tuple[str, str]] = []
    if earlier:
        refs.append(("previous", earlier[-1].id))
    baseline = schedule.baseline_audit_id or (earlier[0].id if earlier else None)
    if baseline and baseline != audit.id and all(baseline != ref for _, ref in refs):
        refs.append(("baseline", baseline))
    return refs


def _alert_for(against: str, ref_id: str, diff: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kind = "verdict_changed" if diff["verdict"]["changed"] else "significant_change"
    moved = [m for m in diff["metrics"] if m["significant"]]
    return kind, {
        "against": against,
        "against_audit_id": ref_id,
        "verdict": diff["verdict"],
        "significant": diff["significant"],
        "metrics": moved[:MAX_METRICS_IN_ALERT],
        "findings": diff["findings"][:MAX_METRICS_IN_ALERT],
    }


def raise_alerts(*, session: Session, audit_id: str, now: datetime | None = None) -> list[Alert]:
    """The alerts of a succeeded scheduled audit (created once; [] if nothing moved)."""
    existing = list(session.scalars(select(Alert).where(Alert.audit_id == audit_id)))
    if existing:
        return existing
    audit = session.get(Audit, audit_id)
    if audit is None or audit.schedule_id is None or audit.status != "succeeded":
        return []
    schedule = session.get(Schedule, audit.schedule_id)
    document = _document(session, audit_id)
    if schedule is None or document is None:
        return []
    now = now or utcnow()
    alerts: list[Alert] = []
    for against, ref_id in _references(session, schedule, audit):
        reference = _document(session, ref_id)
        if reference is None:
            continue
        diff = compare_results(reference, document)
        if not diff["verdict"]["changed"] and not diff["significant"]:
            continue
        kind, details = _alert_for(against, ref_id, diff)
        alerts.append(new_alert(session=session, audit=audit, kind=kind, details=details, now=now))
    session.flush()
    return alerts


def new_alert(
    *, session: Session, audit: Audit, kind: str, details: dict[str, Any], now: datetime
) -> Alert:
    """Add one alert of a scheduled audit (``pending`` delivery if its schedule has a webhook)."""
    schedule = session.get(Schedule, audit.schedule_id)
    webhook = (schedule.alert or {}).get("webhook") if schedule is not None else None
    alert = Alert(
        project=audit.project,
        schedule_id=audit.schedule_id,
        audit_id=audit.id,
        kind=kind,
        details=details,
        created_at=now,
        delivery="pending" if webhook else None,
        attempts=0,
        next_attempt_at=now if webhook else None,
    )
    session.add(alert)
    return alert


def alert_payload(alert: Alert, schedule: Schedule) -> dict[str, Any]:
    """The JSON document POSTed to the webhook."""
    return {
        "alert_id": alert.id,
        "kind": alert.kind,
        "project": alert.project,
        "schedule": {"id": schedule.id, "name": schedule.name},
        "audit_id": alert.audit_id,
        "created_at": alert.created_at.isoformat(),
        "details": alert.details,
    }


def due_deliveries(*, session: Session, now: datetime | None = None) -> list[str]:
    """Ids of pending alerts whose next attempt has come."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(Alert.id)
            .where(Alert.delivery == "pending", Alert.next_attempt_at <= now)
            .order_by(Alert.next_attempt_at)
            .limit(100)
        )
    )


def reserve_delivery(*, session: Session, alert_id: str, hold: float, now: datetime) -> int | None:
    """Move a due delivery's next attempt ``hold`` seconds away (it is being enqueued):
    the attempt number to enqueue, for one caller only; None if not due or held."""
    row = session.execute(
        update(Alert)
        .where(
            Alert.id == alert_id,
            Alert.delivery == "pending",
            Alert.next_attempt_at <= now,
            or_(Alert.claimed_until.is_(None), Alert.claimed_until < now),
        )
        .values(next_attempt_at=now + timedelta(seconds=hold))
        .returning(Alert.attempts)
        .execution_options(synchronize_session=False)
    ).first()
    return None if row is None else int(row[0]) + 1


def claim_delivery(
    *, session: Session, alert_id: str, attempt: int | None, hold: float, now: datetime
) -> bool:
    """Hold a pending alert for ``hold`` seconds to post it: True for one caller only.

    With ``attempt``, only if that is the next attempt (a redelivered message for
    an attempt already made claims nothing); without, only if the attempt is due.
    """
    condition = [
        Alert.id == alert_id,
        Alert.delivery == "pending",
        or_(Alert.claimed_until.is_(None), Alert.claimed_until < now),
    ]
    if attempt is None:
        condition.append(Alert.next_attempt_at <= now)
    else:
        condition.append(Alert.attempts == attempt - 1)
    result = session.execute(
        update(Alert)
        .where(*condition)
        .values(claimed_until=now + timedelta(seconds=hold))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_attempt(
    *,
    session: Session,
    alert: Alert,
    status_code: int | None,
    error: str | None,
    max_attempts: int,
    backoff: float,
    now: datetime | None = None,
) -> None:
    """Store one attempt; mark the alert delivered, failed, or due again after back-off."""
    now = now or utcnow()
    alert.attempts += 1
    alert.claimed_until = None
    session.add(
        AlertDelivery(
            alert_id=alert.id, attempt=alert.attempts, at=now, status_code=status_code, error=error
        )
    )
    if error is None:
        alert.delivery, alert.next_attempt_at = "delivered", None
    elif alert.attempts >= max_attempts:
        alert.delivery, alert.next_attempt_at = "failed", None
    else:
        alert.next_attempt_at = now + timedelta(seconds=backoff * 2 ** (alert.attempts - 1))
    session.flush()


def list_alerts(
    *, session: Session, project: str, schedule_id: str | None = None, audit_id: str | None = None
) -> list[Alert]:
    """A project's alerts, newest first, optionally of one schedule or audit."""
    query = select(Alert).where(Alert.project == project)
    if schedule_id is not None:
        query = query.where(Alert.schedule_id == schedule_id)
    if audit_id is not None:
        query = query.where(Alert.audit_id == audit_id)
    return list(session.scalars(query.order_by(Alert.created_at.desc(), Alert.id).limit(200)))


def list_deliveries(*, session: Session, alert_id: str) -> list[AlertDelivery]:
    """Every delivery attempt of an alert, in order."""
    return list(
        session.scalars(
            select(AlertDelivery)
            .where(AlertDelivery.alert_id == alert_id)
            .order_by(AlertDelivery.attempt)
        )
    )
