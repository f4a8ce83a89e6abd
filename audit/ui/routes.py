"""Dashboard routes: sign-in and sign-out, the audits list, an audit and its review form.

Thin handlers: who is asking (:mod:`audit.ui.security`), what to show
(:mod:`audit.ui.views`), the shared rules (:mod:`audit.ui.trail`). Database
work runs in the thread pool; every POST checks its CSRF token first.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from audit.api.deps import SessionDep, SettingsDep
from audit.api.middleware import CSP
from audit.settings import Settings
from audit.storage.repo import verify_token
from audit.storage.ui_sessions import create_ui_session, delete_ui_session, get_ui_user
from audit.ui.render import render, safe_next, see_other
from audit.ui.security import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    MSG_CSRF,
    SESSION_COOKIE,
    UiError,
    ViewerDep,
    checked_form,
    new_login_csrf,
    read_form,
    same_token,
    set_cookie,
)
from audit.ui.trail import REPORT_FORMATS, api_report, submit_review
from audit.ui.views import audit_page, audits_page, load_audit

router = APIRouter(prefix="/ui", include_in_schema=False)
LOGIN_CSRF_SECONDS = 3600
MSG_BAD_LOGIN = "That token is not valid, or it has been revoked."


@router.get("")
def ui_root() -> RedirectResponse:
    return see_other("/ui/")


def _login_form(
    request: Request, settings: Settings, *, next_path: str, error: str = "", status: int = 200
) -> Response:
    csrf = new_login_csrf()
    response = render(
        request,
        "login.html.j2",
        {"csrf": csrf, "next": next_path, "error": error, "viewer": None},
        status=status,
    )
    set_cookie(response, request, settings, LOGIN_CSRF_COOKIE, csrf, LOGIN_CSRF_SECONDS)
    return response


@router.get("/login")
def login_page(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    session_id = request.cookies.get(SESSION_COOKIE, "")
    if session_id and get_ui_user(session=session, session_id=session_id) is not None:
        return see_other(next_path)
    return _login_form(request, settings, next_path=next_path)


def _sign_in(session: Session, settings: Settings, token: str, previous: str) -> str | None:
    """A new session for a live token (a session this browser held before is ended)."""
    row = verify_token(session=session, token=token.strip())
    if row is None:
        return None
    if previous:
        delete_ui_session(session=session, session_id=previous)
    lifetime = timedelta(seconds=settings.ui_session_seconds)
    session_id = create_ui_session(session=session, token_id=row.id, lifetime=lifetime)
    session.commit()
    return session_id


@router.post("/login")
async def login(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    fields = await read_form(request)
    next_path = safe_next(fields.get("next"))
    if not same_token(request.cookies.get(LOGIN_CSRF_COOKIE), fields.get(CSRF_FIELD)):
        return _login_form(request, settings, next_path=next_path, error=MSG_CSRF, status=403)
    previous = request.cookies.get(SESSION_COOKIE, "")
    session_id = await run_in_threadpool(
        _sign_in, session, settings, fields.get("token", ""), previous
    )
    if session_id is None:
        return _login_form(request, settings, next_path=next_path, error=MSG_BAD_LOGIN, status=401)
    response = see_other(next_path)
    set_cookie(response, request, settings, SESSION_COOKIE, session_id, settings.ui_session_seconds)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    await checked_form(request, viewer)
    session_id = request.cookies.get(SESSION_COOKIE, "")

    def sign_out() -> None:
        delete_ui_session(session=session, session_id=session_id)
        session.commit()

    await run_in_threadpool(sign_out)
    response = see_other("/ui/login")
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


@router.get("/")
def audits_list(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    context = audits_page(session, viewer, dict(request.query_params))
    return render(request, "audits.html.j2", {"viewer": viewer, **context})


@router.get("/audits/{audit_id}")
def audit_detail(
    audit_id: str, request: Request, viewer: ViewerDep, session: SessionDep
) -> Response:
    context = audit_page(session, viewer, audit_id)
    return render(request, "audit.html.j2", {"viewer": viewer, **context})


@router.post("/audits/{audit_id}/review")
async def review(
    audit_id: str, request: Request, viewer: ViewerDep, session: SessionDep
) -> Response:
    fields = await checked_form(request, viewer)

    def act() -> None:
        submit_review(
            session=session,
            token=viewer.token,
            audit_id=audit_id,
            decision=fields.get("decision", ""),
            comment=fields.get("comment", ""),
        )

    await run_in_threadpool(act)
    return see_other(f"/ui/audits/{audit_id}#reviews")


@router.get("/audits/{audit_id}/report")
def report(audit_id: str, request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    """The audit's report for the signed-in viewer (HTML; ``?format=pdf``), exactly as
    ``GET /v1/audits/{id}/report`` answers it (with the report's own, stricter-for-it CSP)."""
    load_audit(session, viewer, audit_id)  # 404 page for another project's id
    fmt = request.query_params.get("format", "html")
    if fmt not in REPORT_FORMATS:
        raise UiError(422, f"format: {fmt[:20]!r} is not one of {', '.join(REPORT_FORMATS)}")
    response = api_report(
        request=request, session=session, token=viewer.token, audit_id=audit_id, format=fmt
    )
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    return response
