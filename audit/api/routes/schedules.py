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
from audit.api.schemas import (
    AlertConfig,
    AlertPublic,
    AlertsPublic,
    ScheduleCreate,
    SchedulePublic,
    SchedulesPublic,
    ScheduleUpdate,
    json_request_body,
)
from audit.api.submission import prepare_spec
from audit.monitoring.webhooks import WebhookRefused, check_webhook
from audit.settings import Settings
from audit.storage.alerts import list_alerts, new_webhook_salt, webhook_secret
from audit.storage.audits import get_audit
from audit.storage.models import Schedule, plausible_id, utcnow
from audit.storage.repo import ScheduleError, create_schedule, get_schedule, list_schedules
from audit.storage.schedules import as_utc, log_schedule, next_run, source_window

MSG_NEVER_FIRES = (
    "cron: {cron!r} never fires (no such date, e.g. February 30th); use five fields "
    "'minute hour day-of-month month day-of-week' in UTC, e.g. '0 3 * * 1'"
)

MSG_SETTLE_INVERTS = (
    "settle_seconds: {settle} would end the next window ({end}) before it starts ({start}, "
    "where the last run's window ended); use at most {most} until the next run ({due}) "
    "has happened"
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
    alert = _check_alert(body.alert, settings)
    _check_baseline(session, token.project, body.baseline_audit_id)
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
    row.baseline_audit_id = body.baseline_audit_id
    row.settle_seconds = body.settle_seconds
    secret = _set_alert(row, alert, settings)
    session.commit()
    return SchedulePublic.model_validate(row).model_copy(update={"webhook_secret": secret})


def _check_alert(alert: AlertConfig | None, settings: Settings) -> dict[str, str] | None:
    """422 naming ``alert.webhook`` unless the host is allowed (allowlist and SSRF checks)."""
    if alert is None:
        return None
    try:
        check_webhook(alert.webhook, settings.webhook_allowlist)
    except WebhookRefused as exc:
        raise ApiError(422, str(exc), field="alert.webhook") from None
    return {"webhook": alert.webhook}


def _check_baseline(session: Session, project: str, audit_id: str | None) -> None:
    if audit_id is not None and (
        not plausible_id(audit_id)
        or get_audit(session=session, project=project, audit_id=audit_id) is None
    ):
        raise ApiError(
            422, f"baseline_audit_id: no audit {audit_id[:40]!r} in this project",
            field="baseline_audit_id",
        )  # fmt: skip


def _set_alert(row: Schedule, alert: dict[str, str] | None, settings: Settings) -> str | None:
    """Store the alert target; a new salt (secret) when a webhook is set: the secret, once."""
    row.alert = alert
    if alert is None:
        row.webhook_salt = None
        return None
    row.webhook_salt = new_webhook_salt()
    return webhook_secret(row.webhook_salt, settings.secret_key.get_secret_value())


@router.patch(
    "/{schedule_id}",
    response_model=SchedulePublic,
    summary="Change a schedule's alert target, baseline or settle delay",
    openapi_extra=json_request_body("ScheduleUpdate"),
    responses={
        422: {
            "description": "webhook refused, baseline not found, or a settle_seconds "
            "that would end the next window before it starts"
        }
    },
)
async def update_schedule_route(
    schedule_id: str, request: Request, token: AdminToken, session: SessionDep,
    settings: SettingsDep,
) -> SchedulePublic:  # fmt: skip
    body = await json_body(request, ScheduleUpdate)
    return await run_in_threadpool(_update, schedule_id, body, token, session, settings)


def _update(
    schedule_id: str, body: ScheduleUpdate, token: TokenInfo, session: Session, settings: Settings
) -> SchedulePublic:
    row = _load(session, token.project, schedule_id)
    secret = None
    changed: dict[str, object] = {}
    if "alert" in body.model_fields_set:
        secret = _set_alert(row, _check_alert(body.alert, settings), settings)
        changed["alert"] = row.alert
    if "baseline_audit_id" in body.model_fields_set:
        _check_baseline(session, token.project, body.baseline_audit_id)
        row.baseline_audit_id = body.baseline_audit_id
        changed["baseline_audit_id"] = body.baseline_audit_id
    if "settle_seconds" in body.model_fields_set:
        check_settle(session, row, body.settle_seconds)
        row.settle_seconds = body.settle_seconds
        changed["settle_seconds"] = body.settle_seconds
    session.flush()
    log_schedule(session, row, "schedule.changed", token.actor, **changed)
    session.commit()
    return SchedulePublic.model_validate(row).model_copy(update={"webhook_secret": secret})


def check_settle(session: Session, row: Schedule, settle: int) -> None:
    """422 naming ``settle_seconds`` when the next ``dataset.source`` window would end
    before (or where) it starts: raising the delay by more than the time between runs
    moves the end before the last run's window end (the run would fail later)."""
    if not row.enabled or row.next_run_at is None:
        return
    due = row.next_run_at
    window = source_window(session, row, previous=row.last_audit_id, due=due, settle_seconds=settle)
    if window is None or as_utc(window[0]) < as_utc(window[1]):
        return
    most = int((as_utc(due) - as_utc(window[0])).total_seconds()) - 1
    raise ApiError(
        422,
        MSG_SETTLE_INVERTS.format(
            settle=settle, end=window[1], start=window[0], most=max(most, 0),
            due=as_utc(due).isoformat(),
        ),
        field="settle_seconds",
    )  # fmt: skip


@router.get("/{schedule_id}/alerts", response_model=AlertsPublic, summary="A schedule's alerts")
def schedule_alerts(schedule_id: str, token: AdminToken, session: SessionDep) -> AlertsPublic:
    row = _load(session, token.project, schedule_id)
    alerts = list_alerts(session=session, project=token.project, schedule_id=row.id)
    return AlertsPublic(data=[AlertPublic.model_validate(a) for a in alerts], count=len(alerts))


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
