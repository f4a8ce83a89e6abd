"""Request dependencies as ``Annotated`` aliases: settings, a session, the caller's token, roles.

Authorization is checked in this order, so nothing leaks to the wrong caller:

1. no / malformed / unknown / revoked bearer token -> ``401`` with
   ``WWW-Authenticate: Bearer``;
2. a role that may not use the route -> ``403``;
3. an object of another project -> ``404`` (routes query with the token's
   project, so such rows are simply not found).

Roles: ``submitter`` uploads, submits, cancels, deletes uploads and reads its
project; ``reviewer`` reads and signs off audits (it may not delete: erasure is
for who brought the data, and the project's admin); ``admin`` does everything,
including schedules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from audit.api.errors import ApiError
from audit.api.logging import bind
from audit.settings import Settings
from audit.storage.accounts import token_actor
from audit.storage.db import get_sessionmaker
from audit.storage.repo import verify_token

MSG_NO_TOKEN = "missing bearer token: send 'Authorization: Bearer <token>' (biasaudit keys create)"
MSG_BAD_TOKEN = "invalid or revoked token"
MSG_ROLE = "role {role!r} may not {action}; needs one of: {allowed}"
CHALLENGE = {"WWW-Authenticate": "Bearer"}
SUBMIT_ROLES = ("submitter", "admin")
SUBMIT_ACTION = "upload, submit or cancel"


def bad_token() -> ApiError:
    """The 401 for an unknown, revoked or malformed token."""
    return ApiError(401, MSG_BAD_TOKEN, field="Authorization", headers=CHALLENGE)


def authorize(role: str, roles: tuple[str, ...], *, action: str) -> ApiError | None:
    """None when ``role`` may do ``action``, else the 403 to answer (one rule for every route)."""
    if role in roles:
        return None
    return ApiError(403, MSG_ROLE.format(role=role, action=action, allowed=", ".join(roles)))


async def get_settings_dep(request: Request) -> Settings:
    """The settings the app was created with (async: no thread hop for an attribute read)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def _finish(session: Session, *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def get_session(settings: SettingsDep) -> AsyncIterator[Session]:
    """A database session for one request: committed if the route returns, else rolled back.

    Routes that must commit before a side effect (publishing a message,
    renaming a file into place) call ``session.commit()`` themselves.

    Async on purpose: making a session does no I/O, and a session outside a
    transaction holds no connection, so only a pending commit or rollback goes
    to the thread pool. A sync dependency would cost two thread hops per
    request (enter and exit), a measurable share of a submission's CPU time.
    """
    session = get_sessionmaker(settings.db_url)()
    try:
        yield session
    except BaseException:
        if session.in_transaction():
            with anyio.CancelScope(shield=True):  # roll back even when the request is cancelled
                await run_in_threadpool(_finish, session, commit=False)
        else:
            session.close()
        raise
    if session.in_transaction():
        await run_in_threadpool(_finish, session, commit=True)
    else:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class TokenInfo:
    """The authenticated caller: token row id, project (tenant) and role. Never the secret."""

    id: int
    project: str
    role: str
    name: str | None = None

    @property
    def actor(self) -> str:
        """Who acts, as recorded on audits, reviews and events: the person's name, else the
        token (``token 7 (reviewer)``) when it was created without ``--name``."""
        return token_actor(self.id, self.role, self.name)


def bearer_token(request: Request) -> str:
    """The presented bearer token (unverified), or 401 when there is none."""
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(401, MSG_NO_TOKEN, field="Authorization", headers=CHALLENGE)
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise ApiError(401, MSG_NO_TOKEN, field="Authorization", headers=CHALLENGE)
    return value


def get_current_token(request: Request, session: SessionDep) -> TokenInfo:
    """The caller's live token, or 401."""
    row = verify_token(session=session, token=bearer_token(request))
    if row is None:
        raise bad_token()
    info = TokenInfo(id=row.id, project=row.project, role=row.role, name=row.name)
    bind(project=info.project, token_id=info.id)
    return info


CurrentToken = Annotated[TokenInfo, Depends(get_current_token)]


def require_roles(
    *roles: str, action: str
) -> Callable[[TokenInfo], Coroutine[Any, Any, TokenInfo]]:
    """A dependency that lets only ``roles`` through (403 otherwise)."""

    async def check(token: CurrentToken) -> TokenInfo:  # async: no I/O, no thread hop
        refusal = authorize(token.role, roles, action=action)
        if refusal is not None:
            raise refusal
        return token

    check.roles = roles  # type: ignore[attr-defined]  # read by the OpenAPI document
    return check


ReaderToken = CurrentToken
SubmitterToken = Annotated[TokenInfo, Depends(require_roles(*SUBMIT_ROLES, action=SUBMIT_ACTION))]
ReviewerToken = Annotated[
    TokenInfo, Depends(require_roles("reviewer", "admin", action="review audits"))
]
AdminToken = Annotated[TokenInfo, Depends(require_roles("admin", action="manage schedules"))]
DeleterToken = Annotated[
    TokenInfo,
    Depends(require_roles(*SUBMIT_ROLES, action="delete datasets or models")),
]
