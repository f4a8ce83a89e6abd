"""The event log: ``GET /v1/events`` (admin, reviewer), the project's entries, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from audit.api.deps import SessionDep, TokenInfo, require_roles
from audit.storage.events import MAX_EVENT_PAGE, event_dict, list_events
from audit.storage.listing import MAX_OFFSET
from audit.storage.models import plausible_id

router = APIRouter(prefix="/v1/events", tags=["events"])
LogReader = Annotated[
    TokenInfo, Depends(require_roles("admin", "reviewer", action="read the event log"))
]


class EventPublic(BaseModel):
    """One log entry; ``sha256`` covers it and ``prev_sha256`` names the entry before."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    audit_id: str | None = None
    result_sha256: str | None = None
    detail: dict[str, Any] | None = None
    sha256: str
    prev_sha256: str


class EventsPublic(BaseModel):
    data: list[EventPublic]
    count: int
    limit: int
    offset: int


@router.get("", response_model=EventsPublic, summary="The project's event log, newest first")
def read_events(
    token: LogReader,
    session: SessionDep,
    audit_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENT_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> EventsPublic:
    if audit_id is not None and not plausible_id(audit_id):  # no row has it: nothing to ask
        return EventsPublic(data=[], count=0, limit=limit, offset=offset)
    rows, total = list_events(
        session=session, project=token.project, audit_id=audit_id, limit=limit, offset=offset
    )
    return EventsPublic(
        data=[EventPublic.model_validate(event_dict(r)) for r in rows],
        count=total,
        limit=limit,
        offset=offset,
    )
