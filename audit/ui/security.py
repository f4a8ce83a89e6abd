"""Dashboard sign-in, session cookie and CSRF checks.

- Sign-in exchanges an API token for a server-side session
  (:mod:`audit.storage.ui_sessions`): the browser gets a random id in an
  ``HttpOnly; SameSite=Strict`` cookie (``Secure`` when the request is https,
  or always with ``BIASAUDIT_BEHIND_HTTPS_PROXY``); the database keeps only
  its SHA-256. Sign-out deletes the row.
- Every form carries a CSRF token checked on every POST: after sign-in it is
  an HMAC of the session id (so it needs no storage and dies with the
  session); the sign-in form itself uses a double-submit cookie.
- The session acts with its token's project and role, checked on every
  request like a bearer token: a revoked token ends its sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from fastapi.responses import Response

from audit.api.deps import SessionDep, TokenInfo
from audit.settings import Settings
from audit.storage.ui_sessions import UiUser, get_ui_user

SESSION_COOKIE = "biasaudit_session"
LOGIN_CSRF_COOKIE = "biasaudit_login_csrf"
CSRF_FIELD = "csrf_token"
MSG_CSRF = "The form's security token is missing or out of date: reload the page and try again."
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 1024 * 1024  # as a JSON body of the API (a schedule's spec is the largest)
MAX_FORM_FIELDS = 20
MSG_FORM_TYPE = "The form was not sent as a web form ({ctype!r}); use the page's own form."
MSG_FORM_NUL = "A form field holds a NUL character; remove it and send the form again."
MSG_FORM_SIZE = f"The form is larger than {MAX_FORM_BYTES} bytes or has too many fields."


class UiError(Exception):
    """An error page: ``status`` and a sentence for the person using the dashboard."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoginRequired(Exception):
    """No live session: the browser is sent to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def csrf_for(session_id: str) -> str:
    """The CSRF token of a session: HMAC-SHA256 keyed with the session id."""
    return hmac.new(session_id.encode(), b"biasaudit-ui-csrf", hashlib.sha256).hexdigest()


def new_login_csrf() -> str:
    """A random token for the sign-in form's double-submit cookie."""
    return secrets.token_urlsafe(24)


def same_token(expected: str | None, presented: object) -> bool:
    """Constant-time comparison; False when either side is missing."""
    if not expected or not isinstance(presented, str) or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def secure_cookies(request: Request, settings: Settings) -> bool:
    """Whether cookies get ``Secure``: an https request, or a TLS proxy in front."""
    return settings.behind_https_proxy or request.url.scheme == "https"


def set_cookie(
    response: Response, request: Request, settings: Settings, name: str, value: str, max_age: int
) -> None:
    """Set a dashboard cookie: HttpOnly, SameSite=Strict, path /ui, Secure when due."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request, settings),
    )


@dataclass(frozen=True)
class Viewer:
    """The signed-in person: their token's identity and the session's CSRF token."""

    user: UiUser
    csrf: str

    @property
    def token(self) -> TokenInfo:
        """The same identity the JSON API uses, for the shared authorization rules."""
        u = self.user
        return TokenInfo(id=u.token_id, project=u.project, role=u.role, name=u.name)

    @property
    def can_review(self) -> bool:
        return self.user.role in ("reviewer", "admin")

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"


def current_viewer(request: Request, session: SessionDep) -> Viewer:
    """The live session's viewer, or :class:`LoginRequired` (sent to the sign-in page)."""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    user = get_ui_user(session=session, session_id=session_id) if session_id else None
    if user is None:
        path = request.url.path
        if request.method == "GET" and request.url.query:
            path += "?" + request.url.query
        raise LoginRequired(path)
    return Viewer(user=user, csrf=csrf_for(session_id))


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


async def read_form(request: Request) -> dict[str, str]:
    """The text fields of a POSTed web form, bounded before anything is parsed.

    Only ``application/x-www-form-urlencoded`` (what the pages send); at most
    :data:`MAX_FORM_BYTES` (refused from ``Content-Length``, then while reading)
    and :data:`MAX_FORM_FIELDS` fields. The sign-in form is reachable without a
    session, so its body must not be read without a bound.
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in (FORM_TYPE, ""):  # no type: an empty form (e.g. a bare POST)
        raise UiError(415, MSG_FORM_TYPE.format(ctype=ctype[:60]))
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise UiError(413, MSG_FORM_SIZE)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM_BYTES:
            raise UiError(413, MSG_FORM_SIZE)
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise UiError(413, MSG_FORM_SIZE) from None
    if any("\x00" in key or "\x00" in value for key, value in pairs):
        raise UiError(422, MSG_FORM_NUL)
    return dict(pairs)


async def checked_form(request: Request, viewer: Viewer) -> dict[str, str]:
    """The POSTed form's fields, after its CSRF token was checked (403 otherwise)."""
    fields = await read_form(request)
    if not same_token(viewer.csrf, fields.get(CSRF_FIELD)):
        raise UiError(403, MSG_CSRF)
    return fields
