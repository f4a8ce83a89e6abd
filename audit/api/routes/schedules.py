"""Recurring compliance audits (admin only): create, list, read, disable.

The spec is validated exactly as for ``POST /v1/audits`` (field paths are
prefixed ``spec.``) and the cron expression (five fields, UTC) is checked
before anything is stored. ``biasaudit beat`` submits the spec each time the
schedule fires. ``DELETE`` disables a schedule (its audits keep their
``schedule_id``); it does not erase history.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from audit.api.deps import AdminToken, SessionDep, SettingsDep
from audit.api.errors import ApiError, not_found
from audit.api.schemas import ErrorPublic, ScheduleCreate, SchedulePublic, SchedulesPublic
from audit.api.submission import prepare_spec
from audit.storage.models import utcnow
from audit.storage.repo import ScheduleError, create_schedule, get_schedule, list_schedules
from audit.storage.schedules import next_run

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])


@router.post(
    "",
    status_code=201,
    response_model=SchedulePublic,
    summary="Create a recurring audit (cron, UTC)",
    responses={
        409: {"model": ErrorPublic, "description": "a schedule with this name exists"},
        422: {"model": ErrorPublic, "description": "invalid cron or spec"},
    },
)
def create_schedule_route(
    body: ScheduleCreate, token: AdminToken, session: SessionDep, settings: SettingsDep
) -> SchedulePublic:
    try:
        next_run(body.cron, utcnow())
    except ScheduleError as exc:
        raise ApiError(422, str(exc), field="cron") from None
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
    row = get_schedule(session=session, project=token.project, schedule_id=schedule_id)
    if row is None:
        raise not_found("schedule", schedule_id)
    return SchedulePublic.model_validate(row)


@router.delete("/{schedule_id}", status_code=204, summary="Disable a schedule (no further runs)")
def disable_schedule(schedule_id: str, token: AdminToken, session: SessionDep) -> Response:
    row = get_schedule(session=session, project=token.project, schedule_id=schedule_id)
    if row is None:
        raise not_found("schedule", schedule_id)
    row.enabled = False
    row.next_run_at = None
    session.commit()
    return Response(status_code=204)
