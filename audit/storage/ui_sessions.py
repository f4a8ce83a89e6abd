"""Dashboard sessions (``/ui/``): server-side, stored as the SHA-256 of a random id.

A browser holds the session id in an HttpOnly cookie; the database holds only
its hash, the token the session acts for and the expiry. A session is live
while it has not expired and its token is not revoked, so revoking a token
signs its browsers out at their next request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from audit.storage.models import ApiToken, UiSession, utcnow

SESSION_ID_BYTES = 32


def hash_session_id(session_id: str) -> str:
    """The stored form of a session id: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class UiUser:
    """Who a live dashboard session acts as: the token's id, project, role and person."""

    token_id: int
    project: str
    role: str
    name: str | None
    expires_at: datetime


def create_ui_session(
    *, session: Session, token_id: int, lifetime: timedelta, now: datetime | None = None
) -> str:
    """A new session for ``token_id``; returns the session id (shown to the browser only).

    Expired sessions of every token are removed on the way (sign-ins are rare).
    """
    now = now or utcnow()
    session.execute(delete(UiSession).where(UiSession.expires_at <= now))
    session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
    session.add(
        UiSession(
            id_hash=hash_session_id(session_id),
            token_id=token_id,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return session_id


def get_ui_user(*, session: Session, session_id: str, now: datetime | None = None) -> UiUser | None:
    """The user of a live session (not expired, token not revoked), or None."""
    if not session_id or len(session_id) > 200:
        return None
    row = session.execute(
        select(UiSession.expires_at, ApiToken.id, ApiToken.project, ApiToken.role, ApiToken.name)
        .join(ApiToken, ApiToken.id == UiSession.token_id)
        .where(UiSession.id_hash == hash_session_id(session_id), ApiToken.revoked_at.is_(None))
    ).one_or_none()
    if row is None or row.expires_at <= (now or utcnow()):
        return None
    return UiUser(row.id, row.project, row.role, row.name, row.expires_at)


def delete_ui_session(*, session: Session, session_id: str) -> bool:
    """Sign out: remove the session; False when there was none."""
    result = session.execute(
        delete(UiSession).where(UiSession.id_hash == hash_session_id(session_id))
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
