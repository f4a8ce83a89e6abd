"""Recurring compliance audits (admin only): create, list, read, disable.

The spec is validated exactly as for ``POST /v1/audits`` (field paths are
prefixed ``spec.``) and the cron expression (five fields, UTC) is checked
before anything is stored. ``biasaudit beat`` submits the spec each time the
schedule fires. ``DELETE`` disables a schedule (its audits keep their
``schedule_id``); it does not erase history.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from audit.api.body import json_body
from audit.api.deps import AdminToken, SessionDep, SettingsDep, TokenInfo
from audit.api.errors import ApiError, not_found
from audit.api.schemas import ScheduleCreate, SchedulePublic, SchedulesPublic, json_request_body
from audit.api.submission import prepare_spec
from audit.settings import Settings
from audit.storage.models import Schedule, plausible_id, utcnow
from audit.storage.repo import ScheduleError, create_schedule, get_schedule, list_schedules
from audit.storage.schedules import log_schedule, next_run

MSG_NEVER_FIRES = (
    "cron: {cron!r} never fires (no such date, e.g. February 30th); use five fields "
    "'minute hour day-of-month month day-of-week' in UTC, e.g. '0 3 * * 1'"
)

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])


@router.post(
    "",
    status_code=201,
    response_model=SchedulePublic,
    summary="Create a recurring audit (cron, UTC)",
    openapi_extra=json_request_body("ScheduleCreate"),
    responses={
        404: {"description": "spec.dataset.id not found in this project"},
        409: {"description": "a schedule with this name exists"},
        422: {"description": "invalid cron or spec"},
    },
)
async def create_schedule_route(
    request: Request, token: AdminToken, session: SessionDep, settings: SettingsDep
) -> SchedulePublic:
    body = await json_body(request, ScheduleCreate)
    return await run_in_threadpool(_create, body, token, session, settings)


def check_cron(cron: str) -> None:
    """422 naming ``cron`` unless it is valid and fires at least once."""
    try:
        next_run(cron, utcnow())
    except ScheduleError as exc:
        raise ApiError(422, str(exc), field="cron") from None
    except Exception:  # noqa: BLE001 - croniter accepts e.g. '0 0 30 2 *', then finds no date
        raise ApiError(422, MSG_NEVER_FIRES.format(cron=cron), field="cron") from None


def _create(
    body: ScheduleCreate, token: TokenInfo, session: Session, settings: Settings
) -> SchedulePublic:
    check_cron(body.cron)
    prepared = prepare_spec(
        body.spec, session=session, project=token.project, settings=settings, prefix="spec."
    )
    if any(s.name == body.name for s in list_schedules(session=session, project=token.project)):
        raise ApiError(409, f"name: a schedule called {body.name!r} already exists", field="name")
    try:
        row = create_schedule(
            session=session,
            project=token.project,
            name=body.name,
            cron=body.cron,
            spec=prepared.stored,
            enabled=body.enabled,
            actor=token.actor,
        )
    except ScheduleError as exc:
        field, _, _ = str(exc).partition(":")
        raise ApiError(422, str(exc), field=field or None) from None
    session.commit()
    return SchedulePublic.model_validate(row)


@router.get("", response_model=SchedulesPublic, summary="The project's schedules")
def list_schedules_route(token: AdminToken, session: SessionDep) -> SchedulesPublic:
    rows = list_schedules(session=session, project=token.project)
    return SchedulesPublic(data=[SchedulePublic.model_validate(r) for r in rows], count=len(rows))


@router.get("/{schedule_id}", response_model=SchedulePublic, summary="One schedule")
def read_schedule(schedule_id: str, token: AdminToken, session: SessionDep) -> SchedulePublic:
    return SchedulePublic.model_validate(_load(session, token.project, schedule_id))


def _load(session: Session, project: str, schedule_id: str) -> Schedule:
    row = None
    if plausible_id(schedule_id):
        row = get_schedule(session=session, project=project, schedule_id=schedule_id)
    if row is None:
        raise not_found("schedule", schedule_id[:100])
    return row


@router.delete("/{schedule_id}", status_code=204, summary="Disable a schedule (no further runs)")
def disable_schedule(schedule_id: str, token: AdminToken, session: SessionDep) -> Response:
    row = _load(session, token.project, schedule_id)
    row.enabled = False
    row.next_run_at = None
    session.flush()
    log_schedule(session, row, "schedule.changed", token.actor, enabled=False)
    session.commit()
    return Response(status_code=204)
