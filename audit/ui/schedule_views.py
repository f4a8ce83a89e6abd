"""The schedules page (admins, like ``/v1/schedules``): list, create, change the settle
delay, disable.

Creating goes through the API's own schedule code (the spec is checked as
for ``POST /v1/audits``, the cron expression before anything is stored), so
the page and the API cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from audit.api.body import check_tree, parse_json
from audit.api.deps import authorize
from audit.api.errors import ApiError, validation_errors
from audit.api.schemas import ScheduleCreate, ScheduleUpdate
from audit.settings import Settings
from audit.storage.alerts import list_alerts
from audit.storage.dashboard import audits_by_id
from audit.storage.repo import list_schedules
from audit.ui.security import UiError, Viewer
from audit.ui.views import when

ADMIN = ("admin",)
MSG_SPEC_JSON = "spec: not valid JSON ({error}); paste the audit spec as a JSON object"


def require_admin(viewer: Viewer) -> None:
    """403 page unless the viewer is an admin (the API's rule for schedules)."""
    refusal = authorize(viewer.user.role, ADMIN, action="manage schedules")
    if refusal is not None:
        raise UiError(refusal.status_code, refusal.detail)


def schedules_page(session: Session, viewer: Viewer) -> dict[str, Any]:
    """Every schedule with its next run and its last run's status and verdict."""
    require_admin(viewer)
    rows = list_schedules(session=session, project=viewer.user.project)
    last = audits_by_id(
        session=session,
        project=viewer.user.project,
        ids=[s.last_audit_id for s in rows if s.last_audit_id],
    )
    alerts = list_alerts(session=session, project=viewer.user.project)
    out = []
    for s in rows:
        audit = last.get(s.last_audit_id or "")
        mine = [a for a in alerts if a.schedule_id == s.id]
        out.append(
            {
                "id": s.id,
                "name": s.name,
                "cron": s.cron,
                "enabled": s.enabled,
                "next_run": when(s.next_run_at) if s.enabled else "disabled",
                "last_run": when(s.last_run_at),
                "last_audit": audit.id if audit else "",
                "last_status": audit.status if audit else "",
                "last_verdict": (audit.verdict or "") if audit else "",
                "alerts": len(mine),
                "webhook": (s.alert or {}).get("webhook", ""),
                "settle_seconds": s.settle_seconds or 0,
            }
        )
    names = {s.id: s.name for s in rows}
    return {"schedules": out, "alerts": [alert_row(a, names) for a in alerts[:20]]}


def alert_row(alert: Any, names: dict[str, str]) -> dict[str, Any]:
    """One alert for a page: schedule, audit, kind, what moved, delivery state."""
    details = alert.details or {}
    verdict = details.get("verdict") or {}
    return {
        "schedule": names.get(alert.schedule_id, ""),
        "schedule_id": alert.schedule_id,
        "audit": alert.audit_id,
        "kind": alert.kind.replace("_", " "),
        "against": details.get("against", ""),
        "against_audit": details.get("against_audit_id", ""),
        "verdict": f"{verdict.get('a')} → {verdict.get('b')}" if verdict.get("changed") else "",
        "late": details.get("late", 0),  # late_rows: rows that reached the source too late
        "significant": details.get("significant", 0),
        "delivery": alert.delivery or "no webhook",
        "attempts": alert.attempts,
        "at": when(alert.created_at),
    }


def create_from_form(
    session: Session, viewer: Viewer, settings: Settings, fields: dict[str, str]
) -> str | None:
    """Create a schedule from the page's form (errors as pages naming the field).

    An optional ``webhook`` is checked against the allowlist exactly as the API
    checks ``alert.webhook``; its signing secret is returned (shown once)."""
    from audit.api.routes.schedules import _create

    require_admin(viewer)
    try:
        spec = parse_json((fields.get("spec") or "").encode("utf-8"))
        check_tree(spec, prefix="spec.")
    except ApiError as exc:
        if exc.detail.startswith("spec"):  # nested too deep, or a NUL character: names where
            raise UiError(422, exc.detail) from None
        detail = exc.detail.removeprefix("body: ")
        raise UiError(422, MSG_SPEC_JSON.format(error=detail[:160])) from None
    webhook = (fields.get("webhook") or "").strip()
    settle = (fields.get("settle_seconds") or "").strip()
    raw: dict[str, Any] = {
        "name": fields.get("name", "").strip(),
        "cron": fields.get("cron", "").strip(),
        "spec": spec,
        "enabled": True,
        "alert": {"webhook": webhook} if webhook else None,
    }
    if settle:  # blank: the API's default (0)
        raw["settle_seconds"] = settle
    try:
        body = ScheduleCreate.model_validate(raw)
    except ValidationError as exc:  # the API's own messages, naming the field
        raise UiError(422, validation_errors(exc.errors()).detail) from None
    try:
        created = _create(body, viewer.token, session, settings)
    except ApiError as exc:
        raise UiError(exc.status_code, exc.detail) from None
    return created.webhook_secret


def change_settle(
    session: Session, viewer: Viewer, settings: Settings, schedule_id: str, raw: str
) -> None:
    """Change a schedule's ``settle_seconds`` through the API's own ``PATCH`` code (the
    same bounds and messages, the same refusal of a window that would end before it
    starts, the same event-log entry)."""
    from audit.api.routes.schedules import _update

    require_admin(viewer)
    try:
        body = ScheduleUpdate.model_validate({"settle_seconds": raw.strip()})
    except ValidationError as exc:
        raise UiError(422, validation_errors(exc.errors()).detail) from None
    try:
        _update(schedule_id, body, viewer.token, session, settings)
    except ApiError as exc:
        raise UiError(exc.status_code, exc.detail) from None


def disable(session: Session, viewer: Viewer, schedule_id: str) -> None:
    """Disable a schedule (no further runs; its audits stay)."""
    from audit.api.routes.schedules import _load

    require_admin(viewer)
    try:
        row = _load(session, viewer.user.project, schedule_id)
    except ApiError as exc:
        raise UiError(exc.status_code, exc.detail) from None
    row.enabled = False
    row.next_run_at = None
    session.commit()
