"""Liveness, readiness and metrics: no authentication, no tenant data.

``/healthz`` answers while the process can serve HTTP (it touches nothing).
``/readyz`` pings the database and the broker and answers ``503`` naming
what failed, so a load balancer stops sending submissions that could not be
recorded or queued. ``/metrics`` is the Prometheus text format.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from audit.api.deps import SettingsDep
from audit.queue import broker_ping
from audit.storage.db import ping

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database and broker reachable",
    responses={503: {"description": "the database or the broker is unreachable"}},
)
def readyz(settings: SettingsDep) -> JSONResponse:
    database = ping(settings.db_url)
    broker = bool(settings.broker_url) and broker_ping(settings.broker_url)
    checks = {
        "database": "ok" if database else "unavailable",
        "broker": "ok" if broker else ("unavailable" if settings.broker_url else "not configured"),
    }
    ready = database and broker
    failed = [name for name, state in checks.items() if state != "ok"]
    body: dict[str, object] = {"status": "ready" if ready else "unavailable", "checks": checks}
    if not ready:
        body["detail"] = f"not ready: {', '.join(failed)} unavailable"
        body["field"] = None
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    payload = await run_in_threadpool(generate_latest, registry)
    return Response(payload, media_type=CONTENT_TYPE_LATEST)
