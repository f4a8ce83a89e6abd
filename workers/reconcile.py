"""The reconciler: make the database (the record) and Redis (the messages) agree again.

Run periodically by ``biasaudit beat`` (``biasaudit.reconcile``) and callable
directly. Each run, in this order:

1. fail audits whose lease expired after their last allowed attempt (their
   worker died ``max_attempts`` times: "worker lost");
2. cancel audits whose cancel was requested but whose worker died;
3. re-publish audits still ``queued`` after ``requeue_after`` seconds (the API
   committed but its publish failed, or Redis lost the message on restart)
   and audits ``running`` past their lease (the worker died; Redis would
   redeliver only after the visibility timeout).

A job whose message is already waiting in its queue is not published again,
so a backlog does not multiply; and publishing twice is harmless anyway — the
claim lets one delivery run and acknowledges the other.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from audit.queue import QUEUES, TASK_RUN_AUDIT, queue_for
from audit.settings import get_settings
from audit.storage import repo, session_scope
from audit.storage.models import Audit, utcnow

log = logging.getLogger("biasaudit.reconcile")

BATCH = 500  # most audits re-published per run (the next run takes the rest)


@dataclass
class ReconcileReport:
    """What one run did (ids)."""

    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    republished: list[str] = field(default_factory=list)
    already_queued: list[str] = field(default_factory=list)
    publish_errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _message_audit_id(raw: bytes | str) -> str | None:
    """The audit id of a ``biasaudit.run_audit`` message as kombu stores it in Redis."""
    try:
        message = json.loads(raw)
        headers = message.get("headers") or {}
        if headers.get("task") != TASK_RUN_AUDIT:
            return None
        body = message["body"]
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0]) if args else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def waiting_audit_ids(broker_url: str | None = None) -> set[str] | None:
    """Audit ids with a ``run_audit`` message waiting in the gpu/cpu queues.

    None when it cannot be known (not a Redis broker, or Redis unreachable):
    then everything due is published.
    """
    url = broker_url or get_settings().broker_url
    if not url or url.split(":", 1)[0] not in ("redis", "rediss", "unix"):
        return None
    try:
        import redis

        with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5) as conn:
            ids: set[str] = set()
            for queue in QUEUES:
                for raw in conn.lrange(queue, 0, -1):
                    audit_id = _message_audit_id(raw)
                    if audit_id:
                        ids.add(audit_id)
            return ids
    except Exception as exc:  # noqa: BLE001 - the reconciler must keep running
        log.warning("cannot list queued messages: %s", type(exc).__name__)
        return None


def _default_publish(audit_id: str, *, queue: str) -> None:
    from audit.queue import publish

    publish(audit_id, queue=queue)


def reconcile(
    *,
    now: datetime | None = None,
    requeue_after: float | None = None,
    publish: Callable[..., None] | None = None,
    broker_url: str | None = None,
) -> ReconcileReport:
    """One reconciliation pass (see the module docstring); returns what it did."""
    settings = get_settings()
    now = now or utcnow()
    requeue_after = settings.requeue_after if requeue_after is None else requeue_after
    publish = publish or _default_publish
    report = ReconcileReport()
    with session_scope() as session:
        report.failed = repo.fail_stale_audits(
            session=session, max_attempts=settings.max_attempts, now=now
        )
    with session_scope() as session:
        abandoned = session.scalars(
            select(Audit.id).where(
                Audit.status == "running",
                Audit.lease_until < now,
                Audit.cancel_requested.is_(True),
            )
        ).all()
        for audit_id in abandoned:
            if repo.mark_cancelled(session=session, audit_id=audit_id, now=now, actor="reconciler"):
                report.cancelled.append(audit_id)
    with session_scope() as session:
        due = session.execute(
            select(Audit.id, Audit.spec)
            .where(
                or_(
                    and_(
                        Audit.status == "queued",
                        Audit.created_at < now - timedelta(seconds=requeue_after),
                    ),
                    and_(
                        Audit.status == "running",
                        Audit.lease_until < now,
                        Audit.attempts < settings.max_attempts,
                        Audit.cancel_requested.is_(False),
                    ),
                )
            )
            .order_by(Audit.created_at)
            .limit(BATCH)
        ).all()
    if due:
        waiting = waiting_audit_ids(broker_url)
        for audit_id, spec in due:
            if waiting is not None and audit_id in waiting:
                report.already_queued.append(audit_id)
                continue
            try:
                publish(audit_id, queue=queue_for(spec or {}))
                report.republished.append(audit_id)
            except Exception as exc:  # noqa: BLE001 - broker down: next run tries again
                report.publish_errors.append(audit_id)
                log.warning("re-publish of audit %s failed: %s", audit_id, type(exc).__name__)
    for audit_id in report.failed:
        log.error("audit %s failed: worker lost in every attempt", audit_id)
    if report.republished:
        log.info("re-published %d audit(s): %s", len(report.republished), report.republished)
    return report
