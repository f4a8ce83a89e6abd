"""Recurring compliance audits: a cron expression (UTC) and the spec to submit each time.

The scheduler (``biasaudit beat``) asks ``due_schedules`` what is due and, for
each, in one transaction: ``advance_schedule`` first (it moves ``next_run_at``
forward only if the schedule is still due, so of two beats running at once
only one gets True), then ``create_audit(schedule_id=...)``, then sets
``schedule.last_audit_id``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from audit.storage.accounts import ensure_project
from audit.storage.models import Schedule, utcnow

MSG_BAD_CRON = (
    "cron: {cron!r} is not a valid cron expression; use five fields "
    "'minute hour day-of-month month day-of-week' in UTC, e.g. '0 3 * * 1' (Mondays 03:00)"
)


class ScheduleError(ValueError):
    """An invalid schedule (cron expression, name)."""


def next_run(cron: str, after: datetime) -> datetime:
    """The first time ``cron`` fires strictly after ``after`` (UTC)."""
    if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise ScheduleError(MSG_BAD_CRON.format(cron=cron))
    result: datetime = croniter(cron, after).get_next(datetime)
    return result


def source_window(
    session: Session,
    schedule: Schedule,
    *,
    previous: str | None,
    due: datetime,
    settle_seconds: int | None = None,
) -> tuple[str, str] | None:
    """The ``dataset.source`` window of the run due at ``due`` (ISO-8601 start, end), or
    None when the spec reads no source.

    It starts where the window of ``previous`` (the last run's audit id) ended, or at
    the cron's previous time, and ends at ``due``, both ``settle_seconds`` earlier
    (default: the schedule's own), so rows that reach the source late are still read.
    The scheduler and the check on a changed ``settle_seconds`` both use it."""
    dataset = (schedule.spec or {}).get("dataset")
    if not isinstance(dataset, dict) or not dataset.get("source"):
        return None
    settle = timedelta(
        seconds=schedule.settle_seconds if settle_seconds is None else settle_seconds
    )
    start = None
    if previous:
        from audit.storage.audits import load_audit

        last = load_audit(session=session, audit_id=previous)
        start = ((last.spec if last else {}).get("dataset") or {}).get("window_end")
    if start is None:
        start = (croniter(schedule.cron, due).get_prev(datetime) - settle).isoformat()
    return str(start), (due - settle).isoformat()


def as_utc(moment: str | datetime) -> datetime:
    """An ISO-8601 string or datetime as an aware UTC datetime (naive means UTC)."""
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def create_schedule(
    *,
    session: Session,
    project: str,
    name: str,
    cron: str,
    spec: dict[str, Any],
    enabled: bool = True,
    now: datetime | None = None,
    actor: str = "system",
) -> Schedule:
    """Create a schedule; its first run is the next time ``cron`` fires after ``now``.

    Logged as "schedule.created" by ``actor``.
    """
    if not name or len(name) > 200:
        raise ScheduleError("name: required, at most 200 characters")
    now = now or utcnow()
    first = next_run(cron, now)
    ensure_project(session=session, name=project)
    existing = session.scalars(
        select(Schedule).where(Schedule.project == project, Schedule.name == name)
    ).one_or_none()
    if existing is not None:
        raise ScheduleError(f"name: a schedule called {name!r} already exists in this project")
    schedule = Schedule(
        project=project,
        name=name,
        cron=cron,
        spec=spec,
        enabled=enabled,
        next_run_at=first if enabled else None,
        created_at=now,
    )
    session.add(schedule)
    session.flush()
    log_schedule(session, schedule, "schedule.created", actor, cron=cron, enabled=enabled)
    return schedule


def log_schedule(
    session: Session, schedule: Schedule, action: str, actor: str, **detail: Any
) -> None:
    """Append a schedule's entry (created, changed, fired) to the event log."""
    from audit.storage.events import append_event

    append_event(
        session=session,
        action=action,
        actor=actor,
        subject=f"schedule/{schedule.id}",
        project=schedule.project,
        audit_id=detail.get("audit_id"),
        detail={"name": schedule.name, **detail},
    )


def get_schedule(*, session: Session, project: str, schedule_id: str) -> Schedule | None:
    """A project's schedule by id, or None."""
    return session.scalars(
        select(Schedule).where(Schedule.id == schedule_id, Schedule.project == project)
    ).one_or_none()


def list_schedules(*, session: Session, project: str) -> list[Schedule]:
    """A project's schedules, by name."""
    return list(
        session.scalars(select(Schedule).where(Schedule.project == project).order_by(Schedule.name))
    )


def due_schedules(
    *, session: Session, now: datetime | None = None, limit: int = 100
) -> list[Schedule]:
    """Enabled schedules (all projects) whose ``next_run_at`` has come, earliest first."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(Schedule)
            .where(Schedule.enabled.is_(True), Schedule.next_run_at <= now)
            .order_by(Schedule.next_run_at, Schedule.id)
            .limit(limit)
        )
    )


def advance_schedule(
    *,
    session: Session,
    schedule_id: str,
    audit_id: str | None,
    now: datetime | None = None,
) -> bool:
    """Record a run and move ``next_run_at`` past ``now``; False if not due (already fired).

    Missed occurrences (the scheduler was down) are not replayed: the next run
    is the first one after ``now``.
    """
    now = now or utcnow()
    schedule = session.get(Schedule, schedule_id)
    if schedule is None:
        raise ScheduleError(f"schedule {schedule_id!r} not found")
    result = session.execute(
        update(Schedule)
        .where(
            Schedule.id == schedule_id,
            Schedule.enabled.is_(True),
            Schedule.next_run_at <= now,
        )
        .values(
            next_run_at=next_run(schedule.cron, now),
            last_run_at=now,
            last_audit_id=audit_id,
        )
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
