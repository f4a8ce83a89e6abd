"""Recurring compliance audits: turn due schedules into queued, published audits.

Run periodically by ``biasaudit beat`` (``biasaudit.fire_schedules``). For each
due schedule, one transaction moves ``next_run_at`` forward *only if the
schedule is still due* (``repo.advance_schedule``: of two schedulers running
at once, one wins), creates the audit and records it on the schedule; the
message is published after the commit. If that publish fails, the audit stays
``queued`` and the reconciler publishes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from audit.engine.spec import parse_spec
from audit.errors import AuditInputError
from audit.queue import queue_for
from audit.storage import repo, session_scope
from audit.storage.models import Schedule, utcnow
from audit.storage.schedules import log_schedule, source_window

log = logging.getLogger("biasaudit.schedules")


def _default_publish(audit_id: str, *, queue: str) -> None:
    from audit.queue import publish

    publish(audit_id, queue=queue)


def fire_due_schedules(
    *,
    now: datetime | None = None,
    publish: Callable[..., None] | None = None,
    send: Callable[[str, int], None] | None = None,
) -> list[str]:
    """Create one audit per due schedule and publish it; enqueue due webhook deliveries
    (``send``, default ``biasaudit.deliver_alert`` by name). Returns the new audit ids."""
    now = now or utcnow()
    publish = publish or _default_publish
    with session_scope() as session:
        due = [s.id for s in repo.due_schedules(session=session, now=now)]
    created: list[str] = []
    for schedule_id in due:
        job = _fire_one(schedule_id, now)
        if job is None:
            continue
        audit_id, queue = job
        created.append(audit_id)
        try:
            publish(audit_id, queue=queue)
        except Exception as exc:  # noqa: BLE001 - the reconciler publishes it later
            log.warning("publish of scheduled audit %s failed: %s", audit_id, type(exc).__name__)
    _enqueue_alerts(send, now)
    return created


def _enqueue_alerts(send: Callable[[str, int], None] | None, now: datetime) -> None:
    """Hand the due webhook deliveries to the workers (no HTTP in the tick)."""
    from audit.monitoring.notify import enqueue_due

    try:
        enqueue_due(send=send, now=now)
    except Exception as exc:  # noqa: BLE001 - the next tick tries again
        log.warning("webhook deliveries not enqueued: %s", type(exc).__name__)


def _fire_one(schedule_id: str, now: datetime) -> tuple[str, str] | None:
    with session_scope() as session:
        schedule = session.get(Schedule, schedule_id)
        if schedule is None:
            return None
        due, previous = schedule.next_run_at, schedule.last_audit_id
        if not repo.advance_schedule(
            session=session, schedule_id=schedule_id, audit_id=None, now=now
        ):
            return None  # another scheduler fired it first
        spec_dict: dict[str, Any] = _with_window(session, schedule, previous, due or now)
        try:
            spec, _ = parse_spec(spec_dict)
        except AuditInputError as exc:
            log.error("schedule %s has an invalid spec, not run: %s", schedule_id, exc)
            return None
        audit = repo.create_audit(
            session=session,
            project=schedule.project,
            spec=spec_dict,
            name=spec.name,
            domain=spec.domain,
            spec_sha256=spec.sha256(),
            schedule_id=schedule_id,
            actor="scheduler",
        )
        schedule.last_audit_id = audit.id
        session.flush()
        log_schedule(session, schedule, "schedule.fired", "scheduler", audit_id=audit.id)
        log.info("schedule %s fired: audit %s", schedule.name, audit.id)
        return audit.id, queue_for(spec_dict)


def _with_window(
    session: Any, schedule: Schedule, previous: str | None, due: datetime
) -> dict[str, Any]:
    """A ``dataset.source`` spec gets this run's window (``source_window``: the previous
    run's end, or the cron's previous time, .. this due time, both ``settle_seconds``
    earlier, as ISO-8601 UTC: rows may reach the source late, a settled window still
    reads them)."""
    spec = dict(schedule.spec)
    window = source_window(session, schedule, previous=previous, due=due)
    if window is None:
        return spec
    start, end = window
    return {**spec, "dataset": {**spec["dataset"], "window_start": start, "window_end": end}}
