"""Dashboard pages beyond the audits list: compare, history, schedules, the event log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from audit.api.deps import SessionDep, SettingsDep, authorize
from audit.storage.models import plausible_id
from audit.ui.insights import compare_page, history_page
from audit.ui.render import render, see_other
from audit.ui.schedule_views import change_settle, create_from_form, disable, schedules_page
from audit.ui.security import UiError, ViewerDep, checked_form
from audit.ui.trail import list_events
from audit.ui.views import when

router = APIRouter(prefix="/ui", include_in_schema=False)
EVENT_ROLES = ("admin", "reviewer")
EVENTS_PAGE = 50


@router.get("/compare")
def compare(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    q = request.query_params
    context = compare_page(session, viewer, q.get("a", ""), q.get("b", ""))
    return render(request, "compare.html.j2", {"viewer": viewer, **context})


@router.get("/history")
def history(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    q = request.query_params
    context = history_page(session, viewer, q.get("model", "").lower(), q.get("schedule", ""))
    return render(request, "history.html.j2", {"viewer": viewer, **context})


@router.get("/schedules")
def schedules(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    context = schedules_page(session, viewer)
    return render(request, "schedules.html.j2", {"viewer": viewer, **context})


@router.post("/schedules")
async def create_schedule(
    request: Request, viewer: ViewerDep, session: SessionDep, settings: SettingsDep
) -> Response:
    fields = await checked_form(request, viewer)
    secret = await run_in_threadpool(create_from_form, session, viewer, settings, fields)
    if secret is None:
        return see_other("/ui/schedules")
    # the webhook's secret is shown once, on this answer (never in a URL or a cookie)
    context = await run_in_threadpool(schedules_page, session, viewer)
    created = {"name": fields.get("name", "").strip(), "secret": secret}
    return render(request, "schedules.html.j2", {"viewer": viewer, "created": created, **context})


@router.post("/schedules/{schedule_id}/settle")
async def settle_schedule(
    schedule_id: str, request: Request, viewer: ViewerDep, session: SessionDep,
    settings: SettingsDep,
) -> Response:  # fmt: skip
    fields = await checked_form(request, viewer)
    raw = fields.get("settle_seconds", "")
    await run_in_threadpool(change_settle, session, viewer, settings, schedule_id, raw)
    return see_other("/ui/schedules")


@router.post("/schedules/{schedule_id}/disable")
async def disable_schedule(
    schedule_id: str, request: Request, viewer: ViewerDep, session: SessionDep
) -> Response:
    await checked_form(request, viewer)
    await run_in_threadpool(disable, session, viewer, schedule_id)
    return see_other("/ui/schedules")


@router.get("/events")
def events(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    refusal = authorize(viewer.user.role, EVENT_ROLES, action="read the event log")
    if refusal is not None:
        raise UiError(refusal.status_code, refusal.detail)
    raw_page = request.query_params.get("page", "1")
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= 100_000:
        raise UiError(422, f"page: {raw_page[:20]!r} is not a page number")
    audit_id = request.query_params.get("audit_id") or None
    if audit_id is not None and not plausible_id(audit_id):
        raise UiError(422, f"audit_id: {audit_id[:40]!r} is not an audit id")
    page = list_events(
        session=session,
        project=viewer.user.project,
        audit_id=audit_id,
        limit=EVENTS_PAGE,
        offset=(int(raw_page) - 1) * EVENTS_PAGE,
    )
    if page is not None:
        for entry in page.entries:
            entry["at"] = when(entry.get("at"))
    context = {
        "viewer": viewer,
        "events": page,
        "audit_id": audit_id or "",
        "page": int(raw_page),
        "per_page": EVENTS_PAGE,
    }
    return render(request, "events.html.j2", context)
